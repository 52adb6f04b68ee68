"""H100 FlashAttention backward (FlashAttention-2's algorithm, K/V-stationary), in pykittens.

Each consumer warpgroup owns 64 keys: K_j and V_j stay in shared memory while a producer warp streams the query
tiles that see them (Q_i and dO_i by TMA). Per query tile, with the forward's log-sum-exp and D_i = rowsum(dO∘O):
  Sᵀ = K Qᵀ,  Pᵀ = exp(Sᵀ·scale − lse),  dV += Pᵀ dO,  dPᵀ = V dOᵀ,  dSᵀ = Pᵀ∘(dPᵀ − D),  dK += dSᵀ Q,
  (P in bf16 — the dV operand — also forms dS: the registers this frees keep ptxas from serialising the wgmma),
  dQ_i += dS K: every consumer stores its dSᵀ to shared memory; a dQ warpgroup (D=128), or else one consumer per
  step in turn (during its next step, so nobody waits for the slowest), multiplies all of them with the K tiles and
  adds the block's 64 x D sum into an fp32 buffer by the copy engine's add-reduce: dQ's summation order depends on
  timing (not bit-reproducible).
Deterministic mode drops dQ from that kernel (WITH_DQ=False) and computes it in ``attention_bwd_dq``, Q-stationary
(each block owns 64·2 query rows and sweeps the keys; S and dP are recomputed), which sums in a fixed order.
GQA: a block takes every query head of its key/value head, so dK and dV come out summed over the group.
"""
import math

import pykittens as tk

LOG2E = math.log2(math.e)


@tk.kernel(warps=4)
def attention_bwd_prep(o: tk.gl(tk.bf16), do: tk.gl(tk.bf16), delta: tk.gl(tk.fp32), dq: tk.gl(tk.fp32),
                       D: tk.constexpr, ZERO_DQ: tk.constexpr = True):
    """delta[b, h, i] = sum_d dO[b, h, i, d] * O[b, h, i, d], one 16-row tile per warp (read through shared memory
    in coalesced 16-byte chunks, all in flight at once by cp.async: a synchronous load waits for each chunk in
    turn); with ZERO_DQ the same rows of the fp32 dQ accumulator are zeroed (no memset)."""
    b, h, w = tk.block_idx.z, tk.block_idx.y, tk.warp_id()
    row = tk.let(tk.block_idx.x * 4 + w)
    o_s, do_s = tk.st(tk.bf16, 16, D, count=4), tk.st(tk.bf16, 16, D, count=4)
    o_bf, do_bf = tk.rt(tk.bf16, 16, D), tk.rt(tk.bf16, 16, D)
    o_reg, do_reg = tk.rt(tk.fp32, 16, D), tk.rt(tk.fp32, 16, D)
    d_vec = tk.col_vec(o_reg)
    tk.load_async(o_s[w], o, (b, h, row, 0), oob=0.0)
    tk.load_async(do_s[w], do, (b, h, row, 0), oob=0.0)
    tk.load_async_wait(0)
    tk.load(o_bf, o_s[w])
    tk.load(do_bf, do_s[w])
    tk.copy(o_reg, o_bf)
    tk.copy(do_reg, do_bf)
    tk.mul(o_reg, o_reg, do_reg)
    tk.row_sum(d_vec, o_reg)
    tk.store(delta, d_vec, (b, h, 0, row), clip=True)
    if ZERO_DQ:
        tk.zero(o_reg)
        tk.store(dq, o_reg, (b, h, row, 0), clip=True)


@tk.kernel(warps="W", min_blocks=1)
def attention_bwd(q: tk.gl(tk.bf16), k: tk.gl(tk.bf16), v: tk.gl(tk.bf16), do: tk.gl(tk.bf16), lse: tk.gl(tk.fp32),
                  delta: tk.gl(tk.fp32), dq: tk.gl(tk.fp32), dk: tk.gl(tk.bf16), dv: tk.gl(tk.bf16),
                  scale: tk.f32, D: tk.constexpr, CAUSAL: tk.constexpr, WITH_DQ: tk.constexpr = True,
                  C: tk.constexpr = 2, W: tk.constexpr = 12, STAGES: tk.constexpr = 2, SKIP: tk.constexpr = True,
                  HEAVY_FIRST: tk.constexpr = True, DQ_WG: tk.constexpr = False, SPLIT_PDS: tk.constexpr = False,
                  DQ_SPLIT: tk.constexpr = False, GRADS: tk.constexpr = "all", GQA: tk.constexpr = True):
    """dK, dV (and dQ by add-reduce) for 64·C keys per block: C consumer warpgroups, W = 4 (C + 1) warps (one
    warpgroup more with DQ_WG), a ring of STAGES (Q_i, dO_i) tiles; SKIP (causal): a consumer skips query tiles
    that see none of its keys. A consumer with no keys (past the end, in the last block) skips every step.
    HEAVY_FIRST (causal): blocks start in order of key block across groups of 8 heads, so the long first key blocks
    (they see every query tile) do not start last. DQ_WG: a warpgroup of its own computes every step's dQ (the
    consumers only hand it their dSᵀ), in 64-column pieces: with it the consumers need no dQ registers. SPLIT_PDS:
    dSᵀ gets registers of its own, so dPᵀ's wgmma is issued first and dS forms while dV's still runs. DQ_SPLIT:
    dQ is staged with ``split_pairs`` (conflict-free stmatrix), so the fp32 dQ accumulator holds each group of 8
    columns even-then-odd; ``attention_bwd_dq_convert`` puts them back in order. GRADS (D = 256, where dK and dV
    together need 256 registers per thread): 'dv' computes dV alone (S, P, dV: no V, no dP), 'dkq' dK and dQ; the
    two launches give what one 'all' launch does. GQA=False (one query head per key/value head): a step's query
    tile needs no division (a runtime one per step and role cost the GEMM 7-9%: NOTES.md)."""
    if GRADS not in ("all", "dv", "dkq") or (GRADS == "dv" and WITH_DQ):
        raise tk.KernelTypeError(f"attention_bwd: GRADS must be 'all', 'dv' (without dQ) or 'dkq', got {GRADS!r}")
    b, h_kv, kb = tk.block_idx.z, tk.block_idx.y, tk.block_idx.x
    if CAUSAL and HEAVY_FIRST:  # launch order -> (head, key block): the GEMM's grouped order, heads as its rows
        hh, kb = tk.grouped_tile_order(tk.launch_index(), tk.grid_dim.y * tk.grid_dim.z, tk.grid_dim.x, 8)
        b, h_kv = tk.let(hh // tk.grid_dim.y), tk.let(hh % tk.grid_dim.y)
    group = tk.let(q.depth // k.depth)
    k_s = tk.st(tk.bf16, 64, D, count=C)
    v_s = tk.st(tk.bf16, 64, D, count=C) if GRADS != "dv" else None  # (dV alone needs no V: no dP)
    q_s, do_s = tk.st(tk.bf16, 64, D, count=STAGES), tk.st(tk.bf16, 64, D, count=STAGES)
    # dQ_i = sum over the block's keys of dS K: each consumer puts its dSᵀ in shared memory, and one consumer per
    # step (step % C, in turn) multiplies all C of them with the K tiles and add-reduces the sum into global dQ,
    # so dQ traffic is one 64 x D fp32 tile per step and block (not per consumer). Double-buffered.
    ds_s = tk.st(tk.bf16, 64, 64, count=(2, C)) if WITH_DQ else None
    # (its 8-byte fp32 stores meet 2-way bank conflicts; a 32-byte swizzle avoids them but makes the TMA move
    # 8-column boxes, and was 2-8% slower: NOTES.md)
    # dQ in 64-column pieces with DQ_WG (its warpgroup has few registers) and at D = 256 (shared memory)
    pieces = 1 if not DQ_WG and D <= 128 else D // 64
    dq_s = tk.st(tk.fp32, 64, D // pieces, count=(2, pieces) if DQ_WG else C) if WITH_DQ else None
    ds_full, ds_free = tk.semaphore(count=2), tk.semaphore(count=2)  # (small things last: no alignment gaps)
    # lse and delta of the stage's query tile travel with it (a global load per step stalled the consumers)
    lse_s, delta_s = tk.sv(tk.fp32, 64, count=STAGES), tk.sv(tk.fp32, 64, count=STAGES)
    kv_ready = tk.semaphore(count=C)
    s_t = dp_t = tk.rt(tk.fp32, 16, 64)  # Sᵀ, then dPᵀ (P lives on in bf16): registers for the wgmma pipeline
    p_bf = ds_bf = tk.rt(tk.bf16, 16, 64)  # Pᵀ, then dSᵀ: dV's wgmma has read Pᵀ before dSᵀ is written
    if SPLIT_PDS:  # dSᵀ in registers of its own, formed while dV's wgmma still reads Pᵀ (fits with DQ_WG at D=128)
        ds_bf = tk.rt(tk.bf16, 16, 64)
    dk_acc, dv_acc, dq_acc = tk.rt(tk.fp32, 16, D), tk.rt(tk.fp32, 16, D), tk.rt(tk.fp32, 16, D // pieces)
    out = tk.rt(tk.bf16, 16, D)
    stat_v = tk.row_vec(s_t)  # lse (times log2 e), then delta: one at a time keeps registers for the wgmma pipeline
    shift = tk.let(k.rows - q.rows)  # bottom-right causal alignment: query i sees keys <= i + shift
    first_q = tk.let(tk.maximum(kb * 64 * C - shift, 0) // 64) if CAUSAL else 0  # earlier query tiles see none
    n_q = tk.let(tk.cdiv(q.rows, 64) - first_q)

    def q_tile(j):  # input step j -> (query head, query tile): each head of the group walks the query tiles
        return (h_kv * group + j // n_q, first_q + j % n_q) if GQA else (h_kv, first_q + j)

    def init():
        for c in range(C):
            tk.init_semaphore(kv_ready[c], 1)
        for i in range(2):
            tk.init_semaphore(ds_full[i], 4 * C)
            tk.init_semaphore(ds_free[i], 4)

    def load(s):
        hq, qi = q_tile(s.step)
        copies = [(q_s[s.stage], q, (b, hq, qi, 0)), (do_s[s.stage], do, (b, hq, qi, 0)),
                  (lse_s[s.stage], lse, (b, hq, 0, qi)), (delta_s[s.stage], delta, (b, hq, 0, qi))]
        tk.tma.load_group(s.full, *copies[:3 if GRADS == "dv" else 4])

    def start(s):
        c = s.consumer
        with tk.if_(tk.warp_id() % 4 == 0):
            kv = (b, h_kv, kb * C + c, 0)
            tk.tma.load_group(kv_ready[c], (k_s[c], k, kv), *([(v_s[c], v, kv)] if v_s else []))
        tk.zero(dk_acc)
        tk.zero(dv_acc)
        for other in range(C):  # the dQ step reads every consumer's K tile
            tk.wait(kv_ready[other], 0)

    def grads(s, c, hq, qi):  # Sᵀ, Pᵀ, dPᵀ, dSᵀ (into ds_bf) and the dV, dK updates of one step
        tk.warpgroup.mm_ABt(s_t, k_s[c], q_s[s.stage])  # Sᵀ: this warp's 16 keys x 64 queries
        tk.load(stat_v, lse_s[s.stage])
        tk.mul(stat_v, stat_v, LOG2E)
        tk.warpgroup.mma_wait()
        if CAUSAL:  # key r sees query col when (kb*128 + 64c + 16w + r) <= (64 qi + col) + shift; only tiles that
            key0 = (kb * C + c) * 64 + (tk.warp_id() % 4) * 16  # cross the diagonal are masked (+2-5%, NOTES.md)
            with tk.if_(key0 + 15 > qi * 64 + shift):
                tk.triu(s_t, s_t, key0 - qi * 64 - shift, -math.inf)
        tk.mul(s_t, s_t, scale * LOG2E)
        tk.sub_col(s_t, s_t, stat_v)
        tk.exp2(s_t, s_t)  # Pᵀ
        tk.copy(p_bf, s_t)
        dv = lambda: tk.warpgroup.mma_AB(dv_acc, p_bf, do_s[s.stage])  # noqa: E731
        if GRADS == "dv":
            return dv()
        dp = lambda: tk.warpgroup.mm_ABt(dp_t, v_s[c], do_s[s.stage])  # dPᵀ  # noqa: E731
        for mma in ((dp, dv) if SPLIT_PDS else (dv, dp)) if GRADS == "all" else (dp,):  # SPLIT_PDS: dPᵀ first,
            mma()  # and only it waited for
        tk.load(stat_v, delta_s[s.stage])
        tk.warpgroup.mma_wait(1 if SPLIT_PDS and GRADS == "all" else 0)
        tk.sub_col(dp_t, dp_t, stat_v)
        tk.mul(dp_t, dp_t, p_bf)  # dSᵀ
        tk.copy(ds_bf, dp_t)
        tk.warpgroup.mma_AB(dk_acc, ds_bf, q_s[s.stage])

    def compute(s):
        c = s.consumer
        hq, qi = (tk.let(x) for x in q_tile(s.step))
        # a consumer whose keys all lie past the end (in the last block) skips the work, dS = 0; with SKIP so does
        # one whose keys no row of the query tile sees (the tile lies wholly left of its first key)
        key0 = (kb * C + c) * 64
        needed = key0 < k.rows
        if CAUSAL and SKIP:
            needed = needed & (qi * 64 + 63 + shift >= key0)
        with tk.if_(needed):
            grads(s, c, hq, qi)
        with tk.else_():
            tk.zero(ds_bf)
        if not WITH_DQ:
            tk.warpgroup.mma_wait()
            return
        buf = tk.let(s.step % 2)
        tk.wait(ds_free[buf], (s.step // 2 % 2) ^ 1)  # the dQ of step - 2 has read this buffer
        tk.warpgroup.store(ds_s[buf, c], ds_bf)
        tk.arrive(ds_full[buf])
        if not DQ_WG:
            with tk.if_((s.step > 0) & ((s.step - 1) % C == c)):  # the previous step's dQ, by now likely ready
                dq_step(s.step - 1, c)
        tk.warpgroup.mma_wait()  # dK

    def dq_step(j, c):  # dQ_i part of step j = sum_c dS_c K_c, add-reduced into global dQ by warpgroup c
        tk.wait(ds_full[j % 2], j // 2 % 2)
        hq, qi = q_tile(j)
        for piece in range(pieces):
            for other in range(C):  # dS read transposed from shared
                k_part = tk.subtile(k_s[other], (64, D // pieces), (0, piece)) if pieces > 1 else k_s[other]
                (tk.warpgroup.mm_AtB if other == 0 else tk.warpgroup.mma_AtB)(dq_acc, ds_s[j % 2, other], k_part)
            tk.warpgroup.mma_wait()
            if piece == pieces - 1:
                tk.arrive(ds_free[j % 2])
            tk.mul(dq_acc, dq_acc, scale)
            with tk.if_(tk.warp_id() % 4 == 0):  # the add-reduce that last used the staging tile (DQ_WG: two
                tk.tma.store_wait(2 * pieces - 1 if DQ_WG else 0)  # steps ago) has read it
            tk.warpgroup.store_async(dq, dq_s[j % 2, piece] if DQ_WG else dq_s[c], dq_acc, (b, hq, qi, piece),
                                     1 + c, add=True, split_pairs=DQ_SPLIT)

    def dq_writer():  # DQ_WG: a warpgroup of its own does every step's dQ
        for other in range(C):
            tk.wait(kv_ready[other], 0)
        for j in tk.range(steps):
            dq_step(j, C)
        with tk.if_(tk.warp_id() % 4 == 0):
            tk.tma.store_wait(0)

    def finish(s):
        c = s.consumer
        if WITH_DQ:  # the last step's dQ (its consumer does it now) reads every K tile, which stage dK below
            last = steps - 1
            if not DQ_WG:
                with tk.if_(last % C == c):
                    dq_step(last, c)
            tk.wait(ds_free[last % 2], last // 2 % 2)
        outs = []  # K and V tiles stage dK and dV (the 'dv' launch has no V tile: K stages dV)
        if GRADS != "dv":
            tk.mul(dk_acc, dk_acc, scale)
            outs.append((dk_acc, dk, k_s[c]))
        if GRADS != "dkq":
            outs.append((dv_acc, dv, v_s[c] if v_s else k_s[c]))
        for acc, dst, tile in outs:
            tk.copy(out, acc)  # (store_async's first sync: no warp still reads K or V in a wgmma)
            tk.warpgroup.store_async(dst, tile, out, (b, h_kv, kb * C + c, 0), 1 + c)
        with tk.if_(tk.warp_id() % 4 == 0):
            tk.tma.store_wait(0)

    steps = tk.let(group * n_q)
    if DQ_WG and WITH_DQ:  # 24 + 2·208 + 72 = 512 per thread of a warpgroup: consumers at 200 serialise
        regs = dict(consumer_registers=208, helper_registers=72)
    else:
        regs = dict(consumer_registers={3: 160, 2: 240}.get(C, 256))  # (C = 1: D = 256's dK + dQ launch)
    tk.producer_consumer(stages=STAGES, consumers=C, tiles=1, steps=steps, load=load, compute=compute,
                         finish=finish, start=start, init=init, persistent=False, producer_registers=24,
                         helper=dq_writer if DQ_WG and WITH_DQ else None, **regs)


@tk.kernel(warps=12, min_blocks=1)
def attention_bwd_dq(q: tk.gl(tk.bf16), k: tk.gl(tk.bf16), v: tk.gl(tk.bf16), do: tk.gl(tk.bf16),
                     lse: tk.gl(tk.fp32), delta: tk.gl(tk.fp32), dq: tk.gl(tk.bf16), scale: tk.f32,
                     D: tk.constexpr, CAUSAL: tk.constexpr):
    """dQ alone, Q-stationary: each consumer warpgroup owns 64 query rows and sweeps 128-key blocks (fixed order)."""
    b, h, qb = tk.block_idx.z, tk.block_idx.y, tk.block_idx.x
    h_kv = tk.let(h // (q.depth // k.depth))
    q_s, do_s = tk.st(tk.bf16, 64, D, count=2), tk.st(tk.bf16, 64, D, count=2)
    k_s, v_s = tk.st(tk.bf16, 128, D, count=2), tk.st(tk.bf16, 128, D, count=2)
    q_ready = tk.semaphore(count=2)
    s_reg, dp = tk.rt(tk.fp32, 16, 128), tk.rt(tk.fp32, 16, 128)
    ds_bf, dq_acc, out = tk.rt(tk.bf16, 16, 128), tk.rt(tk.fp32, 16, D), tk.rt(tk.bf16, 16, D)
    lse_v, delta_v = tk.col_vec(s_reg), tk.col_vec(s_reg)
    shift = tk.let(k.rows - q.rows)
    steps = tk.cdiv(k.rows, 128)
    if CAUSAL:
        steps = tk.minimum(steps, tk.cdiv(tk.minimum((qb + 1) * 128, q.rows) + shift, 128))

    def init():
        for c in range(2):
            tk.init_semaphore(q_ready[c], 1)

    def load(s):
        kv = (b, h_kv, s.step, 0)
        tk.tma.load_group(s.full, (k_s[s.stage], k, kv), (v_s[s.stage], v, kv))

    def start(s):
        c, row16 = s.consumer, (qb * 2 + s.consumer) * 4 + tk.warp_id() % 4
        with tk.if_(tk.warp_id() % 4 == 0):
            rows = (b, h, qb * 2 + c, 0)
            tk.tma.load_group(q_ready[c], (q_s[c], q, rows), (do_s[c], do, rows))
        tk.load(lse_v, lse, (b, h, 0, row16), oob=0.0)
        tk.load(delta_v, delta, (b, h, 0, row16), oob=0.0)
        tk.mul(lse_v, lse_v, LOG2E)
        tk.zero(dq_acc)
        tk.wait(q_ready[c], 0)

    def compute(s):
        c = s.consumer
        tk.warpgroup.mm_ABt(s_reg, q_s[c], k_s[s.stage])
        tk.warpgroup.mm_ABt(dp, do_s[c], v_s[s.stage])
        tk.warpgroup.mma_wait()
        with tk.if_((s.step + 1) * 128 > k.rows):  # keys past the end
            tk.right_fill(s_reg, s_reg, k.rows - s.step * 128, -math.inf)
        if CAUSAL:
            q0 = (qb * 2 + c) * 64 + (tk.warp_id() % 4) * 16
            with tk.if_((s.step + 1) * 128 > q0 + shift + 1):  # the block crosses this warp's diagonal
                tk.tril(s_reg, s_reg, q0 + shift - s.step * 128, -math.inf)
        tk.mul(s_reg, s_reg, scale * LOG2E)
        tk.sub_row(s_reg, s_reg, lse_v)
        tk.exp2(s_reg, s_reg)  # P
        tk.sub_row(dp, dp, delta_v)
        tk.mul(dp, dp, s_reg)  # dS
        tk.copy(ds_bf, dp)
        tk.warpgroup.mma_AB(dq_acc, ds_bf, k_s[s.stage])
        tk.warpgroup.mma_wait()

    def finish(s):
        c = s.consumer
        tk.mul(dq_acc, dq_acc, scale)
        tk.copy(out, dq_acc)
        tk.warpgroup.store_async(dq, q_s[c], out, (b, h, qb * 2 + c, 0), 1 + c)  # Q's tile stages dQ
        with tk.if_(tk.warp_id() % 4 == 0):
            tk.tma.store_wait(0)

    tk.producer_consumer(stages=2, consumers=2, tiles=1, steps=steps, load=load, compute=compute, finish=finish,
                         start=start, init=init, persistent=False)


@tk.kernel(warps=4)
def attention_bwd_dq_convert(acc: tk.gl(tk.fp32), dq: tk.gl(tk.bf16), D: tk.constexpr):
    """dQ in bf16 from the main kernel's fp32 accumulator staged with split pairs (DQ_SPLIT: each group of 8 columns
    even-then-odd): 64 rows per block, by TMA into shared memory, back into column order by ldmatrix, and out by a
    TMA store (per-thread stores of the bf16 tile ran at half the bandwidth: 88-104 us vs 50 at 16k tokens x 2048)."""
    b, h, blk = tk.block_idx.z, tk.block_idx.y, tk.block_idx.x
    acc_s, out_s, loaded = tk.st(tk.fp32, 64, D), tk.st(tk.bf16, 64, D), tk.semaphore()
    acc_r, out = tk.rt(tk.fp32, 16, D), tk.rt(tk.bf16, 16, D)
    with tk.if_(tk.warp_id() == 0):
        tk.init_semaphore(loaded, 1)
    tk.sync()
    with tk.if_(tk.warp_id() == 0):
        tk.tma.load_group(loaded, (acc_s, acc, (b, h, blk, 0)))
    tk.wait(loaded, 0)
    tk.warpgroup.load(acc_r, acc_s, split_pairs=True)
    tk.copy(out, acc_r)
    tk.warpgroup.store_async(dq, out_s, out, (b, h, blk, 0), 1)  # (the TMA store clips the tail rows)
    with tk.if_(tk.warp_id() == 0):
        tk.tma.store_wait(0)

"""H100 FlashAttention forward: TMA + wgmma + warp specialisation (ThunderKittens' H100 kernel, in pykittens).

A producer warp streams blocks of KV keys (128; 80 at D = 256) of K and V through a ring of shared stages by TMA;
each consumer warpgroup owns 64 query rows (Q by TMA into shared memory), computes S = Q·Kᵀ with wgmma from shared
memory, keeps the online softmax in registers (exp2, scale folded in), and accumulates O += P·V with wgmma taking P
from registers. O goes out through shared memory by TMA, with the log-sum-exp per row for the backward. Causal masks
align bottom-right.
PINGPONG: consumers take turns issuing their matmuls. EXTRA (causal): a head's leftover query tiles (N/64 not a
multiple of the consumers) are run by its first block's consumers after their own, instead of by a block of
their own (whose fixed cost outweighs one step of work). PV_LAG (FA3's intra-warpgroup overlap): each step issues its
Q·Kᵀ and then the previous step's P·V, so the softmax runs while the tensor cores do P·V (P stays live in bf16:
registers for it at D=64 with 3 consumers, not at D=128). DIAG64 (causal, D=64): a consumer's last key block, when
no row of it sees the block's second 64 keys, runs 64 keys wide (wgmma on half of the score tile). AHEAD (the SM
count; half of it heads first): the producer warms L2 with the Q and first K/V block of the block AHEAD later in
launch order, which starts about when this one ends (one block per SM), so its prologue reads L2, not DRAM. HEADS_FIRST
(causal): the grid is (heads, blocks, batch), so a batch's heads start their longest blocks together and the short
ones fill the tail, rather than (blocks, heads, batch), one head's blocks after another's. SPLIT (non-causal): the
grid is (blocks, batch, heads + 1), so the last head's blocks run twice, once per half of the keys, at the end of the
launch, where a short last wave would leave SMs idle; half 0 hands its unnormalised O, row maxima and sums to half 1
through global memory (``part``, ``stats``) and a flag per warp set to the call's ``epoch``. EARLY_TURN: a consumer
passes the ping-pong turn once its Q·Kᵀ is issued, not done, so the next one's queues behind it (PV_LAG's steps turn
early anyway: with it, only a consumer's first step changes). LAZY (a slack in base 2's exponent; 0: off): FA4's
lazy rescaling, a row's maximum moves only once its scores exceed it by 2^LAZY, so a warp whose maxima all stayed
(most steps after the first) skips the rescale of O.
"""
import contextlib
import math

import pykittens as tk


@tk.kernel(warps=lambda CONSUMERS: 4 * (1 + CONSUMERS), min_blocks=1)
def hopper_attention(q: tk.gl(tk.bf16), k: tk.gl(tk.bf16), v: tk.gl(tk.bf16), o: tk.gl(tk.bf16),
                     lse: tk.gl(tk.fp32), part: tk.gl(tk.fp32), stats: tk.gl(tk.fp32), flags: tk.gl(tk.int32),
                     epoch: tk.i32, scale_log2: tk.f32, D: tk.constexpr, CONSUMERS: tk.constexpr,
                     STAGES: tk.constexpr, CAUSAL: tk.constexpr, KV: tk.constexpr = 128,
                     PINGPONG: tk.constexpr = False, PV_LAG: tk.constexpr = False, DIAG64: tk.constexpr = False,
                     AHEAD: tk.constexpr = 0, EXTRA: tk.constexpr = False,
                     HEADS_FIRST: tk.constexpr = False, SPLIT: tk.constexpr = False,
                     EARLY_TURN: tk.constexpr = False, LAZY: tk.constexpr = 0.0):
    if DIAG64 and not (CAUSAL and KV == 128):
        raise tk.KernelTypeError("hopper_attention: DIAG64 needs CAUSAL and KV = 128")
    if EXTRA and not (CAUSAL and STAGES * KV >= 64 * (2 * CONSUMERS - 2) + KV):
        raise tk.KernelTypeError("hopper_attention: EXTRA needs CAUSAL and a head's first block's steps to fit the ring")

    if SPLIT and (CAUSAL or HEADS_FIRST):
        raise tk.KernelTypeError("hopper_attention: SPLIT is for non-causal launches in the plain order")
    blocks = tk.grid_dim.y if HEADS_FIRST else tk.grid_dim.x  # per head

    def block_work(x, y, z):  # block (x, y, z)'s batch, query head, K/V head and first 64-row query tile
        x, y = (y, x) if HEADS_FIRST else (x, y)  # HEADS_FIRST: grid (heads, blocks, batch)
        if SPLIT:  # grid (blocks, batch, heads + 1): the last head's blocks twice, once per key half
            y, z = tk.minimum(z, q.depth - 1), y
        qb = tk.let(blocks - 1 - x) if CAUSAL else x  # causal: longest rows first
        # block qb's consumers own 64-row query tiles tile0 + c; causal: the head's partial block (N not a multiple
        # of 64·C) comes first, where its missing rows are the ones the mask makes cheapest (non-causal: last, 1%
        # faster)
        tile0 = tk.let(qb * CONSUMERS - (blocks * CONSUMERS - tk.cdiv(q.rows, 64) if CAUSAL else 0))
        return z, y, tk.let(y // (q.depth // k.depth)), tile0

    b, h, h_kv, tile0 = block_work(tk.block_idx.x, tk.block_idx.y, tk.block_idx.z)
    if SPLIT:  # which key half this block runs (0, 1; -1: all keys), and its split block's slot in part/stats/flags
        half = tk.let(tk.maximum(tk.block_idx.z - (q.depth - 1), -1))
        slot = tk.let(tk.block_idx.x + tk.grid_dim.x * tk.block_idx.y)
    q_s = tk.st(tk.bf16, 64, D, count=CONSUMERS)
    k_s, v_s = tk.st(tk.bf16, KV, D, count=STAGES), tk.st(tk.bf16, KV, D, count=STAGES)
    q_ready = tk.semaphore(count=CONSUMERS)
    att, att_bf, o_reg = tk.rt(tk.fp32, 16, KV), tk.rt(tk.bf16, 16, KV), tk.rt(tk.fp32, 16, D)
    scores, probs = {KV: att}, {KV: att_bf}  # by keys per step: DIAG64 adds views of the first 64
    if DIAG64:
        scores[64], probs[64] = tk.subtile(att, (16, 64), (0, 0)), tk.subtile(att_bf, (16, 64), (0, 0))
    max_vec, max_last, norm_vec, max_scaled = (tk.col_vec(att) for _ in range(4))
    o_bf = tk.rt(tk.bf16, 16, D)
    if SPLIT:  # half 1's copy of half 0's O, maxima and sums
        o_half, max_half, norm_half = tk.rt(tk.fp32, 16, D), tk.col_vec(att), tk.col_vec(att)
    shift = tk.let(k.rows - q.rows)  # bottom-right causal alignment
    slack = tk.let(LAZY / scale_log2) if LAZY else None  # LAZY's slack in raw-score units (2^LAZY after exp2)
    pending = tk.var(0, "pending") if PV_LAG else None  # PV_LAG: 1 + the stage of a P whose P·V is not issued yet

    steps = tk.cdiv(k.rows, KV)
    key_step = lambda s: s.step  # noqa: E731 (a step's key block)
    if SPLIT:  # half 0 runs the first steps // 2 key blocks, half 1 the rest (the host splits only steps >= 2)
        first_step = tk.let(tk.maximum(half, 0) * (steps // 2))
        steps = tk.let(steps - (half + 1) % 2 * (steps - steps // 2) - first_step)
        key_step = lambda s: s.step + first_step  # noqa: E731
    if CAUSAL:  # key blocks past the last query row's diagonal are skipped
        steps = tk.minimum(steps, tk.cdiv(tk.minimum((tile0 + CONSUMERS) * 64, q.rows) + shift, KV))

    def init():
        for c in range(CONSUMERS):
            tk.init_semaphore(q_ready[c], 1)

    def load(s):
        kv = (b, h_kv, key_step(s), 0)
        tk.tma.load_group(s.full, (k_s[s.stage], k, kv), (v_s[s.stage], v, kv))
        if AHEAD:  # L2 warm-up for a later block (here, not in `init`: there ptxas serialised D=64 causal's wgmma)
            exists, *later = tk.block_after(AHEAD)
            with tk.if_((s.step == 0) & exists):
                nb, nh, nh_kv, ntile0 = block_work(*later)
                for c in range(CONSUMERS):
                    tk.tma.prefetch(q_s[c], q, (nb, nh, ntile0 + c, 0))
                for dst, src in ((k_s[0], k), (v_s[0], v)):
                    tk.tma.prefetch(dst, src, (nb, nh_kv, 0, 0))

    class Extra:  # EXTRA: leftover query tile c, run by consumer c after its own (one step, on stage 0)
        def __init__(self, c):
            self.consumer, self.stage, self.step = c, 0, 0
    q_tile = lambda s: s.consumer if isinstance(s, Extra) else tile0 + s.consumer  # noqa: E731 (its query tile)
    pingpong = lambda s: PINGPONG and not isinstance(s, Extra)  # noqa: E731 (an extra tile runs after the turns)

    def start(s):
        with tk.if_(tk.warp_id() % 4 == 0):  # (a tile before row 0 reads zeros: TMA coordinates are signed)
            tk.tma.load_group(q_ready[s.consumer], (q_s[s.consumer], q, (b, h, q_tile(s), 0)))
        tk.neg_infty(max_vec)
        tk.zero(max_scaled)  # read by finish even where a consumer had no rows to run
        tk.zero(norm_vec)
        tk.zero(o_reg)
        tk.wait(q_ready[s.consumer], int(isinstance(s, Extra)))  # (an extra tile's Q: the second phase)
        if pingpong(s):  # consumers take turns on Q·Kᵀ, in order 0, 1, ...: the last one lets the first go
            with tk.if_(s.consumer == CONSUMERS - 1):
                tk.named_arrive(4, 8)

    def compute(s):
        if pingpong(s):
            tk.named_sync(4 + s.consumer, 8)  # my turn
        # a consumer whose rows all lie outside (in a head's partial block: before row 0 if causal, else past the
        # end) skips its steps; with a causal mask so does one whose rows' diagonal lies left of the key block
        row0 = q_tile(s) * 64  # this consumer's first query row
        needed = (row0 >= 0) & (s.step * KV <= row0 + 63 + shift) if CAUSAL else row0 < q.rows
        first = contextlib.nullcontext()
        if PV_LAG:  # FA3's intra-warpgroup overlap: the previous step's P·V is issued after this step's Q·Kᵀ and
            with tk.if_(pending != 0):  # runs during its softmax (every path has static waits: else ptxas
                with tk.if_(needed):  # serialises the wgmma)
                    key_block(s, row0, lagged=True)
                with tk.else_():  # (causal) the consumer's rows end left of this key block: its last P·V
                    pv(pending - 1)
                    turn(s)
                    tk.warpgroup.mma_wait()
                    tk.assign(pending, 0)
            first = tk.else_()  # the consumer's first step: no P·V to overlap
        with first:
            with tk.if_(needed):
                key_block(s, row0, lagged=False)
            with tk.else_():
                turn(s)

    def key_block(s, row0, lagged):  # DIAG64: a diagonal block whose last 64 keys no row sees runs 64 keys wide
        if not DIAG64:
            return step(s, row0, lagged, KV)
        with tk.if_(row0 + 63 + shift - s.step * KV < 64):
            step(s, row0, lagged, 64)
        with tk.else_():
            step(s, row0, lagged, KV)

    def step(s, row0, lagged, n):  # n keys; lagged: a previous P·V is pending (stage `pending` - 1)
        qk(s, n)
        if lagged:
            pv(pending - 1)
        elif not EARLY_TURN:  # (EARLY_TURN: the wait comes after the turn)
            tk.warpgroup.mma_wait()
        turn(s)  # the next consumer's Q·Kᵀ overlaps this one's softmax
        if lagged:
            tk.warpgroup.mma_wait(1)  # Q·Kᵀ done, P·V may still run
        elif EARLY_TURN:
            tk.warpgroup.mma_wait()
        softmax(s, row0, lagged, n)
        if PV_LAG and n == KV:
            tk.assign(pending, s.stage + 1)
        else:  # (a 64-key block is the consumer's last: its P·V runs now)
            pv(s.stage, n)
            tk.warpgroup.mma_wait()
            if PV_LAG:
                tk.assign(pending, 0)

    def keys(t, n):  # the first n keys (rows) of a K or V stage
        return t if n == KV else tk.subtile(t, (n, D), (0, 0))

    def qk(s, n=KV):
        tk.warpgroup.mm_ABt(scores[n], q_s[s.consumer], keys(k_s[s.stage], n))

    def pv(stage, n=KV):  # O += P·V, P (bf16) from registers
        tk.warpgroup.mma_AB(o_reg, probs[n], keys(v_s[stage], n))

    def turn(s):  # ping-pong: the next consumer may issue its matmuls
        if pingpong(s):
            tk.named_arrive(4 + (s.consumer + 1) % CONSUMERS, 8)

    def softmax(s, row0, pv_in_flight, n):  # scores -> P; O and the row sums rescaled to the new maxima
        att, att_bf = scores[n], probs[n]
        q0 = row0 + (tk.warp_id() % 4) * 16  # this warp's first query row
        with tk.if_((key_step(s) + 1) * KV > k.rows):  # ragged last block
            tk.right_fill(att, att, k.rows - key_step(s) * KV, -math.inf)
        if CAUSAL:
            with tk.if_((s.step + 1) * KV > q0 + shift):  # block crosses this warp's diagonal
                tk.tril(att, att, q0 + shift - s.step * KV, -math.inf)
        tk.online_softmax(att, max_vec, max_scaled, norm_vec, max_last, scale_log2, slack)
        if pv_in_flight:
            tk.warpgroup.mma_wait()  # the P·V has read att_bf and written o_reg
        if LAZY:  # (skipped by a warp whose maxima all stayed)
            tk.rescale_rows(o_reg, max_last)
        else:
            tk.mul_row(o_reg, o_reg, max_last)
        tk.copy(att_bf, att)

    def finish(s):
        if PV_LAG:  # the last step's P·V (its wait inside the branch: else ptxas serialises every wgmma)
            with tk.if_(pending != 0):
                pv(pending - 1)
                tk.warpgroup.mma_wait()
        else:
            tk.warpgroup.mma_wait()
        if SPLIT:
            combine(s)
        with tk.if_(half != 0) if SPLIT else contextlib.nullcontext():  # (half 0 handed its rows to half 1)
            tk.div_row(o_reg, o_reg, norm_vec)
            tk.copy(o_bf, o_reg)
            # Q is no longer needed: its tile stages O (the first sync: no warp still reads Q in a wgmma); a tile
            # before row 0 stores no O (a TMA store at negative coordinates faults) and its lse is clipped
            with tk.if_(q_tile(s) >= 0):
                tk.warpgroup.store_async(o, q_s[s.consumer], o_bf, (b, h, q_tile(s), 0), 1 + s.consumer)
            tk.log2(norm_vec, norm_vec)  # lse = ln(sum exp(s * scale)) = (max·c + log2(norm)) * ln 2
            tk.add(norm_vec, norm_vec, max_scaled)
            tk.mul(norm_vec, norm_vec, math.log(2))
            tk.store(lse, norm_vec, (b, h, 0, q_tile(s) * 4 + tk.warp_id() % 4), clip=True)
            with tk.if_(tk.warp_id() % 4 == 0):
                tk.tma.store_wait(0)

    def combine(s):  # SPLIT: half 0 of a split block hands each warp's unnormalised O, max and sum to half 1
        w = tk.warp_id() % 4
        flag, rows, vec = (0, 0, slot, s.consumer * 4 + w), (slot, s.consumer, w, 0), (slot, s.consumer, 0, w)
        with tk.if_(half == 0):
            tk.store(part, o_reg, rows)
            tk.store(stats, max_scaled, vec)
            tk.store(stats, norm_vec, (slot, s.consumer, 1, w))
            tk.signal(flags, flag, epoch)
        with tk.if_(half == 1):  # (half 0 has the lower launch position: it runs already or has run)
            tk.wait_signal(flags, flag, epoch)
            tk.load(o_half, part, rows)
            tk.load(max_half, stats, vec)
            tk.load(norm_half, stats, (slot, s.consumer, 1, w))
            tk.merge_softmax(o_reg, max_scaled, norm_vec, o_half, max_half, norm_half)

    def end(s):  # EXTRA (causal): the launch leaves out a head's first `left` tiles (< C; the host checks that their
        # keys fit one stage); consumer c < left of its first block (steps within the ring) runs tile c on stage 0
        left = tk.cdiv(q.rows, 64) - blocks * CONSUMERS
        with tk.if_((tile0 == left) & (s.consumer < left)):
            x = Extra(s.consumer)
            if PV_LAG:
                tk.assign(pending, 0)
            start(x)
            compute(x)
            finish(x)

    tk.producer_consumer(stages=STAGES, consumers=CONSUMERS, tiles=1, steps=steps, load=load, compute=compute,
                         finish=finish, start=start, end=end if EXTRA else None, init=init, persistent=False,
                         release_lag=int(PV_LAG),
                         producer_registers=24 if CONSUMERS == 3 else 40,
                         consumer_registers=160 if CONSUMERS == 3 else 232)

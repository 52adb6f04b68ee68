"""Hopper bf16 GEMM: C = A·B or A·Bᵀ, fp32 accumulation, bf16 out.

A producer warp streams BMxBK slices of A and BKxBN (or BNxBK) slices of B by TMA through a ring of shared
stages; CONSUMERS (1 or 2) consumer warpgroups each own 64 rows of the BMxBN output tile (BM = 64·CONSUMERS; the
block has 4·(1 + CONSUMERS) warps) and accumulate with wgmma straight from shared memory; the result goes back
through shared memory by TMA store, in 64 x EPI pieces (EPI < BN: less shared memory, room for a 4th stage) or,
with DIRECT, straight from registers. Persistent grid, tiles in grouped order for L2 reuse. Ragged M, N, K need no
code: TMA zero-fills what lies outside a tensor and clips what it stores.
CLUSTER = 2: blocks pair up along M on the same columns of B; each loads one half of the B slice (a sub-tile) and
multicasts it to both, so B crosses from L2 once per pair. (Correct, but slower than CLUSTER = 1 on the H200:
NOTES.md.)
STREAM_K (an option ``matmul`` does not pick: slower or level on the H200, NOTES.md): the R tiles of the last,
partial wave are split along K so that all P blocks work on them (P = grid): blocks P - R .. P - 1 take one tile's
first ``big`` k-steps each, blocks 0 .. P - R - 1 the remaining k-steps of up to ``parts`` tiles each, sized to end
together. A small part leaves its fp32 sum in ``partials`` and raises its warps' ``flags``; the big part's block
adds it and writes C. The grid must fit on the GPU at once: a big part's block spins on the flags of a lower block.
"""
import pykittens as tk


@tk.kernel(warps=lambda CONSUMERS: 4 * (1 + CONSUMERS), min_blocks=1, cluster="CLUSTER")
def gemm(a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), c: tk.gl(tk.bf16), partials: tk.gl(tk.fp32), flags: tk.gl(tk.int32),
         TRANS_B: tk.constexpr, STAGES: tk.constexpr, GROUP: tk.constexpr = 8, LAG: tk.constexpr = 0,
         BN: tk.constexpr = 256, DIRECT: tk.constexpr = False, BK: tk.constexpr = 64, CLUSTER: tk.constexpr = 1,
         CONSUMERS: tk.constexpr = 2, EPI: tk.constexpr = 0, STREAM_K: tk.constexpr = False):
    if CONSUMERS not in (1, 2):
        raise tk.KernelTypeError(f"gemm: CONSUMERS must be 1 or 2, got {CONSUMERS!r}")
    if STREAM_K and (CLUSTER > 1 or DIRECT):
        raise tk.KernelTypeError("gemm: STREAM_K needs CLUSTER = 1 and DIRECT = False")
    BM = 64 * CONSUMERS  # block tile rows
    a_s = tk.st(tk.bf16, 64, BK, count=(STAGES, CONSUMERS))  # per stage, 64 rows per consumer
    b_s = tk.st(tk.bf16, BN, BK, count=STAGES) if TRANS_B else tk.st(tk.bf16, BK, BN, count=STAGES)
    EPI = EPI or BN  # C leaves in 64 x EPI pieces through shared memory (less of it than BN: room for a stage)
    if BN % EPI:
        raise tk.KernelTypeError(f"gemm: EPI must divide BN = {BN}, got {EPI!r}")
    c_s = None if DIRECT else tk.st(tk.bf16, 64, EPI, count=CONSUMERS)
    acc, out = tk.rt(tk.fp32, 16, BN), tk.rt(tk.bf16, 16, BN)
    partial = tk.rt(tk.fp32, 16, 64) if STREAM_K else None  # another block's partial sum, 64 columns at a time
    tiles_m, tiles_n = tk.let(tk.cdiv(tk.cdiv(c.rows, BM), CLUSTER)), tk.let(tk.cdiv(c.cols, BN))  # m: per cluster
    steps = tk.let(tk.cdiv(a.cols, BK))
    items = tiles_m * tiles_n  # work items: the tiles (STREAM_K: whole tiles, then parts of the tail's)
    if STREAM_K:  # the last, partial wave's R tiles: a big part by each of R blocks, the rest by the other P - R
        blocks, tiles = tk.grid_dim.x, tk.let(items)
        dp = tk.let(tk.where((tiles % blocks > 0) & (steps >= 4), tiles - tiles % blocks, tiles))
        small = tk.let(blocks - (tiles - dp))  # blocks taking the small parts, `parts` each at most
        parts = tk.let(tk.cdiv(tiles - dp, small))  # balance: big = parts·(steps - big + 2), 2 for a partial's store
        big, items = tk.let(tk.minimum((parts * (steps + 2) + parts) // (parts + 1), steps - 1)), dp + parts * blocks

    def work(t):  # STREAM_K: work item dp + j·P + q (block q's j-th part) -> (tile, first k-step, k-steps, row
        # tile, column tile), once per item and role (prepare); whole tiles: (t, 0, steps, ...) computed where used
        if not STREAM_K:
            return t, 0, steps, *coords(t)
        q, j = (t - dp) % blocks, (t - dp) // blocks
        r = tk.where(q < small, j * small + q, q - small)  # the tail tile (blocks q < small: small parts)
        n = tk.where(q < small, tk.where(r < tiles - dp, steps - big, 0), tk.where(j == 0, big, 0))
        tail = t >= dp
        tile = tk.let(tk.where(tail, dp + r, t))
        return (tile, tk.let(tk.where(tail & (q < small), big, 0)), tk.let(tk.where(tail, n, steps)), *coords(tile))

    def coords(t):  # a cluster's work tile -> this block's (row tile, column tile)
        tm, tn = tk.grouped_tile_order(t, tiles_m, tiles_n, GROUP)
        return (tm * CLUSTER + tk.cluster_rank() if CLUSTER > 1 else tm), tn

    def load(s):
        _, k0, _, tm, tn = s.info or work(s.tile)
        k = k0 + s.step
        a_copies = [(a_s[s.stage, half], a, (CONSUMERS * tm + half, k)) for half in range(CONSUMERS)]
        if CLUSTER == 1:
            tk.tma.load_group(s.full, *a_copies, (b_s[s.stage], b, (tn, k) if TRANS_B else (k, tn)))
            return
        tk.expect(s.full, *(dst for dst, _, _ in a_copies), b_s[s.stage])  # the other B parts come from the peers
        for dst, src, idx in a_copies:
            tk.tma.load_async(dst, src, idx, s.full)
        r, part = tk.cluster_rank(), BN // CLUSTER  # this block's part of B, multicast to the whole cluster
        for i in range(CLUSTER):  # (a sub-tile index is a Python int: one branch per rank)
            with tk.if_(r == i):
                b_part = tk.subtile(b_s[s.stage], (part, BK), (i, 0)) if TRANS_B else \
                    tk.subtile(b_s[s.stage], (BK, part), (0, i))
                tk.tma.load_async(b_part, b, (tn * CLUSTER + i, k) if TRANS_B else (k, tn * CLUSTER + i),
                                  s.full, multicast=(1 << CLUSTER) - 1)

    def start(s):
        tk.zero(acc)

    def compute(s):
        mma = tk.warpgroup.mma_ABt if TRANS_B else tk.warpgroup.mma_AB
        mma(acc, a_s[s.stage, s.consumer], b_s[s.stage])
        tk.warpgroup.mma_wait(LAG)  # LAG = 1: keep one wgmma in flight; its stage is released a step later

    def finish(s):
        tile, k0, n, tm, tn = s.info or work(s.tile)
        tk.warpgroup.mma_wait(0)
        if not STREAM_K:
            return store_c(s, tm, tn)
        flag = s.consumer * 4 + tk.warp_id() % 4  # each warp hands over its own 16 rows
        with tk.if_(n > 0):
            with tk.if_(k0 > 0):  # a small part: leave the partial sum to the big part's block
                tk.store(partials, acc, (tile - dp, s.consumer, tk.warp_id() % 4, 0))
                tk.signal(flags, (tile - dp, flag), 1)
            with tk.else_():
                with tk.if_(n < steps):  # a big part: add the small part's sum
                    tk.wait_signal(flags, (tile - dp, flag), 1)
                    tk.signal(flags, (tile - dp, flag), 0)  # (for the next launch)
                    for j in range(BN // 64):
                        tk.load(partial, partials, (tile - dp, s.consumer, tk.warp_id() % 4, j))
                        piece = tk.subtile(acc, (16, 64), (0, j))
                        tk.add(piece, piece, partial)
                store_c(s, tm, tn)

    def store_c(s, tm, tn):
        tk.copy(out, acc)
        if DIRECT:
            tk.store(c, out, ((CONSUMERS * tm + s.consumer) * 4 + tk.warp_id() % 4, tn), clip=True)
            return
        for j in range(BN // EPI):
            with tk.if_(tk.warp_id() % 4 == 0):
                tk.tma.store_wait(0)  # the previous store has finished reading c_s
            piece = out if EPI == BN else tk.subtile(out, (16, EPI), (0, j))
            tk.warpgroup.store_async(c, c_s[s.consumer], piece, (CONSUMERS * tm + s.consumer, tn * (BN // EPI) + j),
                                     1 + s.consumer)

    def end(s):
        if not DIRECT:
            with tk.if_(tk.warp_id() % 4 == 0):
                tk.tma.store_wait(0)  # shared memory must outlive the last store's reads

    tk.producer_consumer(stages=STAGES, consumers=CONSUMERS, tiles=items, load=load, compute=compute,
                         steps=(lambda info: info[2]) if STREAM_K else steps, prepare=work if STREAM_K else None,
                         finish=finish, start=start, end=end, release_lag=LAG, cluster=CLUSTER)

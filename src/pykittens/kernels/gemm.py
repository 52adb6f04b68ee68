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
"""
import pykittens as tk


@tk.kernel(warps=lambda CONSUMERS: 4 * (1 + CONSUMERS), min_blocks=1, cluster="CLUSTER")
def gemm(a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), c: tk.gl(tk.bf16), TRANS_B: tk.constexpr, STAGES: tk.constexpr,
         GROUP: tk.constexpr = 8, LAG: tk.constexpr = 0, BN: tk.constexpr = 256, DIRECT: tk.constexpr = False,
         BK: tk.constexpr = 64, CLUSTER: tk.constexpr = 1, CONSUMERS: tk.constexpr = 2, EPI: tk.constexpr = 0):
    if CONSUMERS not in (1, 2):
        raise tk.KernelTypeError(f"gemm: CONSUMERS must be 1 or 2, got {CONSUMERS!r}")
    BM = 64 * CONSUMERS  # block tile rows
    a_s = tk.st(tk.bf16, 64, BK, count=(STAGES, CONSUMERS))  # per stage, 64 rows per consumer
    b_s = tk.st(tk.bf16, BN, BK, count=STAGES) if TRANS_B else tk.st(tk.bf16, BK, BN, count=STAGES)
    EPI = EPI or BN  # C leaves in 64 x EPI pieces through shared memory (less of it than BN: room for a stage)
    if BN % EPI:
        raise tk.KernelTypeError(f"gemm: EPI must divide BN = {BN}, got {EPI!r}")
    c_s = None if DIRECT else tk.st(tk.bf16, 64, EPI, count=CONSUMERS)
    acc, out = tk.rt(tk.fp32, 16, BN), tk.rt(tk.bf16, 16, BN)
    tiles_m, tiles_n = tk.let(tk.cdiv(tk.cdiv(c.rows, BM), CLUSTER)), tk.let(tk.cdiv(c.cols, BN))  # m: per cluster
    steps = tk.let(tk.cdiv(a.cols, BK))

    def coords(t):  # a cluster's work tile -> this block's (row tile, column tile)
        tm, tn = tk.grouped_tile_order(t, tiles_m, tiles_n, GROUP)
        return (tm * CLUSTER + tk.cluster_rank() if CLUSTER > 1 else tm), tn

    def load(s):
        tm, tn = coords(s.tile)
        a_copies = [(a_s[s.stage, half], a, (CONSUMERS * tm + half, s.step)) for half in range(CONSUMERS)]
        if CLUSTER == 1:
            tk.tma.load_group(s.full, *a_copies, (b_s[s.stage], b, (tn, s.step) if TRANS_B else (s.step, tn)))
            return
        tk.expect(s.full, *(dst for dst, _, _ in a_copies), b_s[s.stage])  # the other B parts come from the peers
        for dst, src, idx in a_copies:
            tk.tma.load_async(dst, src, idx, s.full)
        r, part = tk.cluster_rank(), BN // CLUSTER  # this block's part of B, multicast to the whole cluster
        for i in range(CLUSTER):  # (a sub-tile index is a Python int: one branch per rank)
            with tk.if_(r == i):
                b_part = tk.subtile(b_s[s.stage], (part, BK), (i, 0)) if TRANS_B else \
                    tk.subtile(b_s[s.stage], (BK, part), (0, i))
                tk.tma.load_async(b_part, b, (tn * CLUSTER + i, s.step) if TRANS_B else (s.step, tn * CLUSTER + i),
                                  s.full, multicast=(1 << CLUSTER) - 1)

    def start(s):
        tk.zero(acc)

    def compute(s):
        mma = tk.warpgroup.mma_ABt if TRANS_B else tk.warpgroup.mma_AB
        mma(acc, a_s[s.stage, s.consumer], b_s[s.stage])
        tk.warpgroup.mma_wait(LAG)  # LAG = 1: keep one wgmma in flight; its stage is released a step later

    def finish(s):
        tm, tn = coords(s.tile)
        tk.warpgroup.mma_wait(0)
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

    tk.producer_consumer(stages=STAGES, consumers=CONSUMERS, tiles=tiles_m * tiles_n, steps=steps, load=load,
                         compute=compute, finish=finish, start=start, end=end, release_lag=LAG, cluster=CLUSTER)

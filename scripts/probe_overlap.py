"""Do the tensor cores and the MUFU unit overlap? One block per SM: warpgroup 0 issues wgmma (Q·Kᵀ-shaped,
64x128x64, from shared memory), warpgroup 1 computes exp2 on a 16x128 fp32 register tile per warp (the attention
forward's softmax shape), alone or within the forward's softmax step (SOFTMAX). Each alone, then together; if
they overlap, together takes max(alone), else the sum. The loop counts make wgmma and exp2 alone take about as
long as each other (D=64 attention's balance).
Usage: python3 scripts/probe_overlap.py (GPU; prints device times in µs)."""
import torch

import pykittens as tk
from pykittens.bench.harness import time_interleaved


@tk.kernel(warps=8, min_blocks=1)
def overlap(x: tk.gl(tk.bf16), o: tk.gl(tk.fp32), mma_iters: tk.i32, exp_iters: tk.i32, SOFTMAX: tk.constexpr):
    a_s, b_s = tk.st(tk.bf16, 64, 64), tk.st(tk.bf16, 128, 64)
    ballast = tk.st(tk.bf16, 64, 64, count=20)  # 160 KB of shared memory: one block per SM
    acc, t = tk.rt(tk.fp32, 16, 128), tk.rt(tk.fp32, 16, 128)
    with tk.if_(tk.warp_id() == 0):
        tk.load(a_s, x, (0, 0))
        tk.load(b_s, x, (0, 0))
        tk.load(ballast[0], x, (0, 0))
    tk.sync()
    wg = tk.warp_id() // 4
    with tk.if_(wg == 0):  # tensor cores: 4 groups of Q·Kᵀ in flight, then wait
        tk.zero(acc)
        for _ in tk.range(mma_iters):
            for _ in range(4):
                tk.warpgroup.mma_ABt(acc, a_s, b_s)
            tk.warpgroup.mma_wait(0)
        tk.store(o, acc, (tk.block_idx.x * 8 + tk.warp_id(), 0))
    with tk.else_():
        tk.load(t, o, (tk.block_idx.x * 8 + tk.warp_id(), 0))
        m, m_scaled, total = tk.col_vec(t), tk.col_vec(t), tk.col_vec(t)
        p = tk.rt(tk.bf16, 16, 128)
        tk.zero(m)
        tk.zero(total)
        for _ in tk.range(exp_iters):
            if SOFTMAX:  # the forward's step: running max, one FFMA and an exp2 per score, row sums, bf16 copy
                tk.row_max(m, t, m)
                tk.mul(m_scaled, m, 0.5)
                tk.mul(t, t, 0.5)
                tk.sub_row(t, t, m_scaled)
                tk.exp2(t, t)
                tk.row_sum(total, t, total)
                tk.copy(p, t)
            else:  # MUFU alone, nearly: t <- 2^t − 1 stays in [0, 1)
                tk.exp2(t, t)
                tk.sub(t, t, 1.0)
        if SOFTMAX:
            tk.add_row(t, t, total)  # keep the sums and P live
            tk.copy(t, p)
        tk.store(o, t, (tk.block_idx.x * 8 + tk.warp_id(), 0))


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    x = torch.rand(128, 64, device="cuda", dtype=torch.bfloat16) * 0.01
    o = torch.rand(sms * 8 * 16, 128, device="cuda")
    # per SM and iteration: wgmma 4 x 1 MFLOP (~1024 clk at 4096 FLOP/clk); exp2 2048 per warp, 4/clk per SMSP
    # (~512 clk): two exp2 iterations per wgmma iteration balance them
    n = 2000
    cases = {"wgmma alone": (n, 0, False), "exp2 alone": (0, 2 * n, False), "wgmma + exp2": (n, 2 * n, False),
             "softmax alone": (0, 2 * n, True), "wgmma + softmax": (n, 2 * n, True)}
    calls = [lambda m=m, e=e, sm=sm: overlap[sms](x, o, m, e, sm) for m, e, sm in cases.values()]
    times = dict(zip(cases, (med for med, _, _ in time_interleaved(calls, rounds=20))))
    for name, (m, e, sm) in cases.items():
        tflops = sms * m * 4 * 2 * 64 * 128 * 64 / (times[name] * 1e-3) / 1e12
        gexp = sms * e * 4 * 32 * 64 / (times[name] * 1e-3) / 1e9  # warpgroup 1: 4 warps x 32 lanes x 64
        print(f"{name:16s} {times[name] * 1e3:7.1f} µs  wgmma {tflops:5.1f} TFLOP/s  exp2 {gexp:6.1f} G/s")
    for other in ("exp2", "softmax"):
        alone = times["wgmma alone"], times[f"{other} alone"]
        print(f"wgmma + {other}: {times[f'wgmma + {other}'] / max(alone):.2f} x max(alone), "
              f"{times[f'wgmma + {other}'] / sum(alone):.2f} x sum(alone)")

if __name__ == "__main__":
    main()

"""A/B the Hopper attention forward against variants given as constexpr overrides of the shipped configuration,
next to cuDNN, every system timed call by call in turn (``time_interleaved``) so the GPU's drift hits all alike:
    python3 scripts/tune_attention.py 1024,2048 AHEAD=132 STAGES=3,AHEAD=132
    python3 scripts/tune_attention.py 4096 D=128 causal=1 CONSUMERS=2,STAGES=3,PV_LAG=True
N is a comma list (default 1024,2048,4096); D=... picks head dims (default 64 and 128), causal=0/1 one mask
(default both). Each variant is a space-free list of NAME=value pairs joined by commas (ab_backward.py's format).
Every variant is checked against cuDNN first (poisoned output; relative error ≤ 1e-2). Prints the median TFLOP/s
of cuDNN, the shipped kernel and each variant and, last, each variant's ratio to the shipped kernel."""
import math
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from ab_backward import parse  # (scripts/ is on the path when a script in it runs)
from pykittens.bench.attention import grid_shape
from pykittens.bench.harness import rel_err, run_once, time_interleaved
from pykittens.kernels import hopper_attention
from pykittens.kernels.attention_ops import SplitScratch, forward_grid, forward_launch, forward_split_blocks
from pykittens.kernels.checks import device_info


def grid_point(n, d, causal):
    """BENCH.md's attention grid point (B·N = 16k, H·D = 2048): fresh random q, k, v, its GFLOP, cuDNN's output
    (the reference) and a call of cuDNN."""
    B, H = grid_shape(n, d)
    q, k, v = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    fl = 4 * B * H * n * n * d / (2 if causal else 1) / 1e9

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return sdpa(q, k, v, is_causal=causal)
    return q, k, v, fl, cudnn(), cudnn


def kernel_call(q, k, v, causal, **overrides):
    """(call, its poisoned output): the forward kernel with ``overrides`` over the shipped configuration."""
    B, H, n, d = q.shape
    cfg = dict(forward_launch(d, causal, n, k.shape[2], H, B, device_info(q.device)[1])[1], **overrides)
    grid = forward_grid(n, H, B, cfg)
    o = torch.full_like(q, float("nan"))  # poisoned: an unwritten row shows
    lse = torch.empty(B, H, 1, -(-n // 4) * 4, device="cuda")
    split = forward_split_blocks(n, B, cfg)
    scale = math.log2(math.e) / math.sqrt(d)
    call = lambda: hopper_attention.launch(  # noqa: E731  (a fresh epoch per call: SplitScratch)
        grid, q, k, v, o, lse, *SplitScratch.get(d, cfg["CONSUMERS"], split, q.device), scale, D=d, CAUSAL=causal,
        **cfg)
    return call, o


def main(ns, variants, dims=(64, 128), masks=(False, True), rounds=30):
    print(f"forward TFLOP/s (median [middle half]), {rounds} interleaved rounds: cuDNN, shipped, {variants}")
    table = []
    for d in dims:
        for n in ns:
            for causal in masks:
                q, k, v, fl, ref, cudnn = grid_point(n, d, causal)
                calls = [cudnn]
                for kw in [{}] + variants:
                    call, o = kernel_call(q, k, v, causal, **kw)
                    failed = run_once(call)
                    err = rel_err(o, ref)
                    if failed or not err < 1e-2:
                        raise SystemExit(f"D={d} N={n} causal={causal} {kw}: failed={failed} err={err}")
                    calls.append(call)
                times = time_interleaved(calls, rounds=rounds)
                tf = [fl / med for med, _, _ in times]
                print(f"  D={d:3d} N={n:5d} causal={causal!s:5s} " + "  ".join(
                    f"{fl / med:5.0f} [{fl / q3:3.0f}-{fl / q1:3.0f}]" for med, q1, q3 in times), flush=True)
                table.append((d, n, causal, tf))
    print("\n| D | N | causal | cuDNN | shipped | " + " | ".join(str(v) for v in variants) + " |")
    for d, n, causal, tf in table:
        print(f"| {d} | {n} | {causal} | {tf[0]:.0f} | {tf[1]:.0f} ({tf[1] / tf[0]:.3f}) | "
              + " | ".join(f"{x:.0f} ({x / tf[1] - 1:+.1%})" for x in tf[2:]) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    ns = [int(x) for x in args[0].split(",")] if args and args[0][0].isdigit() else [1024, 2048, 4096]
    dims = [int(d) for a in args if a.startswith("D=") for d in a[2:].split(",")] or (64, 128)
    masks = [bool(int(a[7:])) for a in args if a.startswith("causal=")] or (False, True)
    main(ns, [parse(a) for a in args if "=" in a and not a.startswith(("D=", "causal="))], dims, masks)

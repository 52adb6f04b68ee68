"""A/B the backward's main kernel (the dK/dV/dQ kernel alone, device time) against variants given as constexpr
overrides, timed call by call in turn (``time_interleaved``) so the GPU's power-state drift hits every variant alike:
    python3 scripts/ab_backward.py 4096 HEAVY_FIRST=False STAGES=3
    python3 scripts/ab_backward.py 4096 D=128 causal=1 DQ_WG=False,W=12
D=... picks head dims (default 64 and 128), causal=0/1 one mask (default both). Each variant is a space-free list
of NAME=value pairs joined by commas. Prints the median TFLOP/s of each (default first) and, in brackets, the
spread of the middle half of its calls."""
import sys

import torch

from backward_breakdown import main_kernel_call  # (scripts/ is on the path when this script runs)
from pykittens.bench.attention import grid_shape
from pykittens.bench.harness import time_interleaved
from pykittens.kernels import attention


def main(n: int, variants: list[dict], dims=(64, 128), masks=(False, True), rounds=30):
    print(f"N={n}: main kernel TFLOP/s, variants {variants} (default first), {rounds} interleaved rounds")
    for d in dims:
        for causal in masks:
            B, H = grid_shape(n, d)
            q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
            o, lse = attention(q, k, v, causal=causal, return_lse=True)
            call = main_kernel_call(q, k, v, do, lse, causal)[0]
            fl = 2.5 * 4 * B * H * n * n * d / (2 if causal else 1) / 1e9
            times = time_interleaved([lambda kw=kw: call(**kw) for kw in [{}] + variants], rounds=rounds)
            print(f"  D={d:3d} causal={causal!s:5s} " + "  ".join(
                f"{fl / med:5.0f} [{fl / q3:3.0f}-{fl / q1:3.0f}]" for med, q1, q3 in times))


def parse(arg: str) -> dict:
    out = {}
    for pair in arg.split(","):
        name, value = pair.split("=")
        out[name] = {"True": True, "False": False}.get(value, None)
        if out[name] is None:
            out[name] = float(value) if "." in value else int(value)
    return out


if __name__ == "__main__":
    args = sys.argv[2:]
    dims = [int(a[2:]) for a in args if a.startswith("D=")] or (64, 128)
    masks = [bool(int(a[7:])) for a in args if a.startswith("causal=")] or (False, True)
    main(int(sys.argv[1]), [parse(a) for a in args if not a.startswith(("D=", "causal="))], dims, masks)

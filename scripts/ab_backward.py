"""A/B the backward's main kernel (the dK/dV/dQ kernel alone, device time) against variants given as constexpr
overrides, alternating the variants twice so drift shows:
    python3 scripts/ab_backward.py 4096 HEAVY_FIRST=False STAGES=3
    python3 scripts/ab_backward.py 4096 D=128 DQ_WG=False,W=12     (head dims to run: D=..., default 64 and 128)
Each variant is a space-free list of NAME=value pairs joined by commas."""
import sys

import torch

from backward_breakdown import main_kernel_call  # (scripts/ is on the path when this script runs)
from pykittens.bench.harness import time_ms
from pykittens.kernels import attention


def main(n: int, variants: list[dict], dims=(64, 128)):
    print(f"N={n}: main kernel TFLOP/s, variants {variants} (default first), two alternating rounds")
    for d in dims:
        for causal in (False, True):
            B, H = 16384 // n, 2048 // d
            q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
            o, lse = attention(q, k, v, causal=causal, return_lse=True)
            call = main_kernel_call(q, k, v, do, lse, causal)[0]
            fl = 2.5 * 4 * B * H * n * n * d / (2 if causal else 1) / 1e9
            rows = [[fl / time_ms(lambda: call(**kw), 3, 20) for kw in [{}] + variants] for _ in range(2)]
            print(f"  D={d:3d} causal={causal!s:5s} " + " | ".join(" ".join(f"{x:5.0f}" for x in r) for r in rows))


def parse(arg: str) -> dict:
    out = {}
    for pair in arg.split(","):
        name, value = pair.split("=")
        out[name] = {"True": True, "False": False}.get(value, None)
        if out[name] is None:
            out[name] = int(value)
    return out


if __name__ == "__main__":
    dims = [int(a[2:]) for a in sys.argv[2:] if a.startswith("D=")] or (64, 128)
    main(int(sys.argv[1]), [parse(a) for a in sys.argv[2:] if not a.startswith("D=")], dims)

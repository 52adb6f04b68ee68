"""Time Hopper attention variants (consumer warpgroups, stages, keys per stage) next to cuDNN.
Usage: python scripts/tune_attention.py [N (default 4096)] [head dims, default all]"""
import math
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from pykittens.bench.harness import run_once, time_ms
from pykittens.kernels import hopper_attention

# (consumers, stages, keys per stage, ping-pong, P·V overlapped with the next softmax)
VARIANTS = {64: [(3, 4, 128, True, False), (3, 4, 128, True, True)],
            128: [(3, 2, 128, True, False), (2, 3, 128, True, True)],
            256: [(2, 2, 64, True, False)]}


def grid_point(n, d, causal):
    """BENCH.md's attention grid point (B·N = 16k, H·D = 2048): fresh random q, k, v, its GFLOP, cuDNN's output
    (the reference) and cuDNN's time in ms."""
    B, H = 16384 // n, 2048 // d
    q, k, v = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    fl = 4 * B * H * n * n * d / (2 if causal else 1) / 1e9
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        ref = sdpa(q, k, v, is_causal=causal)
        tc = time_ms(lambda: sdpa(q, k, v, is_causal=causal))
    return q, k, v, fl, ref, tc


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    dims = [int(x) for x in sys.argv[2:]] or list(VARIANTS)
    for d, variants in ((d, VARIANTS[d]) for d in dims):
        for causal in (False, True):
            q, k, v, fl, ref, tc = grid_point(n, d, causal)
            B, H = q.shape[:2]
            print(f"D={d} causal={causal}: cuDNN {fl / tc:.0f} TFLOP/s")
            for c, s, kv, pp, lag in variants:
                grid = (-(-n // (64 * c)), H, B)
                o = torch.full_like(q, float("nan"))  # poisoned: an unwritten row shows
                lse = torch.empty(B, H, 1, n, device="cuda")
                run = lambda: hopper_attention[grid](  # noqa: E731
                    q, k, v, o, lse, math.log2(math.e) / math.sqrt(d), d, c, s, causal, kv, pp, lag)
                label = f"C={c} S={s} KV={kv} pingpong={pp} pv_lag={lag}"
                failed = run_once(run)
                if failed:
                    print(f"  {label}: failed {failed}")
                    continue
                err = ((o.double() - ref.double()).norm() / ref.double().norm()).item()
                print(f"  {label}: {fl / time_ms(run):.0f} TFLOP/s (err vs cuDNN {err:.1e}, NaN {o.isnan().any().item()})")


if __name__ == "__main__":
    main()

"""Our attention against SDPA's cuDNN backend, forward and forward+backward, timed call by call in turn
(``time_interleaved``) on the BENCH.md grid (16k tokens, model width 2048), so both see the same GPU power state:
    python3 scripts/vs_cudnn.py [N ...]        (default 1024 2048 4096 16384)
Prints the median ratio cuDNN time / our time (> 1: ours faster) with the middle half's spread."""
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from pykittens.bench.harness import time_interleaved
from pykittens.kernels import attention


def cudnn(q, k, v, causal):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return sdpa(q, k, v, is_causal=causal)


def main(ns):
    print(f"{'D':>4s} {'causal':>6s} {'N':>6s}   fwd ours/cuDNN speed   bwd ours/cuDNN speed   (median [quartiles])")
    for d in (64, 128):
        for causal in (False, True):
            for n in ns:
                B, H = 16384 // n, 2048 // d
                q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
                fwd = [lambda f=f, x=(q.detach(), k.detach(), v.detach()): f(*x, causal=causal) for f in (cudnn, attention)]  # (no autograd)
                for t in (q, k, v):
                    t.requires_grad_()
                outs = [f(q, k, v, causal=causal) for f in (cudnn, attention)]
                bwd = [lambda o=o: torch.autograd.grad(o, (q, k, v), do, retain_graph=True) for o in outs]
                cols = []
                for pair in (fwd, bwd):
                    (c, c1, c3), (o, o1, o3) = time_interleaved(pair, rounds=20)
                    cols.append(f"{c / o:5.3f} [{c1 / o3:5.3f}-{c3 / o1:5.3f}]")
                print(f"{d:4d} {causal!s:>6s} {n:6d}   {cols[0]:22s} {cols[1]}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1024, 2048, 4096, 16384])

"""Time backward variants (consumer warpgroups per block) next to cuDNN's backward:
    python3 scripts/tune_backward.py [N ...]   (default 4096)"""
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

import importlib

from pykittens.bench.attention import grid_shape
from pykittens.bench.harness import time_ms
from pykittens.kernels import attention

A = importlib.import_module("pykittens.kernels.attention_ops")


def main(n):
    for d, variants in ((64, (2, 3)), (128, (2,))):
        for causal in (False, True):
            B, H = grid_shape(n, d)
            q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
            for t in (q, k, v):
                t.requires_grad_()
            fl = 2.5 * 4 * B * H * n * n * d / (2 if causal else 1) / 1e9
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                o = sdpa(q, k, v, is_causal=causal)
                ref = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                tc = time_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, 20)
            print(f"N={n} D={d} causal={causal}: cuDNN backward {fl / tc:.0f} TFLOP/s")
            default = A.BACKWARD_CONSUMERS[d, causal]
            for c in variants:
                A.BACKWARD_CONSUMERS[d, causal] = c
                o = attention(q, k, v, causal=causal)
                g = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                err = max(((a.double() - b.double()).norm() / b.double().norm()).item() for a, b in zip(g, ref))
                t = time_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, 20)
                print(f"  consumers={c}: {fl / t:.0f} TFLOP/s (max grad err vs cuDNN {err:.1e})")
            A.BACKWARD_CONSUMERS[d, causal] = default
            if causal:  # the block order: plain (key blocks inner) against heavy first
                A.BACKWARD_HEAVY_FIRST = False
                t = time_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, 20)
                A.BACKWARD_HEAVY_FIRST = True
                t2 = time_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, 20)
                print(f"  consumers={default}, plain order {fl / t:.0f}, heavy first {fl / t2:.0f} TFLOP/s")


if __name__ == "__main__":
    for n in map(int, sys.argv[1:] or [4096]):
        main(n)

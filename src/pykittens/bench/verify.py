"""Without a GPU: run every library kernel in the CPU interpreter at small shapes against float64, with a verdict."""
from __future__ import annotations

import torch

from .harness import rel_err

GATE = 1e-2


def attention_cases():
    # (B, H_q, H_kv, N_q, N_kv, D, causal): ragged lengths, GQA, causal, every head dim
    return [(1, 2, 2, 40, 40, 64, False), (1, 2, 1, 33, 33, 128, True), (2, 4, 2, 17, 50, 64, False),
            (1, 1, 1, 70, 70, 64, True), (1, 2, 2, 24, 40, 64, True), (1, 2, 1, 50, 70, 256, True)]


def backward_cases():
    # (B, H_q, H_kv, N_q, N_kv, D, causal, deterministic): GQA + causal + ragged; D = 128 with the fixed-order dQ;
    # D = 256 (two launches: dV, then dK and dQ)
    return [(1, 2, 1, 70, 90, 64, True, False), (1, 1, 1, 40, 40, 128, False, True),
            (1, 2, 1, 50, 70, 256, True, False)]


def matmul_cases():
    # (M, N, K, transpose_b): ragged edges on every dim, both B layouts
    return [(130, 264, 72, False), (200, 40, 136, True)]


def run(progress) -> list[tuple[str, float, bool]]:
    from ..kernels import attention, matmul, reference_attention
    results = []
    for M, N, K, tb in progress(matmul_cases(), desc="interpreter: matmul"):
        a = torch.randn(M, K).bfloat16()
        b = torch.randn(N, K).bfloat16() if tb else torch.randn(K, N).bfloat16()
        ref = a.double() @ (b.double().T if tb else b.double())
        err = rel_err(matmul(a, b, transpose_b=tb), ref)
        results.append((f"matmul M={M} N={N} K={K} transpose_b={tb}", err, err <= GATE))
    for B, Hq, Hk, Nq, Nk, D, causal in progress(attention_cases(), desc="interpreter: attention"):
        q = torch.randn(B, Hq, Nq, D).bfloat16()
        k, v = torch.randn(B, Hk, Nk, D).bfloat16(), torch.randn(B, Hk, Nk, D).bfloat16()
        out = attention(q, k, v, causal=causal)
        err = rel_err(out, reference_attention(q, k, v, causal))
        name = f"attention (hopper kernel) B={B} Hq={Hq} Hkv={Hk} Nq={Nq} Nkv={Nk} D={D} causal={causal}"
        results.append((name, err, err <= GATE))
    for B, Hq, Hk, Nq, Nk, D, causal, det in progress(backward_cases(), desc="interpreter: attention backward"):
        q = torch.randn(B, Hq, Nq, D).bfloat16().requires_grad_()
        k, v = (torch.randn(B, Hk, Nk, D).bfloat16().requires_grad_() for _ in range(2))
        do = torch.randn(B, Hq, Nq, D).bfloat16()
        grads = torch.autograd.grad(attention(q, k, v, causal=causal, deterministic=det), (q, k, v), do)
        q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
        ref = torch.autograd.grad(reference_attention(q64, k64, v64, causal), (q64, k64, v64), do.double())
        err = max(rel_err(g, r) for g, r in zip(grads, ref))
        name = (f"attention backward (dq, dk, dv) B={B} Hq={Hq} Hkv={Hk} Nq={Nq} Nkv={Nk} D={D} causal={causal}"
                f" deterministic={det}")
        results.append((name, err, err <= GATE))
    return results

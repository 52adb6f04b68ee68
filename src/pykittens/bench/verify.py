"""Without a GPU: run every library kernel in the CPU interpreter at small shapes against float64, with a verdict."""
from __future__ import annotations

import torch

from .harness import rel_err

GATE = 1e-2


def attention_cases():
    # (B, H_q, H_kv, N_q, N_kv, D, causal): ragged lengths, GQA, causal, both head dims
    return [(1, 2, 2, 40, 40, 64, False), (1, 2, 1, 33, 33, 128, True), (2, 4, 2, 17, 50, 64, False),
            (1, 1, 1, 70, 70, 64, True), (1, 2, 2, 24, 40, 64, True)]


def run(progress) -> list[tuple[str, float, bool]]:
    from ..kernels import attention, reference_attention
    results = []
    for B, Hq, Hk, Nq, Nk, D, causal in progress(attention_cases(), desc="interpreter"):
        q = torch.randn(B, Hq, Nq, D).bfloat16()
        k, v = torch.randn(B, Hk, Nk, D).bfloat16(), torch.randn(B, Hk, Nk, D).bfloat16()
        out = attention(q, k, v, causal=causal)
        err = rel_err(out, reference_attention(q, k, v, causal))
        name = f"attention B={B} Hq={Hq} Hkv={Hk} Nq={Nq} Nkv={Nk} D={D} causal={causal}"
        results.append((name, err, err <= GATE))
    return results

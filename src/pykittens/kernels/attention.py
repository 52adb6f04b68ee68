"""``pykittens.kernels.attention``: scaled dot-product attention on SDPA's (B, H, N, D) layout.

CUDA tensors run the compiled kernel; CPU tensors run the same kernel in the interpreter. Inputs are checked before
anything is launched, and what is not supported raises ``ValueError``/``TypeError`` saying what was expected.
Launches, configurations, torch.library ops and autograd: ``attention_ops.py``.
"""
import math

import torch

from .attention_ops import (WARP_HEAD_DIMS, _Attention, _check, _hopper_forward, _warp_forward,
                            check_backward_head_dim, positive_scale)

def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None,
              *, return_lse: bool = False, kernel: str = "auto", deterministic: bool = False):
    """softmax(q kᵀ · scale [+ causal mask]) v, like ``torch.nn.functional.scaled_dot_product_attention``.

    q: (B, H_q, N_q, D), k and v: (B, H_kv, N_kv, D), bfloat16, D in {64, 128, 256} (256: the Hopper kernels
    only; ``deterministic=True`` needs D <= 128); H_q a multiple of H_kv (GQA/MQA).
    Any N >= 1. ``causal`` aligns the mask to the bottom-right corner (query i sees keys j <= i + N_kv - N_q).
    ``scale`` defaults to 1/sqrt(D); any finite value works (≤ 0 runs as an equivalent call with a positive
    scale: -q for a negative one, q = 0 for zero). Returns a new (B, H_q, N_q, D) bfloat16 tensor, and with
    ``return_lse`` also the (B, H_q, N_q) float32 log-sum-exp of the scaled scores (natural log).
    ``kernel``: 'hopper' (TMA + wgmma; needs sm_90 on a GPU), 'warp' (mma.sync; any sm_80+ GPU, no lse), or
    'auto' (hopper on an H100 and on CPU tensors, where the interpreter runs it; warp on other GPUs).
    The Hopper path is the custom op ``torch.ops.pykittens.attention_fwd`` (torch.compile and CUDA graphs) and is
    differentiable (q, k, v); ``deterministic=True`` makes the backward bit-reproducible (dQ in a fixed order, by
    a second kernel that recomputes the scores: slower).
    """
    checked = _check(q, k, v, causal)
    D = q.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"attention: scale must be a finite number, got {scale}")
    q, scale = positive_scale(q, scale)  # (scale <= 0: an equivalent call with scale > 0)
    if kernel == "auto":
        kernel = "hopper" if checked.hopper else "warp"
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if needs_grad:
        check_backward_head_dim(D, deterministic)  # before the forward runs, not at backward time
    if kernel == "warp":
        if D not in WARP_HEAD_DIMS:
            raise ValueError(f"attention: the warp-level kernel supports head dims {WARP_HEAD_DIMS}, got {D}")
        if return_lse:
            raise ValueError("attention: the warp-level kernel does not return the log-sum-exp; use kernel='hopper'")
        if needs_grad:
            raise NotImplementedError("attention: the warp-level kernel has no backward (the Hopper kernels do); "
                                      "call it under torch.no_grad() or on detached tensors")
        return _warp_forward(q, k, v, causal, scale) if len(q) else q * 0.0
    if kernel != "hopper":
        raise ValueError(f"attention: kernel must be 'auto', 'hopper' or 'warp', got {kernel!r}")
    if not len(q):  # an empty batch: nothing to launch (q * 0 keeps autograd's graph)
        o, lse = q * 0.0, q.new_empty(q.shape[:3], dtype=torch.float32)
    elif torch.compiler.is_compiling():  # graph capture by torch.compile sees the custom op (and its autograd)
        o, lse = torch.ops.pykittens.attention_fwd(q, k, v, bool(causal), scale, bool(deterministic))
    elif needs_grad:
        o, lse = _Attention.apply(q, k, v, bool(causal), scale, bool(deterministic), checked)
    else:  # eager inference: skip the dispatcher's ~100 us per call (CUDA-graph capture works either way)
        o, lse = _hopper_forward(q, k, v, bool(causal), scale, checked, with_lse=return_lse)
    return (o, lse) if return_lse else o


def attention_bnhd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                   scale: float | None = None, *, return_lse: bool = False):
    """``attention`` on FlashAttention's (B, N, H, D) layout: no copies — the kernel reads the strided tensors and
    writes a (B, N_q, H_q, D) output; the optional log-sum-exp is (B, H_q, N_q) as in ``attention``."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"attention_bnhd: {name} must be a 4-D (batch, seq, heads, head_dim) tensor")
    r = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal, scale, return_lse=return_lse)
    if return_lse:
        return r[0].transpose(1, 2), r[1]
    return r.transpose(1, 2)


def reference_attention(q, k, v, causal=False, scale=None) -> torch.Tensor:
    """float64 reference (GQA and bottom-right causal alignment as in ``attention``)."""
    q, k, v = q.double(), k.double(), v.double()
    Hq, Hk = q.shape[1], k.shape[1]
    k, v = k.repeat_interleave(Hq // Hk, dim=1), v.repeat_interleave(Hq // Hk, dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        Nq, Nk = q.shape[2], k.shape[2]
        keep = torch.ones(Nq, Nk, dtype=torch.bool, device=q.device).tril(Nk - Nq)
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ v

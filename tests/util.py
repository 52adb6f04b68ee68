"""Helpers for tests: random inputs, poisoned outputs, relative error against a float64 reference."""
import torch

import pykittens as tk

HAS_GPU = torch.cuda.is_available()


def rand(*shape, dtype=torch.bfloat16, device="cpu", scale=1.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale).to(dtype).to(device)


def poison(*shape, dtype=torch.bfloat16, device="cpu"):
    """An output buffer full of NaN: an element the kernel never writes shows up as NaN."""
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def rel_err(out, ref) -> float:
    out, ref = out.double().cpu(), ref.double().cpu()
    if torch.isnan(out).any():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def assert_close(out, ref, tol):
    """‖out − ref‖ / ‖ref‖ ≤ tol; NaN never passes."""
    e = rel_err(out, ref)
    assert e <= tol, f"relative error {e:.3e} > {tol:.1e}"


def tol_for(dtype) -> float:
    return {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]


def sass_and_resources(kernel, *args, arch="sm_90a"):
    """Compile with NVRTC (no GPU needed) and return (SASS text, resources)."""
    ck = kernel.compile(*args, arch=arch)
    return ck.sass(), ck.resources()

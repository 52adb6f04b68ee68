"""Helpers for tests: random inputs, poisoned outputs, relative error against a float64 reference; type-error
checks that name the line of the bad call; a lane-level model of register tiles."""
import os
import sys

import pytest
import torch

import pykittens as tk
from pykittens.types import fragment_coords

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


# ---------------------------------------------------------------------------------------------- matmuls
def transposed(variant):
    """For an mma variant (AB, ABt, AtB, AtBt): (a is given as A^T, b is given as B^T)."""
    return variant.startswith("At"), variant.endswith("Bt")


def matmul_reference(variant, a, b):
    """float64 A @ B (on CPU) from the operands ``a``, ``b`` of an mma ``variant``."""
    at, bt = transposed(variant)
    A, B = a.double().cpu(), b.double().cpu()
    A = A.transpose(-1, -2) if at else A
    B = B.transpose(-1, -2) if bt else B
    return A @ B


# ---------------------------------------------------------------------------------------------- type errors
def tagged_line(path, tag):
    """Line number of the line of ``path`` that ends with the comment ``# <tag>``."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# {tag}"):
                return i
    raise LookupError(tag)


def expect_tagged_type_error(fn, tag, *words, args=None):
    """Tracing ``fn`` as a one-warp kernel (on ``args``; default one 32x48 bf16 tensor) raises a KernelTypeError
    naming ``file:line:`` of the line of fn's file tagged ``# bad:<tag>``, and containing each of ``words``."""
    args = (torch.zeros(32, 48, dtype=torch.bfloat16),) if args is None else args
    k = tk.kernel(warps=1)(fn)
    with pytest.raises(tk.KernelTypeError) as e:
        k.ir(*args)
    msg = str(e.value)
    path = fn.__code__.co_filename
    assert f"{os.path.basename(path)}:{tagged_line(path, 'bad:' + tag)}:" in msg, msg
    for w in words:
        assert w in msg, msg


def next_line():
    """Line number of the caller's next line (where the bad call is)."""
    return sys._getframe(1).f_lineno + 1


def expect_type_error(body, *fragments):
    """Calling ``body()`` inside a one-warp kernel raises a KernelTypeError naming body's file and ``body.line``
    (set with next_line() just before the bad call), and containing each of ``fragments``."""
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        body()

    with pytest.raises(tk.KernelTypeError) as ei:
        bad.ir(torch.zeros(16, 16, dtype=torch.bfloat16))
    msg = str(ei.value)
    assert os.path.basename(body.__code__.co_filename) in msg, msg
    assert f":{body.line}:" in msg, msg
    for f in fragments:
        assert f in msg, msg


# ---------------------------------------------------------------------------------------------- lane simulation
def to_regs(x, layout):
    """Registers of a tile holding ``x`` (2-D) in ``layout``: regs[i][j][k][lane] = (v0, v1)."""
    rows, cols = x.shape
    return [[[[tuple(float(x[16 * i + r, 16 * j + c]) for r, c in (fragment_coords(layout, lane, k, e)
                                                                    for e in (0, 1)))
               for lane in range(32)] for k in range(4)] for j in range(cols // 16)] for i in range(rows // 16)]


def from_regs(regs, layout):
    """The float64 tile whose ``layout`` registers are ``regs`` (NaN where no register lands)."""
    H, W = len(regs), len(regs[0])
    x = torch.full((16 * H, 16 * W), float("nan"), dtype=torch.float64)
    for i in range(H):
        for j in range(W):
            for k in range(4):
                for lane in range(32):
                    for e in (0, 1):
                        r, c = fragment_coords(layout, lane, k, e)
                        x[16 * i + r, 16 * j + c] = regs[i][j][k][lane][e]
    return x

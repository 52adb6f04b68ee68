"""
Tutorial 1: tiles and ops — a row-wise softmax
==============================================

In CUDA you write what *one thread* does. In pykittens (ThunderKittens for Python) you write what *one warp* does
to a whole tile: a 16x64 register tile is spread over the 32 lanes of a warp (each lane holds 32 of its values),
and every op — load, exp, row max, store — is done by the warp together. You never see a lane index.

This tutorial writes a softmax over the rows of an (N, 64) bf16 tensor, with N *not* a multiple of 16, and shows:

* register tiles ``tk.rt`` and the per-row vector of a tile, ``tk.col_vec``;
* ``tk.load`` / ``tk.store`` with indices in *tile units* and ``oob=`` / ``clip=`` for the ragged last tile;
* element-wise ops, a row reduction into a vector and a row broadcast;
* the generated CUDA (``kernel.source``), an NVRTC compile with no GPU (``kernel.compile(...).resources()``);
* what the CPU interpreter catches that a GPU would not tell you: a shared-memory race between warps.

Run: ``PYTHONPATH=src python examples/01_tiles_and_ops.py``.
"""
import math

import torch

import pykittens as tk

WARPS = 4  # warps per block; each warp owns one 16-row tile


# %%
# The kernel
# ----------
# A kernel is a Python function decorated with ``@tk.kernel``. Its parameters are typed: ``tk.gl(dtype)`` is a
# global tensor (seen as up to 4-D: batch, depth, rows, cols). The body runs once, at trace time, and records ops;
# Python values (like ``WARPS``) are constants, while ``tk.block_idx.x`` and ``tk.warp_id()`` are *device scalars*:
# expressions evaluated on the GPU.
#
# Ops are destination-first, like ThunderKittens' C++: ``tk.exp(t, t)`` means ``t = exp(t)``.

@tk.kernel(warps=WARPS)
def softmax(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    t = tk.rt(tk.fp32, 16, 64)          # 16x64 fp32 register tile, one per warp
    row_max = tk.col_vec(t)             # one value per row of t (a "column vector", 16 long)
    row_sum = tk.col_vec(t)

    # Which 16-row tile is mine? Indices into global memory are in units of the tile shape:
    # (row_tile, col_tile) = (tile, 0) means rows 16*tile .. 16*tile+15, cols 0 .. 63.
    tile = tk.let(tk.block_idx.x * WARPS + tk.warp_id())    # tk.let: name a device scalar (a C++ local)

    # N is not a multiple of 16, so the last tile sticks out of the tensor. oob=value makes the rows outside
    # read as `value` (without it the interpreter raises OutOfBoundsError). The bf16 data converts to fp32.
    tk.load(t, x, (tile, 0), oob=0.0)

    tk.row_max(row_max, t)              # reduce each row to its max: 16 values, kept in registers
    tk.sub_row(t, t, row_max)           # row broadcast: t[r][c] -= row_max[r]
    tk.exp(t, t)                        # element-wise
    tk.row_sum(row_sum, t)
    tk.div_row(t, t, row_sum)

    # clip=True: elements outside the tensor are not written (the padded rows of the last tile are dropped).
    tk.store(o, t, (tile, 0), clip=True)


# %%
# A race the interpreter catches
# ------------------------------
# Shared tiles (``tk.st``) are visible to all warps of a block. Here each warp writes its own tile, then reads its
# neighbour's — but nothing makes it wait until the neighbour has written. On a GPU this works most of the time.
# The interpreter runs the warps in lockstep and tracks who wrote what since the last barrier; it reports a
# RaceError naming the line. The fix is a ``tk.sync()`` (``__syncthreads``) between the write and the read.

def make_neighbour_kernel(with_sync):
    @tk.kernel(warps=WARPS)
    def neighbour(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
        s = tk.st(tk.bf16, 16, 64, count=WARPS)         # an array of shared tiles, one per warp
        t = tk.rt(tk.bf16, 16, 64)
        tk.load(s[tk.warp_id()], x, (tk.warp_id(), 0))  # global -> shared, each warp its own tile
        if with_sync:                                   # a Python `if`: decided at trace time
            tk.sync()
        tk.load(t, s[(tk.warp_id() + 1) % WARPS])       # shared -> registers: the neighbour's tile
        tk.store(o, t, (tk.warp_id(), 0))
    return neighbour


def rel_err(out, ref):
    out, ref = out.double().cpu(), ref.double().cpu()
    return float("inf") if torch.isnan(out).any() else float((out - ref).norm() / ref.norm())


def check(name, out, ref, tol):
    err = rel_err(out, ref)
    ok = err <= tol
    print(f"{name}: relative error {err:.2e} (tol {tol:.0e}) {'PASS' if ok else 'FAIL'}")
    return ok


def main(n_rows=100):
    ok = True
    x = torch.randn(n_rows, 64, dtype=torch.float64).bfloat16()
    ref = torch.softmax(x.double(), dim=1)
    grid = math.ceil(n_rows / (16 * WARPS))              # blocks: each covers 16 * WARPS rows

    # CPU tensors run in the interpreter; CUDA tensors run on the GPU. Same kernel, same launch syntax.
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        o = torch.full((n_rows, 64), float("nan"), dtype=torch.bfloat16, device=dev)   # NaN: unwritten shows up
        softmax[grid](x.to(dev), o)
        ok &= check(f"softmax ({dev})", o, ref, 1e-2)

    # The generated CUDA: readable C++ over ThunderKittens-like tile structs (tk::rt, tk::rv, tk::gl).
    src = softmax.source(x, o)
    body = src[src.index("__global__"):].splitlines()[1:]   # skip the long parameter list
    print("generated CUDA (kernel body; the prelude above it defines tk::rt, tk::load, ...):\n  "
          + "\n  ".join(body[:13]))

    # Compile with NVRTC — no GPU needed. resources() reads registers and spills from the cubin.
    res = softmax.compile(x, o, arch="sm_90a").resources()
    print(f"sm_90a: {res.registers} registers/thread, {res.local} bytes of local memory (spills)")
    ok &= res.local == 0

    # The race: without tk.sync() the interpreter stops at the read of the neighbour's tile.
    xs = torch.randn(16 * WARPS, 64).bfloat16()
    o = torch.full_like(xs, float("nan"))
    try:
        make_neighbour_kernel(with_sync=False)[1](xs, o)
        print("race: NOT caught  FAIL")
        ok = False
    except tk.RaceError as e:
        print(f"race caught by the interpreter:\n  {e}")
    make_neighbour_kernel(with_sync=True)[1](xs, o)
    ok &= check("with tk.sync()", o, xs.roll(-16, dims=0), 0.0)
    print("PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)

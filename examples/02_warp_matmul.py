"""
Tutorial 2: a warp-level matmul with shared memory and tensor cores
===================================================================

C = A @ B for bf16 A (M x K) and B (K x N), fp32 accumulation, bf16 C. Each block computes a 64x64 tile of C with
4 warps; warp w owns the 16x64 strip of rows 16w .. 16w+15. Per step of the K loop (64 wide):

1. every warp copies its share of the inputs from global to **shared** memory (``tk.st`` tiles, one array
   indexed by warp): its own 16x64 strip of A (as four 16x16 tiles) and one 16x64 slice of B that all warps use;
2. ``tk.sync()``: the slices of B written by the other warps are now visible;
3. each warp moves tiles from shared memory into **registers** (``ldmatrix``) and multiplies them on the tensor
   cores with ``tk.mma_AB`` (``mma.sync.m16n8k16`` in PTX), accumulating into a 16x64 fp32 tile;
4. ``tk.sync()`` again, before the next step overwrites the shared tiles others may still be reading.

It also shows the *layout rule* of the tensor-core ops, and the error you get when you break it.

Run: ``PYTHONPATH=src python examples/02_warp_matmul.py``.
"""
import math

import torch

import pykittens as tk

WARPS = 4
BK = 16 * WARPS  # K step: one 16-row slice of B per warp


# %%
# The layout rule
# ---------------
# A register tile is spread over a warp's lanes in one of two *layouts*. In ``"row"`` layout (the default) each
# lane holds pairs of neighbouring elements along a row; in ``"col"`` layout, pairs along a column. The tensor-core
# instruction wants A's K dimension packed along rows and B's K dimension packed along columns, so:
#
#     tk.mma_AB(d, a, b, c)      d = a @ b + c      a: rt<bf16, M, K, "row">,  b: rt<bf16, K, N, "col">,
#                                                   c, d: rt<fp32, M, N, "row">
#
# You do not transpose anything by hand: loading a shared tile into a ``"col"`` register tile uses
# ``ldmatrix.trans``, which performs the re-packing on the way. (``tk.mma_ABt`` takes a row-layout B of shape N x K
# instead — that is how attention computes Q @ K^T.)

@tk.kernel(warps=WARPS)
def matmul(a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), c: tk.gl(tk.bf16)):
    a_s = tk.st(tk.bf16, 16, 16, count=(WARPS, BK // 16))  # a_s[w, j]: warp w's A rows, K columns 16j..16j+15
    b_s = tk.st(tk.bf16, 16, 64, count=WARPS)              # b_s[j]: rows 16j..16j+15 of this K step's B slice
    a_reg = tk.rt(tk.bf16, 16, 16)                         # row layout (the default): M x K
    b_reg = tk.rt(tk.bf16, 16, 64, "col")                  # col layout: K x N
    acc = tk.rt(tk.fp32, 16, 64)
    w = tk.warp_id()
    row = tk.let(tk.block_idx.y * WARPS + w)  # my 16-row tile of C
    col = tk.block_idx.x                      # the block's 64-column tile of C

    tk.zero(acc)
    # A device loop (a C++ `for`): the trip count is only known at run time.
    for k in tk.range(tk.cdiv(a.cols, BK)):
        # Global -> shared. Indices are in tile units of the *destination* tile. The last K step and the edge
        # blocks may stick out of A, B: oob=0.0 reads zeros there, which add nothing to the product.
        for j in range(BK // 16):  # a Python loop: unrolled at trace time
            tk.load(a_s[w, j], a, (row, k * (BK // 16) + j), oob=0.0)
        tk.load(b_s[w], b, (k * WARPS + w, col), oob=0.0)
        tk.sync()  # b_s[j] was written by warp j
        for j in range(BK // 16):
            tk.load(a_reg, a_s[w, j])  # shared -> registers, ldmatrix
            tk.load(b_reg, b_s[j])     # shared -> registers, ldmatrix.trans (col layout)
            tk.mma_AB(acc, a_reg, b_reg, acc)
        tk.sync()  # everyone is done reading b_s before the next step overwrites it
    tk.store(c, acc, (row, col), clip=True)  # fp32 -> bf16 on the way; clip the edge blocks


# %%
# Breaking the rule
# -----------------
# Type rules are checked while tracing, before anything is compiled or run, and the error names your line.

@tk.kernel(warps=1)
def wrong_layout(a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), c: tk.gl(tk.bf16)):
    a_reg, b_reg, acc = tk.rt(tk.bf16, 16, 16), tk.rt(tk.bf16, 16, 64), tk.rt(tk.fp32, 16, 64)  # b_reg: row layout!
    tk.load(a_reg, a, (0, 0))
    tk.load(b_reg, b, (0, 0))
    tk.zero(acc)
    tk.mma_AB(acc, a_reg, b_reg, acc)
    tk.store(c, acc, (0, 0))


def check(name, out, ref, tol):
    out, ref = out.double().cpu(), ref.double().cpu()
    err = float("inf") if torch.isnan(out).any() else float((out - ref).norm() / ref.norm())
    print(f"{name}: relative error {err:.2e} (tol {tol:.0e}) {'PASS' if err <= tol else 'FAIL'}")
    return err <= tol


def main(M=80, N=96, K=144):
    assert M % 16 == 0 and N % 16 == 0 and K % 16 == 0
    ok = True
    a = torch.randn(M, K, dtype=torch.float64).bfloat16()
    b = torch.randn(K, N, dtype=torch.float64).bfloat16()
    ref = a.double() @ b.double()
    grid = (math.ceil(N / 64), math.ceil(M / (16 * WARPS)))  # (x: column tiles, y: row tiles)
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        c = torch.full((M, N), float("nan"), dtype=torch.bfloat16, device=dev)
        matmul[grid](a.to(dev), b.to(dev), c)
        ok &= check(f"matmul {M}x{N}x{K} ({dev})", c, ref, 1e-2)

    for arch in ("sm_80", "sm_90a"):
        ck = matmul.compile(a, b, c, arch=arch)
        res, sass = ck.resources(), ck.sass()
        print(f"{arch}: {res.registers} registers, {res.local} bytes spilled, "
              f"{sass.count('HMMA')} HMMA and {sass.count('LDSM')} LDSM instructions in the SASS")
        ok &= res.local == 0 and "HMMA" in sass

    try:
        wrong_layout.ir(a, b, c)  # tracing alone finds it
        print("layout error: NOT caught  FAIL")
        ok = False
    except tk.KernelTypeError as e:
        print(f"layout error caught at trace time:\n  {e}")
    print("PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)

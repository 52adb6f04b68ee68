"""Tensor-core matmuls (ops/mma.py): mma_AB/ABt/AtB/AtBt and mm_*.

- interpreter vs a float64 torch reference, bf16 and fp16, non-square shapes, 2 warps on different data;
- a lane-by-lane pure-Python simulation of the CUDA lowering (the register tables the C++ is generated from, fed
  into the m16n8k16 fragment definitions of the PTX ISA) computes the product: catches register-order mistakes
  without a GPU;
- every layout / dtype / shape misuse is a KernelTypeError naming this file and the line of the bad call;
- NVRTC builds for sm_90a and sm_80 use HMMA and spill nothing;
- GPU runs (marked ``gpu``) of the same kernels against the same reference.
"""
import pytest
import torch

import pykittens as tk
from pykittens.ops import mma as mma_ops

from util import (assert_close, expect_type_error, from_regs, matmul_reference, next_line, poison, rand, to_regs,
                  transposed)

VARIANTS = ("AB", "ABt", "AtB", "AtBt")
DTYPES = (torch.bfloat16, torch.float16)
MODES = ("acc", "inplace", "mm")  # d = a.b + c (c its own tile); d = a.b + d; d = a.b
M, N, K = 32, 48, 64
WARPS = 2
FN = {(v, acc): getattr(tk, f"{'mma' if acc else 'mm'}_{v}") for v in VARIANTS for acc in (True, False)}
# fp32 accumulation of exact bf16/fp16 products: only summation order differs from float64 (tensor cores add with
# slightly less care than IEEE fp32, hence not 1e-5)
TOL = 1e-4


def operand_types(variant, m=M, n=N, k=K):
    """Storage shape and layout of a and b for ``variant``."""
    at, bt = transposed(variant)
    a = ((k, m), "col") if at else ((m, k), "row")
    b = ((n, k), "row") if bt else ((k, n), "col")
    return a, b


@tk.kernel(warps=WARPS)
def mma_kernel(a: tk.gl(), b: tk.gl(), c: tk.gl(tk.fp32), o: tk.gl(tk.fp32), variant: tk.constexpr,
               mode: tk.constexpr):
    dt = a.type.dtype
    (ash, alay), (bsh, blay) = operand_types(variant)
    ta = tk.rt(dt, *ash, alay)
    tb = tk.rt(dt, *bsh, blay)
    d = tk.rt(tk.fp32, M, N)
    w = tk.warp_id()
    tk.load(ta, a, (w, 0, 0))
    tk.load(tb, b, (w, 0, 0))
    if mode == "acc":
        tc = tk.rt(tk.fp32, M, N)
        tk.load(tc, c, (w, 0, 0))
        FN[variant, True](d, ta, tb, tc)
    elif mode == "inplace":
        tk.load(d, c, (w, 0, 0))
        FN[variant, True](d, ta, tb, d)
    else:
        FN[variant, False](d, ta, tb)
    tk.store(o, d, (w, 0, 0))


def make_inputs(variant, dtype, device="cpu"):
    (ash, _), (bsh, _) = operand_types(variant)
    a = rand(WARPS, *ash, dtype=dtype, device=device)
    b = rand(WARPS, *bsh, dtype=dtype, device=device)
    c = rand(WARPS, M, N, dtype=torch.float32, device=device)
    o = poison(WARPS, M, N, dtype=torch.float32, device=device)
    return a, b, c, o


def reference(variant, mode, a, b, c):
    out = matmul_reference(variant, a, b)
    return out if mode == "mm" else out + c.double().cpu()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
def test_mma_interpreter(variant, dtype, mode):
    a, b, c, o = make_inputs(variant, dtype)
    mma_kernel[1](a, b, c, o, variant, mode)
    assert_close(o, reference(variant, mode, a, b, c), TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
def test_mma_gpu(variant, dtype, mode):
    a, b, c, o = make_inputs(variant, dtype, device="cuda")
    mma_kernel[1](a, b, c, o, variant, mode)
    torch.cuda.synchronize()
    assert_close(o, reference(variant, mode, a, b, c), TOL)


@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_mma_compiles(arch):
    for variant in VARIANTS:
        for dtype in DTYPES:
            for mode in MODES:
                ck = mma_kernel.compile(*make_inputs(variant, dtype), variant, mode, arch=arch)
                sass, res = ck.sass(), ck.resources()
                # (M/16)(N/16)(K/16) subtile products, two m16n8k16 each
                assert sass.count("HMMA") == 2 * (M // 16) * (N // 16) * (K // 16), (variant, dtype, mode)
                assert res.local == 0, f"{variant} {dtype} {mode}: {res}"


# ---------------------------------------------------------------------------------------------- lane simulation
def ptx_m16n8k16(a, b, c):
    """mma.m16n8k16.row.col with per-lane operands a[lane] = (a0..a3), b[lane] = (b0, b1), c[lane] = ((c0, c1),
    (c2, c3)) (pairs as (low, high)), exactly as the PTX ISA defines the fragments; returns d like c."""
    A = torch.full((16, 16), float("nan"), dtype=torch.float64)
    B = torch.full((16, 8), float("nan"), dtype=torch.float64)
    Cm = torch.full((16, 8), float("nan"), dtype=torch.float64)
    for lane in range(32):
        g, t = lane // 4, lane % 4
        for e in (0, 1):
            A[g, 2 * t + e] = a[lane][0][e]
            A[g + 8, 2 * t + e] = a[lane][1][e]
            A[g, 2 * t + 8 + e] = a[lane][2][e]
            A[g + 8, 2 * t + 8 + e] = a[lane][3][e]
            B[2 * t + e, g] = b[lane][0][e]
            B[2 * t + 8 + e, g] = b[lane][1][e]
            Cm[g, 2 * t + e] = c[lane][0][e]
            Cm[g + 8, 2 * t + e] = c[lane][1][e]
    assert not (A.isnan().any() or B.isnan().any() or Cm.isnan().any())
    D = A @ B + Cm
    return [((float(D[l // 4, 2 * (l % 4)]), float(D[l // 4, 2 * (l % 4) + 1])),
             (float(D[l // 4 + 8, 2 * (l % 4)]), float(D[l // 4 + 8, 2 * (l % 4) + 1]))) for l in range(32)]


def simulate_mma(variant, acc, a_regs, b_regs, c_regs, d_regs, tables):
    """What ``tk::mma<Acc>(d, a, b, c)`` does, loop for loop (see PRELUDE in ops/mma.py)."""
    A_REGS, B_REGS, C_REGS = tables
    at, bt = transposed(variant)
    KT = len(a_regs) if at else len(a_regs[0])
    H, W = len(d_regs), len(d_regs[0])
    zero = (0.0, 0.0)
    for kk in range(KT):
        for m in range(H):
            for n in range(W):
                as_ = a_regs[kk][m] if at else a_regs[m][kk]  # mma_sub<at>(a, m, kk)
                bs = b_regs[n][kk] if bt else b_regs[kk][n]  # mma_sub<bt>(b, kk, n)
                ds = d_regs[m][n]
                cs = d_regs[m][n] if kk else c_regs[m][n]
                for h in range(2):
                    (c0, c1), (b0, b1) = C_REGS[h], B_REGS[h]
                    a_in = [tuple(as_[k][lane] for k in A_REGS) for lane in range(32)]
                    b_in = [(bs[b0][lane], bs[b1][lane]) for lane in range(32)]
                    c_in = [((cs[c0][lane], cs[c1][lane]) if (acc or kk) else (zero, zero)) for lane in range(32)]
                    out = ptx_m16n8k16(a_in, b_in, c_in)
                    ds[c0] = [o[0] for o in out]
                    ds[c1] = [o[1] for o in out]


def run_simulation(variant, acc, tables, alias=False):
    at, bt = transposed(variant)
    m, n, k = 32, 48, 32
    A = torch.randint(-4, 5, (m, k)).double()
    B = torch.randint(-4, 5, (k, n)).double()
    C = torch.randint(-4, 5, (m, n)).double()
    a_regs = to_regs(A.T if at else A, "col" if at else "row")
    b_regs = to_regs(B.T if bt else B, "row" if bt else "col")
    c_regs = to_regs(C, "row")
    d_regs = c_regs if alias else to_regs(torch.full((m, n), float("nan")), "row")
    simulate_mma(variant, acc, a_regs, b_regs, c_regs if acc else d_regs, d_regs, tables)
    return from_regs(d_regs, "row"), A @ B + (C if acc else 0)


TABLES = (mma_ops.A_REGS, mma_ops.B_REGS, mma_ops.C_REGS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mma_lane_simulation(variant):
    for acc, alias in ((True, False), (True, True), (False, False)):
        got, want = run_simulation(variant, acc, TABLES, alias)
        assert torch.equal(got, want), (variant, acc, alias)


def test_mma_lane_simulation_catches_wrong_registers():
    # the simulation must notice a register-order mistake, or it proves nothing
    A_REGS, B_REGS, C_REGS = TABLES
    wrong = [((A_REGS[0], A_REGS[2], A_REGS[1], A_REGS[3]), B_REGS, C_REGS),
             (A_REGS, (B_REGS[1], B_REGS[0]), C_REGS),
             (A_REGS, ((B_REGS[0][1], B_REGS[0][0]), B_REGS[1]), C_REGS),
             (A_REGS, B_REGS, ((C_REGS[0][1], C_REGS[0][0]), C_REGS[1]))]
    for tables in wrong:
        got, want = run_simulation("AB", True, tables)
        assert not torch.equal(got, want)


def test_generated_cuda_uses_the_tables():
    src = mma_ops.PRELUDE
    for h in range(2):
        (c0, c1), (b0, b1) = mma_ops.C_REGS[h], mma_ops.B_REGS[h]
        a = ", ".join(f"as[{k}]" for k in mma_ops.A_REGS)
        assert f"mma16816<T>(ds[{c0}], ds[{c1}], {a}, bs[{b0}], bs[{b1}]," in src
    assert "m16n8k16.row.col.f32.bf16.bf16.f32" in src and "m16n8k16.row.col.f32.f16.f16.f32" in src


# ---------------------------------------------------------------------------------------------- type errors
def tiles(variant, dt=tk.bf16, a_layout=None, b_layout=None, m=M, n=N, k=K):
    (ash, alay), (bsh, blay) = operand_types(variant, m, n, k)
    return (tk.rt(tk.fp32, m, n), tk.rt(dt, *ash, a_layout or alay), tk.rt(dt, *bsh, b_layout or blay),
            tk.rt(tk.fp32, m, n))


def other(layout):
    return "col" if layout == "row" else "row"


@pytest.mark.parametrize("variant", VARIANTS)
def test_mma_layout_errors(variant):
    (_, alay), (_, blay) = operand_types(variant)

    def wrong_a():
        d, a, b, c = tiles(variant, a_layout=other(alay))
        wrong_a.line = next_line()
        FN[variant, True](d, a, b, c)
    expect_type_error(wrong_a, f"mma_{variant}: a must be a {alay}-layout tile", f"got {other(alay)} layout",
                      "tk.swap_layout")

    def wrong_b():
        d, a, b, c = tiles(variant, b_layout=other(blay))
        wrong_b.line = next_line()
        FN[variant, False](d, a, b)
    shape = "N x K" if variant.endswith("Bt") else "K x N"
    expect_type_error(wrong_b, f"mm_{variant}: b must be a {blay}-layout tile ({shape}); got {other(blay)} layout "
                               f"— use tk.swap_layout")


def test_mma_ab_message_exactly():
    def body():
        d, a, _, c = tiles("AB")
        b = tk.rt(tk.bf16, K, N, "row")
        body.line = next_line()
        tk.mma_AB(d, a, b, c)
    expect_type_error(body, "mma_AB: b must be a col-layout tile (K x N); got row layout — use tk.swap_layout")


@pytest.mark.parametrize("variant", VARIANTS)
def test_mma_shape_errors(variant):
    (ash, alay), (bsh, blay) = operand_types(variant)

    def k_mismatch():
        d, a, _, c = tiles(variant)
        b = tk.rt(tk.bf16, *operand_types(variant, k=K + 16)[1][0], blay)
        k_mismatch.line = next_line()
        FN[variant, True](d, a, b, c)
    expect_type_error(k_mismatch, "inner dimensions differ", f"K = {K}")

    def d_mismatch():
        _, a, b, c = tiles(variant)
        d = tk.rt(tk.fp32, M + 16, N)
        d_mismatch.line = next_line()
        FN[variant, True](d, a, b, c)
    expect_type_error(d_mismatch, f"d must be M x N: expected {M}x{N}", f"got {M + 16}x{N}")

    def c_mismatch():
        d, a, b, _ = tiles(variant)
        c = tk.rt(tk.fp32, M, N + 16)
        c_mismatch.line = next_line()
        FN[variant, True](d, a, b, c)
    expect_type_error(c_mismatch, f"c must be M x N: expected {M}x{N}", f"got {M}x{N + 16}")

    def mm_d_mismatch():
        _, a, b, _ = tiles(variant)
        d = tk.rt(tk.fp32, M, N + 32)
        mm_d_mismatch.line = next_line()
        FN[variant, False](d, a, b)
    expect_type_error(mm_d_mismatch, f"mm_{variant}: d must be M x N: expected {M}x{N}")


def test_mma_dtype_errors():
    def mixed():
        d, a, _, c = tiles("AB")
        b = tk.rt(tk.fp16, K, N, "col")
        mixed.line = next_line()
        tk.mma_AB(d, a, b, c)
    expect_type_error(mixed, "a and b must have the same dtype", "float16")

    def fp32_operands():
        d, _, _, c = tiles("ABt")
        a, b = tk.rt(tk.fp32, M, K), tk.rt(tk.fp32, N, K)
        fp32_operands.line = next_line()
        tk.mma_ABt(d, a, b, c)
    expect_type_error(fp32_operands, "a must be a bfloat16 or float16 tile, got float32")

    def bf16_d():
        _, a, b, c = tiles("AB")
        d = tk.rt(tk.bf16, M, N)
        bf16_d.line = next_line()
        tk.mma_AB(d, a, b, c)
    expect_type_error(bf16_d, "d must be a float32 tile, got bfloat16")

    def col_c():
        d, a, b, _ = tiles("AtB")
        c = tk.rt(tk.fp32, M, N, "col")
        col_c.line = next_line()
        tk.mma_AtB(d, a, b, c)
    expect_type_error(col_c, "c must be a row-layout tile", "got col layout")

    def vector_operand():
        d, a, _, c = tiles("AB")
        v = tk.rv(tk.bf16, K)
        vector_operand.line = next_line()
        tk.mma_AB(d, a, v, c)
    expect_type_error(vector_operand, "must be a register tile")


"""Register-tile layout ops (ops/layout.py): swap_layout, transpose; and tk.copy converting dtypes in one layout.

- interpreter vs torch (exact: these ops only move values), both layouts, bf16 / fp16 / fp32, non-square tiles;
- a lane-by-lane pure-Python simulation of the CUDA lowering (the register permutation and the shuffle expressions
  the C++ is generated from, with movmatrix modelled from the PTX ISA) reproduces swap and transpose;
- misuse is a KernelTypeError naming this file and the line of the bad call;
- NVRTC builds for sm_90a and sm_80 (movmatrix / shuffles, no spills); GPU runs marked ``gpu``.
"""
import pytest
import torch

import pykittens as tk
from pykittens.ops import layout as layout_ops

from util import assert_close, expect_type_error, from_regs, next_line, poison, rand, to_regs, tol_for

R, C = 32, 48
WARPS = 2
DTYPES = (torch.bfloat16, torch.float16, torch.float32)
LAYOUTS = ("row", "col")


def other(layout):
    return "col" if layout == "row" else "row"


@tk.kernel(warps=WARPS)
def layout_kernel(x: tk.gl(), o_swap: tk.gl(), o_tr: tk.gl(), o_swap_tr: tk.gl(), layout: tk.constexpr):
    dt = x.type.dtype
    w = tk.warp_id()
    t = tk.rt(dt, R, C, layout)
    s = tk.rt(dt, R, C, other(layout))
    tt = tk.rt(dt, C, R, layout)
    st = tk.rt(dt, C, R, other(layout))
    tk.load(t, x, (w, 0, 0))
    tk.swap_layout(s, t)  # x, other layout
    tk.transpose(tt, t)  # x^T, this layout
    tk.transpose(st, s)  # x^T, other layout
    tk.store(o_swap, s, (w, 0, 0))
    tk.store(o_tr, tt, (w, 0, 0))
    tk.store(o_swap_tr, st, (w, 0, 0))


def layout_inputs(dtype, device="cpu"):
    x = rand(WARPS, R, C, dtype=dtype, device=device)
    outs = (poison(WARPS, R, C, dtype=dtype, device=device), poison(WARPS, C, R, dtype=dtype, device=device),
            poison(WARPS, C, R, dtype=dtype, device=device))
    return (x,) + outs


def check_layout_outputs(x, o_swap, o_tr, o_swap_tr):
    x, o_swap, o_tr, o_swap_tr = (v.cpu() for v in (x, o_swap, o_tr, o_swap_tr))
    xt = x.transpose(-1, -2)
    assert torch.equal(o_swap, x)
    assert torch.equal(o_tr, xt)
    assert torch.equal(o_swap_tr, xt)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layout_interpreter(dtype, layout):
    args = layout_inputs(dtype)
    layout_kernel[1](*args, layout)
    check_layout_outputs(*args)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layout_gpu(dtype, layout):
    args = layout_inputs(dtype, device="cuda")
    layout_kernel[1](*args, layout)
    torch.cuda.synchronize()
    check_layout_outputs(*args)


@tk.kernel(warps=WARPS)
def copy_kernel(x: tk.gl(), o: tk.gl(), layout: tk.constexpr):
    s = tk.rt(x.type.dtype, R, C, layout)
    d = tk.rt(o.type.dtype, R, C, layout)
    w = tk.warp_id()
    tk.load(s, x, (w, 0, 0))
    tk.copy(d, s)
    tk.store(o, d, (w, 0, 0))


CONVERSIONS = [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16), (torch.float32, torch.float16),
               (torch.float16, torch.bfloat16), (torch.bfloat16, torch.float16), (torch.float16, torch.float32)]


def check_copy(x, o):
    ref = x.cpu().to(o.dtype)
    assert_close(o, x.double(), tol_for(o.dtype))
    assert torch.equal(o.cpu(), ref)  # round to nearest even, like torch


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("src,dst", CONVERSIONS, ids=lambda d: str(d).replace("torch.", ""))
def test_copy_converts_dtypes(src, dst, layout):
    x, o = rand(WARPS, R, C, dtype=src), poison(WARPS, R, C, dtype=dst)
    copy_kernel[1](x, o, layout)
    check_copy(x, o)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("src,dst", CONVERSIONS, ids=lambda d: str(d).replace("torch.", ""))
def test_copy_converts_dtypes_gpu(src, dst, layout):
    x, o = rand(WARPS, R, C, dtype=src, device="cuda"), poison(WARPS, R, C, dtype=dst, device="cuda")
    copy_kernel[1](x, o, layout)
    torch.cuda.synchronize()
    check_copy(x, o)


@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_layout_compiles(arch):
    for dtype in DTYPES:
        for layout in LAYOUTS:
            ck = layout_kernel.compile(*layout_inputs(dtype), layout, arch=arch)
            sass, res = ck.sass(), ck.resources()
            assert res.local == 0, f"{dtype} {layout}: {res}"
            # 8x8 transposes: subtiles x 4 registers per op. Not 3 ops' worth: swap_layout(s, t) and transpose(tt, t)
            # move the very same registers (see ops/layout.py), and transpose(st, s) undoes the swap's transposes,
            # which ptxas notices and merges / drops
            n = (R // 16) * (C // 16) * 4
            if dtype == torch.float32:
                assert sass.count("SHFL") >= 2 * n
            else:
                assert sass.count("MOVM") >= n
    for src, dst in CONVERSIONS:
        for layout in LAYOUTS:
            x, o = rand(WARPS, R, C, dtype=src), poison(WARPS, R, C, dtype=dst)
            assert copy_kernel.compile(x, o, layout, arch=arch).resources().local == 0


# ---------------------------------------------------------------------------------------------- lane simulation
def movmatrix_trans(reg):
    """movmatrix.sync.aligned.m8n8.trans.b16 per the PTX ISA: lane 4g+t holds row g, cols 2t, 2t+1 of an 8x8 matrix
    M in a, and receives the same fragment of M^T in d."""
    Mx = [[reg[4 * r + c // 2][c % 2] for c in range(8)] for r in range(8)]
    return [(Mx[2 * (l % 4)][l // 4], Mx[2 * (l % 4) + 1][l // 4]) for l in range(32)]


def shuffle_trans(reg, src_exprs=layout_ops.SHFL_SRC, send_y=layout_ops.SEND_Y):
    """tk::transpose8(float2) lane by lane, evaluating the very expressions its C++ is generated from."""
    lanes = [(l >> 2, l & 3) for l in range(32)]
    rounds = []
    for r in range(2):
        sent = [reg[l][1] if eval(send_y[r], {"g": g, "t": t}) else reg[l][0] for l, (g, t) in enumerate(lanes)]
        src = [eval(src_exprs[r], {"g": g, "t": t}) for g, t in lanes]
        assert all(0 <= s < 32 for s in src)
        rounds.append([sent[s] for s in src])  # shfl.sync.idx: lane l receives sent[src[l]]
    r0, r1 = rounds
    return [(r1[l], r0[l]) if (g & 1) else (r0[l], r1[l]) for l, (g, t) in enumerate(lanes)]


def simulate_swap_subtiles(tr, s_regs, t8, perm=layout_ops.PERM):
    """tk::swap_subtiles<Tr>(d, s): d[i][j] (or d[j][i]) register k = T8(s[i][j] register PERM[k])."""
    H, W = len(s_regs), len(s_regs[0])
    dh, dw = (W, H) if tr else (H, W)
    d = [[[None] * 4 for _ in range(dw)] for _ in range(dh)]
    for i in range(H):
        for j in range(W):
            o = d[j][i] if tr else d[i][j]
            for k in range(4):
                o[k] = t8(s_regs[i][j][perm[k]])
    return d


@pytest.mark.parametrize("t8", [movmatrix_trans, shuffle_trans], ids=["16bit", "fp32"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_lane_simulation(layout, t8):
    x = torch.randn(R, C, dtype=torch.float64)
    regs = to_regs(x, layout)
    assert torch.equal(from_regs(simulate_swap_subtiles(False, regs, t8), other(layout)), x)
    assert torch.equal(from_regs(simulate_swap_subtiles(True, regs, t8), layout), x.T)


def test_layout_lane_simulation_catches_mistakes():
    x = torch.randn(R, C, dtype=torch.float64)
    regs = to_regs(x, "row")
    assert not torch.equal(from_regs(simulate_swap_subtiles(False, regs, movmatrix_trans, (0, 1, 2, 3)), "col"), x)
    bad_src = (layout_ops.SHFL_SRC[1], layout_ops.SHFL_SRC[0])
    t8 = lambda reg: shuffle_trans(reg, src_exprs=bad_src)  # noqa: E731
    assert not torch.equal(from_regs(simulate_swap_subtiles(False, regs, t8), "col"), x)
    t8 = lambda reg: shuffle_trans(reg, send_y=("(g & 1) == 0", "(g & 1) == 1"))  # noqa: E731
    assert not torch.equal(from_regs(simulate_swap_subtiles(False, regs, t8), "col"), x)


def test_generated_cuda_uses_the_simulated_expressions():
    src = layout_ops.PRELUDE
    for r in range(2):
        assert f"shfl_idx(({layout_ops.SEND_Y[r]}) ? v.y : v.x, {layout_ops.SHFL_SRC[r]});" in src
    for k in range(4):
        assert f"o[{k}] = transpose8(s.data[i][j][{layout_ops.PERM[k]}]);" in src
    assert "movmatrix.sync.aligned.m8n8.trans.b16" in src


# ---------------------------------------------------------------------------------------------- type errors
@pytest.mark.parametrize("layout", LAYOUTS)
def test_swap_layout_errors(layout):
    def same_layout():
        a, b = tk.rt(tk.bf16, R, C, layout), tk.rt(tk.bf16, R, C, layout)
        same_layout.line = next_line()
        tk.swap_layout(b, a)
    expect_type_error(same_layout, "swap_layout", f"expected {other(layout)}, got {layout}")

    def wrong_dtype():
        a, b = tk.rt(tk.bf16, R, C, layout), tk.rt(tk.fp32, R, C, other(layout))
        wrong_dtype.line = next_line()
        tk.swap_layout(b, a)
    expect_type_error(wrong_dtype, "same dtype", "expected bfloat16, got float32", "tk.copy")

    def wrong_shape():
        a, b = tk.rt(tk.bf16, R, C, layout), tk.rt(tk.bf16, C, R, other(layout))
        wrong_shape.line = next_line()
        tk.swap_layout(b, a)
    expect_type_error(wrong_shape, "same shape", f"expected {R}x{C}, got {C}x{R}")

    def not_a_tile():
        a, v = tk.rt(tk.bf16, R, C, layout), tk.rv(tk.bf16, R)
        not_a_tile.line = next_line()
        tk.swap_layout(v, a)
    expect_type_error(not_a_tile, "must be a register tile")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_transpose_errors(layout):
    def in_place():
        a = tk.rt(tk.fp32, 32, 32, layout)
        in_place.line = next_line()
        tk.transpose(a, a)
    expect_type_error(in_place, "transpose: dst and src must be different tiles")

    def wrong_shape():
        a, b = tk.rt(tk.bf16, R, C, layout), tk.rt(tk.bf16, R, C, layout)
        wrong_shape.line = next_line()
        tk.transpose(b, a)
    expect_type_error(wrong_shape, f"expected {C}x{R}, got {R}x{C}")

    def wrong_layout():
        a, b = tk.rt(tk.bf16, R, C, layout), tk.rt(tk.bf16, C, R, other(layout))
        wrong_layout.line = next_line()
        tk.transpose(b, a)
    expect_type_error(wrong_layout, f"expected {layout}, got {other(layout)}", "tk.swap_layout")

    def wrong_dtype():
        a, b = tk.rt(tk.bf16, R, C, layout), tk.rt(tk.fp16, C, R, layout)
        wrong_dtype.line = next_line()
        tk.transpose(b, a)
    expect_type_error(wrong_dtype, "same dtype", "expected bfloat16, got float16")


def test_copy_across_layouts_is_an_error():
    def body():
        a, b = tk.rt(tk.bf16, R, C, "row"), tk.rt(tk.fp32, R, C, "col")
        body.line = next_line()
        tk.copy(b, a)
    expect_type_error(body, "same layout", "tk.swap_layout")

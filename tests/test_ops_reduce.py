"""Row / column reductions (row_max, row_min, row_sum, col_max, col_min, col_sum), plain and with an accumulator."""

import pytest
import torch

import pykittens as tk
from util import assert_close, expect_tagged_type_error, poison, rand, tol_for

W, R, C = 2, 32, 48  # warps; each warp reduces its own R x C tile (non-square)
FNS = ("max", "min", "sum")
AXES = ("row", "col")
OPS = {(a, f): getattr(tk, f"{a}_{f}") for a in AXES for f in FNS}
SLOTS = 3 * len(OPS)  # per (axis, fn): plain, acc into a new vector, acc in place
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
CASES = [  # (tile layout, tile dtype, vector dtype)
    ("row", tk.bf16, tk.fp32),
    ("col", tk.bf16, tk.fp32),
    ("row", tk.fp32, tk.fp32),
    ("col", tk.fp32, tk.bf16),
]


@tk.kernel(warps=W)
def reduce_all(x: tk.gl(), y: tk.gl(), o: tk.gl(tk.fp32), layout: tk.constexpr, vdt: tk.constexpr):
    tx = tk.rt(x.type.dtype, R, C, layout)
    ty = tk.rt(x.type.dtype, R, C, layout)
    out = tk.rt(tk.fp32, R, C, layout)
    tk.load(tx, x, (tk.warp_id(), 0))
    tk.load(ty, y, (tk.warp_id(), 0))
    s = 0
    for axis in AXES:
        mk = tk.col_vec if axis == "row" else tk.row_vec
        bc = tk.broadcast_row if axis == "row" else tk.broadcast_col
        for fn in FNS:
            red = OPS[axis, fn]
            v, a, v2 = mk(tx, vdt), mk(tx, vdt), mk(tx, vdt)
            red(v, tx)  # plain
            red(a, ty)
            red(v2, tx, a)  # accumulator, separate destination
            red(a, tx, a)  # accumulator, in place
            for vec in (v, v2, a):
                bc(out, vec)
                tk.store(o, out, (0, s, tk.warp_id(), 0))
                s += 1


def reference(x, y):
    """float64 reference, (SLOTS, W*R, C): each reduction broadcast back over the tile it came from."""
    xs = x.double().view(W, R, C)
    ys = y.double().view(W, R, C)
    out = []
    for axis in AXES:
        dim = 2 if axis == "row" else 1
        for fn in FNS:
            f = {"max": lambda t: t.amax(dim, keepdim=True), "min": lambda t: t.amin(dim, keepdim=True),
                 "sum": lambda t: t.sum(dim, keepdim=True)}[fn]
            comb = {"max": torch.maximum, "min": torch.minimum, "sum": torch.add}[fn]
            plain = f(xs).expand(W, R, C)
            acc = comb(f(ys), f(xs)).expand(W, R, C)
            out += [plain, acc, acc]
    return torch.stack([t.reshape(W * R, C) for t in out])


def run(layout, tdt, vdt, device):
    x = rand(W * R, C, dtype=tdt.torch, device=device)
    y = rand(W * R, C, dtype=tdt.torch, device=device)
    o = poison(1, SLOTS, W * R, C, dtype=torch.float32, device=device)
    reduce_all[1](x, y, o, layout, vdt)
    return x, y, o


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,tdt,vdt", CASES)
def test_reductions(layout, tdt, vdt, device):
    x, y, o = run(layout, tdt, vdt, device)
    ref = reference(x.cpu(), y.cpu())
    tol = max(tol_for(tdt.torch), tol_for(vdt.torch))
    for s in range(SLOTS):
        assert_close(o[0, s], ref[s], tol)
    if vdt == tk.fp32:  # max / min pick an element: exact
        for s in range(SLOTS):
            if (s // 3) % 3 != 2:
                assert torch.equal(o[0, s].cpu().double(), ref[s]), f"slot {s}"


@pytest.mark.parametrize("layout,tdt,vdt", CASES)
def test_reductions_compile(layout, tdt, vdt):
    x, y, o = run(layout, tdt, vdt, "cpu")
    for arch in ("sm_90a", "sm_80"):
        assert reduce_all.compile(x, y, o, layout, vdt, arch=arch).resources().local == 0


@tk.kernel(warps=W)
def vector_extremes(x: tk.gl(), o: tk.gl(tk.fp32), layout: tk.constexpr, vdt: tk.constexpr):
    """Per warp: the row maxima (a col_vec) and column minima (a row_vec) of its tile, each reduced to one scalar
    (tk.vec_max / tk.vec_min), written back broadcast over an R x C tile."""
    t = tk.rt(x.type.dtype, R, C, layout)
    out = tk.rt(tk.fp32, R, C, layout)
    rows, cols = tk.col_vec(t, vdt), tk.row_vec(t, vdt)
    hi, lo = tk.var(0.0, "hi"), tk.var(0.0, "lo")
    tk.load(t, x, (tk.warp_id(), 0))
    tk.row_max(rows, t)
    tk.col_min(cols, t)
    tk.vec_max(hi, rows)
    tk.vec_min(lo, cols)
    for slot, value in enumerate((hi, lo)):
        tk.zero(out)
        tk.add(out, out, value)
        tk.store(o, out, (0, slot, tk.warp_id(), 0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,tdt,vdt", CASES)
def test_vector_to_scalar_max_min(layout, tdt, vdt, device):
    x = rand(W * R, C, dtype=tdt.torch, device=device)
    o = poison(1, 2, W * R, C, dtype=torch.float32, device=device)
    vector_extremes[1](x, o, layout, vdt)
    xs = x.cpu().double().view(W, R, C)
    for slot, ref in enumerate((xs.amax((1, 2)), xs.amin((1, 2)))):
        want = ref.to(vdt.torch).double()[:, None, None].expand(W, R, C).reshape(W * R, C)  # rounded once
        assert torch.equal(o[0, slot].cpu().double(), want), slot
    if device == "cpu":
        assert vector_extremes.compile(x, o, layout, vdt, arch="sm_90a").resources().local == 0


def test_vector_to_scalar_needs_a_float_var():
    def int_var(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        n = tk.var(0, "n")
        tk.vec_max(n, tk.col_vec(t))  # bad:int_var
    expect_tagged_type_error(int_var, "int_var", "a float scalar made by tk.var(0.0)")


# ------------------------------------------------------------------------------------------------ type rules
def test_type_rules():
    def wrong_layout(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.rv(tk.fp32, 32, "align")
        tk.row_max(v, t)  # bad:wrong_layout
    expect_tagged_type_error(wrong_layout, "wrong_layout",
                             "expected rv<float32, 32, ortho>", "got rv<float32, 32, align>")

    def row_vec_for_rows(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48, "col")
        v = tk.row_vec(t)
        tk.row_sum(v, t)  # bad:row_vec_for_rows
    expect_tagged_type_error(row_vec_for_rows, "row_vec_for_rows",
                             "expected rv<bfloat16, 32, align>", "got rv<bfloat16, 48, ortho>")

    def wrong_length(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.rv(tk.fp32, 32, "align")
        tk.col_min(v, t)  # bad:wrong_length
    expect_tagged_type_error(wrong_length, "wrong_length",
                             "expected rv<float32, 48, align>", "got rv<float32, 32, align>")

    def tile_dst(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        tk.col_max(t, t)  # bad:tile_dst
    expect_tagged_type_error(tile_dst, "tile_dst", "destination must be a register vector")

    def vec_src(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.col_vec(t)
        tk.row_max(v, v)  # bad:vec_src
    expect_tagged_type_error(vec_src, "vec_src", "source must be a register tile")

    def bad_acc(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.col_vec(t, tk.fp32)
        a = tk.row_vec(t, tk.fp32)
        tk.row_max(v, t, a)  # bad:bad_acc
    expect_tagged_type_error(bad_acc, "bad_acc",
                             "accumulator", "expected rv<float32, 32, ortho>", "got rv<float32, 48, align>")

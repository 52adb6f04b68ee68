"""Row / column broadcasts: sub_row, mul_row, div_row, add_row, sub_col, mul_col, div_col, add_col, broadcast_row,
broadcast_col. The vectors come from row_max / col_max of a second random tile (exact, and far from 0 for div)."""

import pytest
import torch

import pykittens as tk
from util import assert_close, expect_tagged_type_error, poison, rand, tol_for

W, R, C = 2, 48, 32  # warps; each warp works on its own R x C tile (non-square)
FNS = {"sub": torch.sub, "mul": torch.mul, "div": torch.div, "add": torch.add}
AXES = ("row", "col")
SLOTS = len(FNS) * len(AXES) + 2 + 1  # binary ops, the two fills, one in-place op
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
CASES = [  # (tile layout, tile dtype, vector dtype)
    ("row", tk.bf16, tk.fp32),
    ("col", tk.bf16, tk.fp32),
    ("row", tk.fp32, tk.bf16),
    ("col", tk.fp32, tk.fp32),
]


@tk.kernel(warps=W)
def broadcast_all(x: tk.gl(), y: tk.gl(), o: tk.gl(tk.fp32), layout: tk.constexpr, vdt: tk.constexpr):
    tx = tk.rt(x.type.dtype, R, C, layout)
    ty = tk.rt(x.type.dtype, R, C, layout)
    out = tk.rt(x.type.dtype, R, C, layout)
    tk.load(tx, x, (tk.warp_id(), 0))
    tk.load(ty, y, (tk.warp_id(), 0))
    per_row = tk.col_vec(tx, vdt)  # one value per row
    per_col = tk.row_vec(tx, vdt)  # one value per column
    tk.row_max(per_row, ty)
    tk.col_max(per_col, ty)
    s = 0
    for axis in AXES:
        vec = per_row if axis == "row" else per_col
        for fn in FNS:
            getattr(tk, f"{fn}_{axis}")(out, tx, vec)
            tk.store(o, out, (0, s, tk.warp_id(), 0))
            s += 1
    tk.broadcast_row(out, per_row)
    tk.store(o, out, (0, s, tk.warp_id(), 0))
    tk.broadcast_col(out, per_col)
    tk.store(o, out, (0, s + 1, tk.warp_id(), 0))
    tk.div_col(tx, tx, per_col)  # in place
    tk.store(o, tx, (0, s + 2, tk.warp_id(), 0))


def reference(x, y, vdt):
    xs = x.double().view(W, R, C)
    ys = y.double().view(W, R, C)
    per_row = ys.amax(2, keepdim=True).to(vdt.torch).double()
    per_col = ys.amax(1, keepdim=True).to(vdt.torch).double()
    out = []
    for axis in AXES:
        vec = per_row if axis == "row" else per_col
        out += [f(xs, vec) for f in FNS.values()]
    out += [per_row.expand(W, R, C), per_col.expand(W, R, C), xs / per_col]
    return torch.stack([t.reshape(W * R, C) for t in out])


def run(layout, tdt, vdt, device):
    x = rand(W * R, C, dtype=tdt.torch, device=device)
    y = rand(W * R, C, dtype=tdt.torch, device=device)
    o = poison(1, SLOTS, W * R, C, dtype=torch.float32, device=device)
    broadcast_all[1](x, y, o, layout, vdt)
    return x, y, o


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,tdt,vdt", CASES)
def test_broadcasts(layout, tdt, vdt, device):
    x, y, o = run(layout, tdt, vdt, device)
    ref = reference(x.cpu(), y.cpu(), vdt)
    for s in range(SLOTS):
        assert_close(o[0, s], ref[s], tol_for(tdt.torch))
    # the fills copy vector values into the tile: exact (the vectors are maxima of tile values)
    assert torch.equal(o[0, 8].cpu().double(), ref[8]) and torch.equal(o[0, 9].cpu().double(), ref[9])


@pytest.mark.parametrize("layout,tdt,vdt", CASES)
def test_broadcasts_compile(layout, tdt, vdt):
    x, y, o = run(layout, tdt, vdt, "cpu")
    for arch in ("sm_90a", "sm_80"):
        assert broadcast_all.compile(x, y, o, layout, vdt, arch=arch).resources().local == 0


# ------------------------------------------------------------------------------------------------ type rules
def test_type_rules():
    def col_vec_for_cols(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.col_vec(t, tk.fp32)
        tk.sub_col(t, t, v)  # bad:col_vec_for_cols
    expect_tagged_type_error(col_vec_for_cols, "col_vec_for_cols", "sub_col", "expected rv<float32, 48, align>",
            "got rv<float32, 32, ortho>")

    def wrong_layout(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48, "col")
        v = tk.rv(tk.fp32, 32, "ortho")
        tk.mul_row(t, t, v)  # bad:wrong_layout
    expect_tagged_type_error(wrong_layout, "wrong_layout",
                             "expected rv<float32, 32, align>", "got rv<float32, 32, ortho>")

    def tile_as_vec(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        tk.add_row(t, t, t)  # bad:tile_as_vec
    expect_tagged_type_error(tile_as_vec, "tile_as_vec",
                             "expected rv<bfloat16, 32, ortho>", "got rt<bfloat16, 32x48, row>")

    def scalar_as_vec(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        tk.div_row(t, t, 2.0)  # bad:scalar_as_vec
    expect_tagged_type_error(scalar_as_vec, "scalar_as_vec", "expected rv<bfloat16, 32, ortho>", "got scalar")

    def shape_mismatch(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        d = tk.rt(tk.bf16, 32, 32)
        v = tk.col_vec(t)
        tk.sub_row(d, t, v)  # bad:shape_mismatch
    expect_tagged_type_error(shape_mismatch, "shape_mismatch", "same shape", "expected (32, 32), got (32, 48)")

    def layout_mismatch(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        d = tk.rt(tk.bf16, 32, 48, "col")
        v = tk.row_vec(t)
        tk.add_col(d, t, v)  # bad:layout_mismatch
    expect_tagged_type_error(layout_mismatch, "layout_mismatch", "same layout", "expected col, got row")

    def fill_wrong_vec(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.col_vec(t)
        tk.broadcast_col(t, v)  # bad:fill_wrong_vec
    expect_tagged_type_error(fill_wrong_vec, "fill_wrong_vec", "broadcast_col", "expected rv<bfloat16, 48, align>",
            "got rv<bfloat16, 32, ortho>")

    def fill_not_tile(x: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.col_vec(t)
        tk.broadcast_row(v, v)  # bad:fill_not_tile
    expect_tagged_type_error(fill_not_tile, "fill_not_tile", "destination must be a register tile")

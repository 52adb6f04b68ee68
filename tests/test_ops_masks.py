"""Masks: tril, triu, make_causal, right_fill, lower_fill, with Python-int and per-warp device-scalar bounds."""
import math

import pytest
import torch

import pykittens as tk
from util import expect_tagged_type_error, poison, rand

W, R, C = 4, 32, 48  # warps; each warp masks its own R x C tile (non-square)
NEG = -math.inf
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
CASES = [("row", tk.bf16), ("col", tk.bf16), ("row", tk.fp32), ("col", tk.fp32)]
# what each output slot holds: (kind, bound, fill); a bound "w*16-5" etc. is a per-warp device scalar
SPECS = [
    ("tril", 0, 0.0),
    ("tril", 5, NEG),
    ("tril", "w*16-5", NEG),
    ("triu", 0, 2.5),
    ("triu", -7, NEG),
    ("triu", "w*16-5", 0.0),
    ("causal", None, NEG),
    ("right_fill", 20, NEG),
    ("right_fill", "w*13", -1.0),
    ("lower_fill", 9, 0.0),
    ("lower_fill", "30-w*9", NEG),
    ("right_fill", "loop0", 0.0),  # bound from a device loop variable: i * 16 + 7, i = 0, 1
    ("right_fill", "loop1", 0.0),
    ("tril", 3, NEG),  # in place (dst is src), last
]


@tk.kernel(warps=W)
def mask_all(x: tk.gl(), o: tk.gl(), layout: tk.constexpr):
    t = tk.rt(x.type.dtype, R, C, layout)
    out = tk.rt(x.type.dtype, R, C, layout)
    w = tk.warp_id()
    tk.load(t, x, (w, 0))
    per_warp = {"w*16-5": w * 16 - 5, "w*13": w * 13, "30-w*9": tk.let(30 - w * 9)}
    s = 0
    for kind, bound, fill in SPECS:
        if bound in ("loop0", "loop1") or s == len(SPECS) - 3:
            break
        b = per_warp.get(bound, bound)
        if kind == "tril":
            tk.tril(out, t, b, fill)
        elif kind == "triu":
            tk.triu(out, t, diagonal=b, fill=fill)
        elif kind == "causal":
            tk.make_causal(out, t, fill=fill)
        elif kind == "right_fill":
            tk.right_fill(out, t, b, fill)
        else:
            tk.lower_fill(out, t, b, fill)
        tk.store(o, out, (0, s, w, 0))
        s += 1
    for i in tk.range(2):
        tk.right_fill(out, t, i * 16 + 7, 0.0)
        tk.store(o, out, (0, s + i, w, 0))
    tk.tril(t, t, 3, NEG)
    tk.store(o, t, (0, s + 2, w, 0))


def reference(x):
    """float64 reference, rounded to x's dtype (a mask copies elements exactly)."""
    xs = x.double().view(W, R, C)
    w = torch.arange(W).view(W, 1, 1)
    r = torch.arange(R).view(1, R, 1)
    c = torch.arange(C).view(1, 1, C)
    bounds = {"w*16-5": w * 16 - 5, "w*13": w * 13, "30-w*9": 30 - w * 9, "loop0": 7, "loop1": 23}
    out = []
    for kind, bound, fill in SPECS:
        b = bounds.get(bound, bound)
        keep = {"tril": lambda: c - r <= b, "triu": lambda: c - r >= b, "causal": lambda: c <= r,
                "right_fill": lambda: c < b, "lower_fill": lambda: r < b}[kind]()
        out.append(torch.where(keep, xs, torch.tensor(fill, dtype=torch.float64)).reshape(W * R, C))
    return torch.stack(out).to(x.dtype)


def run(layout, dt, device):
    x = rand(W * R, C, dtype=dt.torch, device=device)
    o = poison(1, len(SPECS), W * R, C, dtype=dt.torch, device=device)
    mask_all[1](x, o, layout)
    return x, o


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout,dt", CASES)
def test_masks(layout, dt, device):
    x, o = run(layout, dt, device)
    ref = reference(x.cpu())
    for s, spec in enumerate(SPECS):
        assert torch.equal(o[0, s].cpu(), ref[s]), f"slot {s}: {spec}"


def test_reference_is_not_trivial():
    # the per-warp bounds really differ between warps, and each mask both keeps and fills something
    x = rand(W * R, C)
    ref = reference(x).float()
    for s, spec in enumerate(SPECS):
        kept = ref[s] == x.float()
        assert kept.any() and not kept.all(), spec
    per_warp = ref[2].view(W, R, C).isinf().sum((1, 2))
    assert len(set(per_warp.tolist())) == W


@pytest.mark.parametrize("layout,dt", CASES)
def test_masks_compile(layout, dt):
    x, o = run(layout, dt, "cpu")
    for arch in ("sm_90a", "sm_80"):
        assert mask_all.compile(x, o, layout, arch=arch).resources().local == 0


# ------------------------------------------------------------------------------------------------ type rules
def _expect(fn, tag, *words):
    expect_tagged_type_error(fn, tag, *words, args=(torch.zeros(32, 48, dtype=torch.bfloat16), 1.5))


def test_type_rules():
    def float_diag(x: tk.gl(tk.bf16), s: tk.f32):
        t = tk.rt(tk.bf16, 32, 48)
        tk.tril(t, t, 1.5)  # bad:float_diag
    _expect(float_diag, "float_diag", "tril", "diagonal must be an int", "1.5")

    def f32_device_scalar(x: tk.gl(tk.bf16), s: tk.f32):
        t = tk.rt(tk.bf16, 32, 48)
        tk.right_fill(t, t, s * 2, 0.0)  # bad:f32_device_scalar
    _expect(f32_device_scalar, "f32_device_scalar", "col must be an int", "f32 device scalar")

    def device_fill(x: tk.gl(tk.bf16), s: tk.f32):
        t = tk.rt(tk.bf16, 32, 48)
        tk.lower_fill(t, t, 4, s)  # bad:device_fill
    _expect(device_fill, "device_fill", "fill must be a Python number")

    def shape_mismatch(x: tk.gl(tk.bf16), s: tk.f32):
        t = tk.rt(tk.bf16, 32, 48)
        d = tk.rt(tk.bf16, 48, 48)
        tk.make_causal(d, t)  # bad:shape_mismatch
    _expect(shape_mismatch, "shape_mismatch", "same shape", "expected (48, 48), got (32, 48)")

    def layout_mismatch(x: tk.gl(tk.bf16), s: tk.f32):
        t = tk.rt(tk.bf16, 32, 48)
        d = tk.rt(tk.bf16, 32, 48, "col")
        tk.triu(d, t, 1)  # bad:layout_mismatch
    _expect(layout_mismatch, "layout_mismatch", "same layout", "expected col, got row")

    def vec_src(x: tk.gl(tk.bf16), s: tk.f32):
        t = tk.rt(tk.bf16, 32, 48)
        v = tk.col_vec(t)
        tk.tril(t, v)  # bad:vec_src
    _expect(vec_src, "vec_src", "source must be a register tile")

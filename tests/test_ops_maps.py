"""Initialisers and element-wise maps (tiles and vectors), interpreter and GPU against float64."""
import pytest
import torch

import pykittens as tk
from util import assert_close, poison, rand

UNARY = {"exp": torch.exp, "exp2": torch.exp2, "log": torch.log, "log2": torch.log2, "abs": torch.abs,
         "relu": torch.relu, "copy": lambda x: x}
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "max": torch.maximum,
          "min": torch.minimum}


def make_unary(name, layout, dtype):
    @tk.kernel(warps=2)
    def k(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
        t = tk.rt(dtype, 32, 48, layout)
        f = tk.rt(tk.fp32, 32, 48, layout)
        tk.load(t, x, (tk.warp_id(), 0))
        getattr(tk, name)(f, t)
        tk.store(o, f, (tk.warp_id(), 0))
    return k


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("layout,dtype", [("row", tk.fp32), ("col", tk.bf16)])
def test_unary(name, layout, dtype):
    x = rand(64, 48, dtype=torch.float32)
    if name in ("log", "log2"):
        x = x.abs() + 0.1
    o = poison(64, 48, dtype=torch.float32)
    make_unary(name, layout, dtype)[1](x, o)
    xin = x.to(dtype.torch).double()
    assert_close(o, UNARY[name](xin), 1e-5 if dtype is tk.fp32 else 1e-2)


def make_binary(name, operand):
    @tk.kernel(warps=2)
    def k(x: tk.gl(tk.fp32), y: tk.gl(tk.fp32), o: tk.gl(tk.fp32), s: tk.f32):
        a, b = tk.rt(tk.fp32, 16, 32), tk.rt(tk.fp32, 16, 32)
        tk.load(a, x, (tk.warp_id(), 0))
        tk.load(b, y, (tk.warp_id(), 0))
        op = getattr(tk, name)
        if operand == "tile":
            op(a, a, b)
        elif operand == "float":
            op(a, a, 1.75)
        else:  # a device scalar that differs per warp
            op(a, a, s * (tk.warp_id() + 1))
        tk.store(o, a, (tk.warp_id(), 0))
    return k


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("operand", ["tile", "float", "device"])
def test_binary(name, operand):
    x, y = rand(32, 32, dtype=torch.float32), rand(32, 32, dtype=torch.float32)
    if name == "div":
        y = y.abs() + 0.5
    o = poison(32, 32, dtype=torch.float32)
    make_binary(name, operand)[1](x, y, o, 0.5)
    if operand == "tile":
        other = y.double()
    elif operand == "float":
        other = torch.tensor(1.75, dtype=torch.float64)
    else:
        other = torch.tensor([0.5] * 16 + [1.0] * 16, dtype=torch.float64)[:, None]
    assert_close(o, BINARY[name](x.double(), other), 1e-6)


@tk.kernel(warps=1)
def fills_and_vectors(o: tk.gl(tk.fp32)):
    t = tk.rt(tk.fp32, 16, 64)
    a, b = tk.col_vec(t), tk.col_vec(t)
    tk.one(a)
    tk.neg_infty(b)
    tk.max(b, b, a)      # -inf vs 1 -> 1
    tk.add(b, b, 2.0)    # 3
    tk.exp2(b, b)        # 8
    tk.pos_infty(t)
    tk.min(t, t, 5.0)    # 5 everywhere
    tk.sub_row(t, t, b)  # 5 - 8 = -3
    tk.store(o, t, (0, 0))


def test_fills_and_vector_maps():
    o = poison(16, 64, dtype=torch.float32)
    fills_and_vectors[1](o)
    assert torch.equal(o, torch.full((16, 64), -3.0))


def test_copy_converts_and_rounds_to_bf16():
    @tk.kernel(warps=1)
    def k(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
        f, h = tk.rt(tk.fp32, 16, 16), tk.rt(tk.bf16, 16, 16)
        tk.load(f, x, (0, 0))
        tk.copy(h, f)
        tk.copy(f, h)
        tk.store(o, f, (0, 0))

    x = rand(16, 16, dtype=torch.float32)
    o = poison(16, 16, dtype=torch.float32)
    k[1](x, o)
    assert torch.equal(o, x.bfloat16().float())


def test_mismatched_layouts_raise():
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.fp32)):
        a, b = tk.rt(tk.fp32, 16, 16), tk.rt(tk.fp32, 16, 16, "col")
        tk.add(a, a, b)

    with pytest.raises(tk.KernelTypeError, match="same layout: expected row, got col"):
        bad.ir(rand(16, 16, dtype=torch.float32))


@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_maps_compile_without_spills(arch):
    x = torch.empty(64, 48)
    for name in UNARY:
        assert make_unary(name, "col", tk.bf16).compile(x, x, arch=arch).resources().local == 0
    y = torch.empty(32, 32)
    for name in BINARY:
        assert make_binary(name, "device").compile(y, y, y, 1.0, arch=arch).resources().local == 0


@pytest.mark.gpu
def test_gpu_maps_match_interpreter():
    x = rand(64, 48, dtype=torch.float32).abs() + 0.1
    for name in UNARY:
        k = make_unary(name, "col", tk.bf16)
        ref, out = poison(64, 48, dtype=torch.float32), poison(64, 48, dtype=torch.float32, device="cuda")
        k[1](x, ref)
        k[1](x.cuda(), out)
        assert_close(out, ref, 1e-5)  # fast-math exp/log: a few ulp
    a, b = rand(32, 32, dtype=torch.float32), rand(32, 32, dtype=torch.float32).abs() + 0.5
    for name in BINARY:
        for operand in ("tile", "device"):
            k = make_binary(name, operand)
            ref, out = poison(32, 32, dtype=torch.float32), poison(32, 32, dtype=torch.float32, device="cuda")
            k[1](a, b, ref, 0.5)
            k[1](a.cuda(), b.cuda(), out, 0.5)
            assert_close(out, ref, 1e-6)
    o = poison(16, 64, dtype=torch.float32, device="cuda")
    fills_and_vectors[1](o)
    assert torch.equal(o.cpu(), torch.full((16, 64), -3.0))


@tk.kernel(warps=2)
def exp2_emulated(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32), SHARE: tk.constexpr):
    t = tk.rt(tk.fp32, 16, 64)
    tk.load(t, x, (tk.warp_id(), 0))
    tk.exp2(t, t, emulate=SHARE)
    tk.store(o, t, (tk.warp_id(), 0))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_exp2_emulated_on_the_fma_pipe(share, device):
    """The polynomial columns stay within 1e-4 of exp2 (bf16 rounds at 4e-3); the GPU computes what the interpreter
    computes; the compiled kernel issues MUFU.EX2 only for the remaining share."""
    x = (torch.randn(32, 64) * 20).clamp_min(-120)
    x[0, :8] = torch.tensor([-125.0, -0.5, 0.5, 0.0, 1e-3, 63.9, -63.9, 2.5])  # edges of the range reduction
    o = poison(32, 64, dtype=torch.float32, device=device)
    exp2_emulated[(1,)](x.to(device), o, share)
    ref = torch.exp2(x.double())
    rel = ((o.cpu().double() - ref) / ref).abs()
    assert rel.max() < 1e-4
    if device == "cuda":
        o_cpu = torch.empty(32, 64)
        exp2_emulated[(1,)](x, o_cpu, share)
        torch.testing.assert_close(o.cpu(), o_cpu, rtol=1e-6, atol=0)  # fused vs unfused multiply-adds only
    else:
        exact = (o == torch.exp2(x)).all(dim=0)  # columns left to MUFU: torch.exp2 exactly, in the interpreter
        assert abs(exact.float().mean().item() - (1 - share)) < 1e-9
        sass = exp2_emulated.compile(x, o, share, arch="sm_90a").sass()
        assert sass.count("MUFU.EX2") == round(32 * (1 - share))  # 32 elements per thread
        assert exp2_emulated.compile(x, o, share, arch="sm_90a").resources().local == 0

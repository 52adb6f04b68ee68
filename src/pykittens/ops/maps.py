"""Element-wise maps on register tiles and vectors: unary (exp, exp2, log, abs, relu, copy) and binary
(add, sub, mul, div, max, min) with a tile/vector or a scalar (Python number or device scalar) as second operand.

Each op is one table row: its torch semantics for the interpreter and its fp32 C++ expression for CUDA. Math runs in
fp32 and is rounded to the destination's dtype, in both backends. ``copy`` also converts dtypes.

``tk.exp2(dst, src, emulate=f)`` computes a fraction ``f`` of the columns (whole 8-column groups, the same groups in
both backends) with a polynomial on the FMA pipe instead of the MUFU unit (16 exp2 per clock per SM), for kernels
whose softmax is bound by MUFU throughput. 2^x = 2^n · p(x − n), n = round(x), p a degree-3 fit of 2^f on [−½, ½]
(relative error < 8e-5, far below bf16's 4e-3); inputs below −125 give ≈ 2^−125 rather than 0. In the H100
attention forward it was slower at every share tried (NOTES.md): that softmax is not MUFU-bound.
"""
from fractions import Fraction

import torch

from .base import Op, RT, RV, emit, fail, kind, need_reg, same_shape, same_layout

UNARY = {
    # name: (torch fn on fp32, C++ expression of x)
    "exp": (torch.exp, "__expf(_x)"),
    "exp2": (torch.exp2, "exp2f(_x)"),
    "log": (torch.log, "__logf(_x)"),
    "log2": (torch.log2, "__log2f(_x)"),
    "abs": (torch.abs, "fabsf(_x)"),
    "relu": (torch.relu, "fmaxf(_x, 0.f)"),
    "copy": (lambda x: x, "_x"),
}
BINARY = {
    "add": (torch.add, "_x + _y"),
    "sub": (torch.sub, "_x - _y"),
    "mul": (torch.mul, "_x * _y"),
    "div": (torch.div, "_x / _y"),
    "max": (torch.maximum, "fmaxf(_x, _y)"),
    "min": (torch.minimum, "fminf(_x, _y)"),
}


def _fn(t):
    return "vmap" if isinstance(t, RV) else "map"


class Unary(Op):
    def __init__(self, name):
        self.name = name
        self.torch_fn, self.c_expr = UNARY[name]

    def check(self, dst, src):
        d, s = need_reg(dst, "destination"), need_reg(src, "source")
        if type(d) is not type(s):
            fail(f"destination and source must both be tiles or both vectors, got {d} and {s}")
        same_shape(d, s, "destination and source")
        same_layout(d, s, "destination and source")

    def interpret(self, m, dst, src):
        m.write(dst, self.torch_fn(m.read(src)))

    def cuda(self, g, dst, src):
        return f"tk::{_fn(dst.type)}({g(dst)}, {g(src)}, [](float _x) {{ return {self.c_expr}; }});"


class Binary(Op):
    def __init__(self, name):
        self.name = name
        self.torch_fn, self.c_expr = BINARY[name]

    def check(self, dst, a, b):
        d, ta = need_reg(dst, "destination"), need_reg(a, "first operand")
        if type(d) is not type(ta):
            fail(f"destination and first operand must both be tiles or both vectors, got {d} and {ta}")
        same_shape(d, ta, "destination and first operand")
        same_layout(d, ta, "destination and first operand")
        tb = kind(b)
        if tb != "scalar":
            if type(tb) is not type(d):
                fail(f"second operand must be a {type(d).__name__} like the destination or a scalar, got {tb}")
            same_shape(d, tb, "destination and second operand")
            same_layout(d, tb, "destination and second operand")

    def interpret(self, m, dst, a, b):
        x = m.read(a)
        if kind(b) == "scalar":
            y = m.eval(b)
            y = torch.as_tensor(y, dtype=torch.float32).reshape((-1,) + (1,) * len(dst.type.shape))
        else:
            y = m.read(b)
        m.write(dst, self.torch_fn(x, y))

    def cuda(self, g, dst, a, b):
        f = _fn(dst.type)
        if kind(b) == "scalar":
            return f"tk::{f}({g(dst)}, {g(a)}, [=](float _x) {{ const float _y = {g(b)}; return {self.c_expr}; }});"
        return f"tk::{f}2({g(dst)}, {g(a)}, {g(b)}, [](float _x, float _y) {{ return {self.c_expr}; }});"


EXP2_POLY = (0.9999262, 0.69326131, 0.24263459, 0.05518098)  # p(f) ≈ 2^f on [-1/2, 1/2], lowest power first
_EXP2_PRELUDE = r"""
#ifndef PK_EXP2_MIXED
#define PK_EXP2_MIXED
namespace tk {
__device__ __forceinline__ float exp2_fma(float x) {  // 2^x on the FMA pipe (see ops/maps.py)
  x = fmaxf(x, -125.f);  // keeps p * 2^round(x) a normal float
  // 1.5 * 2^23: round(x) lands in the low mantissa bits of t (the _rn intrinsics keep fast-math from folding this)
  const float t = __fadd_rn(x, 12582912.f);
  const float f = __fsub_rn(x, __fsub_rn(t, 12582912.f));
  const float p = fmaf(fmaf(fmaf(%(c3)rf, f, %(c2)rf), f, %(c1)rf), f, %(c0)rf);
  return __int_as_float(__float_as_int(p) + (__float_as_int(t) << 23));  // p * 2^round(x)
}
// exp2 of a row-layout tile; 8-column group g (= 2 * subtile col + k / 2) uses the polynomial when g %% DEN < NUM
template<int NUM, int DEN, class D, class S> __device__ __forceinline__ void exp2_mixed(D& d, const S& s) {
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    const float2 v = unpack<typename S::dtype>(s.data[i][j][k]);
    const bool poly = (2 * j + k / 2) %% DEN < NUM;
    d.data[i][j][k] = pack<typename D::dtype>(poly ? make_float2(exp2_fma(v.x), exp2_fma(v.y))
                                                   : make_float2(exp2f(v.x), exp2f(v.y)));
  }
}
}  // namespace tk
#endif
""" % dict(zip(("c0", "c1", "c2", "c3"), (float(c) for c in EXP2_POLY)))


def exp2_poly(x: torch.Tensor) -> torch.Tensor:
    """The device's polynomial exp2, step for step in float32 (the interpreter's semantics of emulated columns)."""
    x = torch.clamp_min(x.float(), -125.0)
    n = torch.round(x)  # round half to even, as the 1.5 * 2^23 addition does
    f = x - n
    c0, c1, c2, c3 = (torch.tensor(c, dtype=torch.float32) for c in EXP2_POLY)
    p = ((c3 * f + c2) * f + c1) * f + c0
    return torch.ldexp(p, n.to(torch.int32)).float()


class Exp2Mixed(Op):
    """exp2 with a share of the 8-column groups computed by ``exp2_fma`` (row-layout tiles)."""
    name = "exp2_mixed"
    prelude = _EXP2_PRELUDE

    def check(self, dst, src, num, den):
        d, s_ = need_reg(dst, "destination"), need_reg(src, "source")
        if not (isinstance(d, RT) and isinstance(s_, RT)) or d.layout != "row" or s_.layout != "row":
            fail(f"exp2 with emulate= takes row-layout register tiles, got {d} and {s_}")
        same_shape(d, s_, "destination and source")

    def interpret(self, m, dst, src, num, den):
        x = m.read(src)
        poly = (torch.arange(x.shape[-1]) // 8) % den < num
        m.write(dst, torch.where(poly, exp2_poly(x), torch.exp2(x)))

    def cuda(self, g, dst, src, num, den):
        return f"tk::exp2_mixed<{num}, {den}>({g(dst)}, {g(src)});"


_U = {n: Unary(n) for n in UNARY}
_EXP2_MIXED = Exp2Mixed()
_B = {n: Binary(n) for n in BINARY}


def exp(dst, src): "dst = exp(src)"; emit(_U["exp"], dst, src)
def exp2(dst, src, emulate: float = 0.0):
    """dst = 2**src; ``emulate``: the fraction of 8-column groups computed by a polynomial on the FMA pipe (a
    multiple of 1/16; row-layout tiles), to share the work with the MUFU unit (see the module docstring)."""
    if not 0 <= emulate <= 1 or (emulate * 16) % 1:
        fail(f"exp2: emulate must be a multiple of 1/16 in [0, 1], got {emulate!r}")
    share = Fraction(round(emulate * 16), 16)
    if share == 0:
        emit(_U["exp2"], dst, src)
    else:
        emit(_EXP2_MIXED, dst, src, share.numerator, share.denominator)
def log(dst, src): "dst = ln(src)"; emit(_U["log"], dst, src)
def log2(dst, src): "dst = log2(src)"; emit(_U["log2"], dst, src)
def abs(dst, src): "dst = |src|"; emit(_U["abs"], dst, src)  # noqa: A001
def relu(dst, src): "dst = max(src, 0)"; emit(_U["relu"], dst, src)
def copy(dst, src): "dst = src, converting dtype if they differ"; emit(_U["copy"], dst, src)
def add(dst, a, b): "dst = a + b (b: tile/vector or scalar)"; emit(_B["add"], dst, a, b)
def sub(dst, a, b): "dst = a - b"; emit(_B["sub"], dst, a, b)
def mul(dst, a, b): "dst = a * b"; emit(_B["mul"], dst, a, b)
def div(dst, a, b): "dst = a / b"; emit(_B["div"], dst, a, b)
def max(dst, a, b): "dst = max(a, b)"; emit(_B["max"], dst, a, b)  # noqa: A001
def min(dst, a, b): "dst = min(a, b)"; emit(_B["min"], dst, a, b)  # noqa: A001

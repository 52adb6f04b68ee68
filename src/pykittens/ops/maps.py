"""Element-wise maps on register tiles and vectors: unary (exp, exp2, log, abs, relu, copy) and binary
(add, sub, mul, div, max, min) with a tile/vector or a scalar (Python number or device scalar) as second operand.

Each op is one table row: its torch semantics for the interpreter and its fp32 C++ expression for CUDA. Math runs in
fp32 and is rounded to the destination's dtype, in both backends. ``copy`` also converts dtypes.
"""
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


_U = {n: Unary(n) for n in UNARY}
_B = {n: Binary(n) for n in BINARY}


def exp(dst, src): "dst = exp(src)"; emit(_U["exp"], dst, src)
def exp2(dst, src): "dst = 2**src"; emit(_U["exp2"], dst, src)
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

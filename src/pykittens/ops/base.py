"""What an op is: its type rule, its interpreter semantics and its CUDA lowering, side by side.

Every op family lives in one file of ``pykittens/ops`` and defines, for each op, a subclass of ``Op`` plus the
user-facing function that records a call (``emit``). A new op is one class in one file:

    class Exp(Op):
        name = "exp"
        def check(self, dst, src): ...            # type rule: raise via fail("expected ..., got ...")
        def interpret(self, m, dst, src): ...     # semantics on CPU tensors (m is the interpreter Machine)
        def cuda(self, g, dst, src): ...          # one C++ statement; g(x) renders an operand
        prelude = "..."                            # C++ device code the statement needs (emitted once per kernel)
"""
from __future__ import annotations

from ..trace import emit, fail, kind  # noqa: F401  (re-exported for op files)
from ..types import RT, RV, ST, SV, GL  # noqa: F401


class Op:
    name: str = "?"
    prelude: str = ""  # C++ device functions needed by ``cuda``; emitted once if the op is used
    scope: str = "warp"  # 'warp': each warp runs it on its own registers; 'block': all warps together

    def check(self, *args, **attrs):
        """Type rule. Raise with ``fail(...)``; ``emit`` adds the author's file and line."""

    def interpret(self, m, *args, **attrs):
        raise NotImplementedError(f"{self.name}: no interpreter semantics")

    def cuda(self, g, *args, **attrs) -> str:
        raise NotImplementedError(f"{self.name}: no CUDA lowering")

    def __repr__(self):
        return self.name


# ---------------------------------------------------------------------------------------------- type-rule helpers
def need_rt(x, what="operand"):
    t = kind(x)
    if not isinstance(t, RT):
        fail(f"{what} must be a register tile, got {t}")
    return t


def need_rv(x, what="operand"):
    t = kind(x)
    if not isinstance(t, RV):
        fail(f"{what} must be a register vector, got {t}")
    return t


def need_reg(x, what="operand"):
    t = kind(x)
    if not isinstance(t, (RT, RV)):
        fail(f"{what} must be a register tile or vector, got {t}")
    return t


def same_shape(a, b, what="operands"):
    if a.shape != b.shape:
        fail(f"{what} must have the same shape: expected {a.shape}, got {b.shape}")


def same_layout(a, b, what="operands"):
    if a.layout != b.layout:
        fail(f"{what} must have the same layout: expected {a.layout}, got {b.layout} "
             f"(use tk.swap_layout to convert)")


def same_type(a, b, what="operands"):
    same_shape(a, b, what)
    same_layout(a, b, what)
    if a.dtype != b.dtype:
        fail(f"{what} must have the same dtype: expected {a.dtype}, got {b.dtype} (use tk.copy to convert)")

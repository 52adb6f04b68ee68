"""Register reallocation between warpgroups (sm_90 ``setmaxnreg``): producers give registers up, consumers take
them. Takes effect only in kernels declared with ``@tk.kernel(..., min_blocks=1)`` (a register cap at entry), and
each warpgroup's role should be one branch of a ``tk.if_``/``tk.else_``."""
from .base import Op, emit, fail

__all__ = ["increase_registers", "decrease_registers"]


class SetMaxNReg(Op):
    def __init__(self, inc: bool):
        self.inc = inc
        self.name = "increase_registers" if inc else "decrease_registers"

    def check(self, n):
        if not isinstance(n, int) or not 24 <= n <= 256 or n % 8:
            fail(f"{self.name}: registers per thread must be a multiple of 8 in 24..256, got {n!r}")

    def interpret(self, m, n):
        m.warpgroups()  # all four warps of a warpgroup must take part

    def cuda(self, g, n):
        return f'asm volatile("setmaxnreg.{"inc" if self.inc else "dec"}.sync.aligned.u32 {n};");'


_INC, _DEC = SetMaxNReg(True), SetMaxNReg(False)


def increase_registers(n: int):
    """Raise this warpgroup's register limit to ``n`` per thread (consumers)."""
    emit(_INC, n)


def decrease_registers(n: int):
    """Lower this warpgroup's register limit to ``n`` per thread (producers)."""
    emit(_DEC, n)

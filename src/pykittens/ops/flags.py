"""Flags in global memory: one block tells another that data it wrote to global memory is ready.

``tk.signal(flags, idx, value)`` stores ``value`` into the int32 element ``flags[idx]`` once the calling warp's
earlier global writes are visible to the whole GPU (a release at GPU scope); ``tk.wait_signal(flags, idx, value)``
spins until ``flags[idx] == value`` and orders the calling warp's later reads after it (an acquire at GPU scope).
Both are warp ops: each warp signals and waits for itself (e.g. a flag per warp of a split tile). ``idx`` is an
element index ``(b, d, row, col)`` (or ``(row, col)``), not tile units.

A wait spins on the GPU, so the block it waits for must be able to run: wait only for blocks of a grid that fits
on the GPU at once (a persistent grid) and, as the hardware starts blocks in index order, only for blocks of a lower
index. The interpreter runs blocks one after another in index order, so a wait for a later block (or one that never
comes) is reported as ``tk.DeadlockError`` with its line.
"""
from .base import GL, Op, emit, fail, kind
from .memory import global_index
from ..types import int32

__all__ = ["signal", "wait_signal"]

_PRELUDE = r"""
namespace tk {
__device__ __forceinline__ void signal(int* flag, int value) {
  __syncwarp();  // the warp's earlier writes come before lane 0's release
  if (lane_id() == 0) asm volatile("st.release.gpu.global.s32 [%0], %1;" :: "l"(flag), "r"(value) : "memory");
}
__device__ __forceinline__ void wait_signal(const int* flag, int value) {
  int seen;  // every lane acquires (one coalesced load), so each lane's later reads are ordered after it
  do { asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(seen) : "l"(flag) : "memory"); } while (seen != value);
  __syncwarp();
}
}  // namespace tk
"""


def _flag(m, flags, idx, w):
    """Interpreter: warp ``w``'s flag as (its (b, d, row, col), a one-element view), bounds-checked."""
    at = tuple(int(m.scalar(i, w)) for i in idx)
    return at, m.global_elements(flags, *at)


class _FlagOp(Op):
    """A warp's access to one int32 flag: the type rule and the CUDA call are the same for both ops."""
    prelude = _PRELUDE

    def check(self, flags, idx, value):
        t = kind(flags)
        if not isinstance(t, GL) or t.dtype != int32:
            fail(f"flags must be an int32 global layout (tk.gl(tk.int32)), got {t}")

    def cuda(self, g, flags, idx, value):
        return f"tk::{self.name}({g(flags)}.at({', '.join(g(i) for i in idx)}), {g(value)});"


class Signal(_FlagOp):
    name = "signal"

    def interpret(self, m, flags, idx, value):
        for w in m.warps():
            _flag(m, flags, idx, w)[1][0] = int(m.scalar(value, w))


class WaitSignal(_FlagOp):
    name = "wait_signal"

    def interpret(self, m, flags, idx, value):
        from ..interpreter.machine import Wait
        want = [(*_flag(m, flags, idx, w), int(m.scalar(value, w))) for w in m.warps()]

        def ready():
            return all(int(flag[0]) == v for _, flag, v in want)

        if not ready():
            at, flag, v = want[0]
            yield Wait(ready, f"wait_signal on {flags.name}{list(at)} for {v} (it holds {int(flag[0])})", m.loc)


_SIGNAL, _WAIT_SIGNAL = Signal(), WaitSignal()


def signal(flags, idx, value=1):
    """Store ``value`` into the int32 element ``flags[idx]`` after this warp's earlier global writes (release)."""
    emit(_SIGNAL, flags, global_index(idx), value)


def wait_signal(flags, idx, value=1):
    """Spin until ``flags[idx] == value``; this warp's later reads see what was written before the signal."""
    emit(_WAIT_SIGNAL, flags, global_index(idx), value)

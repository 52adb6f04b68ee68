"""Timestamps: where a kernel's time goes, recorded by the kernel itself (ThunderKittens' LCF template keeps such a
``timings`` array too).

``tk.timestamp(times, idx)``: lane 0 of the calling warp writes three int32 values into ``times`` from element
``idx`` = (b, d, row, col) on: the GPU's nanosecond timer (``%globaltimer``, low 32 bits; the same clock on every SM),
the SM's cycle counter (``%clock``; per SM) and the SM's index (``%smid``). Differences are taken modulo 2³², so
wrap-around does not matter within a kernel. The read is ordered with the kernel's other inline asm (barriers,
semaphore waits, wgmma), not with plain arithmetic around it.

The interpreter has no clock: it writes how many timestamps the block took before this one (in both time fields) and SM
0, so a test still sees which events came first.
"""
import torch

from .base import GL, Op, emit, fail, kind
from .memory import global_index
from ..types import int32

__all__ = ["timestamp"]

_PRELUDE = r"""
namespace tk {
__device__ __forceinline__ void timestamp(int* at) {
  if (lane_id() == 0) {
    int ns, cycles, sm;
    asm volatile("mov.u32 %0, %%globaltimer_lo;" : "=r"(ns) :: "memory");
    asm volatile("mov.u32 %0, %%clock;" : "=r"(cycles) :: "memory");
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    at[0] = ns; at[1] = cycles; at[2] = sm;
  }
}
}  // namespace tk
"""


class Timestamp(Op):
    name = "timestamp"
    prelude = _PRELUDE

    def check(self, times, idx):
        t = kind(times)
        if not isinstance(t, GL) or t.dtype != int32:
            fail(f"tk.timestamp writes into an int32 global layout (tk.gl(tk.int32)), got {t}")

    def interpret(self, m, times, idx):
        for w in m.warps():
            taken = getattr(m, "timestamps_taken", 0)
            at = m.global_elements(times, *(int(m.scalar(i, w)) for i in idx), n=3)
            at[:] = torch.tensor([taken, taken, 0], dtype=torch.int32)
            m.timestamps_taken = taken + 1

    def cuda(self, g, times, idx):
        return f"tk::timestamp({g(times)}.at({', '.join(g(i) for i in idx)}));"


_TIMESTAMP = Timestamp()


def timestamp(times, idx):
    """Write (ns timer, SM cycle counter, SM index) as int32 into ``times[idx]`` and the two elements after it."""
    emit(_TIMESTAMP, times, global_index(idx))

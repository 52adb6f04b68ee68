"""Semaphores (mbarriers in shared memory) and named barriers: how warpgroups hand work to each other.

A semaphore is initialised with the number of warps that arrive per phase (``tk.init_semaphore(s, n)``, by one
warp, followed by ``tk.sync()``). Each ``tk.arrive(s)`` is one warp's arrival (lane 0 arrives for it);
``tk.expect_bytes(s, n)`` is an arrival that also announces ``n`` bytes of TMA traffic the phase must wait for.
``tk.wait(s, parity)`` blocks until the phase with that parity has completed: phases alternate 0, 1, 0, …, so a
loop waits on ``it % 2`` (or on ``(it // stages) % 2`` for stage ``it % stages`` of a ring). Waiting on parity 1
before anything happened passes at once — a fresh semaphore counts as having completed a phase 1.

In a thread-block cluster, ``tk.arrive(s, cta=r)`` arrives on semaphore ``s`` of block ``r`` of the cluster (the
same semaphore in that block's shared memory), e.g. to tell a peer's producer that a stage it multicasts into is free.

``tk.named_sync(id, warps)`` is ``bar.sync id`` for ``warps`` warps (ids 1..15; 0 is ``tk.sync()``'s);
``tk.named_arrive(id, warps)`` arrives without waiting (a producer side of an ordering, e.g. warpgroups taking
turns on the tensor cores).
"""
import torch

from .base import Op, emit, fail, kind
from ..errors import DeadlockError
from ..types import Semaphore, ST, SV

__all__ = ["init_semaphore", "arrive", "expect_bytes", "expect", "wait", "named_sync", "named_arrive"]

_PRELUDE = r"""
#ifndef PK_SEMAPHORE
#define PK_SEMAPHORE
namespace tk {
__device__ __forceinline__ void init_semaphore(const semaphore& s, int arrivals) {
  if (lane_id() == 0) asm volatile("mbarrier.init.shared.b64 [%0], %1;" :: "r"(s.saddr()), "r"(arrivals) : "memory");
}
__device__ __forceinline__ void arrive(const semaphore& s, int n) {
  __syncwarp();  // the whole warp's prior shared-memory writes are ordered before lane 0's (release) arrive
  if (lane_id() == 0)
    for (int i = 0; i < n; i++) asm volatile("{ .reg .b64 st; mbarrier.arrive.shared.b64 st, [%0]; }" :: "r"(s.saddr()) : "memory");
}
__device__ __forceinline__ void arrive_cluster(const semaphore& s, int cta, int n) {
  __syncwarp();
  if (lane_id() == 0) {
    unsigned remote;  // the same semaphore in block `cta` of the cluster
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(s.saddr()), "r"(cta));
    for (int i = 0; i < n; i++)
      // release at CTA scope, as a local arrive: a peer waits on it to overwrite shared memory this warp only read
      asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];" :: "r"(remote) : "memory");
  }
}
__device__ __forceinline__ void expect_bytes(const semaphore& s, int nbytes) {
#if __CUDA_ARCH__ >= 900
  if (lane_id() == 0) asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(s.saddr()), "r"(nbytes) : "memory");
#endif
}
__device__ __forceinline__ void wait(const semaphore& s, int parity) {
  unsigned done = 0;
  while (!done) {
#if __CUDA_ARCH__ >= 900
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(s.saddr()), "r"(parity) : "memory");
#else
    asm volatile("{ .reg .pred p; mbarrier.test_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(s.saddr()), "r"(parity) : "memory");
#endif
  }
}
}  // namespace tk
#endif
"""


def _need_sem(s):
    if not isinstance(kind(s), Semaphore):
        fail(f"expected a semaphore (tk.semaphore()), got {kind(s)}")


class InitSemaphore(Op):
    name = "init_semaphore"
    prelude = _PRELUDE

    def check(self, sem, arrivals):
        _need_sem(sem)
        if not isinstance(arrivals, int) or arrivals < 1:
            fail(f"arrivals must be a positive Python int, got {arrivals!r}")

    def interpret(self, m, sem, arrivals):
        for w in m.warps():
            m.semaphore(sem, w, init=arrivals)

    def cuda(self, g, sem, arrivals):
        return f"tk::init_semaphore({g(sem)}, {arrivals});"


class Arrive(Op):
    name = "arrive"
    prelude = _PRELUDE

    def check(self, sem, count=1):
        _need_sem(sem)

    def interpret(self, m, sem, count=1):
        for w in m.warps():
            state = m.semaphore(sem, w)
            phase = state.phase
            state.arrive(int(m.scalar(count, w)))
            if state.phase != phase:  # arrivals completed a phase: writes before them are ordered with reads
                m.epoch += 1          # after the wait (the race shadows start a new epoch, as at a barrier)

    def cuda(self, g, sem, count=1):
        return f"tk::arrive({g(sem)}, {g(count)});"


class ArriveCluster(Op):
    name = "arrive_cluster"
    prelude = _PRELUDE

    def check(self, sem, count, cta):
        _need_sem(sem)
        if kind(cta) != "scalar" or isinstance(cta, float):
            fail(f"cta must be an int or a device scalar (a block's rank in its cluster), got {cta!r}")

    def interpret(self, m, sem, count, cta):
        for w in m.warps():
            peer = m.peer(int(m.scalar(cta, w)))
            state = m.semaphore(sem, w, target=peer)
            phase = state.phase
            state.arrive(int(m.scalar(count, w)))
            if state.phase != phase:
                peer.epoch += 1

    def cuda(self, g, sem, count, cta):
        return f"tk::arrive_cluster({g(sem)}, {g(cta)}, {g(count)});"


class ExpectBytes(Op):
    name = "expect_bytes"
    prelude = _PRELUDE

    def check(self, sem, nbytes):
        _need_sem(sem)

    def interpret(self, m, sem, nbytes):
        for w in m.warps():
            m.semaphore(sem, w).arrive(1, tx=int(m.scalar(nbytes, w)))

    def cuda(self, g, sem, nbytes):
        return f"tk::expect_bytes({g(sem)}, {g(nbytes)});"


class Wait(Op):
    name = "wait"
    prelude = _PRELUDE

    def check(self, sem, parity):
        _need_sem(sem)

    def interpret(self, m, sem, parity):
        from ..interpreter.machine import Wait as W
        states = [(m.semaphore(sem, w), int(m.scalar(parity, w)) & 1) for w in m.warps()]
        if not all(st.phase % 2 != p for st, p in states):
            yield W(lambda: all(st.phase % 2 != p for st, p in states),
                    f"wait on {sem} for parity {states[0][1]} (phase {states[0][0].phase}, "
                    f"{states[0][0].pending} arrivals and {states[0][0].tx} bytes outstanding)", m.loc)

    def cuda(self, g, sem, parity):
        return f"tk::wait({g(sem)}, {g(parity)});"


class NamedSync(Op):
    name = "named_sync"

    def check(self, bid, warps):
        if isinstance(bid, int) and not 1 <= bid <= 15:
            fail(f"named barrier id must be in 1..15, got {bid!r}")
        if kind(bid) != "scalar" or isinstance(bid, float):
            fail(f"named barrier id must be an int or a device scalar, got {bid!r}")
        if not isinstance(warps, int) or warps < 1:
            fail(f"warps must be a positive Python int, got {warps!r}")

    def interpret(self, m, bid, warps):
        ids = m.eval(bid)
        bad = [int(i) for i in torch.as_tensor(ids).reshape(-1) if not 1 <= int(i) <= 15]
        if bad:
            m.error(DeadlockError, f"named barrier id {bad[0]} is outside 1..15")
        return m.barrier(ids, warps)

    def cuda(self, g, bid, warps):
        return f'asm volatile("bar.sync %0, {warps * 32};" :: "r"({g(bid)}) : "memory");'


class NamedArrive(NamedSync):
    name = "named_arrive"

    def interpret(self, m, bid, warps):
        ids = m.eval(bid)
        yield from m.barrier(ids, warps, wait=False)

    def cuda(self, g, bid, warps):
        return f'asm volatile("bar.arrive %0, {warps * 32};" :: "r"({g(bid)}) : "memory");'


_INIT, _ARRIVE, _EXPECT, _WAIT, _NAMED = InitSemaphore(), Arrive(), ExpectBytes(), Wait(), NamedSync()
_ARRIVE_CLUSTER = ArriveCluster()
_NAMED_ARRIVE = NamedArrive()


def init_semaphore(sem, arrivals: int):
    """Initialise ``sem`` for ``arrivals`` warp arrivals per phase (call from one warp, then tk.sync())."""
    emit(_INIT, sem, arrivals)


def arrive(sem, count=1, *, cta=None):
    """The calling warp arrives at ``sem`` (``count`` times); ``cta``: at that semaphore in block ``cta`` of the
    thread-block cluster instead (which may be the calling block)."""
    if cta is None:
        emit(_ARRIVE, sem, count)
    else:
        emit(_ARRIVE_CLUSTER, sem, count, cta)


def expect_bytes(sem, nbytes):
    """Arrive at ``sem`` and announce ``nbytes`` of TMA traffic its current phase must also wait for (sm_90)."""
    emit(_EXPECT, sem, nbytes)


def expect(sem, *tiles):
    """``expect_bytes`` for the sizes of these shared tiles/vectors (what a TMA load into them brings)."""
    n = 0
    for t in tiles:
        ty = kind(t)
        if not isinstance(ty, (ST, SV)):
            fail(f"tk.expect takes shared tiles or vectors, got {ty}")
        n += ty.nbytes
    emit(_EXPECT, sem, n)


def wait(sem, parity):
    """Block until the phase of ``sem`` with this parity (0/1) has completed."""
    emit(_WAIT, sem, parity)


def named_sync(bid, warps: int):
    """Barrier ``bid`` (1..15; an int or a device scalar) among ``warps`` warps, e.g. one consumer warpgroup."""
    emit(_NAMED, bid, warps)


def named_arrive(bid, warps: int):
    """Arrive at barrier ``bid`` without waiting (``bar.arrive``): lets the warps that ``named_sync`` on it go.
    ``warps`` counts both sides, as in ``named_sync``."""
    emit(_NAMED_ARRIVE, bid, warps)

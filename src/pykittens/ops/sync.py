"""Barriers: ``tk.sync()`` (the whole block, ``__syncthreads``) and ``tk.sync_warp()`` (the calling warp).

Shared memory written by one warp may be read by another only after a ``tk.sync()`` that every warp reaches; the
interpreter reports a missing one as ``tk.RaceError`` and a ``tk.sync()`` that only some warps reach (inside a
branch or a loop that differs between warps) as ``tk.DeadlockError``. Warp-scope ops already order their own lanes,
so ``tk.sync_warp()`` is only needed around hand-written lane-level code; the interpreter treats it as a no-op.
"""
from .base import Op, emit

__all__ = ["sync", "sync_warp"]


class Sync(Op):
    name = "sync"
    scope = "block"

    def check(self):
        pass

    def interpret(self, m):
        return m.barrier()

    def cuda(self, g):
        return "__syncthreads();"


class SyncWarp(Op):
    name = "sync_warp"

    def check(self):
        pass

    def interpret(self, m):
        pass

    def cuda(self, g):
        return "__syncwarp();"


_SYNC, _SYNC_WARP = Sync(), SyncWarp()


def sync():
    """Block-wide barrier (__syncthreads): every warp must reach it."""
    emit(_SYNC)


def sync_warp():
    """Barrier of the calling warp's lanes (__syncwarp)."""
    emit(_SYNC_WARP)

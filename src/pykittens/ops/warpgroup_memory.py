"""Warpgroup-scope shared <-> register transfers: a 64-row shared tile and one 16-row register tile per warp.

``tk.warpgroup.load(rt, st)``: warp i of each warpgroup (4 consecutive warps) loads rows 16i.. of ``st`` — the
layout of a warpgroup's wgmma accumulator, so results can be staged through shared memory and read back.
``tk.warpgroup.store(st, rt)`` is the reverse. Same CUDA as the warp-scope ops, with a row offset.
"""
from .base import Op, RT, ST, emit, fail, kind, need_rt
from .mem_shared_reg import _PRELUDE

__all__ = ["load", "store", "store_async"]


def _check(rt_arg, st_arg):
    r, s = need_rt(rt_arg, "register tile"), kind(st_arg)
    if not isinstance(s, ST):
        fail(f"expected a shared tile, got {s}")
    if s.rows != 4 * r.rows or s.cols != r.cols:
        fail(f"a warpgroup splits a shared tile's rows over its 4 warps: expected a {4 * r.rows}x{r.cols} shared "
             f"tile for {r.rows}x{r.cols} register tiles, got {s.rows}x{s.cols}")


class WarpgroupLoad(Op):
    name = "warpgroup_load"
    prelude = _PRELUDE

    def check(self, dst, src):
        _check(dst, src)

    def interpret(self, m, dst, src):
        R = dst.type.rows
        for g in m.warpgroups():
            for w in range(4 * g, 4 * g + 4):
                m.write_warp(dst, w, m.smem_read(src, w, (slice((w % 4) * R, (w % 4 + 1) * R), slice(None))))

    def cuda(self, g, dst, src):
        return f"tk::load_sr({g(dst)}, {g(src)}, (warp_id & 3) * {dst.type.rows});"


class WarpgroupStore(Op):
    name = "warpgroup_store"
    prelude = _PRELUDE

    def check(self, dst, src):
        _check(src, dst)

    def interpret(self, m, dst, src):
        R = src.type.rows
        val = m.read(src)
        for g in m.warpgroups():
            for w in range(4 * g, 4 * g + 4):
                m.smem_write(dst, w, val[w], (slice((w % 4) * R, (w % 4 + 1) * R), slice(None)))

    def cuda(self, g, dst, src):
        return f"tk::store_rs({g(dst)}, {g(src)}, (warp_id & 3) * {src.type.rows});"


_LOAD, _STORE = WarpgroupLoad(), WarpgroupStore()


def load(dst, src):
    """Warp i of each warpgroup loads rows 16i.. (its register tile's height) of shared tile ``src``."""
    emit(_LOAD, dst, src)


def store(dst, src):
    """Warp i of each warpgroup stores its register tile to rows 16i.. of shared tile ``dst``."""
    emit(_STORE, dst, src)


def store_async(dst, staging, src, idx, barrier, *, add: bool = False):
    """Store each warp's register tile ``src`` to tile ``idx`` of global ``dst`` through shared tile ``staging``
    (4x the rows) by TMA: the warpgroup syncs on named barrier ``barrier`` (so no warp still reads ``staging``),
    writes its rows, syncs again, and its first warp starts the copy (``add``: an add-reduce) and commits it.
    Drain with ``tk.tma.store_wait`` from the first warp before ``staging`` is written again."""
    from .semaphores import named_sync
    from .tma import store_add_async, store_async as tma_store_async, store_commit
    from ..trace import if_, warp_id
    named_sync(barrier, 4)
    store(staging, src)
    named_sync(barrier, 4)
    with if_(warp_id() % 4 == 0):
        (store_add_async if add else tma_store_async)(dst, staging, idx)
        store_commit()

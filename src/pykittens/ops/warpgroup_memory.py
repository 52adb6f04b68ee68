"""Warpgroup-scope shared <-> register transfers: a 64-row shared tile and one 16-row register tile per warp.

``tk.warpgroup.load(rt, st)``: warp i of each warpgroup (4 consecutive warps) loads rows 16i.. of ``st`` — the
layout of a warpgroup's wgmma accumulator, so results can be staged through shared memory and read back.
``tk.warpgroup.store(st, rt)`` is the reverse. Same CUDA as the warp-scope ops, with a row offset.

``split_pairs=True`` (fp32 tiles): within each group of 8 columns the shared tile gets the even columns first,
then the odd ones (``st[:, 8g + p] = rt[:, 8g + 2p]``, ``st[:, 8g + 4 + p] = rt[:, 8g + 2p + 1]`` for p < 4). A
thread's fp32 pairs then land as 16-byte rows of 8x8 b16 matrices: one ``stmatrix.x4`` per 8 columns and 16 rows,
conflict-free, where the plain store takes two 8-byte stores with 2-way bank conflicts. For staging data whose
reader knows the order (the backward's fp32 dQ accumulator). ``tk.warpgroup.load(rt, st, split_pairs=True)`` is
the inverse (``ldmatrix.x4``): it reads such a tile back into natural order.
"""
import torch

from .base import Op, RT, ST, emit, fail, kind, need_rt
from .mem_shared_reg import _PRELUDE
from ..types import fp32

_SPLIT_PRELUDE = _PRELUDE + r"""
#ifndef PK_STORE_SPLIT_PAIRS
#define PK_STORE_SPLIT_PAIRS
namespace tk {
// Shared address of the 16-byte matrix row this lane gives to stmatrix / ldmatrix for subtile (i, j), half h.
template<class S> __device__ __forceinline__ unsigned split_pairs_addr(const S& s, int r0, int i, int j, int h) {
  const int l = lane_id();
  return s.saddr(r0 + i * 16 + ((l >> 4) << 3) + (l & 7), j * 16 + h * 8 + (((l >> 3) & 1) << 2));
}
// fp32 row-layout register tile -> fp32 shared tile, columns of each 8-group reordered even-then-odd (see the op).
// Per 16x16 subtile and 8-column half h: matrices 0-3 = (rows 0-7, even), (rows 0-7, odd), (rows 8-15, even),
// (rows 8-15, odd), from registers k = 2h (rows g) and 2h + 1 (rows g + 8); lane 8m + i gives matrix m's row i.
template<class S, class R> __device__ __forceinline__ void store_rs_split_pairs(const S& s, const R& d, int r0) {
  static_assert(same<typename R::dtype, float>::value && same<typename S::dtype, float>::value, "fp32 only");
  static_assert(same<typename R::layout, row_l>::value, "row layout only");
  __syncwarp();
  #pragma unroll
  for (int i = 0; i < R::height; i++)
  #pragma unroll
  for (int j = 0; j < R::width; j++)
  #pragma unroll
  for (int h = 0; h < 2; h++) {
    const float2 a = d.data[i][j][2 * h], b = d.data[i][j][2 * h + 1];
#if __CUDA_ARCH__ >= 900
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};"
                 :: "r"(split_pairs_addr(s, r0, i, j, h)), "r"(__float_as_uint(a.x)),
                    "r"(__float_as_uint(a.y)), "r"(__float_as_uint(b.x)), "r"(__float_as_uint(b.y)) : "memory");
#else
    const int g = lane_id() >> 2, c = j * 16 + h * 8 + (lane_id() & 3);
    *sptr(s, r0 + i * 16 + g, c) = a.x;      *sptr(s, r0 + i * 16 + g, c + 4) = a.y;
    *sptr(s, r0 + i * 16 + g + 8, c) = b.x;  *sptr(s, r0 + i * 16 + g + 8, c + 4) = b.y;
#endif
  }
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // visible to the TMA store after the next barrier
#endif
  __syncwarp();
}
// The inverse: the same lane addresses, ldmatrix.
template<class R, class S> __device__ __forceinline__ void load_sr_split_pairs(R& d, const S& s, int r0) {
  static_assert(same<typename R::dtype, float>::value && same<typename S::dtype, float>::value, "fp32 only");
  static_assert(same<typename R::layout, row_l>::value, "row layout only");
  #pragma unroll
  for (int i = 0; i < R::height; i++)
  #pragma unroll
  for (int j = 0; j < R::width; j++)
  #pragma unroll
  for (int h = 0; h < 2; h++) {
    unsigned v[4];
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3])
                 : "r"(split_pairs_addr(s, r0, i, j, h)) : "memory");
    d.data[i][j][2 * h] = make_float2(__uint_as_float(v[0]), __uint_as_float(v[1]));
    d.data[i][j][2 * h + 1] = make_float2(__uint_as_float(v[2]), __uint_as_float(v[3]));
  }
}
}  // namespace tk
#endif
"""


def split_pairs_order(cols: int) -> list[int]:
    """Shared column p of a ``split_pairs`` store holds register-tile column ``order[p]``."""
    return [8 * (p // 8) + 2 * (p % 4) + (p % 8) // 4 for p in range(cols)]

__all__ = ["load", "store", "store_async"]


def _check(rt_arg, st_arg):
    r, s = need_rt(rt_arg, "register tile"), kind(st_arg)
    if not isinstance(s, ST):
        fail(f"expected a shared tile, got {s}")
    if s.rows != 4 * r.rows or s.cols != r.cols:
        fail(f"a warpgroup splits a shared tile's rows over its 4 warps: expected a {4 * r.rows}x{r.cols} shared "
             f"tile for {r.rows}x{r.cols} register tiles, got {s.rows}x{s.cols}")


def _check_split(rt_arg, st_arg):
    r, s = kind(rt_arg), kind(st_arg)
    if r.dtype != fp32 or s.dtype != fp32 or r.layout != "row":
        fail(f"split_pairs moves an fp32 row-layout register tile and an fp32 shared tile, got {r} and {s}")


class WarpgroupLoad(Op):
    def __init__(self, split_pairs: bool):
        self.split_pairs = split_pairs
        self.name = "warpgroup_load_split_pairs" if split_pairs else "warpgroup_load"
        self.prelude = _SPLIT_PRELUDE if split_pairs else _PRELUDE

    def check(self, dst, src):
        _check(dst, src)
        if self.split_pairs:
            _check_split(dst, src)

    def interpret(self, m, dst, src):
        R = dst.type.rows
        for g in m.warpgroups():
            for w in range(4 * g, 4 * g + 4):
                val = m.smem_read(src, w, (slice((w % 4) * R, (w % 4 + 1) * R), slice(None)))
                if self.split_pairs:  # register column order[p] comes from shared column p
                    raw, val = val, torch.empty_like(val)
                    val[..., split_pairs_order(dst.type.cols)] = raw
                m.write_warp(dst, w, val)

    def cuda(self, g, dst, src):
        fn = "load_sr_split_pairs" if self.split_pairs else "load_sr"
        return f"tk::{fn}({g(dst)}, {g(src)}, (warp_id & 3) * {dst.type.rows});"


class WarpgroupStore(Op):
    def __init__(self, split_pairs: bool):
        self.split_pairs = split_pairs
        self.name = "warpgroup_store_split_pairs" if split_pairs else "warpgroup_store"
        self.prelude = _SPLIT_PRELUDE if split_pairs else _PRELUDE

    def check(self, dst, src):
        _check(src, dst)
        if self.split_pairs:
            _check_split(src, dst)

    def interpret(self, m, dst, src):
        R = src.type.rows
        val = m.read(src)
        if self.split_pairs:
            val = val[..., split_pairs_order(src.type.cols)]
        for g in m.warpgroups():
            for w in range(4 * g, 4 * g + 4):
                m.smem_write(dst, w, val[w], (slice((w % 4) * R, (w % 4 + 1) * R), slice(None)))

    def cuda(self, g, dst, src):
        fn = "store_rs_split_pairs" if self.split_pairs else "store_rs"
        return f"tk::{fn}({g(dst)}, {g(src)}, (warp_id & 3) * {src.type.rows});"


_LOAD, _LOAD_SPLIT = WarpgroupLoad(False), WarpgroupLoad(True)
_STORE, _STORE_SPLIT = WarpgroupStore(False), WarpgroupStore(True)


def load(dst, src, *, split_pairs: bool = False):
    """Warp i of each warpgroup loads rows 16i.. (its register tile's height) of shared tile ``src``;
    ``split_pairs``: the tile holds each group of 8 columns even-then-odd, put back in order."""
    emit(_LOAD_SPLIT if split_pairs else _LOAD, dst, src)


def store(dst, src, *, split_pairs: bool = False):
    """Warp i of each warpgroup stores its register tile to rows 16i.. of shared tile ``dst``; ``split_pairs``:
    columns reordered even-then-odd within each group of 8 (see the module docstring)."""
    emit(_STORE_SPLIT if split_pairs else _STORE, dst, src)


def store_async(dst, staging, src, idx, barrier, *, add: bool = False, split_pairs: bool = False):
    """Store each warp's register tile ``src`` to tile ``idx`` of global ``dst`` through shared tile ``staging``
    (4x the rows) by TMA: the warpgroup syncs on named barrier ``barrier`` (so no warp still reads ``staging``),
    writes its rows, syncs again, and its first warp starts the copy (``add``: an add-reduce) and commits it.
    Drain with ``tk.tma.store_wait`` from the first warp before ``staging`` is written again. ``split_pairs``: the
    rows go out with their columns reordered as by ``store(..., split_pairs=True)``."""
    from .semaphores import named_sync
    from .tma import store_add_async, store_async as tma_store_async, store_commit
    from ..trace import if_, warp_id
    named_sync(barrier, 4)
    store(staging, src, split_pairs=split_pairs)
    named_sync(barrier, 4)
    with if_(warp_id() % 4 == 0):
        (store_add_async if add else tma_store_async)(dst, staging, idx)
        store_commit()

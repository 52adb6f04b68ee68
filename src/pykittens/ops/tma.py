"""TMA (the tensor memory accelerator, sm_90): asynchronous tile copies between global and shared memory.

``tk.tma.load_async(st, gl, idx, sem)`` starts a copy of one tile into shared memory that completes on semaphore
``sem`` (announce its bytes first with ``tk.expect(sem, st)``, then ``tk.wait(sem, parity)``). A shared vector
loads the same way (index as for vectors: ``(b, d, row, c)`` with ``c`` in vector lengths; e.g. a softmax
statistic that travels with its tile through a pipeline stage).
``multicast=mask`` (a thread-block cluster): the tile lands in the same shared tile of every block whose rank is set in
``mask`` and completes on each one's ``sem``.
``tk.tma.store_async(gl, st, idx)`` / ``store_add_async`` write a tile back (plain or add-reduce), grouped by
``tk.tma.store_commit()`` and drained by ``tk.tma.store_wait(n)`` (at most n groups still reading shared memory).
``tk.tma.prefetch(st, gl, idx)`` pulls a tile into L2. Indices are in tile units, like ``tk.load``.

One lane of each calling warp issues the copy: call these from a single warp (``with tk.if_(tk.warp_id() == 0)``
or the producer warp). Rows and columns outside the tensor read as zero and are not written — the hardware
bounds-checks every box. The descriptor (CUtensorMap) is built on the host at launch from the tensor and the tile
type (backend/cuda/tma.py) and passed as a ``__grid_constant__`` parameter.
"""
from .base import Op, GL, ST, SV, emit, fail, kind
from .memory import global_index, tile_origin
from ..errors import OutOfBoundsError
from ..trace import builder
from ..types import Semaphore

__all__ = ["load_async", "store_async", "store_add_async", "store_commit", "store_wait", "prefetch"]

_PRELUDE = r"""
#ifndef PK_TMA
#define PK_TMA
namespace tk {
// One TMA box into shared address dst, at coordinates (c, r, z, b) innermost first, completing on sem.
__device__ __forceinline__ void tma_load_box(unsigned dst, const tensor_map& tm, const semaphore& sem, int b, int z, int r, int c) {
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
               :: "r"(dst), "l"(&tm), "r"(c), "r"(r), "r"(z), "r"(b), "r"(sem.saddr()) : "memory");
}
// One box per swizzle atom: atom a of a tile lands at byte a * R * S and covers columns c0 + a * BOX.
template<class S> __device__ __forceinline__ void tma_load(const S& s, const tensor_map& tm, const semaphore& sem, int b, int z, int r, int c) {
  constexpr int BOX = S::swizzle ? S::swizzle / (int)sizeof(typename S::dtype) : S::cols;
  if (lane_id() == 0) {
    #pragma unroll
    for (int a = 0; a < S::cols / BOX; a++)
      tma_load_box((unsigned)__cvta_generic_to_shared(s.p) + a * S::rows * (S::swizzle ? S::swizzle : 0), tm, sem,
                   b, z, r * S::rows, c * S::cols + a * BOX);
  }
}
// A shared vector: one box of N elements at column c * N of row r.
template<class T, int N> __device__ __forceinline__ void tma_load(const sv<T, N>& s, const tensor_map& tm, const semaphore& sem, int b, int z, int r, int c) {
  if (lane_id() == 0) tma_load_box((unsigned)__cvta_generic_to_shared(s.p), tm, sem, b, z, r, c * N);
}
template<class S> __device__ __forceinline__ void tma_load_multicast(const S& s, const tensor_map& tm, const semaphore& sem, unsigned short mask, int b, int z, int r, int c) {
  constexpr int BOX = S::swizzle ? S::swizzle / (int)sizeof(typename S::dtype) : S::cols;
  if (lane_id() == 0) {
    #pragma unroll
    for (int a = 0; a < S::cols / BOX; a++)
      asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3, %4, %5}], [%6], %7;"
                   :: "r"((unsigned)__cvta_generic_to_shared(s.p) + a * S::rows * (S::swizzle ? S::swizzle : 0)), "l"(&tm),
                      "r"(c * S::cols + a * BOX), "r"(r * S::rows), "r"(z), "r"(b), "r"(sem.saddr()), "h"(mask) : "memory");
  }
}
template<bool ADD, class S> __device__ __forceinline__ void tma_store(const tensor_map& tm, const S& s, int b, int z, int r, int c) {
  constexpr int BOX = S::swizzle ? S::swizzle / (int)sizeof(typename S::dtype) : S::cols;
  if (lane_id() == 0) {
    #pragma unroll
    for (int a = 0; a < S::cols / BOX; a++) {
      const unsigned src = (unsigned)__cvta_generic_to_shared(s.p) + a * S::rows * (S::swizzle ? S::swizzle : 0);
      if constexpr (ADD)
        asm volatile("cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];"
                     :: "l"(&tm), "r"(src), "r"(c * S::cols + a * BOX), "r"(r * S::rows), "r"(z), "r"(b) : "memory");
      else
        asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];"
                     :: "l"(&tm), "r"(src), "r"(c * S::cols + a * BOX), "r"(r * S::rows), "r"(z), "r"(b) : "memory");
    }
  }
}
template<class S> __device__ __forceinline__ void tma_prefetch(const S&, const tensor_map& tm, int b, int z, int r, int c) {
  constexpr int BOX = S::swizzle ? S::swizzle / (int)sizeof(typename S::dtype) : S::cols;
  if (lane_id() == 0) {
    #pragma unroll
    for (int a = 0; a < S::cols / BOX; a++)
      asm volatile("cp.async.bulk.prefetch.tensor.4d.L2.global.tile [%0, {%1, %2, %3, %4}];"
                   :: "l"(&tm), "r"(c * S::cols + a * BOX), "r"(r * S::rows), "r"(z), "r"(b) : "memory");
  }
}
}  // namespace tk
#endif
"""


def _check_pair(st_arg, gl_arg, vectors=False):
    s, g = kind(st_arg), kind(gl_arg)
    if vectors and isinstance(s, SV):
        if not isinstance(g, GL) or s.dtype != g.dtype or s.nbytes % 128 or s.length > 256:
            fail(f"a TMA vector load needs a global of the vector's dtype and a vector of at most 256 elements and "
                 f"a multiple of 128 bytes (each vector of an array lands 128-byte aligned): got {s} from {g}")
        return
    if not isinstance(s, ST):
        fail(f"expected a shared tile{' or vector' if vectors else ''}, got {s}")
    if not isinstance(g, GL):
        fail(f"expected a global layout, got {g}")
    if s.dtype != g.dtype:
        fail(f"TMA copies do not convert dtypes: tile is {s.dtype}, global is {g.dtype}")
    box = s.swizzle // s.dtype.size if s.swizzle else s.cols
    if s.cols % box or box * s.dtype.size % 16 or box > 256 or s.rows > 256:
        fail(f"{s} cannot be copied by TMA: boxes are at most 256x256 elements with rows of 16-byte multiples")


def _coords(g, idx):
    return ", ".join(g(i) for i in idx)




class TmaLoad(Op):
    name = "tma_load"
    prelude = _PRELUDE

    def check(self, dst, src, idx, sem, multicast, tmap):
        _check_pair(dst, src, vectors=multicast is None)
        if not isinstance(kind(sem), Semaphore):
            fail(f"TMA loads complete on a semaphore, got {kind(sem)}")
        if multicast is not None and (kind(multicast) != "scalar" or isinstance(multicast, float)):
            fail(f"multicast must be a mask of cluster ranks (an int or a device scalar), got {multicast!r}")

    def interpret(self, m, dst, src, idx, sem, multicast, tmap):
        st = dst.type
        for w in m.warps():
            b, d, r, c = tile_origin(m, idx, w, st)
            rows, cols = (1, st.length) if isinstance(st, SV) else (st.rows, st.cols)
            tile = m.global_read(src, b, d, r, c, rows, cols, oob=0.0)  # the hardware zero-fills
            tile = tile[0] if isinstance(st, SV) else tile
            if multicast is None:
                targets = [None]
            else:
                mask = int(m.scalar(multicast, w))
                targets = [m.peer(rank) for rank in range(max(mask.bit_length(), 1)) if mask >> rank & 1]
            for peer in targets:
                landing = m.smem_write(dst, w, tile, async_proxy=True, target=peer)
                m.semaphore(sem, w, target=peer).complete_tx(st.nbytes, landing)

    def cuda(self, g, dst, src, idx, sem, multicast, tmap):
        from ..backend.cuda.codegen import tensor_map_name
        if multicast is None:
            return f"tk::tma_load({g(dst)}, {tensor_map_name(tmap)}, {g(sem)}, {_coords(g, idx)});"
        return (f"tk::tma_load_multicast({g(dst)}, {tensor_map_name(tmap)}, {g(sem)}, (unsigned short)({g(multicast)}), "
                f"{_coords(g, idx)});")


class TmaStore(Op):
    prelude = _PRELUDE

    def __init__(self, add):
        self.add = add
        self.name = "tma_store_add" if add else "tma_store"

    def check(self, dst, src, idx, tmap):
        _check_pair(src, dst)

    def interpret(self, m, dst, src, idx, tmap):
        st = src.type
        for w in m.warps():
            b, d, r, c = tile_origin(m, idx, w, st)
            if min(b, d, r, c) < 0:  # (loads zero-fill there; on the H200 a store raised an illegal instruction)
                m.error(OutOfBoundsError, f"TMA store to {dst.name}[{b}, {d}, {r}, {c}]: negative coordinates fault on "
                                          f"the GPU; skip the store for a tile that starts before the tensor")
            val = m.smem_read(src, w)
            if self.add:
                val = val + m.global_read(dst, b, d, r, c, st.rows, st.cols, oob=0.0)
            m.global_write(dst, b, d, r, c, val, clip=True)  # the hardware skips what lies outside

    def cuda(self, g, dst, src, idx, tmap):
        from ..backend.cuda.codegen import tensor_map_name
        return f"tk::tma_store<{'true' if self.add else 'false'}>({tensor_map_name(tmap)}, {g(src)}, {_coords(g, idx)});"


class Prefetch(Op):
    name = "tma_prefetch"
    prelude = _PRELUDE

    def check(self, st, src, idx, tmap):
        _check_pair(st, src)

    def interpret(self, m, st, src, idx, tmap):
        pass  # a cache hint: nothing observable

    def cuda(self, g, st, src, idx, tmap):
        from ..backend.cuda.codegen import tensor_map_name
        return f"tk::tma_prefetch({g(st)}, {tensor_map_name(tmap)}, {_coords(g, idx)});"


class StoreCommit(Op):
    name = "tma_store_commit"

    def interpret(self, m):
        pass  # the interpreter's stores complete at once

    def cuda(self, g):
        return 'asm volatile("cp.async.bulk.commit_group;" ::: "memory");'


class StoreWait(Op):
    name = "tma_store_wait"

    def check(self, n=0):
        if not isinstance(n, int) or n < 0:
            fail(f"store_wait takes a non-negative Python int, got {n!r}")

    def interpret(self, m, n=0):
        pass

    def cuda(self, g, n=0):
        return f'asm volatile("cp.async.bulk.wait_group.read {n};" ::: "memory");'


_LOAD, _STORE, _STORE_ADD, _PREFETCH = TmaLoad(), TmaStore(False), TmaStore(True), Prefetch()
_COMMIT, _WAIT = StoreCommit(), StoreWait()


def _tmap(gl_arg, st_arg):
    """Register (or find) the TMA descriptor this copy needs; it becomes a kernel parameter."""
    return builder().tensor_map(gl_arg, kind(st_arg))


def load_async(dst, src, idx, sem, *, multicast=None):
    """Start a TMA copy of tile ``idx`` of global ``src`` into shared tile ``dst``, completing on ``sem`` (or of
    a vector into shared vector ``dst``: the global's strides must then be multiples of 16 bytes).
    ``multicast``: a mask of cluster ranks; the copy lands in ``dst`` and completes on ``sem`` of each of them."""
    emit(_LOAD, dst, src, global_index(idx), sem, multicast, tmap=_tmap(src, dst))


def load_group(sem, *copies):
    """Start several TMA loads that complete together on ``sem``: each copy is ``(shared tile, global, idx)``.
    Announces their total bytes on ``sem`` first (``tk.expect``), so the count cannot disagree with the copies."""
    from .semaphores import expect
    expect(sem, *(dst for dst, _, _ in copies))
    for dst, src, idx in copies:
        load_async(dst, src, idx, sem)


def store_async(dst, src, idx):
    """Start a TMA copy of shared tile ``src`` to tile ``idx`` of global ``dst``."""
    emit(_STORE, dst, src, global_index(idx), tmap=_tmap(dst, src))


def store_add_async(dst, src, idx):
    """Like store_async, but adds ``src`` into ``dst`` (an atomic add-reduce done by the copy engine)."""
    emit(_STORE_ADD, dst, src, global_index(idx), tmap=_tmap(dst, src))


def store_commit():
    """Close the group of TMA stores issued so far by this thread."""
    emit(_COMMIT)


def store_wait(n: int = 0):
    """Wait until at most ``n`` committed store groups still read shared memory."""
    emit(_WAIT, n)


def prefetch(st, src, idx):
    """Prefetch tile ``idx`` of ``src`` (shaped like ``st``) into L2."""
    emit(_PREFETCH, st, src, global_index(idx), tmap=_tmap(src, st))

"""Global memory <-> shared tiles, warp scope: the calling warp copies the whole tile by itself (with several warps,
each warp calls it for its own tile, e.g. ``tk.load(s[tk.warp_id()], x, (row, 0))``).

The copy moves 16-byte chunks: consecutive lanes take consecutive chunks of a row (coalesced 128-bit global
accesses) and write them through the shared tile's swizzle (a 16-byte chunk stays contiguous under every swizzle).
With ``oob=value`` a chunk wholly inside the tensor is one 16-byte access and a chunk that crosses its edge (or lies
outside) is read element by element, so any tensor shape is handled; ``clip=True`` stores do the same.

``tk.load_async(st, gl, idx, oob=0.0)`` issues the same copy as ``cp.async.cg.shared.global`` (16 bytes per chunk;
chunks outside the tensor are zero-filled through the src-size operand, so only ``oob=0.0`` is supported) and closes
it with ``cp.async.commit_group``. ``tk.load_async_wait(n)`` waits until at most ``n`` of the calling warp's groups
are still in flight (``cp.async.wait_group n``) and syncs the warp; the interpreter treats every ``n`` as 0 (it
completes all copies). Other warps that read the tile still need ``tk.sync()``.

A global <-> shared transfer between different dtypes converts element by element (no vector accesses, no async).
"""
from .base import Op, GL, ST, emit, fail, kind
from .memory import register_load, register_store, register_async_load, tile_origin, tile_origin_c

__all__ = ["load_async_wait"]

# Shared accesses go through a pointer rebuilt from the 32-bit shared address, so the compiler emits ld/st.shared
# (LDS/STS) rather than generic accesses even where it cannot trace the tile's base back to the shared array.
SMEM_PRELUDE = r"""
#ifndef PK_SMEM_PTR
#define PK_SMEM_PTR
namespace tk {
template<class S> __device__ __forceinline__ typename S::dtype* sptr(const S& s, int r, int c) {
  return (typename S::dtype*)__cvta_shared_to_generic(s.saddr(r, c));
}
template<class T> __device__ __forceinline__ T* sptr(T* p) { return (T*)__cvta_shared_to_generic(__cvta_generic_to_shared(p)); }
}  // namespace tk
#endif
"""

_PRELUDE = SMEM_PRELUDE + r"""
#ifndef PK_MEM_GLOBAL_SHARED
#define PK_MEM_GLOBAL_SHARED
namespace tk {
// 16-byte chunks of a shared tile: chunk i of the warp's share is row i / CPR, column (i % CPR) * E.
template<class S, class T> __device__ __forceinline__ void load_gs(const S& s, const gl<T>& g, int b, int z, int r0, int c0, bool check, float fill) {
  using U = typename S::dtype;
  const bool bz = b >= 0 && b < g.b && z >= 0 && z < g.d;
  __syncwarp();  // earlier reads of this tile by other lanes are done before it is overwritten
  if constexpr (same<U, T>::value) {
    constexpr int E = 16 / (int)sizeof(T), CPR = S::cols / E, N = S::rows * CPR;  // N is a multiple of 32
    #pragma unroll 8
    for (int it = 0; it < N / 32; it++) {
      const int i = it * 32 + lane_id(), r = i / CPR, c = (i % CPR) * E, gr = r0 + r, gc = c0 + c;
      union { uint4 v; T e[E]; } u;
      if (!check || (bz && gr >= 0 && gr < g.r && gc >= 0 && gc + E <= g.c)) {
        u.v = *(const uint4*)g.at(b, z, gr, gc);
      } else {
        const bool rin = bz && gr >= 0 && gr < g.r;
        #pragma unroll
        for (int e = 0; e < E; e++) u.e[e] = (rin && gc + e >= 0 && gc + e < g.c) ? *g.at(b, z, gr, gc + e) : from_float<T>(fill);
      }
      *(uint4*)sptr(s, r, c) = u.v;
    }
  } else {
    constexpr int N = S::rows * S::cols;  // a multiple of 256
    #pragma unroll 8
    for (int it = 0; it < N / 32; it++) {
      const int i = it * 32 + lane_id(), r = i / S::cols, c = i % S::cols, gr = r0 + r, gc = c0 + c;
      const bool in = !check || (bz && gr >= 0 && gr < g.r && gc >= 0 && gc < g.c);
      *sptr(s, r, c) = from_float<U>(in ? to_float(*g.at(b, z, gr, gc)) : fill);
    }
  }
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // make these generic-proxy writes visible to the async proxy (wgmma, TMA store) after the next barrier
#endif
  __syncwarp();  // the tile is complete for every lane of the warp
}
template<class S, class T> __device__ __forceinline__ void store_sg(const gl<T>& g, const S& s, int b, int z, int r0, int c0, bool check) {
  using U = typename S::dtype;
  const bool bz = b >= 0 && b < g.b && z >= 0 && z < g.d;
  __syncwarp();
  if constexpr (same<U, T>::value) {
    constexpr int E = 16 / (int)sizeof(T), CPR = S::cols / E, N = S::rows * CPR;
    #pragma unroll 8
    for (int it = 0; it < N / 32; it++) {
      const int i = it * 32 + lane_id(), r = i / CPR, c = (i % CPR) * E, gr = r0 + r, gc = c0 + c;
      union { uint4 v; T e[E]; } u;
      u.v = *(const uint4*)sptr(s, r, c);
      if (!check || (bz && gr >= 0 && gr < g.r && gc >= 0 && gc + E <= g.c)) {
        *(uint4*)g.at(b, z, gr, gc) = u.v;
      } else if (bz && gr >= 0 && gr < g.r) {
        #pragma unroll
        for (int e = 0; e < E; e++) if (gc + e >= 0 && gc + e < g.c) *g.at(b, z, gr, gc + e) = u.e[e];
      }
    }
  } else {
    constexpr int N = S::rows * S::cols;
    #pragma unroll 8
    for (int it = 0; it < N / 32; it++) {
      const int i = it * 32 + lane_id(), r = i / S::cols, c = i % S::cols, gr = r0 + r, gc = c0 + c;
      if (!check || (bz && gr >= 0 && gr < g.r && gc >= 0 && gc < g.c)) *g.at(b, z, gr, gc) = from_float<T>(to_float(*sptr(s, r, c)));
    }
  }
}
// cp.async of one 16-byte chunk; src_bytes < 16 zero-fills the rest (0: nothing is read, the address is a dummy).
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(__cvta_generic_to_global(src)), "r"(src_bytes) : "memory");
}
template<class S, class T> __device__ __forceinline__ void load_async_gs(const S& s, const gl<T>& g, int b, int z, int r0, int c0, bool check) {
  constexpr int E = 16 / (int)sizeof(T), CPR = S::cols / E, N = S::rows * CPR;
  const bool bz = b >= 0 && b < g.b && z >= 0 && z < g.d;
  __syncwarp();
  #pragma unroll 8
  for (int it = 0; it < N / 32; it++) {
    const int i = it * 32 + lane_id(), r = i / CPR, c = (i % CPR) * E, gr = r0 + r, gc = c0 + c;
    int n = E;
    if (check) n = (bz && gr >= 0 && gr < g.r && gc >= 0) ? min(max(g.c - gc, 0), E) : 0;
    cp_async16(s.saddr(r, c), n ? (const void*)g.at(b, z, gr, gc) : (const void*)g.ptr, n * (int)sizeof(T));
  }
  asm volatile("cp.async.commit_group;" ::: "memory");
}
template<int N> __device__ __forceinline__ void load_async_wait() {
  asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // cp.async data landed via the generic proxy: make it visible to wgmma / TMA store
#endif
  __syncwarp();  // lanes see the chunks other lanes copied
}
}  // namespace tk
#endif
"""


def _need_st_gl(st, gl):
    if not isinstance(kind(st), ST):
        fail(f"expected a shared tile, got {kind(st)}")
    if not isinstance(kind(gl), GL):
        fail(f"expected a global layout, got {kind(gl)}")


class GlobalToShared(Op):
    name = "load_global_shared"
    prelude = _PRELUDE

    def check(self, dst, src, idx, oob=None):
        _need_st_gl(dst, src)

    def interpret(self, m, dst, src, idx, oob=None, pending=False):
        t = dst.type
        for w in m.warps():
            b, d, r0, c0 = tile_origin(m, idx, w, t)
            m.smem_write(dst, w, m.global_read(src, b, d, r0, c0, t.rows, t.cols, oob), pending=pending)

    def cuda(self, g, dst, src, idx, oob=None):
        from ..backend.cuda.codegen import expr
        chk = "true" if oob is not None else "false"
        return f"tk::load_gs({g(dst)}, {g(src)}, {tile_origin_c(g, idx, dst.type)}, {chk}, {expr(float(oob or 0.0))});"


class SharedToGlobal(Op):
    name = "store_shared_global"
    prelude = _PRELUDE

    def check(self, dst, src, idx, clip=False):
        _need_st_gl(src, dst)

    def interpret(self, m, dst, src, idx, clip=False):
        t = src.type
        for w in m.warps():
            b, d, r0, c0 = tile_origin(m, idx, w, t)
            m.global_write(dst, b, d, r0, c0, m.smem_read(src, w), clip)

    def cuda(self, g, dst, src, idx, clip=False):
        return f"tk::store_sg({g(dst)}, {g(src)}, {tile_origin_c(g, idx, src.type)}, {'true' if clip else 'false'});"


def check_async(dst, src, oob):
    if kind(dst).dtype != kind(src).dtype:
        fail(f"an async load cannot convert: expected a global layout of {kind(dst).dtype}, got {kind(src)}")
    if oob is not None and float(oob) != 0.0:
        fail(f"only oob=0.0 is supported asynchronously (cp.async zero-fills), got oob={oob!r}; "
             f"use tk.load for another fill value")


class AsyncLoad:
    """Mixin for the cp.async variant of a global -> shared load op: the synchronous op's checks plus
    ``check_async``, and its interpretation with the data left pending until ``tk.load_async_wait``."""

    def check(self, dst, src, idx, oob=None):
        super().check(dst, src, idx, oob)
        check_async(dst, src, oob)

    def interpret(self, m, dst, src, idx, oob=None):
        super().interpret(m, dst, src, idx, oob, pending=True)


class GlobalToSharedAsync(AsyncLoad, GlobalToShared):
    name = "load_async_global_shared"

    def cuda(self, g, dst, src, idx, oob=None):
        chk = "true" if oob is not None else "false"
        return f"tk::load_async_gs({g(dst)}, {g(src)}, {tile_origin_c(g, idx, dst.type)}, {chk});"


class LoadAsyncWait(Op):
    name = "load_async_wait"
    prelude = _PRELUDE

    def check(self, n=0):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 7:
            fail(f"expected a Python int 0..7 (groups allowed to stay in flight), got {n!r}")

    def interpret(self, m, n=0):
        m.complete_async()  # n > 0: the interpreter conservatively completes every group

    def cuda(self, g, n=0):
        return f"tk::load_async_wait<{n}>();"


_WAIT = LoadAsyncWait()


def load_async_wait(n=0):
    """Wait until at most ``n`` of this warp's tk.load_async groups are in flight (interpreter: all complete)."""
    emit(_WAIT, n=n)


register_load(ST, GL, GlobalToShared())
register_store(GL, ST, SharedToGlobal())
register_async_load(ST, GL, GlobalToSharedAsync())

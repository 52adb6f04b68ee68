"""Vectors: register vectors <-> global, shared vectors <-> global (warp scope, incl. cp.async), register vectors <->
shared vectors.

A vector lies along the last dim of a global tensor: index ``(b, d, r, c)`` names row ``r`` (in elements) and
column block ``c`` in units of the vector length, so element ``i`` is ``[b, d, r, c * length + i]``. ``oob`` and
``clip`` work as for tiles. In CUDA each lane reads exactly the values it holds (``vec_idx``); on stores only one of
the lanes holding a value writes it (ortho: lanes with t == 0; align: lanes with g == 0). Shared vectors move in
16-byte chunks, lane i taking chunks i, i + 32, ...
"""
from .base import Op, GL, RV, SV, fail, kind, need_rv, same_shape
from .memory import register_load, register_store, register_async_load, tile_origin
from .mem_global_shared import AsyncLoad, _PRELUDE as _GS_PRELUDE

__all__ = []

_PRELUDE = _GS_PRELUDE + r"""  // (cp_async16 comes from there)
#ifndef PK_MEM_VECTORS
#define PK_MEM_VECTORS
namespace tk {
template<class D, class T> __device__ __forceinline__ void load_gv(D& d, const gl<T>& g, int b, int z, int r, int c0, bool check, float fill) {
  using L = typename D::layout; using U = typename D::dtype;
  const bool rin = b >= 0 && b < g.b && z >= 0 && z < g.d && r >= 0 && r < g.r;
  #pragma unroll
  for (int i = 0; i < D::chunks; i++)
  #pragma unroll
  for (int k = 0; k < D::per; k++) {
    const int c = c0 + i * 16 + vec_idx<L>(k);
    d.data[i][k] = round_to<U>((!check || (rin && c >= 0 && c < g.c)) ? to_float(*g.at(b, z, r, c)) : fill);
  }
}
// The lane that writes a register vector's values (each value is held by 4 or 8 lanes).
template<class L> __device__ __forceinline__ bool vec_owner() {
  if constexpr (same<L, ortho_l>::value) return (lane_id() & 3) == 0; else return lane_id() < 4;
}
template<class S, class T> __device__ __forceinline__ void store_vg(const gl<T>& g, const S& s, int b, int z, int r, int c0, bool check) {
  using L = typename S::layout;
  const bool rin = b >= 0 && b < g.b && z >= 0 && z < g.d && r >= 0 && r < g.r;
  if (!vec_owner<L>()) return;
  #pragma unroll
  for (int i = 0; i < S::chunks; i++)
  #pragma unroll
  for (int k = 0; k < S::per; k++) {
    const int c = c0 + i * 16 + vec_idx<L>(k);
    if (!check || (rin && c >= 0 && c < g.c)) *g.at(b, z, r, c) = from_float<T>(s.data[i][k]);
  }
}

template<class S, class T> __device__ __forceinline__ void load_gsv(const S& s, const gl<T>& g, int b, int z, int r, int c0, bool check, float fill) {
  using U = typename S::dtype;
  const bool rin = b >= 0 && b < g.b && z >= 0 && z < g.d && r >= 0 && r < g.r;
  __syncwarp();
  if constexpr (same<U, T>::value) {
    constexpr int E = 16 / (int)sizeof(T), N = S::length / E;
    for (int i = lane_id(); i < N; i += 32) {
      const int c = c0 + i * E;
      union { uint4 v; T e[E]; } u;
      if (!check || (rin && c >= 0 && c + E <= g.c)) {
        u.v = *(const uint4*)g.at(b, z, r, c);
      } else {
        #pragma unroll
        for (int e = 0; e < E; e++) u.e[e] = (rin && c + e >= 0 && c + e < g.c) ? *g.at(b, z, r, c + e) : from_float<T>(fill);
      }
      *(uint4*)sptr(s.p + i * E) = u.v;
    }
  } else {
    for (int i = lane_id(); i < S::length; i += 32) {
      const int c = c0 + i;
      *sptr(s.p + i) = from_float<U>((!check || (rin && c >= 0 && c < g.c)) ? to_float(*g.at(b, z, r, c)) : fill);
    }
  }
  __syncwarp();
}
template<class S, class T> __device__ __forceinline__ void store_svg(const gl<T>& g, const S& s, int b, int z, int r, int c0, bool check) {
  using U = typename S::dtype;
  const bool rin = b >= 0 && b < g.b && z >= 0 && z < g.d && r >= 0 && r < g.r;
  __syncwarp();
  if constexpr (same<U, T>::value) {
    constexpr int E = 16 / (int)sizeof(T), N = S::length / E;
    for (int i = lane_id(); i < N; i += 32) {
      const int c = c0 + i * E;
      union { uint4 v; T e[E]; } u;
      u.v = *(const uint4*)sptr(s.p + i * E);
      if (!check || (rin && c >= 0 && c + E <= g.c)) {
        *(uint4*)g.at(b, z, r, c) = u.v;
      } else if (rin) {
        #pragma unroll
        for (int e = 0; e < E; e++) if (c + e >= 0 && c + e < g.c) *g.at(b, z, r, c + e) = u.e[e];
      }
    }
  } else {
    for (int i = lane_id(); i < S::length; i += 32) {
      const int c = c0 + i;
      if (!check || (rin && c >= 0 && c < g.c)) *g.at(b, z, r, c) = from_float<T>(to_float(*sptr(s.p + i)));
    }
  }
}
template<class S, class T> __device__ __forceinline__ void load_async_gsv(const S& s, const gl<T>& g, int b, int z, int r, int c0, bool check) {
  constexpr int E = 16 / (int)sizeof(T), N = S::length / E;
  const bool rin = b >= 0 && b < g.b && z >= 0 && z < g.d && r >= 0 && r < g.r;
  __syncwarp();
  for (int i = lane_id(); i < N; i += 32) {
    const int c = c0 + i * E;
    int n = E;
    if (check) n = (rin && c >= 0) ? min(max(g.c - c, 0), E) : 0;
    cp_async16((unsigned)__cvta_generic_to_shared(s.p + i * E), n ? (const void*)g.at(b, z, r, c) : (const void*)g.ptr,
               n * (int)sizeof(T));
  }
  asm volatile("cp.async.commit_group;" ::: "memory");
}

template<class D, class S> __device__ __forceinline__ void load_svr(D& d, const S& s) {
  using L = typename D::layout; using U = typename D::dtype;
  if constexpr (same<L, align_l>::value && same<typename S::dtype, float>::value) {
    // align: values 2t, 2t+1 and 2t+8, 2t+9 of each 16 are two adjacent pairs, one 8-byte load each (half the
    // shared-memory instructions, which queue behind the wgmma operand reads)
    #pragma unroll
    for (int i = 0; i < D::chunks; i++)
    #pragma unroll
    for (int k = 0; k < 4; k += 2) {
      const float2 v = *(const float2*)sptr(s.p + i * 16 + vec_idx<L>(k));
      d.data[i][k] = round_to<U>(v.x);
      d.data[i][k + 1] = round_to<U>(v.y);
    }
  } else {
    #pragma unroll
    for (int i = 0; i < D::chunks; i++)
    #pragma unroll
    for (int k = 0; k < D::per; k++) d.data[i][k] = round_to<U>(to_float(*sptr(s.p + i * 16 + vec_idx<L>(k))));
  }
}
template<class S, class R> __device__ __forceinline__ void store_rsv(const S& s, const R& d) {
  using L = typename R::layout; using T = typename S::dtype;
  __syncwarp();
  if (vec_owner<L>()) {
    #pragma unroll
    for (int i = 0; i < R::chunks; i++)
    #pragma unroll
    for (int k = 0; k < R::per; k++) *sptr(s.p + i * 16 + vec_idx<L>(k)) = from_float<T>(d.data[i][k]);
  }
  __syncwarp();
}
}  // namespace tk
#endif
"""


def _need(x, cls, what):
    t = kind(x)
    if not isinstance(t, cls):
        fail(f"{what} must be a {_NAMES[cls]}, got {t}")
    return t


_NAMES = {GL: "global layout", SV: "shared vector", RV: "register vector"}


def _idx_c(g, idx, t):
    b, d, r, c = (g(i) for i in idx)
    return f"{b}, {d}, {r}, ({c}) * {t.length}"


def _load_c(fn, g, dst, src, idx, oob, fill=True):
    """The C++ call ``tk::fn(dst, src, index, check[, fill])`` of a global -> vector load."""
    from ..backend.cuda.codegen import expr
    chk = "true" if oob is not None else "false"
    return f"tk::{fn}({g(dst)}, {g(src)}, {_idx_c(g, idx, dst.type)}, {chk}" + (
        f", {expr(float(oob or 0.0))});" if fill else ");")


def _store_c(fn, g, dst, src, idx, clip):
    """The C++ call ``tk::fn(dst, src, index, clip)`` of a vector -> global store."""
    return f"tk::{fn}({g(dst)}, {g(src)}, {_idx_c(g, idx, src.type)}, {'true' if clip else 'false'});"


def _from_global(m, src, idx, t, oob):
    """(warp, the ``t.length`` values it reads from global at ``idx``) for every warp."""
    for w in m.warps():
        b, d, r, c = tile_origin(m, idx, w, t)
        yield w, m.global_read(src, b, d, r, c, 1, t.length, oob)[0]


def _to_global(m, dst, idx, t, clip, values):
    """Every warp ``w`` writes ``values(w)`` (``t.length`` values) to global at ``idx``."""
    for w in m.warps():
        b, d, r, c = tile_origin(m, idx, w, t)
        m.global_write(dst, b, d, r, c, values(w)[None], clip)


class GlobalToRV(Op):
    name = "load_global_rv"
    prelude = _PRELUDE

    def check(self, dst, src, idx, oob=None):
        need_rv(dst, "destination")
        _need(src, GL, "source")

    def interpret(self, m, dst, src, idx, oob=None):
        for w, v in _from_global(m, src, idx, dst.type, oob):
            m.write_warp(dst, w, v)

    def cuda(self, g, dst, src, idx, oob=None):
        return _load_c("load_gv", g, dst, src, idx, oob)


class RVToGlobal(Op):
    name = "store_rv_global"
    prelude = _PRELUDE

    def check(self, dst, src, idx, clip=False):
        need_rv(src, "source")
        _need(dst, GL, "destination")

    def interpret(self, m, dst, src, idx, clip=False):
        val = m.read(src)
        _to_global(m, dst, idx, src.type, clip, lambda w: val[w])

    def cuda(self, g, dst, src, idx, clip=False):
        return _store_c("store_vg", g, dst, src, idx, clip)


class GlobalToSV(Op):
    name = "load_global_sv"
    prelude = _PRELUDE

    def check(self, dst, src, idx, oob=None):
        _need(dst, SV, "destination")
        _need(src, GL, "source")

    def interpret(self, m, dst, src, idx, oob=None, pending=False):
        for w, v in _from_global(m, src, idx, dst.type, oob):
            m.smem_write(dst, w, v, pending=pending)

    def cuda(self, g, dst, src, idx, oob=None):
        return _load_c("load_gsv", g, dst, src, idx, oob)


class GlobalToSVAsync(AsyncLoad, GlobalToSV):
    name = "load_async_global_sv"

    def cuda(self, g, dst, src, idx, oob=None):
        return _load_c("load_async_gsv", g, dst, src, idx, oob, fill=False)


class SVToGlobal(Op):
    name = "store_sv_global"
    prelude = _PRELUDE

    def check(self, dst, src, idx, clip=False):
        _need(src, SV, "source")
        _need(dst, GL, "destination")

    def interpret(self, m, dst, src, idx, clip=False):
        _to_global(m, dst, idx, src.type, clip, lambda w: m.smem_read(src, w))

    def cuda(self, g, dst, src, idx, clip=False):
        return _store_c("store_svg", g, dst, src, idx, clip)


class SVToRV(Op):
    name = "load_sv_rv"
    prelude = _PRELUDE

    def check(self, dst, src):
        d, s = need_rv(dst, "destination"), _need(src, SV, "source")
        same_shape(d, s, "register vector and shared vector")

    def interpret(self, m, dst, src):
        for w in m.warps():
            m.write_warp(dst, w, m.smem_read(src, w))

    def cuda(self, g, dst, src):
        return f"tk::load_svr({g(dst)}, {g(src)});"


class RVToSV(Op):
    name = "store_rv_sv"
    prelude = _PRELUDE

    def check(self, dst, src):
        d, s = _need(dst, SV, "destination"), need_rv(src, "source")
        same_shape(d, s, "shared vector and register vector")

    def interpret(self, m, dst, src):
        val = m.read(src)
        for w in m.warps():
            m.smem_write(dst, w, val[w])

    def cuda(self, g, dst, src):
        return f"tk::store_rsv({g(dst)}, {g(src)});"


register_load(RV, GL, GlobalToRV())
register_store(GL, RV, RVToGlobal())
register_load(SV, GL, GlobalToSV())
register_store(GL, SV, SVToGlobal())
register_async_load(SV, GL, GlobalToSVAsync())
register_load(RV, SV, SVToRV())
register_store(SV, RV, RVToSV())

"""Global memory <-> register tiles. Each lane reads/writes the elements of its fragment directly (pairs along a row
are one 4- or 8-byte access in the row layout); ``oob`` / ``clip`` predicate each element against the tensor shape.

``tk.store_add(gl, rt, idx)`` adds an fp32 row-layout tile into fp32 global memory with reductions at the memory
(``red.global.add.v2.f32``: one 8-byte reduction per fragment pair on sm_90, two scalar ones before): concurrent
adds from many warps and blocks are safe, their order is not fixed. No staging through shared memory.
"""
from .base import Op, GL, RT, emit, fail, kind, need_rt
from .memory import global_index, register_load, register_store, tile_origin, tile_origin_c
from ..types import fp32

__all__ = ["store_add"]

_PRELUDE = r"""
namespace tk {
template<class D, class T> __device__ __forceinline__ void load(D& d, const gl<T>& g, int b, int z, int r0, int c0, bool check, float fill) {
  using L = typename D::layout; using U = typename D::dtype;
  const bool bz = b < g.b && z < g.d && b >= 0 && z >= 0;
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    const int r = r0 + i * 16 + frag_row<L>(k, 0), c = c0 + j * 16 + frag_col<L>(k, 0);
    const int r1 = r0 + i * 16 + frag_row<L>(k, 1), c1 = c0 + j * 16 + frag_col<L>(k, 1);
    if constexpr (same<L, row_l>::value && same<U, T>::value) {
      if (!check || (bz && r < g.r && c + 1 < g.c)) { d.data[i][j][k] = *(const packed_t<T>*)g.at(b, z, r, c); continue; }
    }
    const float x = (!check || (bz && r < g.r && c < g.c)) ? to_float(*g.at(b, z, r, c)) : fill;
    const float y = (!check || (bz && r1 < g.r && c1 < g.c)) ? to_float(*g.at(b, z, r1, c1)) : fill;
    d.data[i][j][k] = pack<U>(make_float2(x, y));
  }
}
template<class S, class T> __device__ __forceinline__ void store(const gl<T>& g, const S& s, int b, int z, int r0, int c0, bool check) {
  using L = typename S::layout; using U = typename S::dtype;
  const bool bz = b < g.b && z < g.d && b >= 0 && z >= 0;
  #pragma unroll
  for (int i = 0; i < S::height; i++)
  #pragma unroll
  for (int j = 0; j < S::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    const int r = r0 + i * 16 + frag_row<L>(k, 0), c = c0 + j * 16 + frag_col<L>(k, 0);
    const int r1 = r0 + i * 16 + frag_row<L>(k, 1), c1 = c0 + j * 16 + frag_col<L>(k, 1);
    if constexpr (same<L, row_l>::value && same<U, T>::value) {
      if (!check || (bz && r < g.r && c + 1 < g.c)) { *(packed_t<T>*)g.at(b, z, r, c) = s.data[i][j][k]; continue; }
    }
    const float2 v = unpack<U>(s.data[i][j][k]);
    if (!check || (bz && r < g.r && c < g.c)) *g.at(b, z, r, c) = from_float<T>(v.x);
    if (!check || (bz && r1 < g.r && c1 < g.c)) *g.at(b, z, r1, c1) = from_float<T>(v.y);
  }
}
template<class S> __device__ __forceinline__ void store_add(const gl<float>& g, const S& s, int b, int z, int r0, int c0, bool check) {
  const bool bz = b < g.b && z < g.d && b >= 0 && z >= 0;
  #pragma unroll
  for (int i = 0; i < S::height; i++)
  #pragma unroll
  for (int j = 0; j < S::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    const int r = r0 + i * 16 + frag_row<row_l>(k, 0), c = c0 + j * 16 + frag_col<row_l>(k, 0);  // c is even
    const float2 v = s.data[i][j][k];
    if (check && !(bz && r < g.r)) continue;
#if __CUDA_ARCH__ >= 900
    if (!check || c + 1 < g.c) {
      asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: "l"(g.at(b, z, r, c)), "f"(v.x), "f"(v.y) : "memory");
      continue;
    }
#endif
    if (!check || c < g.c) atomicAdd(g.at(b, z, r, c), v.x);
    if (!check || c + 1 < g.c) atomicAdd(g.at(b, z, r, c + 1), v.y);
  }
}
}  // namespace tk
"""


class GlobalToReg(Op):
    name = "load_global_reg"
    prelude = _PRELUDE

    def check(self, dst, src, idx, oob=None):
        need_rt(dst, "destination")
        if not isinstance(kind(src), GL):
            fail(f"source must be a global layout, got {kind(src)}")

    def interpret(self, m, dst, src, idx, oob=None):
        t = dst.type
        for w in m.warps():
            b, d, r0, c0 = tile_origin(m, idx, w, t)
            m.write_warp(dst, w, m.global_read(src, b, d, r0, c0, t.rows, t.cols, oob))

    def cuda(self, g, dst, src, idx, oob=None):
        from ..backend.cuda.codegen import expr
        chk = "true" if oob is not None else "false"
        return f"tk::load({g(dst)}, {g(src)}, {tile_origin_c(g, idx, dst.type)}, {chk}, {expr(float(oob or 0.0))});"


class RegToGlobal(Op):
    name = "store_reg_global"
    prelude = _PRELUDE

    def check(self, dst, src, idx, clip=False):
        need_rt(src, "source")
        if not isinstance(kind(dst), GL):
            fail(f"destination must be a global layout, got {kind(dst)}")

    def interpret(self, m, dst, src, idx, clip=False):
        t = src.type
        val = m.read(src)
        for w in m.warps():
            b, d, r0, c0 = tile_origin(m, idx, w, t)
            self.write(m, dst, b, d, r0, c0, val[w].to(t.dtype.torch).float(), clip)

    def write(self, m, dst, b, d, r0, c0, value, clip):
        m.global_write(dst, b, d, r0, c0, value, clip)

    def cuda(self, g, dst, src, idx, clip=False):
        return f"tk::store({g(dst)}, {g(src)}, {tile_origin_c(g, idx, src.type)}, {'true' if clip else 'false'});"


class StoreAdd(RegToGlobal):
    name = "store_add"

    def check(self, dst, src, idx, clip=False):
        t = need_rt(src, "source")
        if not isinstance(kind(dst), GL) or kind(dst).dtype != fp32:
            fail(f"store_add adds into an fp32 global layout, got {kind(dst)}")
        if t.dtype != fp32 or t.layout != "row":
            fail(f"store_add takes an fp32 row-layout register tile, got {t}")

    def write(self, m, dst, b, d, r0, c0, value, clip):
        old = m.global_read(dst, b, d, r0, c0, *value.shape, 0.0 if clip else None)
        m.global_write(dst, b, d, r0, c0, old + value, clip)

    def cuda(self, g, dst, src, idx, clip=False):
        return f"tk::store_add({g(dst)}, {g(src)}, {tile_origin_c(g, idx, src.type)}, {'true' if clip else 'false'});"


register_load(RT, GL, GlobalToReg())
register_store(GL, RT, RegToGlobal())
_STORE_ADD = StoreAdd()


def store_add(dst, src, idx, *, clip=False):
    """dst[idx tile] += src: an fp32 register tile added into an fp32 global layout by memory-side reductions
    (safe under concurrent adds; the order of additions is not fixed). ``clip`` drops elements outside ``dst``."""
    emit(_STORE_ADD, dst, src, global_index(idx), clip=clip)

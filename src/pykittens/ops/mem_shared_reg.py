"""Shared tiles <-> register tiles: ``tk.load(rt, st)`` and ``tk.store(st, rt)`` (warp scope, same shape).

16-bit tiles of one dtype move one 16x16 subtile per ``ldmatrix.x4`` (``stmatrix.x4`` on sm_90; sm_80 falls back to
32-bit / 16-bit shared stores). Lane l supplies the address of one 8-element row of one 8x8 matrix (lanes 8m..8m+7
for matrix m); matrix m lands in fragment register m:

* row layout (no transpose): register k = rows 8*(k%2).., cols 8*(k//2)..  ->  lane l: row l%16, col 8*(l//16)
* col layout (``.trans``):    register k = rows 8*(k//2).., cols 8*(k%2)..  ->  lane l: row 8*(l//16) + l%8,
  col 8*((l//8)%2); the transpose hands each lane the column pair (2t, 2t+1) of column g, as the col fragment needs.

Each row address goes through the tile's swizzle (8 elements = 16 bytes stay contiguous). fp32 tiles and transfers
that convert dtypes use plain per-element shared accesses through the swizzle.
"""
from .base import Op, RT, ST, fail, kind, need_rt, same_shape
from .memory import register_load, register_store
from .mem_global_shared import SMEM_PRELUDE

__all__ = []

_PRELUDE = SMEM_PRELUDE + r"""
#ifndef PK_MEM_SHARED_REG
#define PK_MEM_SHARED_REG
namespace tk {
__device__ __forceinline__ void ldsm_x4(packed_t<bf16>* d, unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(addr) : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(packed_t<bf16>* d, unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(addr) : "memory");
}
#if __CUDA_ARCH__ >= 900
__device__ __forceinline__ void stsm_x4(unsigned addr, const packed_t<bf16>* s) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};"
               :: "r"(addr), "r"(s[0]), "r"(s[1]), "r"(s[2]), "r"(s[3]) : "memory");
}
__device__ __forceinline__ void stsm_x4_trans(unsigned addr, const packed_t<bf16>* s) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};"
               :: "r"(addr), "r"(s[0]), "r"(s[1]), "r"(s[2]), "r"(s[3]) : "memory");
}
#endif
// (row, col) inside a 16x16 subtile of the 8-element row whose address this lane gives to ldmatrix/stmatrix.
template<class L> __device__ __forceinline__ int ldsm_row() {
  const int l = lane_id();
  if constexpr (same<L, row_l>::value) return l & 15; else return ((l >> 4) << 3) + (l & 7);
}
template<class L> __device__ __forceinline__ int ldsm_col() {
  const int l = lane_id();
  if constexpr (same<L, row_l>::value) return (l >> 4) << 3; else return ((l >> 3) & 1) << 3;
}

// r0: first row of the shared tile to read (warpgroup ops give each warp its own 16-row slice)
template<class D, class S> __device__ __forceinline__ void load_sr(D& d, const S& s, int r0 = 0) {
  using L = typename D::layout; using U = typename D::dtype; using T = typename S::dtype;
  if constexpr (same<U, T>::value && sizeof(T) == 2) {
    const int lr = ldsm_row<L>(), lc = ldsm_col<L>();
    #pragma unroll
    for (int i = 0; i < D::height; i++)
    #pragma unroll
    for (int j = 0; j < D::width; j++) {
      const unsigned a = s.saddr(r0 + i * 16 + lr, j * 16 + lc);
      if constexpr (same<L, row_l>::value) ldsm_x4(d.data[i][j], a); else ldsm_x4_trans(d.data[i][j], a);
    }
  } else {
    #pragma unroll
    for (int i = 0; i < D::height; i++)
    #pragma unroll
    for (int j = 0; j < D::width; j++)
    #pragma unroll
    for (int k = 0; k < 4; k++) {
      const int r = r0 + i * 16 + frag_row<L>(k, 0), c = j * 16 + frag_col<L>(k, 0);
      const int r1 = r0 + i * 16 + frag_row<L>(k, 1), c1 = j * 16 + frag_col<L>(k, 1);
      if constexpr (same<U, T>::value && same<L, row_l>::value) {  // fp32 pair: one 8-byte access
        d.data[i][j][k] = *(const packed_t<T>*)sptr(s, r, c);
      } else {
        d.data[i][j][k] = pack<U>(make_float2(to_float(*sptr(s, r, c)), to_float(*sptr(s, r1, c1))));
      }
    }
  }
}

template<class S, class R> __device__ __forceinline__ void store_rs(const S& s, const R& d, int r0 = 0) {
  using L = typename R::layout; using U = typename R::dtype; using T = typename S::dtype;
  __syncwarp();  // earlier reads of this tile by other lanes are done before it is overwritten
#if __CUDA_ARCH__ >= 900
  if constexpr (same<U, T>::value && sizeof(T) == 2) {
    const int lr = ldsm_row<L>(), lc = ldsm_col<L>();
    #pragma unroll
    for (int i = 0; i < R::height; i++)
    #pragma unroll
    for (int j = 0; j < R::width; j++) {
      const unsigned a = s.saddr(r0 + i * 16 + lr, j * 16 + lc);
      if constexpr (same<L, row_l>::value) stsm_x4(a, d.data[i][j]); else stsm_x4_trans(a, d.data[i][j]);
    }
  } else
#endif
  {
    #pragma unroll
    for (int i = 0; i < R::height; i++)
    #pragma unroll
    for (int j = 0; j < R::width; j++)
    #pragma unroll
    for (int k = 0; k < 4; k++) {
      const int r = r0 + i * 16 + frag_row<L>(k, 0), c = j * 16 + frag_col<L>(k, 0);
      const int r1 = r0 + i * 16 + frag_row<L>(k, 1), c1 = j * 16 + frag_col<L>(k, 1);
      if constexpr (same<U, T>::value && same<L, row_l>::value) {  // the pair is adjacent: one 4- or 8-byte store
        *(packed_t<T>*)sptr(s, r, c) = d.data[i][j][k];
      } else if constexpr (same<U, T>::value && sizeof(T) == 2) {  // col layout: the pair runs down a column
        const unsigned v = d.data[i][j][k];
        sptr(s, r, c)->x = (unsigned short)(v & 0xffffu);
        sptr(s, r1, c1)->x = (unsigned short)(v >> 16);
      } else {
        const float2 v = unpack<U>(d.data[i][j][k]);
        *sptr(s, r, c) = from_float<T>(v.x);
        *sptr(s, r1, c1) = from_float<T>(v.y);
      }
    }
  }
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // make these generic-proxy writes visible to the async proxy (wgmma, TMA store) after the next barrier
#endif
  __syncwarp();  // the tile is complete for every lane of the warp
}
}  // namespace tk
#endif
"""


def _need_st(x, what):
    t = kind(x)
    if not isinstance(t, ST):
        fail(f"{what} must be a shared tile, got {t}")
    return t


class SharedToReg(Op):
    name = "load_shared_reg"
    prelude = _PRELUDE

    def check(self, dst, src):
        d, s = need_rt(dst, "destination"), _need_st(src, "source")
        same_shape(d, s, "register tile and shared tile")

    def interpret(self, m, dst, src):
        for w in m.warps():
            m.write_warp(dst, w, m.smem_read(src, w))

    def cuda(self, g, dst, src):
        return f"tk::load_sr({g(dst)}, {g(src)});"


class RegToShared(Op):
    name = "store_reg_shared"
    prelude = _PRELUDE

    def check(self, dst, src):
        d, s = _need_st(dst, "destination"), need_rt(src, "source")
        same_shape(d, s, "shared tile and register tile")

    def interpret(self, m, dst, src):
        val = m.read(src)
        for w in m.warps():
            m.smem_write(dst, w, val[w])

    def cuda(self, g, dst, src):
        return f"tk::store_rs({g(dst)}, {g(src)});"


register_load(RT, ST, SharedToReg())
register_store(ST, RT, RegToShared())

"""Register-tile layout changes: ``swap_layout`` (same values, row <-> col layout) and ``transpose`` (dst = src^T,
same layout). Converting dtypes between tiles of one layout is ``tk.copy`` (ops/maps.py).

Both are one register permutation per 16x16 subtile. Row-layout register k holds (g + 8(k%2), 2t + 8(k/2) + e) of a
subtile, i.e. the 8x8 quadrant (k%2, k/2) with lane (g, t) holding its local (g, 2t+e); col-layout register k holds
the quadrant (k/2, k%2) with lane (g, t) holding its local (2t+e, g). So a register of the other layout covering the
same quadrant is register ``PERM[k]`` (1 and 2 swap), and inside the quadrant the values are 8x8-transposed across
lanes: one ``movmatrix.trans`` for 16-bit pairs, two ``shfl.sync`` for fp32 pairs.

Transpose needs nothing more: the registers of a row-layout R x C tile, read with the subtile grid transposed, *are*
a col-layout C x R tile of src^T (and the other way round). So transpose = that reinterpretation + swap_layout:
``dst[j][i][k] = T8(src[i][j][PERM[k]])`` where swap_layout is ``dst[i][j][k] = T8(src[i][j][PERM[k]])``.
"""
from .base import Op, emit, fail, need_rt

PERM = (0, 2, 1, 3)  # register k of the result subtile <- register PERM[k] of the source subtile, 8x8-transposed

# fp32 8x8 transpose with two shuffles (C++ and Python expressions at once: the tests evaluate them lane by lane).
# Lane (g, t) holds M(g, 2t), M(g, 2t+1) and needs M(2t, g), M(2t+1, g), both of half g%2 from lanes 4(2t+e) + g/2.
# In round r the lane fetches its element e = (g&1)^r; then every source lane is read by exactly one lane per round
# and the half it must send, (its own g)&1 ^ r, is known to it.
SHFL_SRC = ("4 * (2 * t + (g & 1)) + (g >> 1)",  # round 0: fetches element e = g&1
            "4 * (2 * t + ((g & 1) ^ 1)) + (g >> 1)")  # round 1: fetches element e = (g&1)^1
# what a lane sends in round r: its .y (second of the pair) when SEND_Y[r] is true
SEND_Y = ("(g & 1) == 1", "(g & 1) == 0")

PRELUDE = r"""
namespace tk {
// 8x8 transpose of the 16-bit pairs held as (row g, cols 2t, 2t+1) by lane 4g + t.
__device__ __forceinline__ unsigned transpose8(unsigned x) {
  unsigned r; asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %%0, %%1;" : "=r"(r) : "r"(x)); return r;
}
__device__ __forceinline__ float shfl_idx(float v, int src) {
  float r; asm volatile("shfl.sync.idx.b32 %%0, %%1, %%2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(src)); return r;
}
// The same for fp32 pairs: round r fetches element (g&1)^r of the wanted pair; each source sends the half asked of it.
__device__ __forceinline__ float2 transpose8(float2 v) {
  const int g = lane_id() >> 2, t = lane_id() & 3;
  const float r0 = shfl_idx((%(Y0)s) ? v.y : v.x, %(S0)s);
  const float r1 = shfl_idx((%(Y1)s) ? v.y : v.x, %(S1)s);
  return (g & 1) ? make_float2(r1, r0) : make_float2(r0, r1);
}
// Tr = false: d = s in the other layout. Tr = true: d = s^T in the same layout. d and s must not alias.
template<bool Tr, class D, class S> __device__ __forceinline__ void swap_subtiles(D& d, const S& s) {
  #pragma unroll
  for (int i = 0; i < S::height; i++)
  #pragma unroll
  for (int j = 0; j < S::width; j++) {
    packed_t<typename D::dtype>* o;
    if constexpr (Tr) o = d.data[j][i]; else o = d.data[i][j];
%(MOVES)s
  }
}
}  // namespace tk
""" % {"Y0": SEND_Y[0], "Y1": SEND_Y[1], "S0": SHFL_SRC[0], "S1": SHFL_SRC[1],
       "MOVES": "\n".join(f"    o[{k}] = transpose8(s.data[i][j][{PERM[k]}]);" for k in range(4))}


class SwapLayout(Op):
    name = "swap_layout"
    prelude = PRELUDE

    def check(self, dst, src):
        d, s = need_rt(dst, "swap_layout: dst"), need_rt(src, "swap_layout: src")
        if d.dtype != s.dtype:
            fail(f"swap_layout: dst and src must have the same dtype: expected {s.dtype}, got {d.dtype} "
                 f"(use tk.copy to convert dtypes)")
        if d.shape != s.shape:
            fail(f"swap_layout: dst and src must have the same shape: expected {s.rows}x{s.cols}, got "
                 f"{d.rows}x{d.cols} (use tk.transpose to transpose)")
        if d.layout == s.layout:
            fail(f"swap_layout: dst must have the opposite layout of src: expected "
                 f"{'col' if s.layout == 'row' else 'row'}, got {d.layout} (use tk.copy for a same-layout copy)")

    def interpret(self, m, dst, src):
        m.write(dst, m.read(src))

    def cuda(self, g, dst, src):
        return f"tk::swap_subtiles<false>({g(dst)}, {g(src)});"


class Transpose(Op):
    name = "transpose"
    prelude = PRELUDE

    def check(self, dst, src):
        d, s = need_rt(dst, "transpose: dst"), need_rt(src, "transpose: src")
        if dst is src:
            fail("transpose: dst and src must be different tiles (an in-place transpose is not supported)")
        if d.dtype != s.dtype:
            fail(f"transpose: dst and src must have the same dtype: expected {s.dtype}, got {d.dtype} "
                 f"(use tk.copy to convert dtypes)")
        if d.layout != s.layout:
            fail(f"transpose: dst must have the layout of src: expected {s.layout}, got {d.layout} "
                 f"(use tk.swap_layout to change layouts)")
        if d.shape != (s.cols, s.rows):
            fail(f"transpose: dst must be src's shape transposed: expected {s.cols}x{s.rows}, got {d.rows}x{d.cols}")

    def interpret(self, m, dst, src):
        m.write(dst, m.read(src).transpose(-1, -2))

    def cuda(self, g, dst, src):
        return f"tk::swap_subtiles<true>({g(dst)}, {g(src)});"


_swap, _transpose = SwapLayout(), Transpose()


def swap_layout(dst, src):
    """dst = src in the other layout (row <-> col); same dtype and shape."""
    emit(_swap, dst, src)


def transpose(dst, src):
    """dst = src^T in the same layout (dst is C x R). Warning: dst and src must be different tiles."""
    emit(_transpose, dst, src)


__all__ = ["swap_layout", "transpose"]

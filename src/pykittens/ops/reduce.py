"""Reductions of a register tile to a vector: ``row_max/row_min/row_sum`` (one value per row, a ``col_vec`` of the
tile) and ``col_max/col_min/col_sum`` (one value per column, a ``row_vec``), optionally combined with an accumulator
vector: ``row_max(dst, src, acc)`` is ``dst = max(acc, max over each row of src)``. ``vec_max/vec_min`` reduce a
register vector to one scalar per warp (a ``tk.var``), e.g. for a warp-uniform branch.

Math runs in fp32 and the result is rounded to the vector's dtype once. On CUDA each lane first reduces the values it
holds, then warp shuffles combine the lanes that share a row (or column). In both tile layouts the coordinate that a
lane's ``g = lane / 4`` picks is ``g + 8 * (k & 1)`` and the one ``t = lane % 4`` picks is ``2t + 8 * (k >> 1) + e``,
so: an ortho result vector (indexed by ``g``) takes slot ``k & 1`` and is combined over ``t`` (shuffle xor 1, 2);
an align result vector (indexed by ``t``) takes slot ``2 * (k >> 1) + e`` and is combined over ``g`` (xor 4, 8, 16).
"""
import torch

from ..ir import Sym
from ..trace import builder
from ..types import f32
from .base import Op, RV, emit, fail, kind, need_rt, need_rv

__all__ = ["row_max", "row_min", "row_sum", "col_max", "col_min", "col_sum", "vec_max", "vec_min"]

_PRELUDE = r"""
namespace tk {
struct red_max { __device__ static __forceinline__ float id() { return -__int_as_float(0x7f800000); }
                 __device__ static __forceinline__ float f(float a, float b) { return fmaxf(a, b); } };
struct red_min { __device__ static __forceinline__ float id() { return __int_as_float(0x7f800000); }
                 __device__ static __forceinline__ float f(float a, float b) { return fminf(a, b); } };
struct red_sum { __device__ static __forceinline__ float id() { return 0.f; }
                 __device__ static __forceinline__ float f(float a, float b) { return a + b; } };
// ROWS: one value per row of s (d is s's col_vec), else one per column (d is s's row_vec). ACC: combine with a.
template<class Op, bool ROWS, bool ACC, class D, class S, class A>
__device__ __forceinline__ void reduce(D& d, const S& s, const A& a) {
  constexpr bool ORTHO = same<typename D::layout, ortho_l>::value;
  static_assert(D::length == (ROWS ? S::rows : S::cols), "reduce: vector length does not match the tile");
  static_assert(ORTHO == (ROWS == same<typename S::layout, row_l>::value), "reduce: vector layout does not match the tile");
  #pragma unroll
  for (int c = 0; c < D::chunks; c++) {
    float r[D::per];
    #pragma unroll
    for (int m = 0; m < D::per; m++) r[m] = Op::id();
    #pragma unroll
    for (int o = 0; o < (ROWS ? S::width : S::height); o++)
    #pragma unroll
    for (int k = 0; k < 4; k++) {
      const float2 v = unpack<typename S::dtype>(ROWS ? s.data[c][o][k] : s.data[o][c][k]);
      if constexpr (ORTHO) {
        r[k & 1] = Op::f(r[k & 1], Op::f(v.x, v.y));
      } else {
        r[2 * (k >> 1)] = Op::f(r[2 * (k >> 1)], v.x);
        r[2 * (k >> 1) + 1] = Op::f(r[2 * (k >> 1) + 1], v.y);
      }
    }
    #pragma unroll
    for (int m = 0; m < D::per; m++) {
      if constexpr (ORTHO) {
        r[m] = Op::f(r[m], __shfl_xor_sync(0xffffffffu, r[m], 1));
        r[m] = Op::f(r[m], __shfl_xor_sync(0xffffffffu, r[m], 2));
      } else {
        r[m] = Op::f(r[m], __shfl_xor_sync(0xffffffffu, r[m], 4));
        r[m] = Op::f(r[m], __shfl_xor_sync(0xffffffffu, r[m], 8));
        r[m] = Op::f(r[m], __shfl_xor_sync(0xffffffffu, r[m], 16));
      }
      if constexpr (ACC) r[m] = Op::f(a.data[c][m], r[m]);
      d.data[c][m] = round_to<typename D::dtype>(r[m]);
    }
  }
}
template<class Op, bool ROWS, class D, class S> __device__ __forceinline__ void reduce(D& d, const S& s) {
  reduce<Op, ROWS, false>(d, s, d);
}
// every value of a register vector -> one float, the same in all lanes (max/min only: lanes hold copies)
template<class Op, class V> __device__ __forceinline__ float reduce_all(const V& v) {
  float r = Op::id();
  #pragma unroll
  for (int c = 0; c < V::chunks; c++)
  #pragma unroll
  for (int m = 0; m < V::per; m++) r = Op::f(r, to_float(v.data[c][m]));
  #pragma unroll
  for (int o = 1; o < 32; o <<= 1) r = Op::f(r, __shfl_xor_sync(0xffffffffu, r, o));
  return r;
}
}  // namespace tk
"""

_TORCH = {"max": lambda x, dim: x.amax(dim), "min": lambda x, dim: x.amin(dim), "sum": lambda x, dim: x.sum(dim)}
_COMBINE = {"max": torch.maximum, "min": torch.minimum, "sum": torch.add}


class Reduce(Op):
    prelude = _PRELUDE

    def __init__(self, axis, fn):
        self.axis, self.fn = axis, fn  # axis 'row': one value per row; 'col': one value per column
        self.name = f"{axis}_{fn}"

    def _want(self, s: "RT", dtype) -> RV:
        return s.col_vec(dtype) if self.axis == "row" else s.row_vec(dtype)

    def check(self, dst, src, acc=None):
        s = need_rt(src, "source")
        d = need_rv(dst, "destination")
        per = "row" if self.axis == "row" else "column"
        want = self._want(s, d.dtype)
        if (d.length, d.layout) != (want.length, want.layout):
            fail(f"{self.name}: destination must be a vector with one value per {per} of {s}: expected {want}, "
                 f"got {d} (declare it with tk.{'col' if self.axis == 'row' else 'row'}_vec(tile))")
        if acc is not None:
            a = kind(acc)
            want_a = self._want(s, a.dtype) if isinstance(a, RV) else want
            if not isinstance(a, RV) or (a.length, a.layout) != (want_a.length, want_a.layout):
                fail(f"{self.name}: accumulator must be a vector like the destination: expected {want_a}, got {a}")

    def interpret(self, m, dst, src, acc=None):
        r = _TORCH[self.fn](m.read(src), 2 if self.axis == "row" else 1)
        if acc is not None:
            r = _COMBINE[self.fn](m.read(acc), r)
        m.write(dst, r)

    def cuda(self, g, dst, src, acc=None):
        tmpl = f"tk::red_{self.fn}, {'true' if self.axis == 'row' else 'false'}"
        if acc is None:
            return f"tk::reduce<{tmpl}>({g(dst)}, {g(src)});"
        return f"tk::reduce<{tmpl}, true>({g(dst)}, {g(src)}, {g(acc)});"


class VecReduce(Op):
    """dst (a float ``tk.var``) = max or min of every value of a register vector: one value per warp."""
    prelude = _PRELUDE

    def __init__(self, fn):
        self.fn, self.name = fn, f"vec_{fn}"

    def check(self, dst, src):
        need_rv(src, "source")
        if not isinstance(dst, Sym) or dst.name not in builder().mutable or dst.type != f32:
            fail(f"{self.name}: the destination must be a float scalar made by tk.var(0.0), got {dst!r}")

    def interpret(self, m, dst, src):
        m.set_scalar(dst, _TORCH[self.fn](m.read(src), 1))

    def cuda(self, g, dst, src):
        return f"{g(dst)} = tk::reduce_all<tk::red_{self.fn}>({g(src)});"


def vec_max(dst, src):
    """dst (a float tk.var) = the largest value of the register vector src (the same in every lane of a warp)."""
    emit(_VEC["max"], dst, src)


def vec_min(dst, src):
    """dst (a float tk.var) = the smallest value of the register vector src (the same in every lane of a warp)."""
    emit(_VEC["min"], dst, src)


_VEC = {f: VecReduce(f) for f in ("max", "min")}


def _opt(acc):
    return () if acc is None else (acc,)


_OPS = {(a, f): Reduce(a, f) for a in ("row", "col") for f in ("max", "min", "sum")}


def row_max(dst, src, acc=None):
    """dst[r] = max over row r of src (and of acc[r] if given)."""
    emit(_OPS["row", "max"], dst, src, *_opt(acc))


def row_min(dst, src, acc=None):
    """dst[r] = min over row r of src (and of acc[r] if given)."""
    emit(_OPS["row", "min"], dst, src, *_opt(acc))


def row_sum(dst, src, acc=None):
    """dst[r] = sum of row r of src (plus acc[r] if given)."""
    emit(_OPS["row", "sum"], dst, src, *_opt(acc))


def col_max(dst, src, acc=None):
    """dst[c] = max over column c of src (and of acc[c] if given)."""
    emit(_OPS["col", "max"], dst, src, *_opt(acc))


def col_min(dst, src, acc=None):
    """dst[c] = min over column c of src (and of acc[c] if given)."""
    emit(_OPS["col", "min"], dst, src, *_opt(acc))


def col_sum(dst, src, acc=None):
    """dst[c] = sum of column c of src (plus acc[c] if given)."""
    emit(_OPS["col", "sum"], dst, src, *_opt(acc))

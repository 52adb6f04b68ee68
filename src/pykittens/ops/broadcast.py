"""Broadcasts of a vector across a register tile.

Row broadcasts (``sub_row``, ``mul_row``, ``div_row``, ``add_row``, ``broadcast_row``) take a ``col_vec`` of the tile,
one value per row, applied across each row; column broadcasts (``*_col``) take a ``row_vec``, one value per column.
Math runs in fp32 and is rounded to the destination's dtype. On CUDA no lane talks to another: the vector layouts
line up with the fragment map (ortho vector: slot ``k & 1`` of the lane; align vector: slots ``2 * (k >> 1) + e``).
"""
import torch

from .base import Op, RT, RV, emit, fail, kind, need_rt, same_shape, same_layout

__all__ = ["sub_row", "mul_row", "div_row", "add_row", "sub_col", "mul_col", "div_col", "add_col",
           "broadcast_row", "broadcast_col"]

_PRELUDE = r"""
namespace tk {
// The two vector values lining up with pair k of a tile subtile (chunk c of vector v).
template<class V> __device__ __forceinline__ float2 bcast_pair(const V& v, int c, int k) {
  if constexpr (same<typename V::layout, ortho_l>::value) return make_float2(v.data[c][k & 1], v.data[c][k & 1]);
  else return make_float2(v.data[c][2 * (k >> 1)], v.data[c][2 * (k >> 1) + 1]);
}
// d[r][c] = f(s[r][c], v[r]) (ROWS) or f(s[r][c], v[c]).
template<bool ROWS, class D, class S, class V, class F>
__device__ __forceinline__ void bcast(D& d, const S& s, const V& v, F f) {
  static_assert(V::length == (ROWS ? D::rows : D::cols), "broadcast: vector length does not match the tile");
  static_assert(same<typename V::layout, ortho_l>::value == (ROWS == same<typename D::layout, row_l>::value),
                "broadcast: vector layout does not match the tile");
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    const float2 x = unpack<typename S::dtype>(s.data[i][j][k]), y = bcast_pair(v, ROWS ? i : j, k);
    d.data[i][j][k] = pack<typename D::dtype>(make_float2(f(x.x, y.x), f(x.y, y.y)));
  }
}
// d[r][c] = v[r] (ROWS) or v[c].
template<bool ROWS, class D, class V> __device__ __forceinline__ void bcast_fill(D& d, const V& v) {
  static_assert(V::length == (ROWS ? D::rows : D::cols), "broadcast: vector length does not match the tile");
  static_assert(same<typename V::layout, ortho_l>::value == (ROWS == same<typename D::layout, row_l>::value),
                "broadcast: vector layout does not match the tile");
  #pragma unroll
  for (int i = 0; i < D::height; i++)
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) d.data[i][j][k] = pack<typename D::dtype>(bcast_pair(v, ROWS ? i : j, k));
}
}  // namespace tk
"""

_FNS = {
    # name: (torch fn on fp32, C++ expression of _x (tile) and _y (vector))
    "sub": (torch.sub, "_x - _y"),
    "mul": (torch.mul, "_x * _y"),
    "div": (torch.div, "_x / _y"),
    "add": (torch.add, "_x + _y"),
}


def _want(t: RT, axis: str, dtype):
    return t.col_vec(dtype) if axis == "row" else t.row_vec(dtype)


def _check_vec(name, t: RT, vec, axis):
    v = kind(vec)
    want = _want(t, axis, getattr(v, "dtype", None))
    per = "row" if axis == "row" else "column"
    if not (isinstance(v, RV) and (v.length, v.layout) == (want.length, want.layout)):
        fail(f"{name}: the vector must hold one value per {per} of {t}: expected {want}, got {v} "
             f"(declare it with tk.{'col' if axis == 'row' else 'row'}_vec(tile))")


def _unsq(v, axis):
    return v[:, :, None] if axis == "row" else v[:, None, :]


class Broadcast(Op):
    """dst = f(src, vec broadcast along ``axis``)."""
    prelude = _PRELUDE

    def __init__(self, fn, axis):
        self.fn, self.axis = fn, axis
        self.name = f"{fn}_{axis}"
        self.torch_fn, self.c_expr = _FNS[fn]

    def check(self, dst, src, vec):
        d, s = need_rt(dst, "destination"), need_rt(src, "source")
        same_shape(d, s, "destination and source")
        same_layout(d, s, "destination and source")
        _check_vec(self.name, s, vec, self.axis)

    def interpret(self, m, dst, src, vec):
        m.write(dst, self.torch_fn(m.read(src), _unsq(m.read(vec), self.axis)))

    def cuda(self, g, dst, src, vec):
        rows = "true" if self.axis == "row" else "false"
        return (f"tk::bcast<{rows}>({g(dst)}, {g(src)}, {g(vec)}, "
                f"[](float _x, float _y) {{ return {self.c_expr}; }});")


class BroadcastFill(Op):
    """dst[r][c] = vec[r] (axis 'row') or vec[c] (axis 'col')."""
    prelude = _PRELUDE

    def __init__(self, axis):
        self.axis = axis
        self.name = f"broadcast_{axis}"

    def check(self, dst, vec):
        _check_vec(self.name, need_rt(dst, "destination"), vec, self.axis)

    def interpret(self, m, dst, vec):
        m.write(dst, _unsq(m.read(vec), self.axis))

    def cuda(self, g, dst, vec):
        return f"tk::bcast_fill<{'true' if self.axis == 'row' else 'false'}>({g(dst)}, {g(vec)});"


_B = {(f, a): Broadcast(f, a) for f in _FNS for a in ("row", "col")}
_F = {a: BroadcastFill(a) for a in ("row", "col")}


def sub_row(dst, src, vec): "dst[r][c] = src[r][c] - vec[r] (vec: col_vec of src)"; emit(_B["sub", "row"], dst, src, vec)
def mul_row(dst, src, vec): "dst[r][c] = src[r][c] * vec[r] (vec: col_vec of src)"; emit(_B["mul", "row"], dst, src, vec)
def div_row(dst, src, vec): "dst[r][c] = src[r][c] / vec[r] (vec: col_vec of src)"; emit(_B["div", "row"], dst, src, vec)
def add_row(dst, src, vec): "dst[r][c] = src[r][c] + vec[r] (vec: col_vec of src)"; emit(_B["add", "row"], dst, src, vec)
def sub_col(dst, src, vec): "dst[r][c] = src[r][c] - vec[c] (vec: row_vec of src)"; emit(_B["sub", "col"], dst, src, vec)
def mul_col(dst, src, vec): "dst[r][c] = src[r][c] * vec[c] (vec: row_vec of src)"; emit(_B["mul", "col"], dst, src, vec)
def div_col(dst, src, vec): "dst[r][c] = src[r][c] / vec[c] (vec: row_vec of src)"; emit(_B["div", "col"], dst, src, vec)
def add_col(dst, src, vec): "dst[r][c] = src[r][c] + vec[c] (vec: row_vec of src)"; emit(_B["add", "col"], dst, src, vec)
def broadcast_row(dst, vec): "dst[r][c] = vec[r] (vec: col_vec of dst)"; emit(_F["row"], dst, vec)
def broadcast_col(dst, vec): "dst[r][c] = vec[c] (vec: row_vec of dst)"; emit(_F["col"], dst, vec)

"""Masks on register tiles: ``tril``, ``triu``, ``make_causal``, ``right_fill``, ``lower_fill`` replace the elements
outside a region with ``fill`` (e.g. ``-inf`` before a softmax).

Positions are inside the tile (row 0, column 0 is its top-left element). The bound (``diagonal``, ``col``, ``row``)
may be a Python int or a device scalar, which may differ per warp (e.g. ``tk.warp_id() * 16 - 5``); ``fill`` is a
Python number. The kept elements are copied (converted to the destination's dtype).
"""
import torch

from .. import ir
from ..types import i32
from .base import Op, emit, fail, kind, need_rt, same_shape, same_layout

__all__ = ["tril", "triu", "make_causal", "right_fill", "lower_fill"]

_PRELUDE = r"""
namespace tk {
// MODE 0 (tril): keep c - r <= v; 1 (triu): keep c - r >= v; 2 (right_fill): keep c < v; 3 (lower_fill): keep r < v.
template<int MODE, class D, class S> __device__ __forceinline__ void mask(D& d, const S& s, int v, float fill) {
  static_assert(D::rows == S::rows && D::cols == S::cols && same<typename D::layout, typename S::layout>::value,
                "mask: destination and source must have the same shape and layout");
  map_rc(d, s, [=](float x, int r, int c) {
    bool keep;
    if constexpr (MODE == 0) keep = c - r <= v;
    else if constexpr (MODE == 1) keep = c - r >= v;
    else if constexpr (MODE == 2) keep = c < v;
    else keep = r < v;
    return keep ? x : fill;
  });
}
}  // namespace tk
"""

_MODES = {"tril": 0, "triu": 1, "right_fill": 2, "lower_fill": 3}


class Mask(Op):
    prelude = _PRELUDE

    def __init__(self, name, bound):
        self.name, self.bound = name, bound  # bound: the argument's name, for messages

    def check(self, dst, src, v, fill):
        d, s = need_rt(dst, "destination"), need_rt(src, "source")
        same_shape(d, s, "destination and source")
        same_layout(d, s, "destination and source")
        if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, ir.Expr) and v.type == i32)):
            what = f"a {v.type} device scalar" if isinstance(v, ir.Expr) else repr(v)
            fail(f"{self.name}: {self.bound} must be an int (Python int or integer device scalar), got {what}")
        if isinstance(fill, bool) or not isinstance(fill, (int, float)):
            fail(f"{self.name}: fill must be a Python number, got {fill!r}")

    def interpret(self, m, dst, src, v, fill):
        x = m.read(src)
        W, R, C = x.shape
        bound = torch.zeros(W, dtype=torch.int64)
        for w in m.warps():
            bound[w] = int(m.scalar(v, w))
        b = bound.view(W, 1, 1)
        r = torch.arange(R).view(1, R, 1)
        c = torch.arange(C).view(1, 1, C)
        keep = {"tril": lambda: c - r <= b, "triu": lambda: c - r >= b,
                "right_fill": lambda: (c < b).expand(W, R, C), "lower_fill": lambda: (r < b).expand(W, R, C)}[self.name]()
        m.write(dst, torch.where(keep, x, torch.tensor(float(fill))))

    def cuda(self, g, dst, src, v, fill):
        from ..backend.cuda.codegen import expr
        return f"tk::mask<{_MODES[self.name]}>({g(dst)}, {g(src)}, {g(v)}, {expr(float(fill))});"


_M = {"tril": Mask("tril", "diagonal"), "triu": Mask("triu", "diagonal"),
      "right_fill": Mask("right_fill", "col"), "lower_fill": Mask("lower_fill", "row")}


def tril(dst, src, diagonal=0, fill=0.0):
    """dst = src where col - row <= diagonal, else fill (lower triangle)."""
    emit(_M["tril"], dst, src, diagonal, fill)


def triu(dst, src, diagonal=0, fill=0.0):
    """dst = src where col - row >= diagonal, else fill (upper triangle)."""
    emit(_M["triu"], dst, src, diagonal, fill)


def make_causal(dst, src, fill=0.0):
    """dst = src on and below the diagonal (col <= row), else fill: tril with diagonal 0."""
    emit(_M["tril"], dst, src, 0, fill)


def right_fill(dst, src, col, fill=0.0):
    """dst = src in columns < col, fill in columns >= col."""
    emit(_M["right_fill"], dst, src, col, fill)


def lower_fill(dst, src, row, fill=0.0):
    """dst = src in rows < row, fill in rows >= row."""
    emit(_M["lower_fill"], dst, src, row, fill)


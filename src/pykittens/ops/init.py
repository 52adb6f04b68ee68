"""Initialisers: zero, one, neg_infty, pos_infty — fill a register tile or vector with a constant."""
import math

from .base import Op, emit, need_reg
from ..types import RT


class Fill(Op):
    prelude = r"""
namespace tk {
template<class T, int R, int C, class L> __device__ __forceinline__ void fill(rt<T, R, C, L>& d, float v) {
  const packed_t<T> p = pack<T>(make_float2(v, v));
  #pragma unroll
  for (int i = 0; i < R / 16; i++)
  #pragma unroll
  for (int j = 0; j < C / 16; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) d.data[i][j][k] = p;
}
template<class T, int N, class L> __device__ __forceinline__ void fill(rv<T, N, L>& d, float v) {
  #pragma unroll
  for (int i = 0; i < N / 16; i++)
  #pragma unroll
  for (int k = 0; k < rv<T, N, L>::per; k++) d.data[i][k] = v;
}
}  // namespace tk
"""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def check(self, dst):
        need_reg(dst, "destination")

    def interpret(self, m, dst):
        m.write(dst, self.value)

    def cuda(self, g, dst):
        from ..backend.cuda.codegen import expr
        return f"tk::fill({g(dst)}, {expr(self.value)});"


_zero, _one = Fill("zero", 0.0), Fill("one", 1.0)
_neg_infty, _pos_infty = Fill("neg_infty", -math.inf), Fill("pos_infty", math.inf)


def zero(dst):
    """dst = 0."""
    emit(_zero, dst)


def one(dst):
    """dst = 1."""
    emit(_one, dst)


def neg_infty(dst):
    """dst = -inf (the identity of max)."""
    emit(_neg_infty, dst)


def pos_infty(dst):
    """dst = +inf (the identity of min)."""
    emit(_pos_infty, dst)

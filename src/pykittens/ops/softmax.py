"""Online-softmax partials merged: ``merge_softmax``.

Split-key attention (the H100 forward's SPLIT; flash-decoding) runs one query row's keys in parts, each with its
own running row maximum ``m``, row sum ``l`` and unnormalised output ``o`` (not yet divided by ``l``). Two parts over
disjoint keys merge into the part over both: per row, with M = max(m, m2),

    o ← o · 2^(m − M) + o2 · 2^(m2 − M),   l ← l · 2^(m − M) + l2 · 2^(m2 − M),   m ← M.

The maxima are in the exponent's domain (base 2: the attention kernels keep max · scale · log2(e)). A row whose two
maxima are both −∞ (no key seen) keeps its zeros rather than turning NaN. ``o2``, ``m2``, ``l2`` are left as they were.
On CUDA each lane merges the rows it holds; no lane talks to another.
"""
import torch

from .base import Op, emit, fail, need_rt, need_rv, same_type
from ..types import float32

__all__ = ["merge_softmax"]

_PRELUDE = r"""
namespace tk {
// (o, m, l) <- the merge of online-softmax partials (o, m, l) and (o2, m2, l2) over disjoint keys (ops/softmax.py).
template<class O, class V>
__device__ __forceinline__ void merge_softmax(O& o, V& m, V& l, const O& o2, const V& m2, const V& l2) {
  float a[V::chunks][V::per], b[V::chunks][V::per];  // each part's factor per row: 2^(its max - the larger)
  #pragma unroll
  for (int c = 0; c < V::chunks; c++)
  #pragma unroll
  for (int e = 0; e < V::per; e++) {
    const float hi = fmaxf(m.data[c][e], m2.data[c][e]);  // (== hi: factor 1, also where both are -inf)
    a[c][e] = m.data[c][e] == hi ? 1.f : exp2f(m.data[c][e] - hi);
    b[c][e] = m2.data[c][e] == hi ? 1.f : exp2f(m2.data[c][e] - hi);
    l.data[c][e] = l.data[c][e] * a[c][e] + l2.data[c][e] * b[c][e];
    m.data[c][e] = hi;
  }
  #pragma unroll
  for (int i = 0; i < O::height; i++)
  #pragma unroll
  for (int j = 0; j < O::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {  // pair k of a row-layout subtile holds row g + 8 (k & 1): ortho slot k & 1
    const float2 x = o.data[i][j][k], y = o2.data[i][j][k];
    const float fa = a[i][k & 1], fb = b[i][k & 1];
    o.data[i][j][k] = make_float2(x.x * fa + y.x * fb, x.y * fa + y.y * fb);
  }
}
}  // namespace tk
"""


class MergeSoftmax(Op):
    name = "merge_softmax"
    prelude = _PRELUDE

    def check(self, o, m, l, o2, m2, l2):
        t = need_rt(o, "o")
        same_type(t, need_rt(o2, "o2"), "o and o2")
        if t.dtype != float32 or t.layout != "row":
            fail(f"merge_softmax: o must be an fp32 row-layout register tile, got {t}")
        want = t.col_vec(t.dtype)
        for name, v in (("m", m), ("l", l), ("m2", m2), ("l2", l2)):
            got = need_rv(v, name)
            if (got.length, got.layout, got.dtype) != (want.length, want.layout, want.dtype):
                fail(f"merge_softmax: {name} must hold one fp32 value per row of o: expected {want}, got {got} "
                     f"(declare it with tk.col_vec(o))")

    def interpret(self, mach, o, m, l, o2, m2, l2):
        mx, mx2 = mach.read(m), mach.read(m2)
        hi = torch.maximum(mx, mx2)
        a = torch.where(mx == hi, 1.0, torch.exp2(mx - hi))
        b = torch.where(mx2 == hi, 1.0, torch.exp2(mx2 - hi))
        mach.write(o, mach.read(o) * a[..., None] + mach.read(o2) * b[..., None])
        mach.write(l, mach.read(l) * a + mach.read(l2) * b)
        mach.write(m, hi)

    def cuda(self, g, o, m, l, o2, m2, l2):
        return f"tk::merge_softmax({g(o)}, {g(m)}, {g(l)}, {g(o2)}, {g(m2)}, {g(l2)});"


_MERGE = MergeSoftmax()


def merge_softmax(o, m, l, o2, m2, l2):
    """(o, m, l) ← the merge of two online-softmax partials over disjoint keys: o, o2 unnormalised fp32 outputs
    (row-layout register tiles), m, m2 their row maxima in base 2's domain, l, l2 their row sums (``tk.col_vec(o)``).
    Per row M = max(m, m2); o ← o·2^(m−M) + o2·2^(m2−M); l likewise; m ← M. See the module docstring."""
    emit(_MERGE, o, m, l, o2, m2, l2)

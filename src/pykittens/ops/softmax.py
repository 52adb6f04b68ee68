"""Online softmax: one key block's step (``online_softmax``), lazy rescaling (``row_max_lazy``, ``rescale_rows``)
and partials merged (``merge_softmax``).

``online_softmax`` is a composite: it records the reductions, broadcasts and maps below, in the order the H100
forward was tuned with, so the kernel reads as the algorithm: per key block, new row maxima, probabilities, the
rescale factor for what was accumulated before, and the row sums.

Split-key attention (the H100 forward's SPLIT; flash-decoding) runs one query row's keys in parts, each with its
own running row maximum ``m``, row sum ``l`` and unnormalised output ``o`` (not yet divided by ``l``). Two parts over
disjoint keys merge into the part over both: per row, with M = max(m, m2),

    o ← o · 2^(m − M) + o2 · 2^(m2 − M),   l ← l · 2^(m − M) + l2 · 2^(m2 − M),   m ← M.

The maxima are in the exponent's domain (base 2: the attention kernels keep max · scale · log2(e)). A row whose two
maxima are both −∞ (no key seen) keeps its zeros rather than turning NaN. ``o2``, ``m2``, ``l2`` are left as they were.
On CUDA each lane merges the rows it holds; no lane talks to another.

Lazy rescaling (FA4's trick): an online softmax rescales its output and row sums by 2^(m_old − m_new) whenever a row's
maximum grows. ``row_max_lazy`` moves a row's maximum only when the new scores exceed it by more than a slack, so
after the first key blocks the maximum usually stays put, the factor is exactly 1, and ``rescale_rows`` (one warp
vote) skips the multiplies. Exponentials of scores above the kept maximum are at most 2^slack (in base 2's domain),
which fp32 sums and bf16 probabilities hold without loss of relative precision.
"""
import torch

from .base import Op, emit, fail, kind, need_rt, need_rv, same_type
from ..types import float32
from .broadcast import sub_row
from .maps import copy, exp2, mul, sub
from .reduce import _PRELUDE as _REDUCE_PRELUDE, row_max, row_sum

__all__ = ["online_softmax", "merge_softmax", "row_max_lazy", "rescale_rows"]

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

_LAZY_PRELUDE = r"""
namespace tk {
// o[r][:] *= f[r]; a warp whose factors are all exactly 1 skips the multiplies.
template<class O, class V> __device__ __forceinline__ void rescale_rows(O& o, const V& f) {
  bool ones = true;
  #pragma unroll
  for (int c = 0; c < V::chunks; c++)
  #pragma unroll
  for (int e = 0; e < 2; e++) ones &= f.data[c][e] == 1.f;
  if (__all_sync(0xffffffffu, ones)) return;
  #pragma unroll
  for (int i = 0; i < O::height; i++)
  #pragma unroll
  for (int j = 0; j < O::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    o.data[i][j][k].x *= f.data[i][k & 1];
    o.data[i][j][k].y *= f.data[i][k & 1];
  }
}
}  // namespace tk
"""


def _row_vec_of(t, v, op, name):  # v must be an fp32 col_vec of the fp32 row-layout tile t
    want = t.col_vec(float32)
    got = need_rv(v, name)
    if t.dtype != float32 or t.layout != "row" or (got.length, got.layout, got.dtype) != \
            (want.length, want.layout, want.dtype):
        fail(f"{op}: expected an fp32 row-layout register tile and {name} an fp32 vector with one value per row "
             f"({want}; declare it with tk.col_vec(tile)), got {t} and {got}")


class RowMaxLazy(Op):
    name = "row_max_lazy"
    prelude = _REDUCE_PRELUDE  # (row_max's reduction, then a per-row select)

    def check(self, m, s, slack):
        _row_vec_of(need_rt(s, "source"), m, self.name, "m")
        if kind(slack) != "scalar":
            fail(f"row_max_lazy: slack must be a scalar (Python number or device scalar), got {kind(slack)}")

    def interpret(self, mach, m, s, slack):
        r, old = mach.read(s).amax(2), mach.read(m)
        slack = torch.as_tensor(mach.eval(slack), dtype=torch.float32).reshape(-1, 1)  # (per warp)
        mach.write(m, torch.where(r > old + slack, r, old))

    def cuda(self, g, m, s, slack):
        return (f"{{ auto _r = {g(m)}; tk::reduce<tk::red_max, true>(_r, {g(s)}); const float _s = {g(slack)}; "
                f"tk::vmap2({g(m)}, {g(m)}, _r, [=](float _x, float _y) {{ return _y > _x + _s ? _y : _x; }}); }}")


class RescaleRows(Op):
    name = "rescale_rows"
    prelude = _LAZY_PRELUDE

    def check(self, o, f):
        _row_vec_of(need_rt(o, "o"), f, self.name, "factors")

    def interpret(self, mach, o, f):
        mach.write(o, mach.read(o) * mach.read(f)[..., None])

    def cuda(self, g, o, f):
        return f"tk::rescale_rows({g(o)}, {g(f)});"


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


def online_softmax(p, m, m_scaled, l, alpha, scale, slack=None):
    """One key block of an online softmax, in place: p holds the block's raw scores (an fp32 row-layout register
    tile) and becomes its unnormalised probabilities 2^(p·scale − m·scale); m (the running row maxima of the raw
    scores) takes in the block's (lazily with ``slack``: see ``row_max_lazy``), m_scaled ← m·scale, alpha ← the
    factor 2^((m_before − m)·scale) for what was accumulated before, and the row sums l ← l·alpha + the rows of p.
    The caller rescales its output by alpha (``mul_row``, or ``rescale_rows`` with a slack). All vectors are
    ``tk.col_vec(p)``; scale is the softmax scale times log2(e)."""
    copy(alpha, m)
    if slack is None:
        row_max(m, p, m)
    else:
        row_max_lazy(m, p, slack)
    mul(m_scaled, m, scale)
    mul(p, p, scale)  # (with the next line, one FFMA per score: p·scale − m_scaled)
    sub_row(p, p, m_scaled)
    exp2(p, p)
    sub(alpha, alpha, m)
    mul(alpha, alpha, scale)
    exp2(alpha, alpha)
    mul(l, l, alpha)
    row_sum(l, p, l)


def row_max_lazy(m, s, slack):
    """m[r] ← the max of row r of s if it exceeds m[r] by more than ``slack``, else m[r] unchanged: an online
    softmax's running maximum that moves only when it must, so that its rescale factors are usually exactly 1 (see
    ``rescale_rows``). s: an fp32 row-layout register tile; m: ``tk.col_vec(s)``; slack: a scalar ≥ 0 in s's units
    (exponentials of scores above the kept maximum reach at most 2^(slack · scale) in base 2)."""
    emit(_LAZY_MAX, m, s, slack)


def rescale_rows(o, factors):
    """o[r][c] ← o[r][c] · factors[r], skipped by a warp whose factors are all exactly 1 (one vote): the output
    rescale of an online softmax whose maximum is kept by ``row_max_lazy``."""
    emit(_RESCALE, o, factors)


_LAZY_MAX, _RESCALE = RowMaxLazy(), RescaleRows()

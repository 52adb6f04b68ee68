"""Warp-level tensor-core matmuls: ``mma_AB / mma_ABt / mma_AtB / mma_AtBt`` (d = a·b + c, operands possibly given
transposed) and the overwrite forms ``mm_AB / mm_ABt / mm_AtB / mm_AtBt`` (d = a·b).

d and c are fp32 row-layout tiles (c may be d itself); a and b are bf16 or fp16 tiles of one dtype. Which layout each
operand must have follows from the fragment map: a row-layout tile is exactly the mma A fragment, and a col-layout tile
is exactly the B fragment, so

    mma_AB    a: row, M x K    b: col, K x N
    mma_ABt   a: row, M x K    b: row, N x K   (b holds B^T)
    mma_AtB   a: col, K x M    b: col, K x N   (a holds A^T)
    mma_AtBt  a: col, K x M    b: row, N x K

CUDA lowering: for every 16x16 output subtile, every 16-wide K step, two ``mma.sync.aligned.m16n8k16.row.col.f32``
instructions (the two 8-column halves of the output). With g = lane/4, t = lane%4, PTX wants
a0 = A(g, 2t..), a1 = A(g+8, 2t..), a2 = A(g, 2t+8..), a3 = A(g+8, 2t+8..); b0 = B(2t.., n g), b1 = B(2t+8.., n g);
c0c1 = C(g, 2t..), c2c3 = C(g+8, 2t..). Our register k of a subtile holds (g + 8(k%2), 2t + 8(k/2) + e) in the row
layout and its transpose in the col layout, which gives the tables below. A register holds the same two elements
whether it is read as a tile of X in one layout or of X^T in the other, so the transposed variants use the same tables
and only index the subtile grid the other way round.
"""
import torch

from .base import Op, emit, fail, need_rt
from ..types import bfloat16, float16, float32

# Which register k (0..3) of a 16x16 subtile feeds each slot of one m16n8k16 instruction. ``h`` is the output's
# 8-column half (n 0..7 or 8..15 of the subtile). The C++ below is generated from these tables and the tests simulate
# the instruction lane by lane with them.
A_REGS = (0, 1, 2, 3)  # a0..a3 <- A subtile registers
B_REGS = ((0, 2), (1, 3))  # [h] -> (b0, b1) <- B subtile registers
C_REGS = ((0, 1), (2, 3))  # [h] -> registers (float2) holding (c0, c1) and (c2, c3) of C / D

_PTX_TYPE = {"bf16": "bf16", "half": "f16"}

_PRELUDE = r"""
namespace tk {
// One mma.sync m16n8k16 with fp32 accumulators: (d0, d1) = A(16x16) * B(16x8) + (c0, c1); d* may alias c*.
template<class T> __device__ __forceinline__ void mma16816(float2& d0, float2& d1, unsigned a0, unsigned a1,
    unsigned a2, unsigned a3, unsigned b0, unsigned b1, float2 c0, float2 c1);
%(SPECS)s
// Subtile (i, j) of x, or (j, i) when Tr: lets one loop read a tile or its transposed storage.
template<bool Tr, class X>
__device__ __forceinline__ const packed_t<typename X::dtype>* mma_sub(const X& x, int i, int j) {
  if constexpr (Tr) return x.data[j][i]; else return x.data[i][j];
}
// d = a * b (+ c if Acc). a: row layout M x K, or col layout K x M holding A^T. b: col layout K x N, or row layout
// N x K holding B^T. d, c: fp32 row layout M x N; c may be d (c's subtile is read only before d's is written).
template<bool Acc, class D, class A, class B, class C>
__device__ __forceinline__ void mma(D& d, const A& a, const B& b, const C& c) {
  using T = typename A::dtype;
  constexpr bool at = same<typename A::layout, col_l>::value;
  constexpr bool bt = same<typename B::layout, row_l>::value;
  constexpr int KT = at ? A::height : A::width;
  const float2 z = make_float2(0.f, 0.f);
  #pragma unroll
  for (int kk = 0; kk < KT; kk++)
  #pragma unroll
  for (int m = 0; m < D::height; m++)
  #pragma unroll
  for (int n = 0; n < D::width; n++) {
    const unsigned* as = mma_sub<at>(a, m, kk);
    const unsigned* bs = mma_sub<bt>(b, kk, n);
    float2* ds = d.data[m][n];
    const float2* cs = kk ? d.data[m][n] : c.data[m][n];
%(CALLS)s
  }
}
}  // namespace tk
"""

_SPEC = r"""template<> __device__ __forceinline__ void mma16816<%(T)s>(float2& d0, float2& d1, unsigned a0, unsigned a1,
    unsigned a2, unsigned a3, unsigned b0, unsigned b1, float2 c0, float2 c1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.%(P)s.%(P)s.f32 "
               "{%%0, %%1, %%2, %%3}, {%%4, %%5, %%6, %%7}, {%%8, %%9}, {%%10, %%11, %%12, %%13};"
               : "=f"(d0.x), "=f"(d0.y), "=f"(d1.x), "=f"(d1.y)
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(c0.x), "f"(c0.y), "f"(c1.x), "f"(c1.y));
}"""


def _calls() -> str:
    out = []
    for h in range(2):
        (c0, c1), (b0, b1) = C_REGS[h], B_REGS[h]
        a = ", ".join(f"as[{k}]" for k in A_REGS)
        out.append(f"    mma16816<T>(ds[{c0}], ds[{c1}], {a}, bs[{b0}], bs[{b1}], "
                   f"(Acc || kk) ? cs[{c0}] : z, (Acc || kk) ? cs[{c1}] : z);  // n half {h}")
    return "\n".join(out)


PRELUDE = _PRELUDE % {
    "SPECS": "\n".join(_SPEC % {"T": t, "P": p} for t, p in _PTX_TYPE.items()),
    "CALLS": _calls(),
}

# variant -> (a holds A^T, b holds B^T)
_VARIANTS = {"AB": (False, False), "ABt": (False, True), "AtB": (True, False), "AtBt": (True, True)}


def _shape_desc(transposed: bool, first: str, second: str) -> str:
    return f"{second} x {first}" if transposed else f"{first} x {second}"


class Mma(Op):
    prelude = PRELUDE

    def __init__(self, variant: str, acc: bool):
        self.variant, self.acc = variant, acc
        self.at, self.bt = _VARIANTS[variant]
        self.name = f"{'mma' if acc else 'mm'}_{variant}"

    def check(self, d, a, b, c=None):
        n = self.name
        td, ta, tb = need_rt(d, f"{n}: d"), need_rt(a, f"{n}: a"), need_rt(b, f"{n}: b")
        # operand dtypes
        if ta.dtype not in (bfloat16, float16):
            fail(f"{n}: a must be a bfloat16 or float16 tile, got {ta.dtype} (use tk.copy to convert)")
        if tb.dtype != ta.dtype:
            fail(f"{n}: a and b must have the same dtype: expected b of {ta.dtype}, got {tb.dtype} "
                 f"(use tk.copy to convert)")
        # operand layouts
        a_lay, b_lay = ("col" if self.at else "row"), ("row" if self.bt else "col")
        if ta.layout != a_lay:
            fail(f"{n}: a must be a {a_lay}-layout tile ({_shape_desc(self.at, 'M', 'K')}); got {ta.layout} layout "
                 f"— use tk.swap_layout")
        if tb.layout != b_lay:
            fail(f"{n}: b must be a {b_lay}-layout tile ({_shape_desc(self.bt, 'K', 'N')}); got {tb.layout} layout "
                 f"— use tk.swap_layout")
        # accumulators
        accs = [("d", td)] + ([("c", need_rt(c, f"{n}: c"))] if self.acc else [])
        for what, t in accs:
            if t.dtype != float32:
                fail(f"{n}: {what} must be a float32 tile, got {t.dtype}")
            if t.layout != "row":
                fail(f"{n}: {what} must be a row-layout tile (M x N); got {t.layout} layout — use tk.swap_layout")
        # shapes
        M, K = (ta.cols, ta.rows) if self.at else (ta.rows, ta.cols)
        Kb, N = (tb.cols, tb.rows) if self.bt else (tb.rows, tb.cols)
        if Kb != K:
            want = f"{N}x{K}" if self.bt else f"{K}x{N}"
            fail(f"{n}: inner dimensions differ: a is {ta.rows}x{ta.cols} ({_shape_desc(self.at, 'M', 'K')}, "
                 f"so K = {K}); b ({_shape_desc(self.bt, 'K', 'N')}) must have K = {K}: expected {want}, "
                 f"got {tb.rows}x{tb.cols}")
        for what, t in accs:
            if t.shape != (M, N):
                fail(f"{n}: {what} must be M x N: expected {M}x{N} (from a {ta.rows}x{ta.cols} and b "
                     f"{tb.rows}x{tb.cols}), got {t.rows}x{t.cols}")

    def interpret(self, m, d, a, b, c=None):
        A, B = m.read(a), m.read(b)
        if self.at:
            A = A.transpose(-1, -2)
        if self.bt:
            B = B.transpose(-1, -2)
        out = torch.matmul(A, B)
        if self.acc:
            out = out + m.read(c)
        m.write(d, out)

    def cuda(self, g, d, a, b, c=None):
        if self.acc:
            return f"tk::mma<true>({g(d)}, {g(a)}, {g(b)}, {g(c)});"
        return f"tk::mma<false>({g(d)}, {g(a)}, {g(b)}, {g(d)});"


_OPS = {(v, acc): Mma(v, acc) for v in _VARIANTS for acc in (True, False)}


def mma_AB(d, a, b, c):
    """d = a @ b + c (a: row M x K, b: col K x N; d, c: fp32 row M x N; c may be d)."""
    emit(_OPS["AB", True], d, a, b, c)


def mma_ABt(d, a, b, c):
    """d = a @ b^T + c (a: row M x K, b: row N x K; d, c: fp32 row M x N; c may be d)."""
    emit(_OPS["ABt", True], d, a, b, c)


def mma_AtB(d, a, b, c):
    """d = a^T @ b + c (a: col K x M, b: col K x N; d, c: fp32 row M x N; c may be d)."""
    emit(_OPS["AtB", True], d, a, b, c)


def mma_AtBt(d, a, b, c):
    """d = a^T @ b^T + c (a: col K x M, b: row N x K; d, c: fp32 row M x N; c may be d)."""
    emit(_OPS["AtBt", True], d, a, b, c)


def mm_AB(d, a, b):
    """d = a @ b (a: row M x K, b: col K x N; d: fp32 row M x N)."""
    emit(_OPS["AB", False], d, a, b)


def mm_ABt(d, a, b):
    """d = a @ b^T (a: row M x K, b: row N x K; d: fp32 row M x N)."""
    emit(_OPS["ABt", False], d, a, b)


def mm_AtB(d, a, b):
    """d = a^T @ b (a: col K x M, b: col K x N; d: fp32 row M x N)."""
    emit(_OPS["AtB", False], d, a, b)


def mm_AtBt(d, a, b):
    """d = a^T @ b^T (a: col K x M, b: row N x K; d: fp32 row M x N)."""
    emit(_OPS["AtBt", False], d, a, b)


__all__ = ["mma_AB", "mma_ABt", "mma_AtB", "mma_AtBt", "mm_AB", "mm_ABt", "mm_AtB", "mm_AtBt"]

"""Warpgroup-scope tensor-core matmuls (Hopper ``wgmma``, sm_90a only), used as ``tk.warpgroup.<op>``:

    mma_AB(d, a, b)    d += a @ b        a: st 64 x K  or rt 16 x K (row)    b: st K x N
    mma_ABt(d, a, b)   d += a @ b^T      a: st 64 x K  or rt 16 x K (row)    b: st N x K
    mma_AtB(d, a, b)   d += a^T @ b      a: st K x 64                        b: st K x N
    mma_AtBt(d, a, b)  d += a^T @ b^T    a: st K x 64                        b: st N x K
    mm_AB / mm_ABt / mm_AtB / mm_AtBt    the same with d = ... (the first K step has scale-d = 0)
    mma_wait(n=0)      wait until at most n of this warp's mma groups are in flight

A *warpgroup* is 4 consecutive warps (4g .. 4g+3); every op here is executed by all 4 together (the interpreter
reports a DeadlockError when only some of them reach it). The accumulator ``d`` is, in each warp, an
``rt<fp32, 16, N, row>``: the warpgroup's 64 x N result, warp i of the group holding rows 16i .. 16i+15. With a
register-tile ``a`` (``rt<bf16|fp16, 16, K, row>``) warp i likewise supplies rows 16i .. 16i+15 of A. N is 16..256 in
steps of 16, K a multiple of 16; a and b are bf16 or fp16 (one dtype), accumulation is fp32. d and a may be
register sub-tiles (``tk.subtile``, 16 rows): the instruction then reads and writes those columns of the base tile
(e.g. a 64-key step on the first half of a 128-key score tile) and the whole base tile counts as in flight.

Fragments. For ``wgmma.mma_async.m64nNk16`` the PTX ISA gives, with g = lane/4, t = lane%4, in the warp of rank i:
accumulator d_q (q < N/2) = (row 16i + g + 8*((q%4)/2), col 8*(q/4) + 2t + q%2); register-A word r (0..3) = the pair
(row 16i + g + 8*(r%2), cols 2t + 8*(r/2) + {0,1}). Our row layout (``types.fragment_coords``) has register k of
16x16 subtile j at (g + 8(k%2), 16j + 2t + 8(k/2) + e), so d_q is component q%2 of register 2*((q/4)%2) + (q%4)/2 of
subtile (q/4)/2 (``acc_reg``), and A word r of K step kk is register r of subtile kk (``A_REGS``). Both maps are
checked against the PTX definitions in the tests.

Shared operands and descriptors. A shared tile (``types.swizzled_offset``) is cut into atoms ``S`` bytes wide (S =
the tile's swizzle: 128, 64 or 32; swizzle 0 is rejected), each holding all R rows at a pitch of S bytes, atoms one
after another (R*S bytes apart), the 16-byte chunk index XORed with address bits 7.. — exactly the hardware swizzle
of the descriptor's swizzle modes when the tile is 8*S-byte aligned (the allocator aligns 128-byte swizzle tiles to
1024, 64 to 512, 32 to 256), so base offset = 0. In the PTX ISA's canonical layouts (16-byte units, W = S/16):

* K-major (A of mma_AB/ABt: st 64 x K; B of mma_ABt/AtBt: st N x K; K runs along the row): MN row r = r0 + 8*r1 at
  r0*W + r1*SBO/16, the instruction's two 16-byte K chunks adjacent; LBO is unused for swizzled K-major layouts (set
  to 16 bytes). Ours: rows S bytes apart inside an atom, so SBO = 8*S. K step kk (32 bytes) lives in atom
  (32kk)/S at byte (32kk)%S of each row: start = tile + (32kk/S)*R*S + (32kk)%S (the hardware swizzles the
  resulting addresses, as the TMA/our layout did).
* MN-major (B of mma_AB/AtB: st K x N; A of mma_AtB/AtBt: st K x 64; imm-trans = 1): MN chunk i = i0 + W*i1 at
  i0 + i1*LBO/16, K row j = j0 + 8*j1 at j0*W + j1*SBO/16. Ours: the next W chunks of MN are the next atom, so
  LBO = R*S; K rows are S bytes apart, so SBO = 8*S. K step kk (16 rows): start = tile + 16*kk*S.

The descriptors' constant fields (LBO, SBO, swizzle mode and the K step's start offset) are computed here in Python
(``descriptor``) and emitted as literals; the C++ adds only the tile's shared address. The tests decode them the way
the PTX ISA says the hardware does and check every element each instruction reads.

Async protocol (CUDA): each mma op is ``wgmma.fence``; K/16 ``wgmma.mma_async`` (one m64nNk16 per 16-wide K step,
accumulators passed as "+f" operands, register-A words as "r"); ``wgmma.commit_group``. The result must not be read
(and a register A not overwritten, shared operands not rewritten) before ``mma_wait`` (``wgmma.wait_group n``);
chaining further mma ops on the same accumulator before the wait is allowed (that is how K loops run). After the
wait, every accumulator tile (and register A operand) in scope goes through an empty ``asm volatile`` with "+f"/"+r"
operands, so the compiler cannot hoist a use of it above the wait nor reuse a register A before the hardware read it. Shared tiles
written with ordinary stores need ``fence.proxy.async`` before wgmma reads them: tk.store (register -> shared),
tk.load (global -> shared) and tk.load_async_wait do it on sm_90.

Interpreter: per warpgroup, the 64 x N product in fp32 from the shared operands (read through the race /
initialisation checks on behalf of each of the 4 warps, so writing them in another warp without a tk.sync() in
between is a RaceError) or from the 4 warps' register tiles; the result is marked in flight until ``mma_wait``
completes its group, and reading it earlier (any op but another mma on it) is a RaceError. Not modelled: rewriting a
shared operand or a register A before the wait.

Arch: wgmma exists only on sm_90a. The prelude stops a compile for any other target with ``#error "pykittens:
tk.warpgroup ops (wgmma) need sm_90a ..."`` (NVRTC's error names it); tracing and the interpreter do not depend on
the arch.
"""
import torch

from .base import Op, RT, ST, emit, fail, kind, need_rt
from .. import ir
from ..errors import InterpreterError, UninitializedReadError
from ..trace import builder
from ..types import bfloat16, float16, float32

__all__ = []  # user functions are exported as tk.warpgroup.* (pykittens/warpgroup.py), not flat

WARPGROUP = 4  # warps
M = 64  # rows of a warpgroup's result
MAX_N = 256

# ---------------------------------------------------------------------------------------------- fragments
A_REGS = (0, 1, 2, 3)  # wgmma register-A word r of a K step <- register A_REGS[r] of that K step's 16x16 subtile


def acc_reg(q: int) -> tuple:
    """(subtile j, register k, component e: 0 = .x, 1 = .y) of our rt<fp32, 16, N, row> holding accumulator d_q."""
    chunk, r = divmod(q, 4)  # 8-column chunk, position in it
    return chunk // 2, 2 * (chunk % 2) + r // 2, r % 2


# ---------------------------------------------------------------------------------------------- descriptors
SWIZZLE_MODE = {128: 1, 64: 2, 32: 3}  # descriptor bits 62..63


def encode(x: int) -> int:
    """matrix-descriptor-encode: 14 bits of a 16-byte-aligned shared address or byte offset."""
    return (x & 0x3FFFF) >> 4


def strides(t: ST, mn_major: bool) -> tuple:
    """(LBO, SBO) in bytes of shared tile type ``t`` read K-major (K along its rows) or MN-major (K down its rows)."""
    S = t.swizzle
    return (t.rows * S, 8 * S) if mn_major else (16, 8 * S)


def k_offset(t: ST, mn_major: bool, kk: int) -> int:
    """Byte offset from the tile's start of the (unswizzled) start address of 16-wide K step ``kk``."""
    S = t.swizzle
    if mn_major:
        return 16 * kk * S  # 16 K rows, S bytes apart inside every atom
    kb = 16 * kk * t.dtype.size  # byte column of the step along K (32 bytes for 16-bit types)
    return (kb // S) * t.rows * S + kb % S


def descriptor(t: ST, mn_major: bool, kk: int, base: int = 0) -> int:
    """The 64-bit wgmma matrix descriptor of K step ``kk`` of a tile at shared address ``base``. The kernel passes
    ``descriptor(t, mn_major, kk, 0)`` as a literal and adds the tile's ``encode(address)`` at run time."""
    if t.swizzle not in SWIZZLE_MODE:
        raise ValueError(f"wgmma descriptors need a 32/64/128-byte swizzle, got {t.swizzle}")
    lbo, sbo = strides(t, mn_major)
    start = base + k_offset(t, mn_major, kk)
    for what, v in (("start", start), ("LBO", lbo), ("SBO", sbo)):
        if v % 16 or not 0 <= v < (1 << 18):
            raise ValueError(f"wgmma descriptor {what} = {v} must be 16-byte aligned and below 2**18")
    return encode(start) | encode(lbo) << 16 | encode(sbo) << 32 | SWIZZLE_MODE[t.swizzle] << 62


# ---------------------------------------------------------------------------------------------- CUDA
_PTX_TYPE = {"bf16": "bf16", "half": "f16"}

COMMON_PRELUDE = r"""
#ifndef PK_WGMMA
#define PK_WGMMA
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "pykittens: tk.warpgroup ops (wgmma) need sm_90a (Hopper); this kernel cannot be compiled for another arch"
#endif
namespace tk {
// wgmma descriptor of a shared tile: the constant fields (LBO, SBO, swizzle, the K step's offset; see
// pykittens.ops.wgmma.descriptor) plus the tile's shared address in the start-address field.
template<class S> __device__ __forceinline__ unsigned long long wgmma_desc(const S& s, unsigned long long fields) {
  return fields + (unsigned long long)(((unsigned)__cvta_generic_to_shared(s.p) & 0x3FFFFu) >> 4);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template<int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory");
}
// After a wait: make every later use of accumulator tile d depend on an (empty) asm ordered after the wait, so the
// compiler cannot hoist a read of d above it (reading in-flight accumulators is undefined).
// Register A operands are fenced too: the hardware may read them until the wait, so they must stay live.
template<class D> __device__ __forceinline__ void wgmma_fence_operand(D& d) {
  #pragma unroll
  for (int j = 0; j < D::width; j++)
  #pragma unroll
  for (int k = 0; k < 4; k++) {
    if constexpr (same<typename D::dtype, float>::value)
      asm volatile("" : "+f"(d.data[0][j][k].x), "+f"(d.data[0][j][k].y) :: "memory");
    else
      asm volatile("" : "+r"(d.data[0][j][k]) :: "memory");
  }
}
// One wgmma.mma_async m64nNk16 with fp32 accumulators d (the warp's rt<float, 16, N, row>::data[0]); ss: A and B
// from shared memory (descriptors), rs: A from registers (the K step's 4 words). scale_d = 0: d = A*B.
template<int N> struct wgmma_n;
}  // namespace tk
#endif
"""


def _acc_operands(n: int) -> str:
    ops = []
    for q in range(n // 2):
        j, k, e = acc_reg(q)
        ops.append(f'"+f"(d[{j}][{k}].{"xy"[e]})')
    return ", ".join(ops)


def _asm(n: int, ptx: str, reg_a: bool) -> str:
    h = n // 2
    dlist = "{" + ", ".join(f"%{i}" for i in range(h)) + "}"
    if reg_a:
        a, b, sc, tr = "{" + ", ".join(f"%{h + i}" for i in range(4)) + "}", f"%{h + 4}", f"%{h + 5}", f"%{h + 6}"
        tail = f"p, 1, 1, {tr}"
    else:
        a, b, sc = f"%{h}", f"%{h + 1}", f"%{h + 2}"
        tail = f"p, 1, 1, %{h + 3}, %{h + 4}"
    return ('"{\\n.reg .pred p;\\n'
            f'setp.ne.b32 p, {sc}, 0;\\n'
            f'wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptx}.{ptx} {dlist}, {a}, {b}, {tail};\\n'
            '}\\n"')


def n_prelude(n: int) -> str:
    """C++ of ``tk::wgmma_n<n>`` (both dtypes, both A sources)."""
    acc = _acc_operands(n)
    ss, rs = [], []
    for i, (ctype, ptx) in enumerate(_PTX_TYPE.items()):
        kw = "if constexpr" if i == 0 else "else"
        cond = f" (same<T, {ctype}>::value)" if i == 0 else ""
        ss.append(f"    {kw}{cond} asm volatile({_asm(n, ptx, False)}\n"
                  f"      : {acc}\n"
                  f'      : "l"(da), "l"(db), "r"(scale_d), "n"(TA), "n"(TB) : "memory");')
        rs.append(f"    {kw}{cond} asm volatile({_asm(n, ptx, True)}\n"
                  f"      : {acc}\n"
                  f'      : "r"(a[{A_REGS[0]}]), "r"(a[{A_REGS[1]}]), "r"(a[{A_REGS[2]}]), "r"(a[{A_REGS[3]}]), '
                  f'"l"(db), "r"(scale_d), "n"(TB) : "memory");')
    ss_body, rs_body = "\n".join(ss), "\n".join(rs)
    return COMMON_PRELUDE + f"""
#ifndef PK_WGMMA_N{n}
#define PK_WGMMA_N{n}
namespace tk {{
template<> struct wgmma_n<{n}> {{
  template<class T, int TA, int TB> __device__ static __forceinline__ void ss(float2 (*d)[4],
      unsigned long long da, unsigned long long db, int scale_d) {{
{ss_body}
  }}
  template<class T, int TB> __device__ static __forceinline__ void rs(float2 (*d)[4],
      const unsigned (&a)[4], unsigned long long db, int scale_d) {{
{rs_body}
  }}
}};
}}  // namespace tk
#endif
"""


# ---------------------------------------------------------------------------------------------- interpreter state
def _queues(m) -> dict:
    """Per-warp FIFO of committed wgmma groups (the accumulator each wrote), kept on the Machine."""
    q = getattr(m, "_wgmma_groups", None)
    if q is None:
        q = m._wgmma_groups = {}
    return q


# ---------------------------------------------------------------------------------------------- ops
# variant -> (a holds A^T, b holds B^T)
_VARIANTS = {"AB": (False, False), "ABt": (False, True), "AtB": (True, False), "AtBt": (True, True)}
_HALF = (bfloat16, float16)


def _shape(rows_first: bool, first: str, second: str) -> str:
    return f"{first} x {second}" if rows_first else f"{second} x {first}"


class Wgmma(Op):
    """One warpgroup mma/mm variant; ``_op`` gives each N its own subclass so its prelude has ``wgmma_n<N>``."""
    scope = "warpgroup"
    prelude = COMMON_PRELUDE

    def __init__(self, variant: str, acc: bool):
        self.variant, self.acc = variant, acc
        self.at, self.bt = _VARIANTS[variant]
        self.name = f"warpgroup.{'mma' if acc else 'mm'}_{variant}"

    # ------------------------------------------------------------------------------------------ type rule
    def check(self, d, a, b):
        n = self.name
        warps = builder().warps
        if warps % WARPGROUP:
            fail(f"{n}: warpgroup ops need a multiple of {WARPGROUP} warps per block (a warpgroup is "
                 f"{WARPGROUP} consecutive warps): expected warps = 4, 8, ..., got {warps}")
        td = need_rt(d, f"{n}: d")
        if td.dtype != float32:
            fail(f"{n}: d must be a float32 tile (fp32 accumulators), got {td.dtype}")
        if td.layout != "row":
            fail(f"{n}: d must be a row-layout tile, got {td.layout} layout — use tk.swap_layout")
        if td.rows != 16:
            fail(f"{n}: d must be 16 x N in each warp (warp i of the warpgroup holds rows 16i..16i+15 of the "
                 f"64 x N result): expected 16 rows, got {td.rows}x{td.cols}")
        N = td.cols
        if N > MAX_N:
            fail(f"{n}: d must have at most {MAX_N} columns (wgmma n <= {MAX_N}): expected N <= {MAX_N}, got {N}")
        ta, tb = kind(a), kind(b)
        # a
        if isinstance(ta, RT):
            if self.at:
                fail(f"{n}: a transposed A (K x 64) must be a shared tile (wgmma takes A^T only from shared "
                     f"memory); got a register tile {ta} — use warpgroup.mma_AB/mma_ABt for a register A")
            if ta.dtype not in _HALF:
                fail(f"{n}: a must be bfloat16 or float16, got {ta.dtype} (use tk.copy to convert)")
            if ta.layout != "row":
                fail(f"{n}: a register-tile a must be row layout (16 x K per warp); got {ta.layout} layout "
                     f"— use tk.swap_layout")
            if ta.rows != 16:
                fail(f"{n}: a register-tile a must be 16 x K in each warp (warp i holds rows 16i..16i+15 of A): "
                     f"expected 16 rows, got {ta.rows}x{ta.cols}")
            K = ta.cols
        elif isinstance(ta, ST):
            if ta.dtype not in _HALF:
                fail(f"{n}: a must be bfloat16 or float16, got {ta.dtype} (use tk.copy to convert)")
            rows, cols = (ta.cols, ta.rows) if self.at else (ta.rows, ta.cols)  # (M, K)
            if rows != M:
                want = f"K x {M}" if self.at else f"{M} x K"
                fail(f"{n}: a must be a {want} shared tile (A is {M} x K for a warpgroup): expected "
                     f"{'cols' if self.at else 'rows'} = {M}, got {ta.rows}x{ta.cols}")
            K = cols
            self._need_swizzle(ta, "a")
        else:
            fail(f"{n}: a must be a shared tile or a register tile, got {ta}")
        # b
        if not isinstance(tb, ST):
            fail(f"{n}: b must be a shared tile ({_shape(not self.bt, 'K', 'N')}), got {tb}")
        if tb.dtype != ta.dtype:
            fail(f"{n}: a and b must have the same dtype: expected b of {ta.dtype}, got {tb.dtype}")
        Kb, Nb = (tb.cols, tb.rows) if self.bt else (tb.rows, tb.cols)
        if (Kb, Nb) != (K, N):
            want = f"{N}x{K}" if self.bt else f"{K}x{N}"
            fail(f"{n}: b must be {_shape(not self.bt, 'K', 'N')} with K = {K} (from a) and N = {N} (from d): "
                 f"expected {want}, got {tb.rows}x{tb.cols}")
        self._need_swizzle(tb, "b")

    def _need_swizzle(self, t, what):
        if t.swizzle not in SWIZZLE_MODE:
            fail(f"{self.name}: {what} must be a swizzled shared tile (wgmma reads 32/64/128-byte swizzles): "
                 f"expected swizzle 32, 64 or 128, got {t.swizzle} (declare it without swizzle= to get the "
                 f"largest that fits)")

    # ------------------------------------------------------------------------------------------ interpreter
    def interpret(self, m, d, a, b):
        N = d.type.cols
        root, r0, c0 = d.alias if d.alias is not None else (d, 0, 0)  # a register sub-tile writes its base tile
        queues = _queues(m)
        for g in m.warpgroups(WARPGROUP):
            ws = list(range(WARPGROUP * g, WARPGROUP * (g + 1)))
            if isinstance(a.type, RT):
                A = m.read(a)[ws].reshape(M, a.type.cols)
            else:
                A = _smem_operand(m, a, ws, g)
                A = A.transpose(0, 1) if self.at else A
            B = _smem_operand(m, b, ws, g)
            B = B.transpose(0, 1) if self.bt else B
            out = torch.matmul(A, B)
            if self.acc:  # the old accumulator may still be in flight: chaining mma ops is allowed
                if root not in m.regs or not bool(m.reg_written[root][ws].all()):
                    m.error(UninitializedReadError, f"{d.name} ({d.type}) is accumulated into by {self.name} "
                                                    f"before it was written (use warpgroup.mm_{self.variant} to "
                                                    f"overwrite, or tk.zero it first)")
                out = out + m.regs[root][ws, r0:r0 + 16, c0:c0 + N].float().reshape(M, N)
            for i, w in enumerate(ws):
                m.write_warp(d, w, out[16 * i:16 * (i + 1)])
                queues.setdefault(w, []).append(root)
            m.mark_pending(root, ws, "wgmma")  # (a sub-tile's whole base tile counts as in flight)

    # ------------------------------------------------------------------------------------------ CUDA
    def cuda(self, g, d, a, b):
        N, T = d.type.cols, a.type.dtype.ctype
        tb = 0 if self.bt else 1  # imm-trans-b: 1 = B is N-major (st K x N)
        K = a.type.cols if isinstance(a.type, RT) or not self.at else a.type.rows
        lines = ["{ tk::wgmma_fence();"]
        for kk in range(K // 16):
            scale = 1 if (self.acc or kk) else 0
            db = f"tk::wgmma_desc({g(b)}, {descriptor(b.type, not self.bt, kk):#x}ull)"
            if isinstance(a.type, RT):
                lines.append(f"  tk::wgmma_n<{N}>::rs<{T}, {tb}>({g(d)}.data[0], {g(a)}.data[0][{kk}], {db}, "
                             f"{scale});")
            else:
                da = f"tk::wgmma_desc({g(a)}, {descriptor(a.type, self.at, kk):#x}ull)"
                lines.append(f"  tk::wgmma_n<{N}>::ss<{T}, {int(self.at)}, {tb}>({g(d)}.data[0], {da}, {db}, "
                             f"{scale});")
        lines.append("  tk::wgmma_commit(); }")
        return "\n".join(lines)


def _smem_operand(m, ref, ws, g) -> torch.Tensor:
    """A shared operand of warpgroup ``g``: the same tile for its 4 warps, read (race / init checks) by each."""
    base = ref.base if isinstance(ref, ir.View) else ref
    if isinstance(base, ir.Ref):
        slots = {tuple(int(m.scalar(i, w)) for i in base.index) for w in ws}
        if len(slots) > 1:
            m.error(InterpreterError, f"{ref} names different tiles {sorted(slots)} in the warps of warpgroup {g}: "
                                      f"a warpgroup op's shared operands must be the same for its 4 warps")
    vals = [m.smem_read(ref, w) for w in ws]
    return vals[0]


_CLASSES: dict = {}
_OPS: dict = {}


def _op(variant: str, acc: bool, d) -> Wgmma:
    """The op for this variant and d's width N: each valid N has a subclass whose prelude defines wgmma_n<N> (the
    code generator emits one prelude per op class)."""
    t = getattr(d, "type", None)
    n = t.cols if isinstance(t, RT) and t.cols <= MAX_N else 0
    if n not in _CLASSES:
        _CLASSES[n] = type(f"Wgmma_n{n}", (Wgmma,), {"prelude": n_prelude(n)}) if n else Wgmma
    key = (variant, acc, n)
    if key not in _OPS:
        _OPS[key] = _CLASSES[n](variant, acc)
    return _OPS[key]


def _accumulators_in_scope(kir, op) -> list:
    """Accumulator tiles of the kernel's warpgroup mma ops that are declared where statement ``op`` runs (in an
    enclosing statement list, before it): the wait fences exactly those (the C++ sees only them)."""
    accs = {}

    def collect(stmts):
        for s in stmts:
            if isinstance(s, ir.OpStmt) and isinstance(s.op, Wgmma):
                accs[s.args[0]] = True
                if isinstance(s.args[1], ir.Var) and isinstance(s.args[1].type, RT):
                    accs[s.args[1]] = True  # a register A operand
            for body in (getattr(s, "body", None), getattr(s, "then", None), getattr(s, "orelse", None)):
                if body:
                    collect(body)

    def find(stmts, visible):
        visible = list(visible)
        for s in stmts:
            if isinstance(s, ir.Decl):
                visible.append(s.var)
            elif isinstance(s, ir.OpStmt) and s.op is op:
                return visible
            for body in (getattr(s, "body", None), getattr(s, "then", None), getattr(s, "orelse", None)):
                if body:
                    r = find(body, visible)
                    if r is not None:
                        return r
        return None

    collect(kir.body)
    return [v for v in (find(kir.body, []) or []) if v in accs]


class MmaWait(Op):
    """One per call (the CUDA lowering looks itself up in the kernel to fence the accumulators in scope)."""
    name = "warpgroup.mma_wait"
    prelude = COMMON_PRELUDE

    def check(self, n=0):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 7:
            fail(f"{self.name}: expected a Python int 0..7 (mma groups allowed to stay in flight), got {n!r}")

    def interpret(self, m, n=0):
        queues = _queues(m)
        for w in m.warps():
            q = queues.get(w, [])
            keep = q[len(q) - n:] if n else []
            queues[w] = keep
            m.complete_pending([w])
            for var in dict.fromkeys(keep):
                m.mark_pending(var, [w], "wgmma")

    def cuda(self, g, n=0):
        fences = "".join(f" tk::wgmma_fence_operand({v.name});" for v in _accumulators_in_scope(g.kir, self))
        return f"{{ tk::wgmma_wait<{n}>();{fences} }}"


def mma_AB(d, a, b):
    """Warpgroup d += a @ b (a: st 64 x K or rt 16 x K per warp; b: st K x N; d: fp32 rt 16 x N per warp)."""
    emit(_op("AB", True, d), d, a, b)


def mma_ABt(d, a, b):
    """Warpgroup d += a @ b^T (a: st 64 x K or rt 16 x K per warp; b: st N x K; d: fp32 rt 16 x N per warp)."""
    emit(_op("ABt", True, d), d, a, b)


def mma_AtB(d, a, b):
    """Warpgroup d += a^T @ b (a: st K x 64; b: st K x N; d: fp32 rt 16 x N per warp)."""
    emit(_op("AtB", True, d), d, a, b)


def mma_AtBt(d, a, b):
    """Warpgroup d += a^T @ b^T (a: st K x 64; b: st N x K; d: fp32 rt 16 x N per warp)."""
    emit(_op("AtBt", True, d), d, a, b)


def mm_AB(d, a, b):
    """Warpgroup d = a @ b (a: st 64 x K or rt 16 x K per warp; b: st K x N; d: fp32 rt 16 x N per warp)."""
    emit(_op("AB", False, d), d, a, b)


def mm_ABt(d, a, b):
    """Warpgroup d = a @ b^T (a: st 64 x K or rt 16 x K per warp; b: st N x K; d: fp32 rt 16 x N per warp)."""
    emit(_op("ABt", False, d), d, a, b)


def mm_AtB(d, a, b):
    """Warpgroup d = a^T @ b (a: st K x 64; b: st K x N; d: fp32 rt 16 x N per warp)."""
    emit(_op("AtB", False, d), d, a, b)


def mm_AtBt(d, a, b):
    """Warpgroup d = a^T @ b^T (a: st K x 64; b: st N x K; d: fp32 rt 16 x N per warp)."""
    emit(_op("AtBt", False, d), d, a, b)


def mma_wait(n=0):
    """Wait until at most ``n`` of this warp's warpgroup mma groups are in flight (wgmma.wait_group n)."""
    emit(MmaWait(), n=n)


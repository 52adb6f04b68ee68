"""Warpgroup tensor-core matmuls (ops/wgmma.py): tk.warpgroup.mma_* / mm_* / mma_wait.

- the fragment maps (accumulator, register A) against the wgmma m64nNk16 fragment definitions of the PTX ISA, and
  the generated asm operand lists against them;
- a pure-Python model of the hardware's descriptor decoding (PTX ISA "Matrix Descriptor Format" + canonical
  layouts + address swizzle), checked element by element against our shared-tile layout (types.swizzled_offset) for
  every operand kind, swizzle and several tile shapes — plus negative controls showing the model catches wrong
  LBO / SBO / majorness / alignment;
- an end-to-end simulation of the generated CUDA statement (descriptor literals and trans flags parsed from the
  source) computing the product a warpgroup would see;
- the interpreter against float64 for all 8 ops, shared and register A, bf16 and fp16, N in {16, 64, 256},
  K in {16, 64, 128}, swizzles 128/64/32, 4 and 8 warps (two warpgroups on different data); a chained K loop;
  mma_wait(n) semantics; reading before the wait (RaceError); a warpgroup op under a one-warp branch (DeadlockError);
- every misuse is a KernelTypeError naming this file and the line;
- NVRTC builds for sm_90a use HGMMA (one per K step per op) and spill nothing; sm_80 is refused with a readable
  #error (wgmma exists only on sm_90a);
- GPU runs (marked ``gpu``) of the same kernels against the same reference.
"""
import re

import pytest
import torch

import pykittens as tk
from pykittens.ops import wgmma as W
from pykittens.types import ST, fragment_coords, swizzled_offset

from util import assert_close, matmul_reference, poison, rand, tagged_line, transposed

VARIANTS = ("AB", "ABt", "AtB", "AtBt")
DTYPES = {"bf16": (tk.bf16, torch.bfloat16), "fp16": (tk.fp16, torch.float16)}
TOL = 1e-4  # fp32 accumulation of exact 16-bit products: only the summation order differs from float64


def fn(variant, acc):
    return getattr(tk.warpgroup, f"{'mma' if acc else 'mm'}_{variant}")


# ---------------------------------------------------------------------------------------------- fragments (PTX ISA)
def ptx_acc(lane, q):
    """wgmma m64nNk16 accumulator d_q of ``lane`` (warp-local rows): row g + 8*((q%4)/2), col 8*(q/4) + 2t + q%2."""
    g, t = lane // 4, lane % 4
    return g + 8 * ((q % 4) // 2), 8 * (q // 4) + 2 * t + q % 2


def ptx_a(lane, r, e):
    """wgmma m64nNk16 register A: word r element e (a_{2r+e}) of ``lane``: row g (+8 for a2,a3,a6,a7), col 2t + e
    (+8 for a4..a7)."""
    g, t = lane // 4, lane % 4
    i = 2 * r + e
    return g + (0 if i in (0, 1, 4, 5) else 8), 2 * t + (i & 1) + (8 if i >= 4 else 0)


def test_accumulator_fragment_is_our_row_layout():
    for lane in range(32):
        for q in range(W.MAX_N // 2):
            j, k, e = W.acc_reg(q)
            r, c = fragment_coords("row", lane, k, e)
            assert (r, 16 * j + c) == ptx_acc(lane, q), (lane, q)


def test_register_a_fragment_is_our_row_layout():
    for lane in range(32):
        for r in range(4):
            for e in range(2):
                assert fragment_coords("row", lane, W.A_REGS[r], e) == ptx_a(lane, r, e)


def _asm_blocks(n):
    """(ss operand list, rs operand list, ss asm text, rs asm text) of the bf16 branch of wgmma_n<n>."""
    src = W.n_prelude(n)
    blocks = re.findall(r'asm volatile\((".*?")\n\s*: (.*?)\n\s*: (.*?) : "memory"\);', src)
    assert len(blocks) == 4  # ss bf16, ss f16, rs bf16, rs f16
    return blocks


@pytest.mark.parametrize("n", [16, 64, 136, 256])
def test_generated_asm_operands(n):
    blocks = _asm_blocks(n)
    for (text, outs, ins), rs, ptx in zip(blocks, (False, False, True, True), ("bf16", "f16") * 2):
        regs = re.findall(r'"\+f"\(d\[(\d+)\]\[(\d+)\]\.([xy])\)', outs)
        assert [(int(j), int(k), "xy".index(e)) for j, k, e in regs] == [W.acc_reg(q) for q in range(n // 2)]
        assert f"m64n{n}k16.f32.{ptx}.{ptx}" in text
        n_ops = len(regs) + len(re.findall(r'"[lrn]"\(', ins))
        assert sorted(set(int(x) for x in re.findall(r"%(\d+)", text))) == list(range(n_ops))
        if rs:
            a_words = [int(x) for x in re.findall(r'"r"\(a\[(\d)\]\)', ins)]
            assert a_words == list(W.A_REGS)
            assert re.search(r"\{%(\d+), %(\d+), %(\d+), %(\d+)\}, %\d+, p, 1, 1, %\d+;", text)
        else:
            assert re.search(r"\}, %\d+, %\d+, p, 1, 1, %\d+, %\d+;", text)


# ---------------------------------------------------------------------------------------------- descriptor model
SWIZZLE_BYTES = {1: 128, 2: 64, 3: 32}  # descriptor bits 62..63 (PTX ISA, wgmma Matrix Descriptor Format)


def decode(desc):
    """Fields of a wgmma matrix descriptor, as the PTX ISA lays them out (addresses in bytes)."""
    return dict(start=(desc & 0x3FFF) << 4, lbo=((desc >> 16) & 0x3FFF) << 4, sbo=((desc >> 32) & 0x3FFF) << 4,
                base_offset=(desc >> 49) & 7, mode=desc >> 62, reserved=desc & (3 << 14 | 3 << 30 | 0x7 << 46 |
                                                                                0x3FF << 52))


def hw_addresses(desc, mn_major, extent, elem=2):
    """Byte address the hardware reads for element (mn, k), mn < extent, k < 16, of one m64nNk16 operand, per the
    PTX ISA's canonical layouts (T = elements per 16 bytes, W = swizzle bytes / 16):

        K-major,  swizzled: ((8, m), (T, 2)) : ((W*T, SBO), (1, T))            [elements]   (LBO unused)
        MN-major, swizzled: ((T, W, m), (8, k)) : ((1, T, LBO), (W*T, SBO))

    then the swizzle on the address: bits [4, 4 + log2 W) ^= bits [7, 7 + log2 W) (pattern aligned: base offset 0).
    Returns an (extent, 16) int64 tensor."""
    f = decode(desc)
    assert f["reserved"] == 0 and f["base_offset"] == 0 and f["mode"] in SWIZZLE_BYTES
    S = SWIZZLE_BYTES[f["mode"]]
    Wc, T = S // 16, 16 // elem
    mn = torch.arange(extent).view(-1, 1)
    k = torch.arange(16).view(1, -1)
    if not mn_major:
        addr = f["start"] + (mn % 8) * S + (mn // 8) * f["sbo"] + (k // T) * 16 + (k % T) * elem
    else:
        chunk = mn // T
        addr = (f["start"] + (mn % T) * elem + (chunk % Wc) * 16 + (chunk // Wc) * f["lbo"]
                + (k % 8) * S + (k // 8) * f["sbo"])
    return addr ^ (((addr >> 7) & (Wc - 1)) << 4)


def our_addresses(t: ST, mn_major, kk, base):
    """Where our layout stores element (mn, 16*kk + k) of the operand held by tile ``t``."""
    extent = t.cols if mn_major else t.rows
    out = torch.empty(extent, 16, dtype=torch.int64)
    for mn in range(extent):
        for k in range(16):
            r, c = (16 * kk + k, mn) if mn_major else (mn, 16 * kk + k)
            out[mn, k] = base + swizzled_offset(t, r, c)
    return out


def model_tiles():
    """(tile type, mn_major) for K-major tiles (MN rows x K cols) and MN-major tiles (K rows x MN cols)."""
    out = []
    for dt in (tk.bf16, tk.fp16):
        for rows, cols in [(64, 16), (64, 64), (64, 128), (128, 64), (256, 64), (64, 48), (16, 96), (256, 128)]:
            for s in (128, 64, 32):
                if (cols * 2) % s == 0:
                    out.append((ST(dt, rows, cols, s), False))
        for rows, cols in [(16, 64), (64, 64), (128, 64), (64, 128), (64, 256), (128, 16), (32, 48), (16, 256)]:
            for s in (128, 64, 32):
                if (cols * 2) % s == 0:
                    out.append((ST(dt, rows, cols, s), True))
    return out


@pytest.mark.parametrize("t,mn_major", model_tiles(), ids=lambda x: str(x))
def test_descriptor_model_reads_our_layout(t, mn_major):
    S = t.swizzle
    assert t.align % (8 * S) == 0  # the allocator aligns the tile to the swizzle pattern (base offset 0)
    K = t.rows if mn_major else t.cols
    extent = t.cols if mn_major else t.rows
    for base in (0, 3 * t.align, 0x9000):
        for kk in range(K // 16):
            d = W.descriptor(t, mn_major, kk, base)
            assert torch.equal(hw_addresses(d, mn_major, extent), our_addresses(t, mn_major, kk, base)), \
                (t, mn_major, base, kk, decode(d))


def test_descriptor_model_negative_controls():
    """The model is sensitive: swapped LBO/SBO, the wrong trans flag, a wrong swizzle mode, a misaligned tile or a
    wrong K-step offset all fail."""
    def ok(t, mn_major, desc, kk=0, base=0, hw_mn_major=None):
        hw = mn_major if hw_mn_major is None else hw_mn_major
        extent = t.cols if mn_major else t.rows
        return torch.equal(hw_addresses(desc, hw, extent), our_addresses(t, mn_major, kk, base))

    mn = ST(tk.bf16, 64, 256, 128)  # MN-major B: 4 atoms along N, so LBO matters
    good = W.descriptor(mn, True, 1)
    assert ok(mn, True, good, 1)
    f = decode(good)
    swapped = (good & ~(0x3FFF << 16 | 0x3FFF << 32)) | (f["sbo"] >> 4) << 16 | (f["lbo"] >> 4) << 32
    assert not ok(mn, True, swapped, 1)
    assert not ok(mn, True, good, 1, hw_mn_major=False)  # right descriptor, wrong imm-trans
    sq = ST(tk.bf16, 64, 64, 128)
    assert not ok(sq, False, W.descriptor(sq, False, 1), 1, hw_mn_major=True)
    assert not ok(sq, False, W.descriptor(sq, False, 2), 1)  # another K step's offset
    km = ST(tk.bf16, 64, 128, 64)  # K-major A, 64-byte swizzle, 4 atoms along K
    for kk in range(8):
        assert ok(km, False, W.descriptor(km, False, kk), kk)
    wrong_mode = (W.descriptor(km, False, 0) & ~(3 << 62)) | 1 << 62
    assert not ok(km, False, wrong_mode)
    assert not ok(sq, False, W.descriptor(sq, False, 1, base=512), 1, base=512)  # not 1024-aligned


def test_descriptor_rejects_unswizzled_tiles():
    with pytest.raises(ValueError, match="swizzle"):
        W.descriptor(ST(tk.bf16, 64, 64, 0), False, 0)


# ---------------------------------------------------------------------------------------------- CUDA statement sim
_CALL = re.compile(r"tk::wgmma_n<(\d+)>::(ss|rs)<([\w:]+), (\d)(?:, (\d))?>\(\w+\.data\[0\], (.*)\);")
_DESC = re.compile(r"tk::wgmma_desc\((\w+), (0x[0-9a-f]+)ull\)")


def simulate_statement(stmt, tiles, bases, a_regs=None):
    """Run one generated warpgroup-mma statement on a model of the hardware: shared memory is a byte-address ->
    value map filled through our layout; each wgmma reads its operands through the descriptor model, the
    accumulator lands in registers by the PTX fragment and is read back through our fragment map (acc_reg +
    fragment_coords). ``tiles``: name -> (ST, 2-D values); ``a_regs``: per warp, our 16 x K register-A values.
    Returns (64 x N result or None if the statement has no mma, scale-d of each step)."""
    mem = {}
    for name, (t, vals) in tiles.items():
        for r in range(t.rows):
            for c in range(t.cols):
                mem[bases[name] + swizzled_offset(t, r, c)] = float(vals[r, c])
    lookup = lambda addr: torch.tensor([[mem[int(a)] for a in row] for row in addr], dtype=torch.float64)
    D, scales = None, []
    for line in stmt.splitlines():
        m = _CALL.search(line)
        if not m:
            continue
        n, form, _, f1, f2, rest = m.groups()
        n = int(n)
        *args, scale = [x.strip() for x in re.split(r",(?![^(]*\))", rest)]
        scales.append(int(scale))
        descs = _DESC.findall(rest)
        if form == "ss":
            trans_a, trans_b = int(f1), int(f2)
            (an, ad), (bn, bd) = descs
            A = lookup(hw_addresses(int(ad, 16) + (bases[an] >> 4), bool(trans_a), 64))  # (m, k)
        else:
            trans_b = int(f1)
            ((bn, bd),) = descs
            kk = int(re.search(r"\.data\[0\]\[(\d+)\]", args[0]).group(1))
            A = torch.full((64, 16), float("nan"), dtype=torch.float64)
            for w in range(4):
                for lane in range(32):
                    for r in range(4):
                        for e in range(2):
                            # word r holds our register A_REGS[r] of subtile kk; the hardware reads it as ptx_a
                            rr, cc = fragment_coords("row", lane, W.A_REGS[r], e)
                            pr, pc = ptx_a(lane, r, e)
                            A[16 * w + pr, pc] = a_regs[w][rr, 16 * kk + cc]
        B = lookup(hw_addresses(int(bd, 16) + (bases[bn] >> 4), bool(trans_b), n)).T  # (k, n)
        step = A @ B
        D = step if (D is None or not int(scale)) else D + step
    if D is None:
        return None, scales
    # accumulator registers -> our tiles: d_q of lane (warp w) is register acc_reg(q) of our rt
    out = torch.full_like(D, float("nan"))
    for w in range(4):
        for lane in range(32):
            for q in range(D.shape[1] // 2):
                pr, pc = ptx_acc(lane, q)
                j, k, e = W.acc_reg(q)
                r, c = fragment_coords("row", lane, k, e)
                out[16 * w + r, 16 * j + c] = D[16 * w + pr, pc]
    return out, scales


def sim_kernel(variant, acc, areg, n, k, dt, sa_sw, sb_sw):
    at, bt = transposed(variant)

    @tk.kernel(warps=4)
    def sim(x: tk.gl(dt)):
        a = tk.rt(dt, 16, k) if areg else tk.st(dt, *((k, 64) if at else (64, k)), swizzle=sa_sw)
        b = tk.st(dt, *((n, k) if bt else (k, n)), swizzle=sb_sw)
        d = tk.rt(tk.fp32, 16, n)
        fn(variant, acc)(d, a, b)

    return sim


SIM_CASES = [("AB", True, False, 64, 64, 128, 128), ("AB", False, False, 256, 32, 64, 128),
             ("ABt", True, False, 48, 128, 64, 32), ("AtB", True, False, 16, 48, 128, 32),
             ("AtBt", False, False, 128, 64, 32, 64), ("AB", True, True, 32, 64, None, 64),
             ("ABt", False, True, 64, 32, None, 32), ("AtB", False, False, 64, 16, 64, 128)]


@pytest.mark.parametrize("variant,acc,areg,n,k,sa_sw,sb_sw", SIM_CASES, ids=str)
def test_generated_cuda_simulated(variant, acc, areg, n, k, sa_sw, sb_sw):
    at, bt = transposed(variant)
    x = torch.zeros(16, 16, dtype=torch.bfloat16)
    kern = sim_kernel(variant, acc, areg, n, k, tk.bf16, sa_sw, sb_sw)
    src = kern.source(x)
    stmt = src[src.index("{ tk::wgmma_fence();"):src.index("tk::wgmma_commit(); }")]
    a_st = None if areg else ST(tk.bf16, *((k, 64) if at else (64, k)), sa_sw)
    b_st = ST(tk.bf16, *((n, k) if bt else (k, n)), sb_sw)
    A = torch.randint(-4, 5, (64, k)).double()
    B = torch.randint(-4, 5, (k, n)).double()
    tiles = {"b": (b_st, B.T if bt else B)}
    bases = {"a": 0x400 * 3, "b": 0x8000}  # disjoint, aligned for every swizzle
    if not areg:
        tiles["a"] = (a_st, A.T if at else A)
    a_regs = [A[16 * w:16 * w + 16] for w in range(4)] if areg else None
    out, scales = simulate_statement(stmt, tiles, bases, a_regs)
    assert len(scales) == k // 16
    assert scales == [1 if (acc or i) else 0 for i in range(k // 16)]
    assert torch.equal(out, A @ B)


# ---------------------------------------------------------------------------------------------- test kernels
def pick_swizzle(row_bytes, cap):
    for s in (128, 64, 32):
        if s <= cap and row_bytes % s == 0:
            return s
    raise ValueError(row_bytes)


def operand_shapes(variant, n, k):
    at, bt = transposed(variant)
    return ((k, 64) if at else (64, k)), ((n, k) if bt else (k, n))


_KERNELS = {}


def wg_kernel(variant, acc, areg, n, k, warps, cap, dt):
    """Each warpgroup g of each block multiplies its own operands (batch index block * G + g): warp 4g loads the
    shared tiles, everyone syncs, the warpgroup runs the op (on d loaded from c for mma_*), waits, stores."""
    key = (variant, acc, areg, n, k, warps, cap, dt)
    if key in _KERNELS:
        return _KERNELS[key]
    G = warps // 4
    ash, bsh = operand_shapes(variant, n, k)
    op = fn(variant, acc)

    @tk.kernel(warps=warps)
    def wgk(a: tk.gl(dt), b: tk.gl(dt), c: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
        sb = tk.st(dt, *bsh, count=G, swizzle=pick_swizzle(bsh[1] * 2, cap))
        d = tk.rt(tk.fp32, 16, n)
        g = tk.let(tk.warp_id() // 4)
        r = tk.let(tk.warp_id() % 4)
        bg = tk.let(tk.block_idx.x * G + g)
        if areg:
            ra = tk.rt(dt, 16, k)
            tk.load(ra, a, (bg, r, 0))
            A = ra
        else:
            sa = tk.st(dt, *ash, count=G, swizzle=pick_swizzle(ash[1] * 2, cap))
            A = sa[g]
        with tk.if_(r == 0):
            if not areg:
                tk.load(sa[g], a, (bg, 0, 0))
            tk.load(sb[g], b, (bg, 0, 0))
        tk.sync()
        if acc:
            tk.load(d, c, (bg, r, 0))
        op(d, A, sb[g])
        tk.warpgroup.mma_wait()
        tk.store(o, d, (bg, r, 0))

    _KERNELS[key] = wgk
    return wgk


def make_inputs(variant, n, k, warps, blocks, tdt, device="cpu"):
    ash, bsh = operand_shapes(variant, n, k)
    nb = blocks * warps // 4
    a = rand(nb, *ash, dtype=tdt, device=device)
    b = rand(nb, *bsh, dtype=tdt, device=device)
    c = rand(nb, 64, n, dtype=torch.float32, device=device)
    o = poison(nb, 64, n, dtype=torch.float32, device=device)
    return a, b, c, o


def reference(variant, acc, a, b, c):
    return matmul_reference(variant, a, b) + (c.double().cpu() if acc else 0)


def run_case(variant, acc, areg, n, k, warps, cap, dtn, device="cpu", blocks=2):
    dt, tdt = DTYPES[dtn]
    kern = wg_kernel(variant, acc, areg, n, k, warps, cap, dt)
    a, b, c, o = make_inputs(variant, n, k, warps, blocks, tdt, device)
    kern[blocks](a, b, c, o)
    if device == "cuda":
        torch.cuda.synchronize()
    assert_close(o, reference(variant, acc, a, b, c), TOL)
    return kern, (a, b, c, o)


# every op x dtype x A source at one shape (8 warps: two warpgroups on different data, 2 blocks)
OP_CASES = [(v, acc, areg, dtn) for v in VARIANTS for acc in (True, False) for areg in (False, True)
            for dtn in DTYPES if not (areg and v.startswith("At"))]
# shapes and swizzles: N in {16, 64, 256}, K in {16, 64, 128}, swizzle caps 128/64/32, 4 and 8 warps
SHAPE_CASES = [("AB", True, False, 16, 16, 4, 128, "bf16"), ("ABt", False, False, 256, 64, 8, 128, "fp16"),
               ("AtB", True, False, 64, 128, 4, 64, "bf16"), ("AtBt", True, False, 256, 128, 4, 32, "bf16"),
               ("AB", False, True, 256, 128, 8, 64, "fp16"), ("ABt", True, True, 16, 64, 4, 32, "bf16"),
               ("AB", True, False, 64, 128, 8, 32, "fp16"), ("AtB", False, False, 16, 64, 8, 128, "fp16"),
               ("AtBt", False, False, 64, 16, 8, 64, "bf16"), ("ABt", True, False, 256, 16, 4, 64, "bf16")]


@pytest.mark.parametrize("variant,acc,areg,dtn", OP_CASES, ids=str)
def test_every_op_interpreter(variant, acc, areg, dtn):
    run_case(variant, acc, areg, 64, 64, 8, 128, dtn)


@pytest.mark.parametrize("variant,acc,areg,n,k,warps,cap,dtn", SHAPE_CASES, ids=str)
def test_shapes_and_swizzles_interpreter(variant, acc, areg, n, k, warps, cap, dtn):
    run_case(variant, acc, areg, n, k, warps, cap, dtn, blocks=1)


@pytest.mark.gpu
@pytest.mark.parametrize("variant,acc,areg,dtn", OP_CASES, ids=str)
def test_every_op_gpu(variant, acc, areg, dtn):
    run_case(variant, acc, areg, 64, 64, 8, 128, dtn, device="cuda", blocks=3)


@pytest.mark.gpu
@pytest.mark.parametrize("variant,acc,areg,n,k,warps,cap,dtn", SHAPE_CASES, ids=str)
def test_shapes_and_swizzles_gpu(variant, acc, areg, n, k, warps, cap, dtn):
    run_case(variant, acc, areg, n, k, warps, cap, dtn, device="cuda", blocks=2)


# ---------------------------------------------------------------------------------------------- K loop, waits
KL_N, KL_BK, KL_STEPS = 128, 64, 3


@tk.kernel(warps=8)
def kloop(a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), o: tk.gl(tk.fp32)):
    """C[64g.., :] = A[64g.., :] @ B with K = 3 x 64: all K slices staged first, then mm + 2 chained mma, one wait."""
    sa = tk.st(tk.bf16, 64, KL_BK, count=(2, KL_STEPS))
    sb = tk.st(tk.bf16, KL_BK, KL_N, count=KL_STEPS)
    d = tk.rt(tk.fp32, 16, KL_N)
    g = tk.let(tk.warp_id() // 4)
    with tk.if_(tk.warp_id() == 0):
        for s in tk.range(KL_STEPS):
            tk.load(sb[s], b, (s, 0))
    with tk.if_(tk.warp_id() % 4 == 0):
        for s in tk.range(KL_STEPS):
            tk.load(sa[g, s], a, (g, s))
    tk.sync()
    tk.warpgroup.mm_AB(d, sa[g, 0], sb[0])
    for s in tk.range(1, KL_STEPS):
        tk.warpgroup.mma_AB(d, sa[g, s], sb[s])  # reads the pending d: chaining before the wait is allowed
    tk.warpgroup.mma_wait()
    tk.store(o, d, (tk.warp_id(), 0))


def kloop_inputs(device="cpu"):
    a = rand(128, KL_BK * KL_STEPS, device=device)
    b = rand(KL_BK * KL_STEPS, KL_N, device=device)
    return a, b, poison(128, KL_N, dtype=torch.float32, device=device)


def test_chained_k_loop_interpreter():
    a, b, o = kloop_inputs()
    kloop[1](a, b, o)
    assert_close(o, a.double() @ b.double(), TOL)


@pytest.mark.gpu
def test_chained_k_loop_gpu():
    a, b, o = kloop_inputs("cuda")
    kloop[1](a, b, o)
    torch.cuda.synchronize()
    assert_close(o, a.double() @ b.double(), TOL)


def waits_kernel(read_early: str):
    """Two groups in flight (d1 then d2), then mma_wait(1): d1 is done, d2 still in flight; mma_wait(0) ends it."""

    @tk.kernel(warps=4)
    def waits(a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), o: tk.gl(tk.fp32)):
        sa = tk.st(tk.bf16, 64, 64)
        sb = tk.st(tk.bf16, 64, 64)
        d1 = tk.rt(tk.fp32, 16, 64)
        d2 = tk.rt(tk.fp32, 16, 64)
        with tk.if_(tk.warp_id() == 0):
            tk.load(sa, a, (0, 0))
            tk.load(sb, b, (0, 0))
        tk.sync()
        tk.warpgroup.mm_AB(d1, sa, sb)
        if read_early == "d1":
            tk.store(o, d1, (0, tk.warp_id(), 0))  # read-before-wait
        tk.warpgroup.mm_ABt(d2, sa, sb)
        tk.warpgroup.mma_wait(1)
        tk.store(o, d1, (0, tk.warp_id(), 0))
        if read_early == "d2":
            tk.store(o, d2, (1, tk.warp_id(), 0))  # still-in-flight
        tk.warpgroup.mma_wait(0)
        tk.store(o, d2, (1, tk.warp_id(), 0))

    return waits


def test_mma_wait_n_completes_all_but_the_last_n():
    a, b = rand(64, 64), rand(64, 64)
    o = poison(2, 64, 64, dtype=torch.float32)
    waits_kernel("")[1](a, b, o)
    assert_close(o[0], a.double() @ b.double(), TOL)
    assert_close(o[1], a.double() @ b.double().T, TOL)


@pytest.mark.parametrize("which", ["d1", "d2"])
def test_read_before_wait_is_a_race(which):
    a, b = rand(64, 64), rand(64, 64)
    o = poison(2, 64, 64, dtype=torch.float32)
    with pytest.raises(tk.RaceError, match="in flight") as e:
        waits_kernel(which)[1](a, b, o)
    assert e.value.loc[1] == tagged_line(__file__, "read-before-wait" if which == "d1" else "still-in-flight")


def hazard_kernel(case):
    """One warpgroup, one mistake: ``case`` names it and tags its line."""

    @tk.kernel(warps=4)
    def hazard(a: tk.gl(tk.bf16), o: tk.gl(tk.fp32)):
        sa = tk.st(tk.bf16, 64, 64)
        d = tk.rt(tk.fp32, 16, 64)
        with tk.if_(tk.warp_id() == (1 if case == "no-sync" else 0)):
            tk.load(sa, a, (0, 0))
        if case != "no-sync":
            tk.sync()
        if case == "partial-warpgroup":
            with tk.if_(tk.warp_id() == 0):
                tk.warpgroup.mm_AB(d, sa, sa)  # partial-warpgroup
        elif case == "no-sync":
            tk.warpgroup.mm_AB(d, sa, sa)  # no-sync
        elif case == "unwritten-acc":
            tk.warpgroup.mma_AB(d, sa, sa)  # unwritten-acc
        tk.warpgroup.mma_wait()

    return hazard


def expect_hazard(case, error, match=None):
    with pytest.raises(error, match=match) as e:
        hazard_kernel(case)[1](rand(64, 64), poison(64, 64, dtype=torch.float32))
    assert e.value.loc[1] == tagged_line(__file__, case)


def test_warpgroup_op_in_a_one_warp_branch_deadlocks():
    expect_hazard("partial-warpgroup", tk.DeadlockError, "only some of its warps")


def test_shared_operand_written_without_sync_is_a_race():
    expect_hazard("no-sync", tk.RaceError)


def test_accumulating_into_an_unwritten_tile_is_an_error():
    expect_hazard("unwritten-acc", tk.UninitializedReadError, "mm_AB")


# ---------------------------------------------------------------------------------------------- type errors
def misuse(case):
    """A kernel whose one bad call carries the comment ``# bad-<case>``."""
    warps = 2 if case == "warps" else 4

    @tk.kernel(warps=warps)
    def bad(x: tk.gl(tk.bf16)):
        sa = tk.st(tk.bf16, 64, 64)
        sb = tk.st(tk.bf16, 64, 128)
        d = tk.rt(tk.fp32, 16, 128)
        wg = tk.warpgroup
        if case == "d_dtype":
            wg.mma_AB(tk.rt(tk.bf16, 16, 128), sa, sb)  # bad-d_dtype
        elif case == "d_layout":
            wg.mma_AB(tk.rt(tk.fp32, 16, 128, "col"), sa, sb)  # bad-d_layout
        elif case == "d_rows":
            wg.mma_AB(tk.rt(tk.fp32, 64, 128), sa, sb)  # bad-d_rows
        elif case == "n_max":
            wg.mm_AB(tk.rt(tk.fp32, 16, 272), sa, tk.st(tk.bf16, 64, 272))  # bad-n_max
        elif case == "a_dtype":
            wg.mma_AB(d, tk.st(tk.fp32, 64, 64), sb)  # bad-a_dtype
        elif case == "b_dtype":
            wg.mma_AB(d, sa, tk.st(tk.fp16, 64, 128))  # bad-b_dtype
        elif case == "a_rows":
            wg.mma_AB(d, tk.st(tk.bf16, 32, 64), sb)  # bad-a_rows
        elif case == "at_cols":
            wg.mma_AtB(d, tk.st(tk.bf16, 64, 48), sb)  # bad-at_cols
        elif case == "b_k":
            wg.mma_AB(d, sa, tk.st(tk.bf16, 32, 128))  # bad-b_k
        elif case == "bt_shape":
            wg.mma_ABt(d, sa, sb)  # bad-bt_shape
        elif case == "b_reg":
            wg.mma_AB(d, sa, tk.rt(tk.bf16, 64, 128))  # bad-b_reg
        elif case == "areg_at":
            wg.mma_AtB(d, tk.rt(tk.bf16, 16, 64), sb)  # bad-areg_at
        elif case == "areg_layout":
            wg.mma_AB(d, tk.rt(tk.bf16, 16, 64, "col"), sb)  # bad-areg_layout
        elif case == "areg_rows":
            wg.mma_AB(d, tk.rt(tk.bf16, 64, 64), sb)  # bad-areg_rows
        elif case == "swizzle0":
            wg.mma_AB(d, tk.st(tk.bf16, 64, 64, swizzle=0), sb)  # bad-swizzle0
        elif case == "a_vec":
            wg.mma_AB(d, tk.sv(tk.bf16, 64), sb)  # bad-a_vec
        elif case == "warps":
            wg.mma_AB(d, sa, sb)  # bad-warps
        elif case == "wait_n":
            wg.mma_wait(-1)  # bad-wait_n
        elif case == "wait_type":
            wg.mma_wait(1.0)  # bad-wait_type

    return bad


MISUSES = {
    "d_dtype": "d must be a float32 tile", "d_layout": "d must be a row-layout", "d_rows": "expected 16 rows",
    "n_max": "at most 256 columns", "a_dtype": "a must be bfloat16 or float16, got float32",
    "b_dtype": "same dtype: expected b of bfloat16, got float16", "a_rows": "expected rows = 64, got 32x64",
    "at_cols": "expected cols = 64, got 64x48", "b_k": "expected 64x128, got 32x128",
    "bt_shape": "expected 128x64, got 64x128", "b_reg": "b must be a shared tile",
    "areg_at": "must be a shared tile", "areg_layout": "must be row layout", "areg_rows": "expected 16 rows, got 64x64",
    "swizzle0": "expected swizzle 32, 64 or 128, got 0", "a_vec": "a must be a shared tile or a register tile",
    "warps": "multiple of 4 warps", "wait_n": "expected a Python int 0..7", "wait_type": "expected a Python int 0..7",
}


@pytest.mark.parametrize("case", list(MISUSES))
def test_type_errors_name_the_line(case):
    x = torch.zeros(64, 64, dtype=torch.bfloat16)
    with pytest.raises(tk.KernelTypeError) as e:
        misuse(case).ir(x)
    msg = str(e.value)
    assert MISUSES[case] in msg, msg
    assert f"test_ops_wgmma.py:{tagged_line(__file__, 'bad-' + case)}:" in msg, msg


# ---------------------------------------------------------------------------------------------- NVRTC
COMPILE_CASES = [("AB", True, False, 64, 64, 8, 128, "bf16"), ("ABt", False, False, 64, 64, 4, 128, "fp16"),
                 ("AtB", True, False, 64, 64, 4, 128, "bf16"), ("AtBt", False, False, 64, 64, 4, 128, "bf16"),
                 ("AB", True, True, 64, 64, 4, 128, "bf16"), ("ABt", False, True, 64, 64, 4, 128, "fp16")] \
    + SHAPE_CASES[:6]


@pytest.mark.parametrize("variant,acc,areg,n,k,warps,cap,dtn", COMPILE_CASES, ids=str)
def test_compiles_for_sm90a_with_hgmma(variant, acc, areg, n, k, warps, cap, dtn):
    dt, tdt = DTYPES[dtn]
    kern = wg_kernel(variant, acc, areg, n, k, warps, cap, dt)
    ck = kern.compile(*make_inputs(variant, n, k, warps, 1, tdt), arch="sm_90a")
    sass = ck.sass()
    # cuobjdump spells bf16 operands .BF16 and leaves f16 (the default) unmarked
    hgmma = re.findall(r"\bHGMMA\.64x%dx16\.F32(\.BF16)? " % n, sass)
    assert len(hgmma) == k // 16 and all(t == (".BF16" if dtn == "bf16" else "") for t in hgmma), sass
    assert "WARPGROUP.DEPBAR" in sass and "WARPGROUP.ARRIVE" in sass
    res = ck.resources()
    assert res.local == 0 and res.stack == 0, res


def test_kloop_compiles_without_spills():
    ck = kloop.compile(*kloop_inputs(), arch="sm_90a")
    assert ck.sass().count("HGMMA.64x128x16.F32.BF16") == 3 * KL_BK // 16  # mm + the loop body
    assert ck.resources().local == 0
    # after the wait the accumulator goes through an empty asm, so no use of it can be hoisted above the wait
    assert "{ tk::wgmma_wait<0>(); tk::wgmma_fence_operand(d); }" in ck.source


def test_wait_fences_every_accumulator_in_scope():
    x = torch.zeros(64, 64, dtype=torch.bfloat16)
    src = waits_kernel("").source(x, x, x.float())
    assert src.count("tk::wgmma_fence_operand(d1); tk::wgmma_fence_operand(d2);") == 2


def test_sm80_is_refused_with_a_readable_error():
    kern = wg_kernel("AB", True, False, 64, 64, 4, 128, tk.bf16)
    with pytest.raises(RuntimeError, match=r"need sm_90a"):
        kern.compile(*make_inputs("AB", 64, 64, 4, 1, torch.bfloat16), arch="sm_80")

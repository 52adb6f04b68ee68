"""Shared sub-tiles (tk.subtile): contiguous pieces of a swizzled shared tile, used as tiles of their own by TMA,
wgmma and warpgroup loads — in the interpreter, compiled, and on the GPU."""
import pytest
import torch

import pykittens as tk
from util import assert_close, poison, rand


@tk.kernel(warps=4)
def halves(x: tk.gl(tk.bf16), a: tk.gl(tk.bf16), o: tk.gl(tk.bf16), c: tk.gl(tk.fp32), c_half: tk.gl(tk.fp32),
           COLS: tk.constexpr):
    """COLS: fill a 64x256 tile from x by its two 64x128 column halves (two 64-column atoms each); else a 128x64
    tile (one atom wide) by its two 64-row halves. Copy the whole tile to o, and (COLS) multiply a 64x64 tile of a
    by the whole tile and by its second half with wgmma."""
    t = tk.st(tk.bf16, 64, 256) if COLS else tk.st(tk.bf16, 128, 64)
    views = [tk.subtile(t, (64, 128), (0, h)) if COLS else tk.subtile(t, (64, 64), (h, 0)) for h in range(2)]
    a_s = tk.st(tk.bf16, 64, 64)
    sem = tk.semaphore()
    r = tk.rt(tk.bf16, 16, 256) if COLS else tk.rt(tk.bf16, 32, 64)
    with tk.if_(tk.warp_id() == 0):
        tk.init_semaphore(sem, 1)
    tk.sync()
    with tk.if_(tk.warp_id() == 0):
        tk.tma.load_group(sem, *((v, x, (0, h) if COLS else (h, 0)) for h, v in enumerate(views)), (a_s, a, (0, 0)))
    tk.wait(sem, 0)
    tk.warpgroup.load(r, t)
    tk.store(o, r, (tk.warp_id(), 0))
    if COLS:
        acc, acc_half = tk.rt(tk.fp32, 16, 256), tk.rt(tk.fp32, 16, 128)
        tk.warpgroup.mm_AB(acc, a_s, t)
        tk.warpgroup.mm_AB(acc_half, a_s, views[1])
        tk.warpgroup.mma_wait()
        tk.store(c, acc, (tk.warp_id(), 0))
        tk.store(c_half, acc_half, (tk.warp_id(), 0))


def _run(cols: bool, device):
    x = rand(64, 256, device=device) if cols else rand(128, 64, device=device)
    a = rand(64, 64, device=device)
    o = poison(*x.shape, device=device)
    c, c_half = poison(64, 256, dtype=torch.float32, device=device), poison(64, 128, dtype=torch.float32, device=device)
    halves[1](x, a, o, c, c_half, cols)
    assert torch.equal(o.cpu(), x.cpu())
    if cols:
        ref = a.double().cpu() @ x.double().cpu()
        assert_close(c.cpu(), ref, 1e-5)
        assert_close(c_half.cpu(), ref[:, 128:], 1e-5)


@pytest.mark.parametrize("cols", [True, False])
def test_subtiles_in_interpreter(cols):
    _run(cols, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("cols", [True, False])
def test_gpu_subtiles_match_the_whole_tile(cols):
    _run(cols, "cuda")


def test_subtile_compiles_without_spills():
    x = torch.empty(64, 256, dtype=torch.bfloat16)
    f = torch.empty(64, 256)
    ck = halves.compile(x, x[:, :64], x, f, f[:, :128], True, arch="sm_90a")
    assert "HGMMA" in ck.sass() and ck.resources().local == 0


@pytest.mark.parametrize("shape, index, match", [
    ((32, 256), (1, 0), "not contiguous"),  # rows of a tile four atoms wide
    ((64, 96), (0, 0), "not contiguous"),  # part of an atom
    ((64, 128), (0, 2), "does not fit"),
])
def test_non_contiguous_or_outside_subtiles_are_errors(shape, index, match):
    @tk.kernel(warps=1)
    def k(x: tk.gl(tk.bf16)):
        t = tk.st(tk.bf16, 64, 256)
        tk.subtile(t, shape, index)

    with pytest.raises(tk.KernelTypeError, match=match):
        k.ir(rand(16, 16))


@tk.kernel(warps=2)
def register_halves(x: tk.gl(tk.fp32), o: tk.gl(tk.bf16), o_half: tk.gl(tk.bf16)):
    """A 16x64 fp32 tile: scale its right half in place through a sub-tile, convert the whole tile to bf16, and
    convert the left 16x32 half alone through a sub-tile of the bf16 tile's sub-tile."""
    t, out, half = tk.rt(tk.fp32, 16, 64), tk.rt(tk.bf16, 16, 64), tk.rt(tk.bf16, 16, 32)
    tk.load(t, x, (tk.warp_id(), 0))
    right = tk.subtile(t, (16, 32), (0, 1))
    tk.mul(right, right, 2.0)  # writes through to t
    tk.copy(out, t)
    tk.copy(half, tk.subtile(t, (16, 32), (0, 0)))
    tk.store(o, out, (tk.warp_id(), 0))
    tk.store(o_half, half, (tk.warp_id(), 0))


def _register_case(device):
    x = rand(32, 64, dtype=torch.float32, device=device)
    o, o_half = poison(32, 64, device=device), poison(32, 32, device=device)
    register_halves[1](x, o, o_half)
    ref = x.double().cpu().clone()
    ref[:, 32:] *= 2
    assert_close(o.cpu(), ref, 1e-2)
    assert_close(o_half.cpu(), ref[:, :32], 1e-2)


def test_register_subtiles_in_interpreter_and_compiled():
    _register_case("cpu")
    x = torch.empty(32, 64)
    src = register_halves.source(x, x.bfloat16(), x[:, :32].bfloat16(), prelude=False)
    assert "tk::rt_view<decltype(rt), 0, 2, 1, 2> right{rt};" in src  # (t, out, half: rt, rt_1, rt_2)
    ck = register_halves.compile(x, x.bfloat16(), x[:, :32].bfloat16(), arch="sm_90a")
    assert ck.resources().local == 0 and ck.resources().stack == 0  # the view stays in registers


@pytest.mark.gpu
def test_gpu_register_subtiles():
    _register_case("cuda")


@tk.kernel(warps=4)
def wgmma_on_halves(x: tk.gl(tk.fp32), a: tk.gl(tk.bf16), b: tk.gl(tk.bf16), o: tk.gl(tk.fp32),
                    o2: tk.gl(tk.fp32)):
    """wgmma on register sub-tiles: the right half of a 16x128 accumulator (per warp) gets A·Bᵀ added, the left
    half must keep x; then the right half of a bf16 tile (P) is a register A: o2 = P_right · B."""
    acc, p, acc2 = tk.rt(tk.fp32, 16, 128), tk.rt(tk.bf16, 16, 128), tk.rt(tk.fp32, 16, 64)
    a_s, b_s = tk.st(tk.bf16, 64, 64), tk.st(tk.bf16, 64, 64)
    tk.load(acc, x, (tk.warp_id(), 0))
    with tk.if_(tk.warp_id() == 0):
        tk.load(a_s, a, (0, 0))
        tk.load(b_s, b, (0, 0))
    tk.sync()
    tk.warpgroup.mma_ABt(tk.subtile(acc, (16, 64), (0, 1)), a_s, b_s)
    tk.warpgroup.mma_wait()
    tk.store(o, acc, (tk.warp_id(), 0))
    tk.copy(p, acc)
    tk.warpgroup.mm_AB(acc2, tk.subtile(p, (16, 64), (0, 1)), b_s)
    tk.warpgroup.mma_wait()
    tk.store(o2, acc2, (tk.warp_id(), 0))


def _wgmma_halves_case(device):
    x = rand(64, 128, dtype=torch.float32, device=device)
    a, b = rand(64, 64, device=device), rand(64, 64, device=device)
    o, o2 = poison(64, 128, dtype=torch.float32, device=device), poison(64, 64, dtype=torch.float32, device=device)
    wgmma_on_halves[1](x, a, b, o, o2)
    ref = x.double().cpu().clone()
    ref[:, 64:] += a.double().cpu() @ b.double().cpu().T
    assert_close(o.cpu(), ref, 1e-4)
    assert_close(o[:, :64].cpu(), x[:, :64].double().cpu(), 0)  # the other half untouched
    p_right = ref[:, 64:].to(torch.bfloat16).double()
    assert_close(o2.cpu(), p_right @ b.double().cpu(), 1e-4)
    return x, a, b, o, o2


def test_wgmma_on_register_subtiles_interpreter_and_compiled():
    args = _wgmma_halves_case("cpu")
    src = wgmma_on_halves.source(*args, prelude=False)
    assert "tk::rt_view<decltype(" in src and "wgmma_n<64>" in src
    ck = wgmma_on_halves.compile(*args, arch="sm_90a")
    assert ck.resources().local == 0 and "HGMMA" in ck.sass()


@pytest.mark.gpu
def test_gpu_wgmma_on_register_subtiles():
    _wgmma_halves_case("cuda")


@tk.kernel(warps=4)
def staged_halves(x: tk.gl(tk.fp32), o: tk.gl(tk.bf16)):
    """A warpgroup's 64x128 result written out through a 64x64 staging tile one column half at a time (half the
    shared memory of staging it whole), each half a register sub-tile; the right half also by a plain store."""
    t, out = tk.rt(tk.fp32, 16, 128), tk.rt(tk.bf16, 16, 128)
    c_s = tk.st(tk.bf16, 64, 64)
    tk.load(t, x, (tk.warp_id(), 0))
    tk.copy(out, t)
    for h in range(2):
        tk.warpgroup.store_async(o, c_s, tk.subtile(out, (16, 64), (0, h)), (0, h), 1)
        with tk.if_(tk.warp_id() == 0):
            tk.tma.store_wait(0)  # the copy has read c_s before the next half overwrites it
    tk.store(o, tk.subtile(out, (16, 64), (0, 1)), (tk.warp_id(), 1))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_register_subtiles_stage_through_shared_memory(device):
    x = rand(64, 128, dtype=torch.float32, device=device)
    o = poison(64, 128, device=device)
    staged_halves[1](x, o)
    assert_close(o.cpu(), x.cpu().double(), 1e-2)
    if device == "cpu":
        assert staged_halves.compile(x, o, arch="sm_90a").resources().local == 0

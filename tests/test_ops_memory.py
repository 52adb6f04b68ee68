"""Memory ops on tiles: global <-> shared (incl. cp.async), shared <-> registers (ldmatrix / stmatrix), barriers, and
the interpreter's shared-memory checks (races, uninitialised reads, out-of-bounds, deadlocks, async in flight).

Every kernel runs in the interpreter on CPU tensors and compiles with NVRTC for sm_90a and sm_80 without spills; the
``gpu``-marked variants run the same kernels on CUDA tensors.
"""
import re

import pytest
import torch

import pykittens as tk
from util import assert_close, poison, rand, tagged_line, tol_for

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
TORCH = {tk.bf16: torch.bfloat16, tk.fp16: torch.float16, tk.fp32: torch.float32}


def compiles(kernel, *args):
    """NVRTC-compile for sm_90a and sm_80; no local memory. Returns the sm_90a SASS."""
    out = None
    for arch in ("sm_90a", "sm_80"):
        ck = kernel.compile(*args, arch=arch)
        assert ck.resources().local == 0, f"{kernel.name} spills on {arch}: {ck.resources()}"
        if arch == "sm_90a":
            out = ck.sass()
    return out


def opcodes(sass):
    return set(re.findall(r"\b([A-Z][A-Z0-9]*(?:\.[A-Z0-9_]+)*)\b", sass))


# ---------------------------------------------------------------------------------------------- round trips
def roundtrip_kernel(dt, rows, cols, swizzle, warps):
    """global -> shared[w] -> registers (row and col layout) -> shared -> global, plus registers -> global directly."""

    @tk.kernel(warps=warps)
    def roundtrip(x: tk.gl(dt), o_row: tk.gl(dt), o_col: tk.gl(dt), o_ra: tk.gl(dt), o_rb: tk.gl(dt)):
        s = tk.st(dt, rows, cols, count=warps, swizzle=swizzle)
        s2 = tk.st(dt, rows, cols, count=(2, warps), swizzle=swizzle)
        a = tk.rt(dt, rows, cols, "row")
        b = tk.rt(dt, rows, cols, "col")
        w = tk.warp_id()
        r = tk.let(tk.block_idx.x * warps + w)
        idx = (tk.block_idx.z, r, tk.block_idx.y)
        tk.load(s[w], x, idx)
        tk.load(a, s[w])
        tk.load(b, s[w])
        tk.store(s2[0, w], a)
        tk.store(s2[1, w], b)
        tk.store(o_row, s2[0, w], idx)
        tk.store(o_col, s2[1, w], idx)
        tk.store(o_ra, a, idx)
        tk.store(o_rb, b, idx)

    return roundtrip


SHAPES = {tk.bf16: (48, 64), tk.fp16: (32, 128), tk.fp32: (16, 32)}  # tile shapes (non-square)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("swizzle", [0, 32, 64, 128])
@pytest.mark.parametrize("dt", [tk.bf16, tk.fp16, tk.fp32])
def test_roundtrip_every_swizzle_and_layout(dt, swizzle, device):
    rows, cols = SHAPES[dt]
    warps, gx, gy, batch = 2, 2, 2, 2
    R, C = rows * warps * gx, cols * gy
    k = roundtrip_kernel(dt, rows, cols, swizzle, warps)
    x = rand(batch, R, C, dtype=TORCH[dt], device=device)
    outs = [poison(batch, R, C, dtype=TORCH[dt], device=device) for _ in range(4)]
    k[gx, gy, batch](x, *outs)
    for o in outs:
        assert torch.equal(o.cpu(), x.cpu())  # copies are exact
    if device == "cpu":
        compiles(k, x, *outs)


def test_sass_uses_ldmatrix_stmatrix_and_128bit_global_loads():
    dt = tk.bf16
    k = roundtrip_kernel(dt, 32, 64, 128, 2)
    x, o = rand(1, 128, 64), poison(1, 128, 64)
    ops = opcodes(compiles(k, x, o, o, o, o))
    assert any(op.startswith("LDSM") for op in ops), ops
    assert any(op.startswith("LDSM") and ".MT88" in op for op in ops), ops  # the .trans form (col layout)
    assert any(op.startswith("STSM") for op in ops), ops
    assert "LDG.E.128" in ops and "STG.E.128" in ops, ops
    assert "STS.128" in ops and "LDS.128" in ops, ops  # shared accesses are LDS/STS, not generic LD/ST
    sm80 = opcodes(k.compile(x, o, o, o, o, arch="sm_80").sass())
    assert not any(op.startswith("STSM") for op in sm80)  # stmatrix is sm_90 only: sm_80 falls back


@tk.kernel(warps=2)
def convert_kernel(x: tk.gl(tk.fp32), o: tk.gl(tk.fp16), o2: tk.gl(tk.fp32)):
    """fp32 global -> bf16 shared -> fp32 registers (row and col) -> fp16 shared -> fp16 global; col regs -> fp32 out."""
    s = tk.st(tk.bf16, 32, 64, count=2)
    s2 = tk.st(tk.fp16, 32, 64, count=2, swizzle=64)
    a = tk.rt(tk.fp32, 32, 64)
    b = tk.rt(tk.fp16, 32, 64, "col")
    w = tk.warp_id()
    tk.load(s[w], x, (w, 0))
    tk.load(a, s[w])
    tk.load(b, s[w])
    tk.store(s2[w], a)
    tk.store(o, s2[w], (w, 0))
    tk.store(s2[w], b)  # same warp rewrites its own tile: no race
    tk.store(o2, s2[w], (w, 0))


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_conversions(device):
    x = rand(64, 64, dtype=torch.float32, device=device)
    o = poison(64, 64, dtype=torch.float16, device=device)
    o2 = poison(64, 64, dtype=torch.float32, device=device)
    convert_kernel[1](x, o, o2)
    ref = x.cpu().to(torch.bfloat16).double()
    assert_close(o, ref, tol_for(torch.float16))
    assert torch.equal(o.cpu().float(), ref.to(torch.float16).float())
    assert torch.equal(o2.cpu(), ref.to(torch.float16).float())
    if device == "cpu":
        compiles(convert_kernel, x, o, o2)


# ---------------------------------------------------------------------------------------------- ragged tails
def ragged_kernel(dt, rows, cols, fill, use_async):
    @tk.kernel(warps=2)
    def ragged(x: tk.gl(dt), o_clip: tk.gl(dt), o_pad: tk.gl(dt)):
        s = tk.st(dt, rows, cols, count=2)
        s2 = tk.st(dt, rows, cols, count=2)
        a = tk.rt(dt, rows, cols)
        w = tk.warp_id()
        idx = (tk.block_idx.x * 2 + w, tk.block_idx.y)
        if use_async:
            tk.load_async(s[w], x, idx, oob=0.0)
            tk.load_async_wait()
        else:
            tk.load(s[w], x, idx, oob=fill)
        tk.store(o_pad, s[w], idx)
        tk.load(a, s[w])
        tk.store(s2[w], a)
        tk.store(o_clip, s2[w], idx, clip=True)

    return ragged


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dt,R,C,use_async", [
    (tk.bf16, 70, 100, False),  # cols not a multiple of 8: chunks that cross the edge go element by element
    (tk.fp32, 45, 88, False),
    (tk.fp16, 83, 40, True),  # cp.async: partial chunks through src-size, rows outside zero-filled
    (tk.fp32, 17, 38, True),
])
def test_ragged_tails_oob_and_clip(dt, R, C, use_async, device):
    rows, cols = 32, 32 if dt is tk.fp32 else 64
    fill = 0.0 if use_async else -3.5
    k = ragged_kernel(dt, rows, cols, fill, use_async)
    gx, gy = -(-R // (2 * rows)), -(-C // cols)
    x = rand(R, -(-C // 16) * 16, dtype=TORCH[dt], device=device)[:, :C]  # rows 16-byte aligned, as a launch needs
    big = poison(R + 13, 128 + cols, dtype=TORCH[dt], device=device)
    o_clip = big[:R, :C]  # a view: the kernel must not touch the rest of big
    pad = poison(gx * 2 * rows, gy * cols, dtype=TORCH[dt], device=device)
    k[gx, gy](x, o_clip, pad)
    big, pad, x = big.cpu(), pad.cpu(), x.cpu()
    assert torch.equal(big[:R, :C], x)
    outside = torch.ones_like(big, dtype=torch.bool)
    outside[:R, :C] = False
    assert torch.isnan(big[outside].float()).all()
    assert torch.equal(pad[:R, :C], x)
    inside = torch.zeros_like(pad, dtype=torch.bool)
    inside[:R, :C] = True
    assert (pad[~inside].float() == fill).all()
    if device == "cpu":
        compiles(k, x, o_clip, pad)


# ---------------------------------------------------------------------------------------------- store_add
@tk.kernel(warps=4)
def add_tiles(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
    """Every warp of every block adds its tile of x into the same tile of o (concurrent reductions)."""
    t = tk.rt(tk.fp32, 16, 32)
    tk.load(t, x, (tk.warp_id(), 0), oob=0.0)
    tk.mul(t, t, tk.block_idx.x + 1)
    tk.store_add(o, t, (0, tk.block_idx.y), clip=True)


@pytest.mark.parametrize("device", DEVICES)
def test_store_add_sums_concurrent_adds_and_clips(device):
    R, C = 13, 37  # a ragged tile: rows and columns past the edge are dropped
    x = rand(64, 40, dtype=torch.float32, device=device)[:, :32]
    o_big = poison(R + 3, 48, dtype=torch.float32, device=device)
    o_big[:R, :C] = 1.5
    add_tiles[(3, 2)](x, o_big[:R, :C])
    xs = x.cpu().double()
    per_warp = sum(xs[16 * w:16 * w + R] for w in range(4))  # warp w adds rows 16w.. of x into rows 0..
    # blocks x = 0, 1, 2 add 1x, 2x, 3x; block y adds into columns 32y.. (y = 1 only up to C)
    expected = 1.5 + 6 * torch.cat([per_warp, per_warp[:, :C - 32]], dim=1)
    o_big = o_big.cpu()
    assert_close(o_big[:R, :C], expected, 1e-5)
    assert torch.isnan(o_big[R:]).all() and torch.isnan(o_big[:, C:]).all()
    if device == "cpu":
        sass = add_tiles.compile(x, o_big[:R, :C], arch="sm_90a").sass()
        assert "REDG.E.ADD.F32x2" in sass  # one 8-byte reduction per fragment pair


# ---------------------------------------------------------------------------------------------- cp.async
@tk.kernel(warps=2)
def async_pipeline(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), n_tiles: tk.i32):
    """Two-stage pipeline per warp: prefetch tile i+1 while tile i is used; wait_group 1 waits for the older one."""
    s = tk.st(tk.bf16, 16, 64, count=(2, 2))
    t = tk.rt(tk.bf16, 16, 64, "col")
    w = tk.warp_id()
    tk.load_async(s[w, 0], x, (w, 0))
    for i in tk.range(n_tiles):
        with tk.if_(i + 1 < n_tiles):
            tk.load_async(s[w, (i + 1) % 2], x, (w, i + 1))
        with tk.else_():
            tk.load_async(s[w, (i + 1) % 2], x, (w, 0))  # keep one group in flight so wait(1) stays exact
        tk.load_async_wait(1)
        tk.load(t, s[w, i % 2])
        tk.mul(t, t, 2.0)
        tk.store(o, t, (w, i))
    tk.load_async_wait()


@pytest.mark.parametrize("device", DEVICES)
def test_async_double_buffer(device):
    n = 3
    x = rand(32, 64 * n, device=device)
    o = poison(32, 64 * n, device=device)
    async_pipeline[1](x, o, n)
    assert torch.equal(o.cpu(), (x.cpu().float() * 2).to(torch.bfloat16))
    if device == "cpu":
        ops = opcodes(compiles(async_pipeline, x, o, n))
        assert any(op.startswith("LDGSTS") for op in ops), ops
        assert "LDGDEPBAR" in ops and any(op.startswith("DEPBAR") for op in ops), ops


# ---------------------------------------------------------------------------------------------- barriers
@tk.kernel(warps=4)
def neighbours(x: tk.gl(tk.fp16), o: tk.gl(tk.fp16)):
    """Warp w stages tile w in shared memory; after tk.sync() it reads its neighbour's tile (w + 1) % 4."""
    s = tk.st(tk.fp16, 16, 64, count=4)
    t = tk.rt(tk.fp16, 16, 64)
    w = tk.warp_id()
    tk.load(s[w], x, (w, 0))
    tk.sync()
    tk.load(t, s[(w + 1) % 4])
    tk.sync_warp()
    tk.store(o, t, (w, 0))


@pytest.mark.parametrize("device", DEVICES)
def test_sync_lets_warps_share_tiles(device):
    x = rand(64, 64, dtype=torch.float16, device=device)
    o = poison(64, 64, dtype=torch.float16, device=device)
    neighbours[1](x, o)
    assert torch.equal(o.cpu(), torch.roll(x.cpu(), -16, 0))
    if device == "cpu":
        src = neighbours.source(x, o)
        assert "__syncthreads();" in src and "__syncwarp();" in src
        compiles(neighbours, x, o)


# ---------------------------------------------------------------------------------------------- interpreter checks
@tk.kernel(warps=2)
def race_no_sync(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    s = tk.st(tk.bf16, 16, 64, count=2)
    t = tk.rt(tk.bf16, 16, 64)
    w = tk.warp_id()
    tk.load(s[w], x, (w, 0))
    tk.load(t, s[1 - w])  # RACE
    tk.store(o, t, (w, 0))


@tk.kernel(warps=2)
def race_overwrite(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    s = tk.st(tk.bf16, 16, 64)
    w = tk.warp_id()
    tk.load(s, x, (w, 0))  # WRITE-RACE
    tk.sync()
    tk.store(o, s, (w, 0))


@tk.kernel(warps=1)
def uninit(o: tk.gl(tk.bf16)):
    s = tk.st(tk.bf16, 16, 64)
    t = tk.rt(tk.bf16, 16, 64)
    tk.load(t, s)  # UNINIT
    tk.store(o, t, (0, 0))


@tk.kernel(warps=1)
def oob_no_fill(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    s = tk.st(tk.bf16, 16, 64)
    tk.load(s, x, (0, 0))  # OOB
    tk.store(o, s, (0, 0), clip=True)


@tk.kernel(warps=2)
def sync_in_branch(x: tk.gl(tk.bf16)):
    s = tk.st(tk.bf16, 16, 64, count=2)
    tk.load(s[tk.warp_id()], x, (0, 0))
    with tk.if_(tk.warp_id() == 0):
        tk.sync()  # DEADLOCK


@tk.kernel(warps=1)
def read_before_wait(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    s = tk.st(tk.bf16, 16, 64)
    t = tk.rt(tk.bf16, 16, 64)
    tk.load_async(s, x, (0, 0))
    tk.load(t, s)  # IN-FLIGHT
    tk.load_async_wait()
    tk.store(o, t, (0, 0))


def _raises(cls, tag, kernel, *args, grid=1):
    with pytest.raises(cls) as e:
        kernel[grid](*args)
    assert e.value.loc is not None and e.value.loc[1] == tagged_line(__file__, tag), str(e.value)
    assert f"test_ops_memory.py:{tagged_line(__file__, tag)}" in str(e.value)
    return e.value


def test_interpreter_detects_races():
    x, o = rand(32, 64), poison(32, 64)
    err = _raises(tk.RaceError, "RACE", race_no_sync, x, o)
    assert "no barrier" in str(err)
    _raises(tk.RaceError, "WRITE-RACE", race_overwrite, x, o)


def test_interpreter_detects_uninitialised_shared_read():
    _raises(tk.UninitializedReadError, "UNINIT", uninit, poison(16, 64))


def test_interpreter_detects_out_of_bounds_global_load():
    _raises(tk.OutOfBoundsError, "OOB", oob_no_fill, rand(10, 64), poison(10, 64))


def test_interpreter_detects_barrier_in_divergent_branch():
    _raises(tk.DeadlockError, "DEADLOCK", sync_in_branch, rand(16, 64))


def test_interpreter_detects_read_of_async_copy_in_flight():
    err = _raises(tk.RaceError, "IN-FLIGHT", read_before_wait, rand(16, 64), poison(16, 64))
    assert "load_async_wait" in str(err)


def test_error_kernels_still_compile():
    x, o = rand(32, 64), poison(32, 64)
    for k, args in [(race_no_sync, (x, o)), (uninit, (o,)), (oob_no_fill, (x, o)), (sync_in_branch, (x,)),
                    (read_before_wait, (x, o))]:
        compiles(k, *args)


# ---------------------------------------------------------------------------------------------- type rules
def _type_error(tag, body, *args):
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        body(x)

    with pytest.raises(tk.KernelTypeError) as e:
        bad.ir(*args)
    assert f"test_ops_memory.py:{tagged_line(__file__, tag)}" in str(e.value), str(e.value)
    return str(e.value)


def _shape_mismatch(x):
    s = tk.st(tk.bf16, 16, 64)
    t = tk.rt(tk.bf16, 16, 32)
    tk.load(t, s)  # T-SHAPE


def _store_shape_mismatch(x):
    s = tk.st(tk.bf16, 32, 64)
    t = tk.rt(tk.bf16, 16, 64)
    tk.store(s, t)  # T-STORE-SHAPE


def _async_fill(x):
    s = tk.st(tk.bf16, 16, 64)
    tk.load_async(s, x, (0, 0), oob=-1.0)  # T-ASYNC-FILL


def _async_convert(x):
    s = tk.st(tk.fp16, 16, 64)
    tk.load_async(s, x, (0, 0))  # T-ASYNC-DTYPE


def _async_to_regs(x):
    t = tk.rt(tk.bf16, 16, 64)
    tk.load_async(t, x, (0, 0))  # T-ASYNC-RT


def _bad_wait(x):
    tk.load_async_wait(-1)  # T-WAIT


def _shared_with_index(x):
    s = tk.st(tk.bf16, 16, 64)
    t = tk.rt(tk.bf16, 16, 64)
    tk.load(t, s, (0, 0))  # T-INDEX


def _unindexed_array(x):
    s = tk.st(tk.bf16, 16, 64, count=2)
    tk.load(s, x, (0, 0))


def test_type_rules_name_the_line():
    x = rand(16, 64)
    assert "same shape" in _type_error("T-SHAPE", _shape_mismatch, x)
    assert "same shape" in _type_error("T-STORE-SHAPE", _store_shape_mismatch, x)
    assert "oob=0.0" in _type_error("T-ASYNC-FILL", _async_fill, x)
    assert "cannot convert" in _type_error("T-ASYNC-DTYPE", _async_convert, x)
    assert "no such transfer" in _type_error("T-ASYNC-RT", _async_to_regs, x)
    assert "expected a Python int" in _type_error("T-WAIT", _bad_wait, x)
    assert "index" in _type_error("T-INDEX", _shared_with_index, x)
    # an unindexed shared array is refused by the load/store dispatch (ops/memory.py), which names no line yet
    @tk.kernel(warps=1)
    def unindexed(x: tk.gl(tk.bf16)):
        _unindexed_array(x)

    with pytest.raises(tk.KernelTypeError, match="array of shared tiles"):
        unindexed.ir(x)

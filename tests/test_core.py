"""Core: tracing, control flow, errors that name the author's line, launch checks, the compile cache."""
import pytest
import torch

import pykittens as tk
from pykittens.backend.cuda import compiler
from util import assert_close, poison, rand


@tk.kernel(warps=4)
def affine(x: tk.gl(tk.bf16), o: tk.gl(tk.fp32), a: tk.f32, n_tiles: tk.i32):
    """o = x * a + tile_index, over row tiles; warps stride over the tiles with a device loop."""
    t = tk.rt(tk.fp32, 16, 32)
    for i in tk.range(tk.warp_id(), n_tiles, 4):
        tk.load(t, x, (i, 0), oob=0.0)
        tk.mul(t, t, a)
        tk.add(t, t, i)
        tk.store(o, t, (i, 0), clip=True)


def test_device_loop_and_scalars():
    x = rand(75, 32)
    o = poison(75, 32, dtype=torch.float32)
    affine[1](x, o, 1.5, tk.cdiv(75, 16))
    ref = x.double() * 1.5 + (torch.arange(75) // 16)[:, None].double()
    assert_close(o, ref, 1e-6)


@tk.kernel(warps=2)
def branches(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
    t = tk.rt(tk.fp32, 16, 16)
    w = tk.warp_id()
    tk.load(t, x, (w, 0))
    with tk.if_(w == 0):
        tk.mul(t, t, 2.0)
    with tk.else_():
        tk.mul(t, t, -1.0)
    for j in range(3):  # a Python loop unrolls
        tk.add(t, t, float(j))
    tk.store(o, t, (w, 0))


def test_branch_per_warp_and_unrolled_python_loop():
    x = rand(32, 16, dtype=torch.float32)
    o = poison(32, 16, dtype=torch.float32)
    branches[1](x, o)
    ref = torch.cat([x[:16] * 2, -x[16:]]) + 3.0
    assert_close(o, ref, 1e-6)
    src = branches.source(x, o)
    assert "if ((warp_id == 0))" in src and "} else {" in src


def test_ir_and_source_are_readable():
    x, o = rand(32, 32), poison(32, 32, dtype=torch.float32)
    text = str(affine.ir(x, o, 1.0, 2))
    assert "for i in range(warp_id, n_tiles, 4):" in text
    src = affine.source(x, o, 1.0, 2)
    assert "for (int i = warp_id; i < n_tiles; i += 4)" in src
    body = affine.source(x, o, 1.0, 2, prelude=False)
    assert body.startswith('extern "C" __global__') and "namespace tk" not in body
    assert "tk::rt<float, 16, 32, tk::row_l> t;" in src


def _line_of(fn, marker):
    import inspect
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(lines) if marker in l)


def test_tile_dims_must_be_multiples_of_16():
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        tk.rt(tk.bf16, 16, 24)  # MARK

    with pytest.raises(tk.KernelTypeError, match="multiple of 16") as e:
        bad.ir(rand(16, 32))
    assert f"test_core.py:{_line_of(bad.fn, '# MARK')}" in str(e.value)


def test_shared_memory_over_the_limit():
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        tk.st(tk.bf16, 64, 64, count=20)
        tk.st(tk.bf16, 256, 256)  # MARK

    with pytest.raises(tk.KernelTypeError, match="shared memory over the limit") as e:
        bad.ir(rand(16, 32))
    assert f"test_core.py:{_line_of(bad.fn, '# MARK')}" in str(e.value)


def test_python_if_on_device_value_is_a_clear_error():
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        if tk.warp_id() == 0:
            pass

    with pytest.raises(tk.KernelSyntaxError, match="tk.if_"):
        bad.ir(rand(16, 32))


def test_shape_mismatch_names_line():
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        a = tk.rt(tk.fp32, 16, 32)
        b = tk.rt(tk.fp32, 32, 32)
        tk.add(a, a, b)  # MARK

    with pytest.raises(tk.KernelTypeError, match=r"same shape: expected \(16, 32\), got \(32, 32\)") as e:
        bad.ir(rand(16, 32))
    assert f"test_core.py:{_line_of(bad.fn, '# MARK')}" in str(e.value)


def test_launch_checks():
    o = poison(32, 32, dtype=torch.float32)
    with pytest.raises(tk.LaunchError, match="expected dtype torch.bfloat16"):
        affine[1](rand(32, 32, dtype=torch.float16), o, 1.0, 2)
    with pytest.raises(tk.LaunchError, match="last dim must be contiguous"):
        affine[1](rand(32, 32).t(), o, 1.0, 2)
    with pytest.raises(tk.LaunchError, match="16-byte aligned"):
        affine[1](rand(1 + 32 * 32)[1:].view(32, 32), o, 1.0, 2)  # 2 bytes off
    with pytest.raises(tk.LaunchError, match="takes 4 arguments"):
        affine[1](rand(32, 32), o)
    with pytest.raises(tk.LaunchError, match="expected a Python int"):
        affine[1](rand(32, 32), o, 1.0, 2.5)
    with pytest.raises(tk.LaunchError, match="2147483648 does not fit an int32"):
        affine[1](rand(32, 32), o, 1.0, 2 ** 31)
    with pytest.raises(tk.LaunchError, match="1e[+]39 does not fit a float32"):
        affine[1](rand(32, 32), o, 1e39, 2)
    with pytest.raises(tk.LaunchError, match="grid"):
        affine[0](rand(32, 32), o, 1.0, 2)


def test_warps_computed_from_constexprs():
    """``warps=`` as a function of constexprs (by parameter name): each specialisation gets its own block size."""
    @tk.kernel(warps=lambda G: 2 * G)
    def rows_per_warp(o: tk.gl(tk.fp32), G: tk.constexpr):
        t = tk.rt(tk.fp32, 16, 16)
        tk.zero(t)
        tk.add(t, t, tk.warp_id())
        tk.store(o, t, (tk.warp_id(), 0))

    x = torch.empty(64, 16)
    assert [rows_per_warp.ir(x, g).warps for g in (1, 2)] == [2, 4]
    o = poison(64, 16, dtype=torch.float32)
    rows_per_warp[1](o, 2)
    assert torch.equal(o, torch.arange(4.).repeat_interleave(16)[:, None].expand(64, 16))
    with pytest.raises(tk.LaunchError, match="warp count"):
        rows_per_warp.ir(x, 20)
    with pytest.raises(TypeError, match="must name tk.constexpr parameters"):
        tk.kernel(warps=lambda o: 4)(rows_per_warp.fn)


def test_interpreter_reports_out_of_bounds_and_uninitialised():
    @tk.kernel(warps=1)
    def oob(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
        t = tk.rt(tk.fp32, 16, 16)
        tk.load(t, x, (1, 0))  # rows 16..31 of a 20-row tensor, no oob= given
        tk.store(o, t, (0, 0))

    with pytest.raises(tk.OutOfBoundsError):
        oob[1](rand(20, 16, dtype=torch.float32), poison(16, 16, dtype=torch.float32))

    @tk.kernel(warps=1)
    def uninit(o: tk.gl(tk.fp32)):
        t = tk.rt(tk.fp32, 16, 16)
        tk.store(o, t, (0, 0))

    with pytest.raises(tk.UninitializedReadError, match="t .* is read before it was written"):
        uninit[1](poison(16, 16, dtype=torch.float32))


def test_compiler_log_is_cached_and_serialised_wgmma_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(tk.settings, "cache_dir", tmp_path)
    compiler.clear_memory_cache()
    real_log = compiler._log  # ptxas's message as it reads when a consumer is short of registers
    monkeypatch.setattr(compiler, "_log", lambda prog: real_log(prog) + "\nptxas info    : (C7512) Potential "
                        "Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register "
                        "resources for the function 'pk_k'")

    def make():
        @tk.kernel(warps=1)
        def k(x: tk.gl(tk.fp32), unused: tk.gl(tk.fp32)):
            t = tk.rt(tk.fp32, 16, 16)
            tk.load(t, x, (0, 0))
            tk.store(x, t, (0, 0))
        return k

    x = rand(16, 16, dtype=torch.float32)
    with pytest.warns(tk.PerformanceWarning, match="serialised its wgmma"):
        ck = make().compile(x, x, arch="sm_90a")
    assert ck.wgmma_serialized and "never referenced" in ck.result.log  # NVRTC's own warning is in the log too
    compiler.clear_memory_cache()
    again = make().compile(x, x, arch="sm_90a")  # a new process, in effect: the log comes with the cubin
    assert again.result.from_cache == "disk" and again.result.log == ck.result.log and again.wgmma_serialized


def test_cache_recompiles_changed_kernel_and_reuses_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(tk.settings, "cache_dir", tmp_path)
    compiler.clear_memory_cache()

    def make(c):
        @tk.kernel(warps=1)
        def k(x: tk.gl(tk.fp32)):
            t = tk.rt(tk.fp32, 16, 16)
            tk.load(t, x, (0, 0))
            tk.add(t, t, c)
            tk.store(x, t, (0, 0))
        return k

    x = rand(16, 16, dtype=torch.float32)
    first = make(1.0)
    first.compile(x, arch="sm_80")
    assert first.last_compile.from_cache == ""
    again = make(1.0)  # same body: found in the in-memory cache
    again.compile(x, arch="sm_80")
    assert again.last_compile.from_cache == "memory"
    compiler.clear_memory_cache()
    third = make(1.0)  # new process, in effect: found on disk
    third.compile(x, arch="sm_80")
    assert third.last_compile.from_cache == "disk"
    changed = make(2.0)  # a changed body never reuses a stale binary
    changed.compile(x, arch="sm_80")
    assert changed.last_compile.from_cache == ""
    assert len(list(tmp_path.glob("*.cubin"))) == 2


@tk.kernel(warps=1)
def with_ptxas_options(x: tk.gl(tk.fp32), OPTIONS: tk.constexpr = ()):
    tk.ptxas_options(*OPTIONS)
    t = tk.rt(tk.fp32, 16, 16)
    tk.load(t, x, (0, 0))
    tk.mul(t, t, 2.0)
    tk.store(x, t, (0, 0))


def test_ptxas_options_reach_ptxas_and_key_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(tk.settings, "cache_dir", tmp_path)
    compiler.clear_memory_cache()
    x = rand(16, 16, dtype=torch.float32)
    plain = with_ptxas_options.compile(x, (), arch="sm_90a")
    verbose = with_ptxas_options.compile(x, ("--verbose",), arch="sm_90a")
    assert verbose.kir.ptxas_options == ("--verbose",) and plain.kir.ptxas_options == ()
    assert "ptxas info    : Used" in verbose.result.log and "ptxas info" not in plain.result.log
    assert plain.result.key != verbose.result.key and len(list(tmp_path.glob("*.cubin"))) == 2
    ref = x.double() * 2
    with_ptxas_options[1](x, ("--verbose",))  # the interpreter ignores them
    assert_close(x, ref, 0)
    with pytest.raises(tk.KernelTypeError, match="one per argument"):
        with_ptxas_options.ir(x, ("--verbose -O2",))


@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_compiles_without_gpu_and_without_spills(arch):
    x, o = rand(64, 32), poison(64, 32, dtype=torch.float32)
    ck = affine.compile(x, o, 1.0, 4, arch=arch)
    assert ck.resources().local == 0
    assert "pk_affine" in ck.sass()


@pytest.mark.gpu
def test_gpu_matches_interpreter():
    x = rand(75, 32)
    ref = poison(75, 32, dtype=torch.float32)
    affine[1](x, ref, 0.75, 5)
    o = poison(75, 32, dtype=torch.float32, device="cuda")
    affine[1](x.cuda(), o, 0.75, 5)
    torch.cuda.synchronize()
    assert torch.equal(o.cpu(), ref)


def test_variable_named_like_a_generated_parameter_compiles():
    @tk.kernel(warps=1)
    def k(x: tk.gl(tk.fp32)):
        x_r = tk.rt(tk.fp32, 16, 16)  # 'x' becomes C++ parameters x_ptr, x_r, ...
        tk.load(x_r, x, (0, 0))
        tk.store(x, x_r, (0, 0))

    assert k.compile(rand(16, 16, dtype=torch.float32), arch="sm_80").resources().local == 0


def test_launch_plan_packs_arguments_and_keeps_no_tensor_alive():
    """A cached LaunchPlan packs shapes/strides once and addresses per launch; it must not pin its first call's
    tensors (plans live as long as the kernel). No GPU: the loaded kernel is a stand-in that records the launch."""
    import ctypes
    import struct
    import weakref
    from pykittens.backend.cuda.launch import LaunchPlan

    class Loaded:
        def launch(self, grid, pointer, stream):
            self.args = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))

    x, o = torch.randn(32, 64).bfloat16(), torch.empty(32, 64)
    kir = affine.ir(x, o, 2.0, 2)
    key, runtime = affine._bind((x, o, 2.0, 2))
    loaded = Loaded()
    plan = LaunchPlan(loaded, kir.params, (), runtime, 0)
    alive = weakref.ref(x)
    del x, runtime, key
    assert alive() is None
    plan.launch((1, 1, 1), [1024, 2048, 3.0, 7], 0)
    first, shape_b = loaded.args[0], loaded.args[1]  # x's pointer slot and its first dim slot
    assert struct.unpack("Q", ctypes.string_at(first, 8))[0] == 1024
    assert struct.unpack("i", ctypes.string_at(shape_b, 4))[0] == 1  # 2-D tensors are seen as (1, 1, rows, cols)
    assert struct.unpack("f", ctypes.string_at(loaded.args[16], 4))[0] == 3.0  # the scalars after two gls
    assert struct.unpack("i", ctypes.string_at(loaded.args[17], 4))[0] == 7


@tk.kernel(warps=4)
def scaled(x: tk.gl(tk.bf16), o: tk.gl(tk.fp32), a: tk.f32, TILES: tk.constexpr, SHIFT: tk.constexpr = 0.0):
    """o = x * a + SHIFT over TILES row tiles: runtime scalar and constexprs for the bound launcher."""
    t = tk.rt(tk.fp32, 16, 32)
    for i in range(TILES):
        with tk.if_(tk.warp_id() == i % 4):
            tk.load(t, x, (i, 0))
            tk.mul(t, t, a)
            tk.add(t, t, SHIFT)
            tk.store(o, t, (i, 0))


def _launcher_case(device):
    x = rand(64, 32).to(device)
    run = scaled.launcher(1, TILES=4, SHIFT=0.5)
    outs = []
    for a in (1.5, -2.0):  # the second call reuses the plan (GPU) or interprets again (CPU)
        o = poison(64, 32, dtype=torch.float32, device=device)
        run(x, o, a)
        outs.append((o, x.double().cpu() * a + 0.5))
    return outs


def test_launcher_runs_the_interpreter_on_cpu_and_checks_its_arguments():
    for o, ref in _launcher_case("cpu"):
        assert_close(o, ref, 1e-6)
    with pytest.raises(tk.LaunchError, match=r"constexprs \['SHIFT', 'TILES'\] by name; unknown \['TILE'\]"):
        scaled.launcher(1, TILE=4)
    with pytest.raises(tk.LaunchError, match=r"missing \['TILES'\]"):
        scaled.launcher(1)
    run = scaled.launcher(1, TILES=4)
    with pytest.raises(tk.LaunchError, match=r"runtime arguments \(x, o, a\), got 2"):
        run(rand(64, 32), poison(64, 32, dtype=torch.float32))
    with pytest.raises(tk.LaunchError, match="expected a Python float"):
        run(rand(64, 32), poison(64, 32, dtype=torch.float32), "2")


@pytest.mark.gpu
def test_launcher_matches_reference_on_gpu_and_checks_alignment():
    for o, ref in _launcher_case("cuda"):
        torch.cuda.synchronize()
        assert_close(o.cpu(), ref, 1e-6)
    run = scaled.launcher(1, TILES=4)
    x = rand(1 + 64 * 32, device="cuda")
    run(x[:-1].view(64, 32), poison(64, 32, dtype=torch.float32, device="cuda"), 1.0)
    with pytest.raises(tk.LaunchError, match="16-byte aligned"):  # same layout, 2 bytes off
        run(x[1:].view(64, 32), poison(64, 32, dtype=torch.float32, device="cuda"), 1.0)


@tk.kernel(warps=2)
def triangular(o: tk.gl(tk.fp32), n: tk.i32):
    """Warp w sums 0 + 1 + ... + (n + w - 1) in a tk.var (loops of different lengths per warp) into its tile."""
    total = tk.var(0)
    for i in tk.range(n + tk.warp_id()):
        tk.assign(total, total + i)
    t = tk.rt(tk.fp32, 16, 16)
    tk.zero(t)
    tk.add(t, t, total)
    tk.store(o, t, (tk.warp_id(), 0))


def _triangular_case(device):
    o = poison(32, 16, dtype=torch.float32, device=device)
    triangular[1](o, 5)
    return o.cpu(), torch.cat([torch.full((16, 16), 10.0), torch.full((16, 16), 15.0)])


def test_mutable_scalar_carries_through_loops_of_different_lengths():
    o, ref = _triangular_case("cpu")
    assert torch.equal(o, ref)
    src = triangular.source(torch.empty(32, 16), 5, prelude=False)
    assert "int total = 0;" in src and "total = (total + i);" in src
    assert triangular.compile(torch.empty(32, 16), 5, arch="sm_90a").resources().local == 0

    @tk.kernel(warps=1)
    def bad(o: tk.gl(tk.fp32)):
        fixed = tk.let(tk.warp_id() + 1)
        tk.assign(fixed, 2)

    with pytest.raises(tk.KernelTypeError, match="tk.assign needs a scalar made by tk.var"):
        bad.ir(torch.empty(16, 16))


@pytest.mark.gpu
def test_gpu_mutable_scalar():
    o, ref = _triangular_case("cuda")
    assert torch.equal(o, ref)


@tk.kernel(warps=1)
def later_blocks(o: tk.gl(tk.int32), N: tk.constexpr):
    """Each block writes (exists, x, y, z) of ``tk.block_after(N)`` into its row of ``o`` (rows in launch order)."""
    row = tk.block_idx.x + tk.grid_dim.x * (tk.block_idx.y + tk.grid_dim.y * tk.block_idx.z)
    for i, value in enumerate(tk.block_after(N)):
        tk.signal(o, (row, i), value)


def _later_blocks_case(device, grid=(3, 2, 2), n=5):
    blocks = grid[0] * grid[1] * grid[2]
    o = torch.full((blocks, 4), -7, dtype=torch.int32, device=device)
    later_blocks[grid](o, n)
    later = torch.arange(blocks) + n  # launch order: x fastest, then y, then z
    ref = torch.stack([(later < blocks).int(), later % grid[0], later // grid[0] % grid[1],
                       later // (grid[0] * grid[1])], 1)
    return o.cpu(), ref.int()


def test_block_after_counts_blocks_in_launch_order():
    o, ref = _later_blocks_case("cpu")
    assert torch.equal(o, ref), (o, ref)
    assert o[:, 0].tolist() == [1] * 7 + [0] * 5  # the last n blocks have no block n later


@pytest.mark.gpu
def test_gpu_block_after():
    o, ref = _later_blocks_case("cuda")
    assert torch.equal(o, ref), (o, ref)

"""``@tk.kernel``: the user's function -> trace -> IR -> (CUDA backend | interpreter) -> launch.

    @tk.kernel(warps=4)
    def scale(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), s: tk.f32):
        ...
    scale[grid](x, o, 2.0)        # CUDA tensors: NVRTC-compiled kernel; CPU tensors: the interpreter

Parameters are annotated with ``tk.gl(dtype)`` (a tensor of up to 4 dims, seen as (batch, depth, rows, cols)),
``tk.i32`` / ``tk.f32`` (runtime scalars) or ``tk.constexpr`` (a Python value fixed at trace time; a new value
traces and compiles a new specialization).
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass

import torch

from . import ir, trace
from .errors import LaunchError
from .settings import settings
from .types import GL, GLOBAL_DTYPES, DType, ScalarType, dtype_of, f32, i32


@dataclass(frozen=True)
class gl:
    """Annotation of a global-layout parameter; ``dtype=None`` accepts any tile dtype (one trace per dtype)."""
    dtype: DType | None = None


class _Constexpr:
    def __repr__(self):
        return "constexpr"


constexpr = _Constexpr()


class GlobalArg:
    """A tensor argument seen as a 4-D global layout (leading dims of size 1 added), without making a view:
    launches read ``ptr``, ``shape``, ``stride``; the interpreter asks for ``view()``."""
    __slots__ = ("tensor", "ptr", "shape", "stride", "dtype", "device")

    def __init__(self, t: torch.Tensor, shape: tuple, stride: tuple):
        self.tensor, self.ptr, self.shape, self.stride = t, t.data_ptr(), shape, stride
        self.dtype, self.device = t.dtype, t.device

    def view(self) -> torch.Tensor:
        return self.tensor.as_strided(self.shape, self.stride)


_LAYOUTS: dict = {}  # (dtype, shape, strides, expected dtype) -> validated 4-D (shape, strides)


def _check_tensor(name: str, t, dtype: DType | None) -> GlobalArg:
    """Validate a tensor argument (layouts seen before are looked up; only the address is checked anew)."""
    try:
        key = (t.dtype, t.shape, t.stride(), dtype)
        layout = _LAYOUTS.get(key)
    except AttributeError:
        layout = None
    if layout is not None:
        g = GlobalArg(t, *layout)
        if g.ptr % 16 and t.numel():
            raise LaunchError(f"argument '{name}': data must be 16-byte aligned, got address {g.ptr:#x}")
        return g
    g = _validate_tensor(name, t, dtype)
    if len(_LAYOUTS) > 10000:
        _LAYOUTS.clear()
    _LAYOUTS[key] = (g.shape, g.stride)
    return g


def _validate_tensor(name: str, t, dtype: DType | None) -> GlobalArg:
    if not isinstance(t, torch.Tensor):
        raise LaunchError(f"argument '{name}': expected a torch.Tensor, got {type(t).__name__}")
    if dtype is not None and t.dtype != dtype.torch:
        raise LaunchError(f"argument '{name}': expected dtype {dtype.torch}, got {t.dtype}")
    size = (dtype or _tile_dtype(name, t)).size
    shape, stride = tuple(t.shape), t.stride()
    if not 1 <= len(shape) <= 4:
        raise LaunchError(f"argument '{name}': expected a tensor of 1 to 4 dims, got shape {shape}")
    pad = 4 - len(shape)
    shape, stride = (1,) * pad + shape, (0,) * pad + stride
    if shape[3] > 1 and stride[3] != 1:
        raise LaunchError(f"argument '{name}': the last dim must be contiguous (stride 1), got strides {t.stride()}")
    g = GlobalArg(t, shape, stride)
    if g.ptr % 16 and t.numel():
        raise LaunchError(f"argument '{name}': data must be 16-byte aligned, got address {g.ptr:#x}")
    for d in range(3):
        if shape[d] > 1 and (stride[d] * size) % 16:
            raise LaunchError(f"argument '{name}': strides of the leading dims must be multiples of 16 bytes, got "
                              f"strides {t.stride()} ({size}-byte elements)")
    if max(shape) >= 2 ** 31:
        raise LaunchError(f"argument '{name}': each dim must be < 2**31, got {tuple(t.shape)}")
    return g


def _tile_dtype(name, t):
    try:
        return dtype_of(t.dtype)
    except TypeError as e:
        raise LaunchError(f"argument '{name}': {e}") from None


@dataclass
class Specialization:
    """One traced signature of a kernel: its IR and, per arch, its compiled cubin."""
    kir: ir.KernelIR
    trace_seconds: float
    compiled: dict  # arch -> CompiledKernel


class CompiledKernel:
    """A kernel built for one arch: its CUDA source, cubin, SASS and resource usage."""

    def __init__(self, kir: ir.KernelIR, source: str, result, codegen_seconds: float):
        self.kir, self.source, self.result = kir, source, result
        self.codegen_seconds = codegen_seconds
        self._loaded: dict = {}

    @property
    def cubin(self) -> bytes:
        return self.result.cubin

    def sass(self) -> str:
        from .backend.cuda.compiler import sass
        return sass(self.cubin)

    def resources(self):
        from .backend.cuda.compiler import resources
        return resources(self.cubin)

    @property
    def wgmma_serialized(self) -> bool:
        """ptxas serialised this kernel's wgmma instructions (each waits for the previous): a consumer short of
        registers. The library kernels are tested not to be."""
        return self.result.wgmma_serialized

    def loaded(self, device: torch.device):
        from .backend.cuda.launch import LoadedKernel
        key = device.index or 0
        if key not in self._loaded:
            from .backend.cuda.codegen import symbol
            self._loaded[key] = LoadedKernel(self.cubin, symbol(self.kir), self.kir.smem_bytes, self.kir.warps * 32, device)
        return self._loaded[key]


class Kernel:
    """A pykittens kernel. Launch with ``kernel[grid](*args)``; inspect with ``ir``, ``source``, ``compile``."""

    def __init__(self, fn, warps, min_blocks=None, cluster=1):
        if not (isinstance(warps, str) or callable(warps) or 1 <= warps <= 32):
            raise ValueError(f"warps must be between 1 and 32 (or the name of a constexpr parameter, or a function "
                             f"of constexpr parameters), got {warps}")
        if not (isinstance(cluster, str) or cluster in (1, 2, 4, 8)):
            raise ValueError(f"cluster must be 1, 2, 4 or 8 (or the name of a constexpr parameter), got {cluster}")
        self.fn, self.warps, self.name, self.min_blocks = fn, warps, fn.__name__, min_blocks
        self.cluster = cluster
        sig = inspect.signature(fn, eval_str=True)
        self.params, self.defaults = [], {}
        for p in sig.parameters.values():
            ann = p.annotation
            if not (isinstance(ann, (gl, ScalarType)) or ann is constexpr):
                raise TypeError(f"kernel '{self.name}': parameter '{p.name}' needs an annotation: tk.gl(dtype), "
                                f"tk.i32, tk.f32 or tk.constexpr")
            self.params.append((p.name, ann))
            if p.default is not inspect.Parameter.empty:
                if ann is not constexpr:
                    raise TypeError(f"kernel '{self.name}': only tk.constexpr parameters may have defaults")
                self.defaults[p.name] = p.default
        for what, value in (("warps", warps), ("cluster", cluster)):
            if isinstance(value, str) and (value, constexpr) not in self.params:
                raise TypeError(f"kernel '{self.name}': {what}={value!r} must name a tk.constexpr parameter")
        # warps as a function: its parameters name the constexprs it is computed from
        self._warps_from = tuple(inspect.signature(warps).parameters) if callable(warps) else ()
        if any((n, constexpr) not in self.params for n in self._warps_from):
            raise TypeError(f"kernel '{self.name}': the parameters of warps= ({', '.join(self._warps_from)}) must "
                            f"name tk.constexpr parameters")
        self._specs: dict = {}
        # per parameter: 0 = tensor (its layout keys a LaunchPlan), 1 = constexpr (keys it too), 2 = runtime scalar
        self._kinds = tuple(0 if isinstance(a, gl) else 1 if a is constexpr else 2 for _, a in self.params)
        self._plans: dict = {}  # layout key -> backend.cuda.launch.LaunchPlan
        self.last_compile = None  # CompileResult of the last compile, for reporting compile times

    def __repr__(self):
        warps = f"f({', '.join(self._warps_from)})" if callable(self.warps) else self.warps
        return f"<pykittens kernel {self.name} ({warps} warps)>"

    # ------------------------------------------------------------------------------------------ specialization
    def _named(self, args, constexprs: dict) -> tuple:
        """``args`` followed by the remaining parameters, constexprs taken by name from ``constexprs`` or their
        defaults."""
        if not constexprs:
            return args
        names = [n for n, _ in self.params[len(args):]]
        unknown = set(constexprs) - set(names)
        if unknown:
            raise LaunchError(f"kernel '{self.name}': unknown (or already positional) parameters {sorted(unknown)}")
        missing = [n for n in names if n not in constexprs and n not in self.defaults]
        if missing:
            raise LaunchError(f"kernel '{self.name}': missing arguments {missing}")
        return tuple(args) + tuple(constexprs[n] if n in constexprs else self.defaults[n] for n in names)

    def _complete(self, args) -> tuple:
        """Fill in defaults of trailing constexpr parameters."""
        if len(args) < len(self.params):
            missing = [n for n, _ in self.params[len(args):]]
            if all(n in self.defaults for n in missing):
                return tuple(args) + tuple(self.defaults[n] for n in missing)
        return tuple(args)

    def _bind(self, args):
        if len(args) != len(self.params):
            raise LaunchError(f"kernel '{self.name}' takes {len(self.params)} arguments "
                              f"({', '.join(n for n, _ in self.params)}), got {len(args)}")
        key, runtime = [], []
        for (name, ann), a in zip(self.params, args):
            if isinstance(ann, gl):
                g = _check_tensor(name, a, ann.dtype)
                key.append(g.dtype)
                runtime.append(g)
            elif ann is constexpr:
                key.append(("constexpr", a))
            else:
                runtime.append(_check_scalar(name, ann, a))
        return tuple(key), runtime

    def specialize(self, *args) -> Specialization:
        args = self._complete(args)
        return self._specialize(self._bind(args)[0], args)

    def _specialize(self, key, args) -> Specialization:
        spec = self._specs.get(key)
        if spec is None:
            t0 = time.perf_counter()
            spec = Specialization(self._trace(args), 0.0, {})
            spec.trace_seconds = time.perf_counter() - t0
            self._specs[key] = spec
        return spec

    def _warps_for(self, args) -> int:
        if isinstance(self.warps, int):
            return self.warps
        names = [n for n, _ in self.params]
        if callable(self.warps):
            given = {n: args[names.index(n)] for n in self._warps_from}
            w, what = self.warps(**given), f"the warp count for {given}"
        else:
            w, what = args[names.index(self.warps)], f"{self.warps} (the warp count)"
        if not isinstance(w, int) or not 1 <= w <= 32:
            raise LaunchError(f"kernel '{self.name}': {what} must be an int in 1..32, got {w!r}")
        return w

    def _cluster_for(self, args) -> int:
        if isinstance(self.cluster, int):
            return self.cluster
        n = args[[n for n, _ in self.params].index(self.cluster)]
        if n not in (1, 2, 4, 8):
            raise LaunchError(f"kernel '{self.name}': {self.cluster} (the cluster size) must be 1, 2, 4 or 8, got {n!r}")
        return n

    def _trace(self, args) -> ir.KernelIR:
        warps = self._warps_for(args)
        b = trace.Builder(self.name, warps)
        b.cluster = self._cluster_for(args)
        for reserved in ("warp_id", "cluster_rank", "tk", "tk_smem", "tk_smem_raw", "_x", "_y"):
            b.fresh(reserved)
        proxies, params, constexprs = [], [], {}
        for (pname, ann), a in zip(self.params, args):
            name = b.fresh(pname)
            if isinstance(ann, gl):
                for suffix in ("ptr", "b", "d", "r", "c", "sb", "sd", "sr"):  # the C++ parameters it becomes
                    b.fresh(f"{name}_{suffix}")
                v = ir.Var(name, GL(dtype_of(a.dtype, GLOBAL_DTYPES)))
                params.append(v)
                proxies.append(v)
            elif ann is constexpr:
                constexprs[pname] = a
                proxies.append(a)
            else:
                s = ir.Sym(name, ann)
                params.append(s)
                proxies.append(s)
        with trace.tracing(b):
            self.fn(*proxies)
        return ir.KernelIR(self.name, warps, params, b.root, b.smem_bytes, constexprs, b.tensor_maps, self.min_blocks,
                           b.cluster, tuple(b.ptxas_options))

    # ------------------------------------------------------------------------------------------ inspection
    def ir(self, *args) -> ir.KernelIR:
        """The traced IR for these arguments (tensors may live on any device; only their dtypes matter)."""
        return self.specialize(*args).kir

    def compile(self, *args, arch: str | None = None, **constexprs) -> CompiledKernel:
        """Generate CUDA and compile it with NVRTC for ``arch`` (default: settings.arch or 'sm_90a'). No GPU needed.
        Constexprs after the positional arguments may be given by name (the rest take their defaults)."""
        from .backend.cuda.codegen import generate
        from .backend.cuda.compiler import compile_source
        arch = arch or settings.arch or "sm_90a"
        args = self._complete(self._named(args, constexprs))
        spec = self.specialize(*args)
        if arch not in spec.compiled:
            t0 = time.perf_counter()
            source = generate(spec.kir)
            t1 = time.perf_counter()
            result = compile_source(source, self.name, arch, spec.kir.ptxas_options)
            self.last_compile = result
            spec.compiled[arch] = CompiledKernel(spec.kir, source, result, t1 - t0)
        return spec.compiled[arch]

    def source(self, *args, prelude: bool = True) -> str:
        """The generated CUDA C++ for these arguments; ``prelude=False`` gives only the kernel function."""
        from .backend.cuda.codegen import generate
        src = generate(self.specialize(*args).kir)
        return src if prelude else src[src.index('extern "C" __global__'):]

    # ------------------------------------------------------------------------------------------ launch
    def __getitem__(self, grid):
        grid = _grid(grid)
        return lambda *args: self.launch(grid, *args)

    def launch(self, grid, *args, **constexprs):
        """Run on ``grid`` (1 to 3 ints). Tensors on a CUDA device run the compiled kernel on torch's current
        stream; CPU tensors (or ``settings.interpret``) run the interpreter. Constexprs after the positional
        arguments may be given by name (the rest take their defaults).

        The first launch with given argument layouts validates everything and builds a ``LaunchPlan``; later
        launches with the same dtypes, shapes, strides, device and constexprs re-check only what can differ
        (addresses, scalar types) — the host cost of a launch is a few microseconds of Python.
        """
        if len(args) != len(self.params):
            args = self._complete(self._named(args, constexprs))
        plan = self._cached_plan(grid, args)
        if plan is not None:
            plan.launch(_grid(grid), self._values(args), _current_stream(plan.device_index))

    def launcher(self, grid, **constexprs) -> "Launcher":
        """This kernel bound to ``grid`` and to constexpr values (by name; defaults as declared): see ``Launcher``."""
        names = {n for n, a in self.params if a is constexpr}
        unknown = set(constexprs) - names
        missing = names - set(constexprs) - set(self.defaults)
        if unknown or missing:
            raise LaunchError(f"kernel '{self.name}': launcher() takes its constexprs {sorted(names)} by name; "
                              f"unknown {sorted(unknown)}, missing {sorted(missing)}")
        args = [constexprs.get(n, self.defaults.get(n)) if a is constexpr else None for n, a in self.params]
        return Launcher(self, grid, args)

    def _cached_plan(self, grid, args):
        """The LaunchPlan for these argument layouts (validated and built on first sight), or None after running
        the interpreter."""
        try:
            key = tuple((a.dtype, a.shape, a.stride(), a.device) if k == 0 else a
                        for k, a in zip(self._kinds, args) if k != 2)
            plan = self._plans.get(key)
        except (AttributeError, TypeError):  # not a tensor, or an unhashable constexpr: the full path says why
            key = plan = None
        if plan is None or settings.interpret:
            plan = self._plan(grid, args)
            if plan is not None and key is not None:
                if len(self._plans) > 1024:
                    self._plans.clear()
                self._plans[key] = plan
        return plan

    def _values(self, args) -> list:
        """The runtime values of a launch in parameter order: tensor addresses (16-byte aligned) and scalars."""
        values = []
        for (name, ann), k, a in zip(self.params, self._kinds, args):
            if k == 0:
                values.append(_address(name, a))
            elif k == 2:
                values.append(_check_scalar(name, ann, a))
        return values

    def _plan(self, grid, args):
        """Validate a launch fully; return its LaunchPlan, or None after running it in the interpreter."""
        key, runtime = self._bind(args)
        devices = {g.device for g in runtime if isinstance(g, GlobalArg)}
        if len(devices) > 1:
            raise LaunchError(f"kernel '{self.name}': all tensors must be on one device, got {sorted(map(str, devices))}")
        device = devices.pop() if devices else torch.device("cpu")
        spec = self._specialize(key, args)
        if device.type == "cpu" or settings.interpret:
            self._interpret(spec.kir, _grid(grid), runtime)
            return None
        if device.type != "cuda":
            raise LaunchError(f"kernel '{self.name}': tensors must be on a CUDA device or the CPU, got {device}")
        from .backend.cuda.launch import LaunchPlan, device_arch
        ck = self.compile(*args, arch=settings.arch or device_arch(device))
        index = device.index or 0
        return LaunchPlan(ck.loaded(device), spec.kir.params, spec.kir.tensor_maps, runtime, index, spec.kir.cluster,
                          self.name)

    def _interpret(self, kir, grid, runtime):
        from .interpreter.machine import run_kernel
        scalars, tensors = {}, {}
        for p, a in zip(kir.params, runtime):
            if isinstance(p.type, GL):
                if a.device.type != "cpu":
                    raise LaunchError("the interpreter runs on CPU tensors")
                tensors[p] = a.view()
            else:
                scalars[p.name] = a
        run_kernel(kir, grid, scalars, tensors)


class Launcher:
    """A kernel bound to a grid and to constexpr values (``Kernel.launcher``). Call it with the runtime arguments
    only — the tensors and scalars, in parameter order — to launch with nothing checked but alignment and scalar
    types: no layout key is built or looked up, which saves most of ``Kernel.launch``'s host time.

    For library ops that cache their own layout checks (``pykittens.kernels``): the caller promises that every
    call passes tensors of the layouts (dtypes, shapes, strides, device) of the first call, which validates and
    compiles as ``Kernel.launch`` does. On CPU tensors (or with ``settings.interpret``) every call interprets.
    """

    def __init__(self, kernel: Kernel, grid, args: list):
        self.kernel, self.grid, self.args = kernel, _grid(grid), args
        self.runtime = [i for i, k in enumerate(kernel._kinds) if k != 1]  # where call arguments go in args
        # per call argument: (name, annotation, is a tensor), looked up once rather than per launch
        self.checks = [(*kernel.params[i], kernel._kinds[i] == 0) for i in self.runtime]
        self.plan = None

    def __call__(self, *runtime):
        if len(runtime) != len(self.runtime):
            names = ", ".join(self.kernel.params[i][0] for i in self.runtime)
            raise LaunchError(f"launcher of '{self.kernel.name}' takes the runtime arguments ({names}), "
                              f"got {len(runtime)}")
        plan = self.plan
        if plan is None or settings.interpret:
            args = self.args
            for i, a in zip(self.runtime, runtime):
                args[i] = a
            plan = self.kernel._cached_plan(self.grid, args)
            args = [a if k == 1 else None for a, k in zip(args, self.kernel._kinds)]  # keep no tensors alive
            self.args = args
            if plan is None:
                return  # ran in the interpreter
            self.plan = plan
        values = []  # (a plain loop, the alignment test inline: the cheapest form in CPython 3.11-3.12)
        for (name, ann, tensor), a in zip(self.checks, runtime):
            if tensor:
                ptr = a.data_ptr()
                if ptr & 15:
                    _address(name, a)  # (raises unless the tensor is empty)
                values.append(ptr)
            else:
                values.append(_check_scalar(name, ann, a))
        plan.launch(self.grid, values, _current_stream(plan.device_index))


def _address(name: str, t) -> int:
    ptr = t.data_ptr()
    if ptr & 15 and t.numel():
        raise LaunchError(f"argument '{name}': data must be 16-byte aligned, got address {ptr:#x}")
    return ptr


_F32_MAX = 3.4028234663852886e38


def _check_scalar(name: str, ann, a):
    if ann is i32 and not isinstance(a, int) or not isinstance(a, (int, float)):
        raise LaunchError(f"argument '{name}': expected a Python {'float' if ann is f32 else 'int'}, got "
                          f"{type(a).__name__} {a!r}")
    if ann is i32 and not -2 ** 31 <= a < 2 ** 31 or ann is f32 and _F32_MAX < abs(a) < math.inf:
        raise LaunchError(f"argument '{name}': {a!r} does not fit {'a float32' if ann is f32 else 'an int32'}")
    return a


def _current_stream(index: int) -> int:
    """torch's current stream on a device, as a raw handle (the private accessor is ~10x cheaper per launch)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(index) if raw is not None else torch.cuda.current_stream(index).cuda_stream


def _grid(grid) -> tuple:
    g = (grid,) if isinstance(grid, int) else tuple(grid)
    if not 1 <= len(g) <= 3 or not all(isinstance(x, int) and x >= 1 for x in g):
        raise LaunchError(f"grid must be 1 to 3 positive ints, got {grid!r}")
    return g + (1,) * (3 - len(g))


def kernel(fn=None, *, warps=4, min_blocks=None, cluster=1):
    """Decorator: ``@tk.kernel(warps=4)`` turns a tile program into a launchable ``Kernel``.

    ``warps`` is the block size in warps, or the name of a ``tk.constexpr`` parameter that gives it, or a function
    whose parameters name the constexprs it depends on (``warps=lambda C: 4 * (1 + C)``).
    ``min_blocks`` sets the minimum resident blocks per SM in ``__launch_bounds__``; warp-specialised kernels that
    move registers between warpgroups (``tk.warpgroup.increase_registers``) need ``min_blocks=1``.
    ``cluster`` (sm_90): blocks per thread-block cluster along x (1, 2, 4 or 8, or the name of a constexpr
    parameter): consecutive blocks ``block_idx.x`` run together on one GPC, see ``tk.cluster_rank()`` and may
    write each other's shared memory (``tk.tma.load_async(..., multicast=)``, ``tk.arrive(..., cta=)``). The grid's
    x size must be a multiple of it.
    """
    if fn is not None:
        return Kernel(fn, warps, min_blocks, cluster)
    return lambda f: Kernel(f, warps, min_blocks, cluster)

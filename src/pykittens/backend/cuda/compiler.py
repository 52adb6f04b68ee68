"""NVRTC compilation to cubin, with an in-memory and an on-disk cache, and SASS / resource inspection.

The cache key hashes everything that changes the binary: the generated source, the NVRTC options, the target arch,
the NVRTC version and the pykittens version. A changed kernel body changes the source, so it never reuses a stale
binary. Needs no GPU: NVRTC and cuobjdump come from PyPI wheels.

The compiler's log is kept next to each cached cubin: ptxas reports there when it serialised a kernel's wgmma
instructions (each one waited to completion before the next issues — typically a consumer short of registers),
a silent slowdown of 20–30% that a fresh compile also raises as a ``PerformanceWarning``.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import PerformanceWarning
from ...settings import settings

_memory_cache: dict[str, tuple[bytes, str]] = {}  # key -> (cubin, compiler log)

_CACHE_FORMAT = "2"  # 2: each cubin has its compiler log next to it
WGMMA_SERIALIZED = "wgmma.mma_async instructions are serialized"  # ptxas's words (C7510-C7515 infos)


@dataclass
class CompileResult:
    cubin: bytes
    arch: str
    key: str
    seconds: float
    from_cache: str  # 'memory', 'disk' or '' (compiled now)
    log: str = ""  # NVRTC's and ptxas's messages (kept in the caches too)

    @property
    def wgmma_serialized(self) -> bool:
        """ptxas made every wgmma wait for the one before (see the module docstring)."""
        return WGMMA_SERIALIZED in self.log


def nvrtc_version() -> tuple[int, int]:
    from cuda.bindings import nvrtc
    err, major, minor = nvrtc.nvrtcVersion()
    _check(err, "nvrtcVersion")
    return major, minor


_nvrtc_identity: str | None = None


def nvrtc_identity() -> str:
    """What identifies the NVRTC build for the cache key. The pip wheel's version when NVRTC comes from one (cheap:
    a warm cache hit then never loads the NVRTC library), else the library's own version query."""
    global _nvrtc_identity
    if _nvrtc_identity is None:
        from importlib import metadata
        try:
            _nvrtc_identity = "wheel " + metadata.distribution("nvidia-cuda-nvrtc").version
        except metadata.PackageNotFoundError:
            _nvrtc_identity = "lib %d.%d" % nvrtc_version()
    return _nvrtc_identity


def _check(err, what, prog=None):
    from cuda.bindings import nvrtc
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = _log(prog) if prog is not None else ""
        raise RuntimeError(f"{what} failed: {err.name}\n{log}")


def _log(prog) -> str:
    from cuda.bindings import nvrtc
    _, n = nvrtc.nvrtcGetProgramLogSize(prog)
    buf = b" " * n
    nvrtc.nvrtcGetProgramLog(prog, buf)
    return buf.decode(errors="replace").rstrip("\x00 \n")


def options(arch: str) -> list[str]:
    opts = [f"--gpu-architecture={arch}", "-std=c++17", "--use_fast_math", "-default-device"]
    if settings.debug:
        opts.append("-lineinfo")
    return opts


def compile_source(source: str, name: str, arch: str, ptxas: tuple = ()) -> CompileResult:
    """Compile CUDA C++ ``source`` to a cubin for ``arch`` (e.g. 'sm_90a'), through the caches; ``ptxas``: options
    for ptxas (``tk.ptxas_options``)."""
    from ... import __version__
    t0 = time.perf_counter()
    opts = options(arch) + [f"--ptxas-options={o}" for o in ptxas]
    key = hashlib.sha256("\0".join([source, *opts, arch, nvrtc_identity(), __version__, _CACHE_FORMAT]).encode()).hexdigest()
    if key in _memory_cache:
        cubin, log = _memory_cache[key]
        return CompileResult(cubin, arch, key, time.perf_counter() - t0, "memory", log)
    path = Path(settings.cache_dir) / f"{name}-{key[:32]}.cubin"
    if not settings.disable_cache and path.exists():
        cubin = path.read_bytes()
        log_path = path.with_suffix(".log")
        log = log_path.read_text() if log_path.exists() else ""
        _memory_cache[key] = cubin, log
        return CompileResult(cubin, arch, key, time.perf_counter() - t0, "disk", log)

    from cuda.bindings import nvrtc
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], [])
    _check(err, "nvrtcCreateProgram")
    try:
        bopts = [o.encode() for o in opts]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(bopts), bopts)
        log = _log(prog)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            numbered = "\n".join(f"{i + 1:5d} {l}" for i, l in enumerate(source.splitlines()))
            raise RuntimeError(f"NVRTC could not compile kernel '{name}' for {arch}:\n{log}\n--- source ---\n{numbered}")
        err, n = nvrtc.nvrtcGetCUBINSize(prog)
        _check(err, "nvrtcGetCUBINSize", prog)
        cubin = b" " * n
        (err,) = nvrtc.nvrtcGetCUBIN(prog, cubin)
        _check(err, "nvrtcGetCUBIN", prog)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    _memory_cache[key] = cubin, log
    if WGMMA_SERIALIZED in log:
        warnings.warn(f"kernel '{name}': ptxas serialised its wgmma instructions (each waits for the previous one):"
                      f" {log.splitlines()[-1].strip()}", PerformanceWarning, stacklevel=4)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(log)
        tmp.replace(path.with_suffix(".log"))  # the log first: a cubin on disk always has its log
        tmp.write_bytes(cubin)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # an unwritable cache only costs speed
    return CompileResult(cubin, arch, key, time.perf_counter() - t0, "", log)


def clear_memory_cache():
    _memory_cache.clear()


# ---------------------------------------------------------------------------------------------- inspection
def _cuobjdump(args: list[str], cubin: bytes) -> str:
    from cuda import pathfinder
    exe = pathfinder.find_nvidia_binary_utility("cuobjdump")
    if exe is None:
        raise RuntimeError("cuobjdump not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")
    env = dict(os.environ)
    nvdisasm = pathfinder.find_nvidia_binary_utility("nvdisasm")
    if nvdisasm:
        env["PATH"] = os.path.dirname(nvdisasm) + os.pathsep + env.get("PATH", "")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        r = subprocess.run([exe, *args, f.name], capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(f"cuobjdump {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def sass(cubin: bytes) -> str:
    """Disassembly (SASS) of a cubin."""
    return _cuobjdump(["-sass"], cubin)


@dataclass
class Resources:
    """What cuobjdump reports for a kernel. ``registers`` is the per-thread allocation at launch; in kernels that
    move registers between warpgroups (``tk.warpgroup.increase_registers``) that is the entry cap, which the
    warpgroups then change."""
    registers: int
    shared_static: int
    local: int  # bytes of local memory per thread: > 0 means spills or a stack array
    stack: int
    raw: str = field(repr=False, default="")

    @property
    def spills(self) -> bool:
        return self.local > 0 or self.stack > 0


def resources(cubin: bytes) -> Resources:
    """Registers per thread, static shared memory and local (spill) bytes, read by cuobjdump."""
    out = _cuobjdump(["--dump-resource-usage"], cubin)
    def num(tag):
        m = re.search(rf"\b{tag}:(\d+)", out)
        return int(m.group(1)) if m else 0
    return Resources(num("REG"), num("SHARED"), num("LOCAL"), num("STACK"), out)

"""Loading cubins and launching kernels on torch's current stream, through cuda-bindings' driver API."""
from __future__ import annotations

import ctypes
import struct

import torch

from ...types import GL, f32


def _drv(result, what):
    from cuda.bindings import driver
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        _, msg = driver.cuGetErrorString(err)
        raise RuntimeError(f"{what} failed: {err.name} ({msg.decode() if msg else ''})")
    return rest[0] if len(rest) == 1 else rest


def device_arch(device: torch.device) -> str:
    """NVRTC target for a GPU: 'sm_90a' on Hopper (wgmma and setmaxnreg need the 'a' target), else 'sm_XY'."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}{'a' if major == 9 else ''}"


class LoadedKernel:
    """A cubin loaded into the current CUDA context, ready to launch."""

    def __init__(self, cubin: bytes, name: str, smem_bytes: int, threads: int, device: torch.device):
        from cuda.bindings import driver
        torch.cuda.init()
        with torch.cuda.device(device):
            torch.cuda.current_stream(device)  # make sure the primary context exists and is current
            ctx = _drv(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
            if int(ctx) == 0:
                dev = _drv(driver.cuDeviceGet(device.index or 0), "cuDeviceGet")
                ctx = _drv(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
                _drv(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
            self.module = _drv(driver.cuModuleLoadData(cubin), "cuModuleLoadData")
            self.function = _drv(driver.cuModuleGetFunction(self.module, name.encode()), "cuModuleGetFunction")
        # dynamic shared memory: the kernel rounds its base up to 1024 B, so ask for that much slack
        self.smem = smem_bytes + 1024 if smem_bytes else 0
        self.threads = threads
        if self.smem > 48 * 1024:
            attr = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            _drv(driver.cuFuncSetAttribute(self.function, attr, self.smem), "cuFuncSetAttribute")

    def attribute(self, name: str) -> int:
        from cuda.bindings import driver
        attr = getattr(driver.CUfunction_attribute, f"CU_FUNC_ATTRIBUTE_{name}")
        return _drv(driver.cuFuncGetAttribute(attr, self.function), "cuFuncGetAttribute")

    def launch(self, grid: tuple, args: "ArgBuffer", stream: int):
        from cuda.bindings import driver
        s = _streams.get(stream)
        if s is None:
            s = _streams[stream] = driver.CUstream(stream)
        gx, gy, gz = grid
        err, = driver.cuLaunchKernel(self.function, gx, gy, gz, self.threads, 1, 1, self.smem, s, args.pointer, 0)
        if err != driver.CUresult.CUDA_SUCCESS:
            _drv((err,), "cuLaunchKernel")


_streams: dict = {}  # stream handle -> CUstream, so launches do not build one each time


class ArgBuffer:
    """Kernel arguments packed into one preallocated buffer with a precompiled ``struct`` layout (a gl is ptr, b, d,
    r, c, sb, sd, sr; a TMA descriptor 128 bytes at 64-byte alignment), handed to cuLaunchKernel as a ready
    ``void**`` into it: a launch is one ``pack_into`` plus a copy per descriptor, no per-argument conversions."""

    def __init__(self, params, tensor_maps=()):
        fmt, offsets, self.kinds = "=", [], []
        size = 0

        def slot(code, nbytes):
            nonlocal fmt, size
            pad = -size % nbytes
            fmt += f"{pad}x{code}" if pad else code
            size += pad
            offsets.append(size)
            size += nbytes

        for p in params:
            if isinstance(p.type, GL):
                slot("Q", 8)
                for _ in range(4):
                    slot("i", 4)
                for _ in range(3):
                    slot("q", 8)
                self.kinds.append("gl")
            else:
                slot("f" if p.type is f32 else "i", 4)
                self.kinds.append("f" if p.type is f32 else "i")
        self.struct = struct.Struct(fmt)
        self.tmaps = []
        for var, st in tensor_maps:
            size += -size % 64
            offsets.append(size)
            self.tmaps.append((params.index(var), st, size, {}))
            size += 128
        self.buffer = (ctypes.c_ubyte * (size + 64))()
        base = ctypes.addressof(self.buffer)
        self.shift = -base % 64  # descriptors want 64-byte alignment
        self.array = (ctypes.c_void_p * len(offsets))(*[base + self.shift + o for o in offsets])
        self.pointer = ctypes.addressof(self.array)

    def fill(self, runtime):
        values = []
        for kind, a in zip(self.kinds, runtime):
            if kind == "gl":  # a kernel.GlobalArg
                values.append(a.ptr)
                values.extend(a.shape)
                values.extend(a.stride[:3])
            else:
                values.append(a)
        self.struct.pack_into(self.buffer, self.shift, *values)
        if self.tmaps:
            base = ctypes.addressof(self.buffer) + self.shift
            for i, st, off, cache in self.tmaps:
                g = runtime[i]
                tm = cache.get((g.ptr, g.shape, g.stride))
                if tm is None:  # a descriptor per address and layout; the shared module cache bounds memory
                    from .tma import encode
                    tm = cache[(g.ptr, g.shape, g.stride)] = encode(g, st)
                    if len(cache) > 256:
                        cache.clear()
                ctypes.memmove(base + off, tm.getPtr(), 128)
        return self

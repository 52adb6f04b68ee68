"""Loading cubins and launching kernels on torch's current stream, through cuda-bindings' driver API."""
from __future__ import annotations

import ctypes
import struct
from types import SimpleNamespace

import torch

from ...errors import check_cluster_grid
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
        self.handle = int(self.function)
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

    def max_active_clusters(self, cluster: int) -> int:
        """How many clusters of this kernel (its compiled-in ``cluster`` size) fit on the GPU at once: what a
        persistent grid of clusters may launch (SMs are grouped into GPCs, so it can be below SMs / cluster)."""
        from cuda.bindings import driver
        cfg = driver.CUlaunchConfig()
        cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ = cluster, 1, 1
        cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ = self.threads, 1, 1
        cfg.sharedMemBytes = self.smem
        cfg.numAttrs = 0  # the cluster size is compiled in (__cluster_dims__)
        return _drv(driver.cuOccupancyMaxActiveClusters(self.function, cfg), "cuOccupancyMaxActiveClusters")

    def launch(self, grid: tuple, arg_pointer: int, stream: int):
        """cuLaunchKernel through ctypes: cuda-bindings' wrapper costs ~4 us of argument conversion per call."""
        gx, gy, gz = grid
        err = _libcuda().cuLaunchKernel(self.handle, gx, gy, gz, self.threads, 1, 1, self.smem, stream, arg_pointer,
                                        None)
        if err:
            from cuda.bindings import driver
            _drv((driver.CUresult(err),), "cuLaunchKernel")


_LIBCUDA = []


def _libcuda():
    """The driver library (the one cuda-bindings and torch use), with cuLaunchKernel's signature declared."""
    if not _LIBCUDA:
        lib = ctypes.CDLL("libcuda.so.1")
        u = ctypes.c_uint
        lib.cuLaunchKernel.argtypes = [ctypes.c_void_p, u, u, u, u, u, u, u, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_void_p]
        lib.cuLaunchKernel.restype = ctypes.c_int
        _LIBCUDA.append(lib)
    return _LIBCUDA[0]


_CTYPES = {"Q": ctypes.c_uint64, "i": ctypes.c_int32, "f": ctypes.c_float}  # struct code -> ctypes field


class LaunchPlan:
    """What a launch needs that depends only on the argument layouts (dtypes, shapes, strides, device): the loaded
    kernel and a preallocated argument buffer with a precompiled ``struct`` layout (a gl is ptr, b, d, r, c, sb,
    sd, sr; a TMA descriptor 128 bytes at 64-byte alignment), handed to cuLaunchKernel as a ready ``void**`` into
    it. Shapes and strides are packed in once; a launch sets the addresses and scalars through ctypes fields over
    the buffer (cheaper than packing every field again), and copies in the TMA descriptor of an address it has not
    seen in that slot before."""

    def __init__(self, loaded: LoadedKernel, params, tensor_maps, runtime, device_index: int, cluster: int = 1,
                 name: str = "?"):
        self.loaded, self.device_index, self.cluster, self.name = loaded, device_index, cluster, name
        fmt, offsets, template, values = "=", [], [], []  # values: (field index, struct code) of each runtime value
        size = 0

        def slot(code, nbytes):
            nonlocal fmt, size
            pad = -size % nbytes
            fmt += f"{pad}x{code}" if pad else code
            size += pad
            offsets.append(size)
            size += nbytes

        for p, a in zip(params, runtime):
            code = "Q" if isinstance(p.type, GL) else "f" if p.type is f32 else "i"
            values.append((len(template), code))  # a gl's address or a scalar: the field a launch writes
            slot(code, 8 if code == "Q" else 4)
            if code == "Q":
                for _ in range(4):
                    slot("i", 4)
                for _ in range(3):
                    slot("q", 8)
                template += [0, *a.shape, *a.stride[:3]]
            else:
                template.append(0)
        self.tmaps = []  # (argument index, shared tile type, byte offset, {address: descriptor bytes})
        for var, st in tensor_maps:
            size += -size % 64
            offsets.append(size)
            self.tmaps.append((params.index(var), st, size, {}))
            size += 128
        self.buffer = (ctypes.c_ubyte * (size + 64))()
        self.base = ctypes.addressof(self.buffer)
        self.shift = -self.base % 64  # descriptors want 64-byte alignment
        struct.Struct(fmt).pack_into(self.buffer, self.shift, *template)  # shapes and strides, once
        # per runtime value (in parameter order): the ctypes field a launch writes it to
        self.fields = [_CTYPES[code].from_buffer(self.buffer, self.shift + offsets[at]) for at, code in values]
        self.array = (ctypes.c_void_p * len(offsets))(*[self.base + self.shift + o for o in offsets])
        self.pointer = ctypes.addressof(self.array)
        # layouts for descriptors (not the GlobalArgs: a cached plan must not keep its first call's tensors alive)
        self.layouts = {i: (a.shape, a.stride, a.dtype) for i, a in enumerate(runtime) if isinstance(params[i].type, GL)}
        self.last = [None] * len(self.tmaps)  # the address whose descriptor each slot holds now

    def launch(self, grid: tuple, values: list, stream: int):
        """``values``: the kernel's runtime values in parameter order (addresses for gl parameters)."""
        check_cluster_grid(self.name, grid, self.cluster)
        for field, value in zip(self.fields, values):
            field.value = value
        for n, (i, st, off, cache) in enumerate(self.tmaps):
            ptr = values[i]
            if self.last[n] != ptr:
                desc = cache.get(ptr)
                if desc is None:  # one descriptor per address; bounded, since addresses come and go
                    from .tma import encode
                    if len(cache) > 256:
                        cache.clear()
                    shape, stride, dtype = self.layouts[i]
                    g = SimpleNamespace(ptr=ptr, shape=shape, stride=stride, dtype=dtype)
                    desc = cache[ptr] = ctypes.string_at(encode(g, st).getPtr(), 128)
                ctypes.memmove(self.base + self.shift + off, desc, 128)
                self.last[n] = ptr
        self.loaded.launch(grid, self.pointer, stream)

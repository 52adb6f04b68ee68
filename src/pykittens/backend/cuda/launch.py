"""Loading cubins and launching kernels on torch's current stream, through cuda-bindings' driver API."""
from __future__ import annotations

import ctypes

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
    """Kernel arguments packed once per launch into preallocated ctypes slots (a gl is ptr, b, d, r, c, sb, sd, sr),
    handed to cuLaunchKernel as a ready ``void**``: no per-launch conversion of argument types."""

    def __init__(self, params, tensor_maps=()):
        self.slots, self.setters = [], []
        self.tmaps = [(params.index(var), st, (ctypes.c_ubyte * 128)()) for var, st in tensor_maps]
        for p in params:
            if isinstance(p.type, GL):
                ptr = ctypes.c_void_p()
                dims = [ctypes.c_int() for _ in range(4)]
                strides = [ctypes.c_longlong() for _ in range(3)]
                self.slots += [ptr, *dims, *strides]
                self.setters.append(self._gl_setter(ptr, dims, strides))
            else:
                slot = ctypes.c_float() if p.type is f32 else ctypes.c_int()
                self.slots.append(slot)
                self.setters.append(self._scalar_setter(slot))
        self.slots += [slot for _, _, slot in self.tmaps]
        self.array = (ctypes.c_void_p * len(self.slots))(*[ctypes.addressof(x) for x in self.slots])
        self.pointer = ctypes.addressof(self.array)

    @staticmethod
    def _gl_setter(ptr, dims, strides):
        def set_(g):  # a kernel.GlobalArg
            ptr.value = g.ptr
            for slot, n in zip(dims, g.shape):
                slot.value = n
            for slot, n in zip(strides, g.stride):
                slot.value = n
        return set_

    @staticmethod
    def _scalar_setter(slot):
        def set_(v):
            slot.value = v
        return set_

    def fill(self, runtime):
        for set_, a in zip(self.setters, runtime):
            set_(a)
        if self.tmaps:
            from .tma import copy_into, encode
            for i, st, slot in self.tmaps:
                copy_into(slot, encode(runtime[i], st))
        return self

"""Session 22 probe: host time of cuLaunchKernel (ctypes) against the kernel's parameter size."""
import ctypes, statistics, time, torch
from cuda.bindings import driver, nvrtc
torch.zeros(1, device="cuda")
from pykittens.backend.cuda.launch import _libcuda
lib = _libcuda()
sizes = [8, 128, 512, 1024, 2048, 4096]
src = "".join(f"struct S{n} {{ char c[{n}]; }};\nextern \"C\" __global__ void k{n}(const __grid_constant__ S{n} s) {{ if (s.c[0] == 7 && threadIdx.x == 999) asm volatile(\"trap;\"); }}\n" for n in sizes)
err, prog = nvrtc.nvrtcCreateProgram(src.encode(), b"p.cu", 0, [], [])
opts = [b"--gpu-architecture=sm_90a"]
print(nvrtc.nvrtcCompileProgram(prog, 1, opts))
_, n = nvrtc.nvrtcGetCUBINSize(prog); cub = b" " * n; nvrtc.nvrtcGetCUBIN(prog, cub)
err, mod = driver.cuModuleLoadData(cub)
stream = torch.cuda.current_stream().cuda_stream
for n in sizes:
    err, fn = driver.cuModuleGetFunction(mod, f"k{n}".encode())
    h = int(fn)
    buf = (ctypes.c_ubyte * n)()
    arr = (ctypes.c_void_p * 1)(ctypes.addressof(buf))
    p = ctypes.addressof(arr)
    def call():
        lib.cuLaunchKernel(h, 132, 1, 1, 128, 1, 1, 0, stream, p, None)
    call(); torch.cuda.synchronize()
    r = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(300): call()
        r.append((time.perf_counter() - t0) / 300 * 1e6)
        torch.cuda.synchronize()
    print(f"params {n:5d} B: {statistics.median(r):.2f} us per cuLaunchKernel", flush=True)
from pykittens.kernels import attention
from pykittens.kernels.attention_ops import _check
q = torch.randn(1, 2, 128, 128, device="cuda", dtype=torch.bfloat16)
attention(q, q, q); attention(q, q, q)
f = _check(q, q, q, False).forward
L = f.kernel_no_lse
pl = L.plan
def call2(): pl.loaded.launch(L.grid, pl.pointer, stream)
for name, fn in (("attention kernel cuLaunchKernel", call2), ("attention(q,q,q)", lambda: attention(q, q, q))):
    fn(); torch.cuda.synchronize(); r = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(300): fn()
        r.append((time.perf_counter() - t0) / 300 * 1e6)
        torch.cuda.synchronize()
    print(f"{name}: {statistics.median(r):.2f} us  (grid {L.grid}, threads {pl.loaded.threads}, smem {pl.loaded.smem})", flush=True)

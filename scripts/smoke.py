"""Quick end-to-end check of the CUDA path: trace, NVRTC compile, load, launch; compares with the interpreter."""
import time

import torch

import pykittens as tk


@tk.kernel(warps=4)
def scale_exp(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), s: tk.f32):
    t = tk.rt(tk.bf16, 16, 64)
    f = tk.rt(tk.fp32, 16, 64)
    row = tk.let(tk.block_idx.x * 4 + tk.warp_id())
    tk.load(t, x, (row, 0), oob=0.0)
    tk.copy(f, t)
    tk.mul(f, f, s)
    tk.exp(f, f)
    tk.store(o, f, (row, 0), clip=True)


def main():
    x = torch.randn(100, 64).bfloat16()
    ref = torch.full_like(x, float("nan"))
    scale_exp[2](x, ref, 0.5)
    if torch.cuda.is_available():
        xc, oc = x.cuda(), torch.full_like(x, float("nan")).cuda()
        t0 = time.perf_counter()
        scale_exp[2](xc, oc, 0.5)
        torch.cuda.synchronize()
        print(f"first launch (trace+compile+load) {1e3 * (time.perf_counter() - t0):.1f} ms; "
              f"compile {scale_exp.last_compile.seconds * 1e3:.1f} ms from_cache={scale_exp.last_compile.from_cache!r}")
        err = (oc.cpu().float() - ref.float()).abs().max().item()
        print(f"GPU vs interpreter max abs diff: {err:.3e}; nan: {torch.isnan(oc).any().item()}")
        print(scale_exp.compile(xc, oc, 0.5, arch="sm_90a").resources())


if __name__ == "__main__":
    main()

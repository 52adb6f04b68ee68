"""A few timings to steer tuning (not the benchmark of record: that is `python -m pykittens.bench`)."""
import sys

import torch

from pykittens.bench.attention import grid_shape
from pykittens.bench.harness import rel_err, time_ms
from pykittens.kernels import attention, matmul


def main():
    what = sys.argv[1:] or ["gemm", "attn"]
    if "gemm" in what:
        for n, tb in ((4096, False), (8192, False), (8192, True)):
            a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
            ref = (a[:64].double() @ (b.double().T if tb else b.double()))
            out = matmul(a, b, transpose_b=tb)
            err = rel_err(out[:64], ref)
            t = time_ms(lambda: matmul(a, b, transpose_b=tb))
            tc = time_ms(lambda: a @ (b.T if tb else b))
            f = 2 * n ** 3 / 1e9
            print(f"gemm {n}^3 Bt={tb}: pykittens {f / t:.0f} TFLOP/s, cuBLAS {f / tc:.0f} ({t / tc:.2f}x time) err {err:.1e}")
    if "attn" in what:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.nn.functional import scaled_dot_product_attention as sdpa
        for d, causal in ((64, False), (128, False), (128, True)):
            n = 4096
            B, H = grid_shape(n, d)
            q, k, v = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            fl = 4 * B * H * n * n * d / (2 if causal else 1) / 1e9
            out = attention(q, k, v, causal=causal)
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                ref = sdpa(q, k, v, is_causal=causal)
                tc = time_ms(lambda: sdpa(q, k, v, is_causal=causal))
            err = rel_err(out, ref)
            t = time_ms(lambda: attention(q, k, v, causal=causal))
            print(f"attn D={d} causal={causal} N={n}: pykittens {fl / t:.0f} TFLOP/s, cuDNN {fl / tc:.0f}, "
                  f"err vs cuDNN {err:.1e}")


if __name__ == "__main__":
    main()

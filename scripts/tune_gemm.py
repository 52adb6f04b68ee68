"""Time GEMM kernel variants (stages, group size, release lag) at a few sizes; prints TFLOP/s next to cuBLAS."""
import itertools

import torch

from pykittens.bench.harness import time_ms
from pykittens.kernels.gemm import gemm


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for n in (4096, 8192):
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        ref = a[:64].double() @ b.double()
        f = 2 * n ** 3 / 1e9
        print(f"n={n}: cuBLAS {f / time_ms(lambda: a @ b):.0f} TFLOP/s")
        for stages, group, lag in itertools.product((3,), (4, 8, 16), (0, 1)):
            c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
            tiles = (n // 128) * (n // 256)
            run = lambda: gemm[min(tiles, sms)](a, b, c, False, stages, group, lag)  # noqa: E731
            run()
            err = ((c[:64].double() - ref).norm() / ref.norm()).item()
            print(f"  stages={stages} group={group} lag={lag}: {f / time_ms(run):.0f} TFLOP/s (err {err:.1e})")


if __name__ == "__main__":
    main()

"""Time GEMM kernel variants (K step, stages, release lag, group size) at a few sizes; prints TFLOP/s next to
cuBLAS (device time, BENCH.md protocol). Usage: python scripts/tune_gemm.py [sizes...]"""
import sys

import torch

from pykittens.bench.harness import time_ms
from pykittens.kernels.gemm import gemm


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for n in [int(x) for x in sys.argv[1:]] or (4096, 8192):
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        ref = a[:64].double() @ b.double()
        f = 2 * n ** 3 / 1e9
        print(f"n={n}: cuBLAS {f / time_ms(lambda: a @ b):.0f} TFLOP/s")
        variants = [dict(stages=3, group=g, lag=0, bn=256, direct=False, bk=64) for g in (8, 4, 16, 32, 8)]
        for v in variants:
            c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
            tiles = (n // 128) * (n // v["bn"])
            run = lambda: gemm[min(tiles, sms)](a, b, c, False, v["stages"], v["group"], v["lag"], v["bn"],  # noqa
                                                v["direct"], v["bk"])
            try:
                run()
            except Exception as e:  # noqa: BLE001
                print(f"  {v}: failed {str(e)[:200]}")
                continue
            err = ((c[:64].double() - ref).norm() / ref.norm()).item()
            print(f"  {v}: {f / time_ms(run):.0f} TFLOP/s (err {err:.1e})")
        print(f"  cuBLAS again: {f / time_ms(lambda: a @ b):.0f} TFLOP/s")


if __name__ == "__main__":
    main()

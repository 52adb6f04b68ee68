"""Time GEMM kernel variants (cluster size, group size, stages, ...) at a few sizes next to cuBLAS (device time,
BENCH.md protocol). Usage: python scripts/tune_gemm.py [sizes...] (default 4096 8192)."""
import sys

import torch

from pykittens.bench.harness import run_once, time_ms
from pykittens.kernels.gemm import gemm
from pykittens.kernels.matmul import persistent_grid

VARIANTS = [dict(CLUSTER=1), dict(CLUSTER=2), dict(CLUSTER=1), dict(CLUSTER=2)]


def main():
    for n in [int(x) for x in sys.argv[1:]] or (4096, 8192):
        for tb in (False,):
            a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
            ref = a[:64].double() @ (b.double().T if tb else b.double())
            f = 2 * n ** 3 / 1e9
            print(f"n={n} Bᵀ={tb}: cuBLAS {f / time_ms(lambda: a @ (b.T if tb else b)):.0f} TFLOP/s")
            for v in VARIANTS:
                c = torch.full((n, n), float("nan"), device="cuda", dtype=torch.bfloat16)
                grid = persistent_grid(a, n, n, tb, v["CLUSTER"], **{k: x for k, x in v.items() if k != "CLUSTER"})
                run = lambda: gemm.launch(grid, a, b, c, TRANS_B=tb, **{"STAGES": 3, **v})  # noqa: E731
                failed = run_once(run)
                if failed:
                    print(f"  {v}: failed {failed}")
                    continue
                err = ((c[:64].double() - ref).norm() / ref.norm()).item()
                print(f"  {v} grid {grid}: {f / time_ms(run):.0f} TFLOP/s (err {err:.1e}, NaN {c.isnan().any().item()})")
            print(f"  cuBLAS again: {f / time_ms(lambda: a @ (b.T if tb else b)):.0f} TFLOP/s")


if __name__ == "__main__":
    main()

"""Time the GEMM's tile configurations (BN x STAGES) on the shapes where the choice matters, next to cuBLAS
(device time, BENCH.md protocol). Usage: python scripts/tune_gemm_tiles.py [MxNxK ...]"""
import sys

import torch

from pykittens.bench.harness import run_once, time_ms
from pykittens.kernels.gemm import gemm
from pykittens.kernels.matmul import persistent_grid, tile_config

SHAPES = ["1000x1000x1000", "1024x1024x1024", "1536x1536x1536", "2048x2048x2048", "128x256x1024", "4096x4096x4096"]
CONFIGS = [dict(BN=256, STAGES=3), dict(BN=128, STAGES=4), dict(BN=128, STAGES=6), dict(BN=128, STAGES=6, LAG=1),
           dict(BN=64, STAGES=8), dict(BN=64, STAGES=8, LAG=1)]


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for shape in sys.argv[1:] or SHAPES:
        m, n, k = (int(x) for x in shape.split("x"))
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        ref = a[:64].double() @ b.double()
        f = 2 * m * n * k / 1e9
        line = [f"{shape:>16s} cuBLAS {f / time_ms(lambda: a @ b):4.0f}"]
        for cfg in CONFIGS:
            c = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
            grid = persistent_grid(a, m, n, False, 1, **cfg)
            run = lambda: gemm.launch(grid, a, b, c, TRANS_B=False, **cfg)  # noqa: E731
            failed = run_once(run)
            err = ((c[:64].double() - ref).norm() / ref.norm()).item()
            ok = "" if not failed and err < 1e-2 and not c.isnan().any() else f" (FAILED {failed} err {err:.1e})"
            line.append(f"BN{cfg['BN']}/S{cfg['STAGES']}/L{cfg.get('LAG', 0)} {f / time_ms(run):4.0f}{ok}")
        line.append(f"cuBLAS {f / time_ms(lambda: a @ b):4.0f}   picked {tile_config(m, n, sms)}")
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()

"""Time GEMM kernel configurations next to cuBLAS (device time): for each shape the tile configuration ``matmul``
picks, merged with each variant below, timed call by call in turn with cuBLAS (``time_interleaved``: the GPU's
power state drifts by several percent over seconds); median TFLOP/s [quartiles].
Usage: python scripts/tune_gemm.py [MxNxK ...] [NAME=VALUE,... ...] (A·B; a variant sets any
of the kernel's constexprs: CLUSTER, GROUP, LAG, STAGES, BN, CONSUMERS, ..., e.g. CONSUMERS=1,BN=128,STAGES=8;
variants on the command line replace the default ones below; the base configuration always runs)"""
import ast
import sys

import torch

from pykittens.bench.harness import rel_err, run_once, time_interleaved
from pykittens.kernels.gemm import gemm
from pykittens.kernels.matmul import persistent_grid, tile_config

SHAPES = ["4096x4096x4096", "8192x8192x8192", "8192x8192x512", "8192x8192x1024", "4096x14336x4096",
          "2048x2048x2048", "1000x1000x1000"]
VARIANTS = [dict(), dict(CLUSTER=2)]


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    shapes = [x for x in sys.argv[1:] if "=" not in x] or SHAPES
    given = [dict((kv.split("=")[0], ast.literal_eval(kv.split("=")[1])) for kv in x.split(","))
             for x in sys.argv[1:] if "=" in x]
    variants = [dict(), *given] if given else VARIANTS
    for shape in shapes:
        m, n, k = (int(x) for x in shape.split("x"))
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        ref = a[:64].double() @ b.double()
        f = 2 * m * n * k / 1e9
        runs, line = [], [f"{shape:>16s} {tile_config(m, n, sms)}"]
        for v in variants:
            cfg = {**tile_config(m, n, sms), **v}
            cluster = cfg.pop("CLUSTER", 1)
            c = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
            grid = persistent_grid(a, m, n, False, cluster, **cfg)
            run = (lambda g, cf, out: lambda: gemm.launch(g, a, b, out, TRANS_B=False, **cf))(
                grid, {**cfg, "CLUSTER": cluster}, c)
            failed = run_once(run)
            err = rel_err(c[:64], ref)
            bad = failed or err > 1e-2 or c.isnan().any().item()
            runs.append((v, None if bad else run, f" FAILED {failed} err {err:.1e}" if bad else ""))
        ok = [(v, run) for v, run, _ in runs if run]
        times = time_interleaved([lambda: a @ b] + [run for _, run in ok], rounds=30)
        line.append(f"| cuBLAS {f / times[0][0]:4.0f} [{f / times[0][2]:3.0f}-{f / times[0][1]:3.0f}]")
        line += [f"{v or 'base'} {f / med:4.0f} [{f / q3:3.0f}-{f / q1:3.0f}]"
                 for (v, _), (med, q1, q3) in zip(ok, times[1:])]
        line += [f"{v}{note}" for v, run, note in runs if not run]
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()

"""``python -m pykittens.bench [all|attention|gemm] [--quick] [--out DIR]``

On a GPU: benchmarks the library kernels against PyTorch's (BENCH.md protocol) and writes JSON, Markdown and a PNG
plot to ``--out``. Without a GPU: runs the library kernels in the CPU interpreter on small shapes against a float64
reference and prints a verdict (exit status 1 if any is wrong).
"""
import argparse
import sys
from pathlib import Path

import torch


def _progress():
    try:
        from tqdm import tqdm
        return lambda it, desc="": tqdm(it, desc=desc, file=sys.stderr)
    except ImportError:
        return lambda it, desc="": it


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pykittens.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", default="all", choices=["all", "attention", "gemm"])
    p.add_argument("--quick", action="store_true", help="fewer sequence lengths (1k, 4k, 16k)")
    p.add_argument("--out", type=Path, default=Path("results"), help="directory for JSON / Markdown / PNG")
    p.add_argument("--cpu", action="store_true", help="run the interpreter check even if a GPU is present")
    p.add_argument("--backward", action="store_true", help="attention: time the backward pass (dq, dk, dv)")
    p.add_argument("--kernel", default="auto", choices=["auto", "hopper", "warp"],
                   help="which attention kernel to time (results go to attention_fwd[_KERNEL].*)")
    args = p.parse_args(argv)
    progress = _progress()

    if args.cpu or not torch.cuda.is_available():
        from . import verify
        print("No GPU: running the library kernels in the CPU interpreter against float64 (gate 1e-2).")
        results = verify.run(progress)
        for name, err, ok in results:
            print(f"  {'PASS' if ok else 'FAIL'}  rel. error {err:.2e}  {name}")
        bad = sum(not ok for _, _, ok in results)
        print(f"verdict: {'all correct' if not bad else f'{bad} WRONG'} ({len(results)} cases)")
        return 1 if bad else 0

    from . import attention, gemm
    from .harness import context, gpu_state, save
    suites = {"attention": (attention, "attention_fwd"), "gemm": (gemm, "gemm")}
    for name in (suites if args.suite == "all" else [args.suite]):
        module, stem = suites[name]
        ctx = context()
        if name == "attention" and args.backward:
            records, extra = module.run_backward(args.quick, progress)
            stem = "attention_bwd"
        elif name == "attention" and args.kernel != "auto":
            records, extra = module.run(args.quick, progress, args.kernel)
            stem = f"{stem}_{args.kernel}"
        else:
            records, extra = module.run(args.quick, progress)
        ctx.update(extra)
        ctx["after_run"] = gpu_state()  # clocks under load, not idle
        paths = save(records, ctx, args.out, stem, module.plot, module.table)
        print(module.table(records))
        if "compile" in extra:
            print("compile / launch:", extra["compile"])
        print("wrote", ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

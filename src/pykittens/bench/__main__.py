"""``python -m pykittens.bench [attention] [--quick] [--out DIR]``

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
    p.add_argument("suite", nargs="?", default="attention", choices=["attention"])
    p.add_argument("--quick", action="store_true", help="fewer sequence lengths (1k, 4k, 16k)")
    p.add_argument("--out", type=Path, default=Path("results"), help="directory for JSON / Markdown / PNG")
    p.add_argument("--cpu", action="store_true", help="run the interpreter check even if a GPU is present")
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

    from . import attention
    from .harness import context, save
    ctx = context()
    records, extra = attention.run(args.quick, progress)
    ctx.update(extra)
    paths = save(records, ctx, args.out, "attention_fwd", attention.plot, attention.table)
    print(attention.table(records))
    print("compile / launch:", extra.get("compile"))
    print("wrote", ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

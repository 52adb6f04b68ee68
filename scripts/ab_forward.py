"""A/B the Hopper attention forward against an earlier version of its kernel file, in two alternating rounds,
next to cuDNN (this machine's noise is several percent between runs; only same-run pairs are evidence).
Usage: python scripts/ab_forward.py OLD_KERNEL_FILE [N ...] [D=64,128]
(OLD_KERNEL_FILE: e.g. ``git show HEAD~1:src/pykittens/kernels/attention_hopper.py > scripts/old_kernel.py``);
each variant runs the configuration ``attention`` ships (attention_ops.forward_config; an old kernel without a
constexpr of it runs without it)."""
import importlib.util
import inspect
import math
import sys

import torch

from pykittens.bench.harness import run_once, time_ms
from pykittens.kernels.attention_hopper import hopper_attention
from pykittens.kernels.attention_ops import forward_config
from tune_attention import grid_point  # (scripts/ is on the path when a script in it runs)


def load_old(path):
    spec = importlib.util.spec_from_file_location("old_attention_hopper", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.hopper_attention


def main():
    old = load_old(sys.argv[1])
    ns = [int(x) for x in sys.argv[2:] if "=" not in x] or [1024, 2048, 4096]
    dims = [int(d) for x in sys.argv[2:] if x.startswith("D=") for d in x[2:].split(",")] or [64, 128]
    rows = []
    for d in dims:
        for n in ns:
            for causal in (False, True):
                q, k, v, fl, ref, tc = grid_point(n, d, causal)
                B, H = q.shape[:2]
                shipped = forward_config(d, causal)
                c = shipped["CONSUMERS"]
                grid = (-(-n // (64 * c)), H, B)
                runs = {}
                for name, kern in (("old", old), ("new", hopper_attention)):
                    o = torch.full_like(q, float("nan"))
                    lse = torch.empty(B, H, 1, n, device="cuda")
                    params = inspect.signature(kern.fn).parameters
                    cfg = {key: x for key, x in dict(D=d, CAUSAL=causal, **shipped).items() if key in params}
                    if "W" in params:  # kernels before 9989753 took their warp count
                        cfg["W"] = 4 * (1 + c)
                    runs[name] = (lambda kern, o, lse, cfg: lambda: kern.launch(
                        grid, q, k, v, o, lse, math.log2(math.e) / math.sqrt(d), **cfg))(kern, o, lse, cfg)
                    failed = run_once(runs[name])
                    err = ((o.double() - ref.double()).norm() / ref.double().norm()).item()
                    if failed or not err < 1e-2:
                        raise SystemExit(f"{name} D={d} N={n} causal={causal}: failed={failed} err={err}")
                tf = {name: [] for name in runs}
                for _ in range(2):
                    for name, run in runs.items():
                        tf[name].append(fl / time_ms(run))
                rows.append((d, n, causal, fl / tc, tf["old"], tf["new"]))
                print(f"D={d} N={n} causal={causal}: cuDNN {fl / tc:.0f}  old {tf['old'][0]:.0f}/{tf['old'][1]:.0f}"
                      f"  new {tf['new'][0]:.0f}/{tf['new'][1]:.0f}", flush=True)
    print("\n|   D |     N | causal | cuDNN | old (2 rounds) | new (2 rounds) | new/old |")
    for d, n, causal, tc, o, nw in rows:
        print(f"| {d:3d} | {n:5d} | {str(causal):6s} | {tc:5.0f} | {o[0]:5.0f} {o[1]:5.0f}    | {nw[0]:5.0f} {nw[1]:5.0f}"
              f"    | {sum(nw) / sum(o):.3f} |")


if __name__ == "__main__":
    main()

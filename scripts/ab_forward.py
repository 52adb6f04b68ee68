"""A/B the Hopper attention forward against an earlier version of its kernel file, next to cuDNN, every system
timed call by call in turn (``time_interleaved``: the GPU's drift hits all alike).
Usage: python scripts/ab_forward.py OLD_KERNEL_FILE [N ...] [D=64,128]
(OLD_KERNEL_FILE: e.g. ``git show HEAD~1:src/pykittens/kernels/attention_hopper.py > scripts/old_kernel.py``);
each variant runs the configuration ``attention`` ships (attention_ops.forward_launch; an old kernel without a
constexpr of it runs without it)."""
import importlib.util
import inspect
import math
import sys

import torch

from pykittens.bench.harness import rel_err, run_once, time_interleaved
from pykittens.kernels.attention_hopper import hopper_attention
from pykittens.kernels.attention_ops import SplitScratch, forward_grid, forward_launch
from pykittens.kernels.checks import device_info
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
                q, k, v, fl, ref, cudnn = grid_point(n, d, causal)
                B, H = q.shape[:2]
                shipped = forward_launch(d, causal, n, n, sms=device_info(q.device)[1])[1]
                c = shipped["CONSUMERS"]
                runs = {}
                for name, kern in (("old", old), ("new", hopper_attention)):
                    o = torch.full_like(q, float("nan"))
                    lse = torch.empty(B, H, 1, n, device="cuda")
                    params = inspect.signature(kern.fn).parameters
                    cfg = {key: x for key, x in dict(D=d, CAUSAL=causal, **shipped).items() if key in params}
                    grid = forward_grid(n, H, B, cfg)  # (a kernel without EXTRA: the leftover tiles' block)
                    if "W" in params:  # kernels before 9989753 took their warp count
                        cfg["W"] = 4 * (1 + c)
                    scratch = SplitScratch.get(d, c, 0, q.device) if "part" in params else ()  # (since 3fdb6d6)
                    runs[name] = (lambda kern, grid, o, lse, cfg, scratch: lambda: kern.launch(
                        grid, q, k, v, o, lse, *scratch, math.log2(math.e) / math.sqrt(d), **cfg))(
                        kern, grid, o, lse, cfg, scratch)
                    failed = run_once(runs[name])
                    err = rel_err(o, ref)
                    if failed or not err < 1e-2:
                        raise SystemExit(f"{name} D={d} N={n} causal={causal}: failed={failed} err={err}")
                tc, t_old, t_new = (fl / med for med, _, _ in time_interleaved([cudnn, runs["old"], runs["new"]]))
                rows.append((d, n, causal, tc, t_old, t_new))
                print(f"D={d} N={n} causal={causal}: cuDNN {tc:.0f}  old {t_old:.0f}  new {t_new:.0f}", flush=True)
    print("\n|   D |     N | causal | cuDNN |   old |   new | new/old |")
    for d, n, causal, tc, o, nw in rows:
        print(f"| {d:3d} | {n:5d} | {str(causal):6s} | {tc:5.0f} | {o:5.0f} | {nw:5.0f} | {nw / o:.3f} |")


if __name__ == "__main__":
    main()

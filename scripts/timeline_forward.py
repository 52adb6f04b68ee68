"""Where a Hopper attention forward block's time goes: the shipped kernel traced inside ``tk.timeline``, so its
pipeline stamps (ns timer, SM) at each event, on BENCH.md's grid points (B·N = 16k, H·D = 2048):
    python3 scripts/timeline_forward.py 1024,2048,16384 [D=64] [causal=0|1] [KEY=value ...] [--save DIR] [--md FILE]
KEY=value pairs override the shipped configuration (as in tune_attention.py). Prints, per point, the kernel's time
with and without the stamps (they are a probe: a store per event), and the mean block's anatomy in µs: from its
entry to the first barrier, to each consumer's entry, to its first K/V stage (and Q), its steps, its finish; the block's
length; the gap between a block's last consumer finishing and the next block's entry on the same SM; and the
share of SM time inside blocks. ``--save DIR`` writes the raw stamps (``timeline_<D>_<causal>_<N>.pt``); ``--md FILE``
appends the table to FILE (with the GPU, clocks, versions and commit the first time)."""
import math
import sys

import torch

import pykittens as tk
from pykittens.bench.harness import context, rel_err, time_interleaved
from pykittens.kernels import hopper_attention
from pykittens.kernels.attention_ops import SplitScratch, forward_grid, forward_launch, forward_split_blocks
from pykittens.kernels.checks import device_info
from pykittens.pipeline import TIMELINE_BLOCK, TIMELINE_CONSUMER, timeline_ns
from tune_attention import grid_point  # (scripts/ is on the path when a script in it runs)


timed_forward = tk.stamped(hopper_attention, after="lse")  # the shipped kernel, stamping its pipeline


def anatomy(times: torch.Tensor, consumers: int) -> dict:
    """Mean block anatomy (µs) from a (blocks, 4 · slots) stamp array; a slot never stamped holds -1."""
    t = times.view(times.shape[0], -1, 4).long()
    ns = timeline_ns(times).double() / 1e3
    nb = len(TIMELINE_BLOCK)
    entry, barrier = ns[:, 0], ns[:, 1]
    c = ns[:, nb:].view(-1, consumers, len(TIMELINE_CONSUMER))
    entered, landed, done, finished = c.unbind(-1)
    ran = landed >= 0  # consumers that ran at least one step
    end = finished.max(1).values

    def mean(x, mask=None):
        x = x[mask] if mask is not None else x.flatten()
        return x.mean().item() if x.numel() else float("nan")

    out = {"barrier": mean(barrier - entry)}
    for i in range(consumers):
        out[f"c{i} in"] = mean(entered[:, i] - entry)
        out[f"c{i} 1st K/V"] = mean(landed[:, i] - entry, ran[:, i])
        out[f"c{i} steps"] = mean(done[:, i] - landed[:, i], ran[:, i])
        out[f"c{i} finish"] = mean(finished[:, i] - done[:, i])
    out["block"] = mean(end - entry)
    sm = t[:, 0, 2]
    gaps, busy = [], 0.0
    for s in sm.unique():
        idx = (sm == s).nonzero().flatten()
        order = idx[entry[idx].argsort()]
        gaps += (entry[order[1:]] - end[order[:-1]]).tolist()
        busy += (end[order] - entry[order]).sum().item()
    span = (end.max() - entry.min()).item()
    out["gap"] = sum(gaps) / max(len(gaps), 1)
    out["span"] = span
    out["busy %"] = 100 * busy / (span * len(sm.unique()))
    out["blocks/SM"] = t.shape[0] / len(sm.unique())
    return out


def main(ns, d=64, causal=False, overrides=None, save=None, rounds=20):
    sms = device_info(torch.device("cuda"))[1]
    rows = []
    for n in ns:
        q, k, v, fl, ref, _ = grid_point(n, d, causal)
        B, H = q.shape[:2]
        cfg = dict(forward_launch(d, causal, n, n, sms=sms)[1], **(overrides or {}))
        grid = forward_grid(n, H, B, cfg)
        blocks = grid[0] * grid[1] * grid[2]
        times = torch.full((blocks, 4 * tk.timeline_slots(cfg["CONSUMERS"])), -1, dtype=torch.int32, device="cuda")
        o = torch.full_like(q, float("nan"))
        lse = torch.empty(B, H, 1, -(-n // 4) * 4, device="cuda")
        scale = math.log2(math.e) / math.sqrt(d)
        split = forward_split_blocks(n, B, cfg)
        scratch = lambda: SplitScratch.get(d, cfg["CONSUMERS"], split, q.device)  # noqa: E731 (a fresh epoch per call)
        plain = lambda: hopper_attention.launch(grid, q, k, v, o, lse, *scratch(), scale, D=d, CAUSAL=causal,  # noqa
                                                **cfg)
        stamped = lambda: timed_forward.launch(grid, q, k, v, o, lse, times, *scratch(), scale, D=d,  # noqa
                                               CAUSAL=causal, **cfg)
        stamped()
        torch.cuda.synchronize()
        err = rel_err(o, ref)
        if not err < 1e-2:
            raise SystemExit(f"N={n}: the stamped kernel is wrong (relative error {err:.2e})")
        ms_plain, ms_stamped = (m for m, *_ in time_interleaved([plain, stamped], rounds=rounds))
        times.fill_(-1)
        stamped()
        torch.cuda.synchronize()
        a = anatomy(times.cpu(), cfg["CONSUMERS"])
        rows.append((n, ms_plain * 1e3, ms_stamped * 1e3, a))
        if save:
            torch.save({"times": times.cpu(), "config": cfg, "grid": grid, "n": n, "d": d, "causal": causal},
                       f"{save}/timeline_{d}_{int(causal)}_{n}.pt")
        print(f"N={n}: {ms_plain * 1e3:.1f} µs plain, {ms_stamped * 1e3:.1f} µs stamped", flush=True)
    keys = list(rows[0][3])
    lines = [f"\nforward D={d} causal={causal} {overrides or ''}: mean block anatomy (µs; 'c1 in' = entry to "
             f"consumer 1's entry, '1st K/V' = to its Q and first K/V stage, 'gap' = a block's end to the next entry "
             f"on its SM)\n",
             "| quantity | " + " | ".join(f"N={n}" for n, *_ in rows) + " |",
             "|---|" + "---|" * len(rows),
             "| kernel µs (plain / stamped) | " + " | ".join(f"{p:.0f} / {s:.0f}" for _, p, s, _ in rows) + " |"]
    lines += [f"| {key} | " + " | ".join(f"{r[3][key]:.2f}" for r in rows) + " |" for key in keys]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    args = [a for a in sys.argv[1:]]
    save = md = None
    for flag in ("--save", "--md"):
        if flag in args:
            i = args.index(flag)
            save, md = (args[i + 1], md) if flag == "--save" else (save, args[i + 1])
            del args[i:i + 2]
    ns = [int(x) for x in args[0].split(",")] if args and args[0][0].isdigit() else [1024, 2048, 16384]
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    d, causal = int(opts.pop("D", 64)), bool(int(opts.pop("causal", 0)))
    overrides = {k: eval(v) for k, v in opts.items()}  # noqa: S307 (constexpr values: ints, bools)
    table = main(ns, d, causal, overrides, save)
    if md:
        import os
        new = not os.path.exists(md)
        with open(md, "a") as f:
            if new:
                f.write("# Forward block anatomy (`scripts/timeline_forward.py`)\n\n" + "\n".join(
                    f"- {k}: {v}" for k, v in context().items()) + "\n")
            f.write("\n".join(table) + "\n")

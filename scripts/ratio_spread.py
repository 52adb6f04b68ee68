"""How far a forward's ratio to cuDNN moves from one measurement to the next: for each cell (D, N, causal) of
BENCH.md's grid, ``repeats`` times, fresh random inputs and then cuDNN, ``attention`` and cuDNN again timed call by
call in turn (``time_interleaved``, 30 rounds, median of each). The second cuDNN is an A/A control: its ratio to
the first shows the protocol's own noise.
    python3 scripts/ratio_spread.py [repeats] [D,N,causal ...]     e.g. 8 128,2048,0 64,2048,1
Prints, per cell, each repeat's ratio and the mean, standard deviation and range of ours/cuDNN and of the control."""
import statistics
import sys

from pykittens.bench.harness import rel_err, time_interleaved
from pykittens.kernels import attention
from tune_attention import grid_point  # (scripts/ is on the path when a script in it runs)

CELLS = [(64, 2048, False), (64, 2048, True), (128, 2048, False), (128, 4096, False), (64, 4096, False),
         (128, 16384, False)]


def cell(d, n, causal, repeats):
    ours, control = [], []
    for _ in range(repeats):
        q, k, v, fl, ref, cudnn = grid_point(n, d, causal)
        out = attention(q, k, v, causal=causal)
        err = rel_err(out, ref)
        if not err < 1e-2:
            raise SystemExit(f"D={d} N={n} causal={causal}: relative error {err:.2e} against cuDNN")
        (first, _, _), (mine, _, _), (second, _, _) = time_interleaved(
            [cudnn, lambda: attention(q, k, v, causal=causal), cudnn])
        ours.append(first / mine)
        control.append(first / second)
    return ours, control


def summary(xs):
    return (f"mean {statistics.mean(xs):.3f} sd {statistics.stdev(xs):.3f} range {min(xs):.3f}-{max(xs):.3f} "
            f"[{' '.join(f'{x:.3f}' for x in xs)}]")


def main(repeats, cells):
    print(f"forward / cuDNN over {repeats} repeats (fresh inputs each; 30 interleaved rounds per repeat)")
    rows = []
    for d, n, causal in cells:
        ours, control = cell(d, n, causal, repeats)
        print(f"  D={d} N={n} causal={causal}: ours {summary(ours)}\n{' ' * 30}control (cuDNN/cuDNN) "
              f"{summary(control)}", flush=True)
        rows.append((d, n, causal, ours, control))
    print("\n| D | N | causal | ours / cuDNN: mean ± sd (min–max) | cuDNN / cuDNN: mean ± sd (min–max) |")
    print("|---|---|---|---|---|")
    for d, n, causal, ours, control in rows:
        print(f"| {d} | {n} | {'yes' if causal else 'no'} | " + " | ".join(
            f"{statistics.mean(x):.3f} ± {statistics.stdev(x):.3f} ({min(x):.3f}–{max(x):.3f})"
            for x in (ours, control)) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    reps = int(args.pop(0)) if args and "," not in args[0] else 8
    chosen = [(int(a), int(b), bool(int(c))) for a, b, c in (x.split(",") for x in args)] or CELLS
    main(reps, chosen)

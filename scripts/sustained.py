"""Sustained throughput, SM clock and power: each system runs back to back for a few seconds (as in training, not
in the bench's short interleaved bursts), while ``nvidia-smi`` samples the clock, power and temperature every 50
ms. Cells of BENCH.md's grid; the shipped forward (``attention``) against cuDNN, alternating, each twice, and
variants given as constexpr overrides of the shipped configuration (``tune_attention.py``'s format) after them:
    python3 scripts/sustained.py [seconds] [D,N,causal ...] [NAME=value,... ...]     e.g. 2.5 128,2048,0 LAZY=8.0
Prints, per run, TFLOP/s, µs per call, mean (and lowest) SM clock, mean (and highest) power, temperature, and the
share of samples in which each clock event reason (power cap, thermal, slowdown) was active. Under a power cap
the clock follows each kernel's energy per unit of work, which the bursts do not show."""
import subprocess
import sys
import threading
import time

import torch

from pykittens.bench.harness import context, rel_err
from pykittens.kernels import attention
from ab_backward import parse
from tune_attention import grid_point, kernel_call  # (scripts/ is on the path when a script in it runs)

CELLS = [(128, 2048, False), (64, 2048, True)]
QUERY = "clocks.sm,power.draw,temperature.gpu,clocks_event_reasons.active"
REASONS = {0x4: "SW power cap", 0x8: "HW slowdown", 0x20: "sync boost", 0x40: "SW thermal", 0x80: "HW thermal",
           0x100: "HW power brake"}  # (nvidia-smi's clock event reason bits that lower a busy GPU's clock)


def _sample(stop: threading.Event, out: list):
    """Append [MHz, W, °C, reason bits] rows from nvidia-smi every 50 ms until ``stop`` is set."""
    p = subprocess.Popen(["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits", "-lms", "50"],
                         stdout=subprocess.PIPE, text=True)
    try:
        while not stop.is_set():
            line = p.stdout.readline()
            if line.strip():
                *values, reasons = line.split(",")
                out.append([float(x) for x in values] + [int(reasons, 16)])
    finally:
        p.kill()


def sustained(fn, seconds: float) -> tuple[float, torch.Tensor]:
    """(ms per call, samples) of ``fn`` run back to back for ``seconds`` after a warm-up."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=_sample, args=(stop, samples))
    sampler.start()
    time.sleep(0.3)  # (nvidia-smi's start-up; its first rows describe the idle gap)
    samples.clear()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls, t0 = 0, time.time()
    start.record()
    while time.time() - t0 < seconds:
        for _ in range(50):
            fn()
        calls += 50
        torch.cuda.synchronize()
    end.record()
    torch.cuda.synchronize()
    stop.set()
    sampler.join()
    return start.elapsed_time(end) / calls, torch.tensor(samples[2:] or samples, dtype=torch.float64)


def _check(out, ref, what: str):
    err = rel_err(out, ref)
    if not err < 1e-2:
        raise SystemExit(f"{what}: relative error {err:.2e} against cuDNN")


def main(cells, seconds=2.5, variants=()):
    print("Context: " + ", ".join(f"{key} {value}" for key, value in context().items()))
    for d, n, causal in cells:
        q, k, v, fl, ref, cudnn = grid_point(n, d, causal)
        _check(attention(q, k, v, causal=causal), ref, f"D={d} N={n} causal={causal}")
        systems = [("cuDNN", cudnn), ("pykittens", lambda: attention(q, k, v, causal=causal))]
        for overrides in variants:
            call, o = kernel_call(q, k, v, causal, **overrides)
            call()
            _check(o, ref, f"D={d} N={n} causal={causal} {overrides}")
            systems.append((",".join(f"{key}={value}" for key, value in overrides.items()), call))
        for _ in range(2):
            for name, fn in systems:
                ms, s = sustained(fn, seconds)
                bits = s[:, 3].long()
                why = ", ".join(f"{reason} {(bits & bit != 0).double().mean():.0%}" for bit, reason in REASONS.items()
                                if (bits & bit).any()) or "none"
                print(f"D={d} N={n} causal={causal} {name:9s} {fl / ms:5.0f} TFLOP/s {ms * 1e3:7.1f} µs/call  "
                      f"SM {s[:, 0].mean():.0f} MHz (min {s[:, 0].min():.0f})  {s[:, 1].mean():.0f} W (max "
                      f"{s[:, 1].max():.0f})  {s[:, 2].mean():.0f} °C  clock lowered by: {why}  ({len(s)} samples)",
                      flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    secs = float(args.pop(0)) if args and "," not in args[0] and "=" not in args[0] else 2.5
    cells = [(int(d), int(n), bool(int(c))) for d, n, c in (a.split(",") for a in args if "=" not in a)] or CELLS
    main(cells, secs, [parse(a) for a in args if "=" in a])

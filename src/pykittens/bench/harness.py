"""Benchmark harness (protocol: ../shared/BENCH.md): correctness gate, CUDA-event timing with warm-up and median,
peers in the same process on the same inputs (timed call by call in turn), and results as JSON + Markdown + PNG
with the machine's context."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


@dataclass
class Record:
    kernel: str
    shape: dict
    flags: dict
    system: str  # 'pykittens' or a peer's name
    ms: float | None
    tflops: float | None
    error: float | None  # ‖out − ref‖ / ‖ref‖; a kernel over the gate has no speed
    note: str = ""
    ratios: dict = field(default_factory=dict)  # pykittens rows: TFLOP/s over each peer's
    eager_ms: float | None = None  # where measured: time per call in an eager loop, host launch work included


def time_ms(fn, warmup: int = 5, reps: int = 30, host_ahead: bool = True) -> float:
    """Median device time of ``fn()`` over ``reps`` runs after ``warmup`` calls, by CUDA events around each call.

    ``host_ahead``: a GPU sleep is queued first, long enough (150 us per run) for the host to queue every run
    behind it, so each pair of events brackets the kernels alone even where a kernel runs shorter than its host
    launch work — device time, as BENCH.md asks; host launch overhead is measured on its own
    (``host_overhead_us``). ``host_ahead=False`` times calls as an eager loop sees them: where the host is slower
    than the kernel, the events also see the host's pre-launch work.
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    if host_ahead:
        torch.cuda._sleep(int(150e-6 * reps * SLEEP_HZ))
    for a, b in events:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in events)


def time_interleaved(fns, warmup: int = 3, rounds: int = 30,
                     host_ahead: bool = True) -> list[tuple[float, float, float]]:
    """(median, first quartile, third quartile) device time in ms of each of ``fns``, timed call by call in turn
    over ``rounds`` rounds, for A/B comparisons: the GPU's clock and power state drift over seconds, and a variant
    timed in a block of its own sees a different GPU from the next one's; interleaved, every variant sees the same
    drift. ``host_ahead`` as in ``time_ms`` (the queue is filled behind a GPU sleep; capped at 0.2 s, beyond which
    the calls are long enough not to need it)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    torch.cuda.synchronize()
    events = [[(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in fns]
              for _ in range(rounds)]
    if host_ahead:
        torch.cuda._sleep(int(min(150e-6 * rounds * len(fns), 0.2) * SLEEP_HZ))
    for row in events:
        for fn, (a, b) in zip(fns, row):
            a.record()
            fn()
            b.record()
    torch.cuda.synchronize()
    out = []
    for i in range(len(fns)):
        q1, med, q3 = statistics.quantiles([row[i][0].elapsed_time(row[i][1]) for row in events], n=4)
        out.append((med, q1, q3))
    return out


SLEEP_HZ = 2.0e9  # cycles per second of torch.cuda._sleep's spin (the H100's boost clock, rounded up)


def gate_and_time(records: list, kernel: str, shape: dict, flags: dict, systems: dict, error_of, gate: float,
                  flop_count: float, warmup: int = 5, rounds: int = 30) -> dict:
    """One configuration of a bench: check every system, then time the ones that pass side by side.

    ``systems``: name -> setup(); setup() runs the system once and returns (its output, the call to time).
    A system that raises, or whose ``error_of(output)`` exceeds ``gate``, gets a record without speed. The rest
    are timed call by call in turn (``time_interleaved``: every system sees the same GPU clock and power drift,
    which moves a block of calls by up to 10% between blocks seconds apart). Records are appended to ``records``;
    returns the timed ones by name, pykittens' with its TFLOP/s ratio over each peer.
    """
    timed = {}
    for name, setup in systems.items():
        try:
            out, fn = setup()
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - a system that cannot run this shape is recorded, not fatal
            records.append(Record(kernel, shape, flags, name, None, None, None, f"failed: {e}"[:200]))
            continue
        err = error_of(out)
        del out
        if err > gate:
            records.append(Record(kernel, shape, flags, name, None, None, err, "over the error gate"))
            continue
        timed[name] = (fn, err)
    times = time_interleaved([fn for fn, _ in timed.values()], warmup=warmup, rounds=rounds) if timed else []
    rows = {}
    for (name, (_, err)), (ms, _, _) in zip(timed.items(), times):
        rows[name] = Record(kernel, shape, flags, name, ms, flop_count / ms / 1e9, err)
        records.append(rows[name])
    if "pykittens" in rows:
        pk = rows["pykittens"]
        pk.ratios = {n: pk.tflops / r.tflops for n, r in rows.items() if n != "pykittens"}
    return rows


def run_once(fn) -> str | None:
    """Run ``fn()`` to completion; the error text (shortened) if it raised, else None. For tuning sweeps, where a
    variant that does not fit (shared memory, registers) is reported and skipped."""
    try:
        fn()
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001 - reported by the caller, not fatal to a sweep
        return str(e)[:300]
    return None


def host_overhead_us(fn, reps: int = 200) -> float:
    """Host time per call of an asynchronous launch (median over reps, GPU work excluded as far as possible)."""
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    return statistics.median(ts) * 1e6


def graph_replay_us(fn, calls: int = 100, reps: int = 20) -> float:
    """Host time per call of ``fn`` when ``calls`` calls are captured in one CUDA graph and replayed: what a
    host-bound loop pays per call once it is captured (the Python and the launch work happen once, at capture)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        graph.replay()
        ts.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    return statistics.median(ts) / calls * 1e6


def rel_err(out, ref) -> float:
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def context() -> dict:
    """GPU, clocks, power limit, driver and library versions, pykittens commit: what a result depends on."""
    import pykittens
    ctx = {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": platform.python_version(),
           "torch": torch.__version__, "pykittens": pykittens.__version__}
    # PYKITTENS_COMMIT names the commit of a copied tree (a remote GPU machine), whose .git may be stale or absent
    ctx["commit"] = os.environ.get("PYKITTENS_COMMIT")
    if not ctx["commit"]:
        try:
            ctx["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=Path(__file__).parent).stdout.strip() or "unknown"
        except OSError:
            ctx["commit"] = "unknown"
    try:
        from pykittens.backend.cuda.compiler import nvrtc_identity, nvrtc_version
        # the build matters, not just major.minor: 13.0 and 13.5's ptxas schedule the kernels differently
        ctx["nvrtc"] = "%d.%d (%s)" % (*nvrtc_version(), nvrtc_identity())
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        ctx["nvrtc"] = f"unavailable ({e})"
    if torch.cuda.is_available():
        ctx["gpu"] = torch.cuda.get_device_name()
        ctx["cuda"] = torch.version.cuda
        ctx["cudnn"] = torch.backends.cudnn.version()
        try:
            import triton
            ctx["triton"] = triton.__version__
        except ImportError:
            pass
        ctx.update(gpu_state())
    return ctx


def gpu_state() -> dict:
    """SM / memory clocks, power limit and driver from nvidia-smi (read, never set)."""
    q = "clocks.sm,clocks.max.sm,clocks.mem,power.limit,driver_version"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True)
    except OSError:
        return {}
    if r.returncode:
        return {}
    return dict(zip(["sm_clock", "sm_clock_max", "mem_clock", "power_limit", "driver"],
                    [x.strip() for x in r.stdout.splitlines()[0].split(",")]))


def save(records: list[Record], ctx: dict, out_dir: Path, name: str, plot_fn=None, table_fn=None) -> list[Path]:
    """Write ``name``.json (records + context), ``name``.md (table) and ``name``.png (plot_fn's figure)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.md"]
    paths[0].write_text(json.dumps({"context": ctx, "records": [asdict(r) for r in records]}, indent=1))
    header = "\n".join([f"# {name}", "", "Context: " + ", ".join(f"{k} {v}" for k, v in ctx.items()), ""])
    paths[1].write_text(header + (table_fn(records) if table_fn else "") + "\n")
    if plot_fn is not None:
        try:
            png = out_dir / f"{name}.png"
            plot_fn(records, png, ctx)
            paths.append(png)
        except ImportError:
            pass
    return paths

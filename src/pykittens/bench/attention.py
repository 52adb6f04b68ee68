"""Attention forward and backward: pykittens against SDPA's FLASH / CUDNN / EFFICIENT backends (BENCH.md grid),
timed call by call in turn (``harness.gate_and_time``)."""
from __future__ import annotations

import math

import torch

from ..kernels.attention_ops import BACKWARD_HEAD_DIMS
from .harness import Record, gate_and_time, host_overhead_us, rel_err

PEERS = {"sdpa-flash": "FLASH_ATTENTION", "sdpa-cudnn": "CUDNN_ATTENTION", "sdpa-efficient": "EFFICIENT_ATTENTION"}
GATE = 1e-2
REF_ROWS = 256  # the float64 reference covers the first batch/head and this many query rows (all keys)


def grid_shape(n: int, d: int) -> tuple[int, int]:
    """(batch, heads) of the BENCH.md attention grid point at sequence length n, head dim d: B·N = 16k tokens,
    H·D = 2048 model width."""
    return 16384 // n, 2048 // d


def configs(quick: bool, head_dims=(64, 128, 256)):
    ns = (1024, 4096, 16384) if quick else (512, 1024, 2048, 4096, 8192, 16384)
    for d in head_dims:
        for causal in (False, True):
            for n in ns:
                B, H = grid_shape(n, d)
                yield dict(B=B, H=H, N=n, D=d, causal=causal)


def flops(c) -> float:
    f = 4 * c["B"] * c["H"] * c["N"] ** 2 * c["D"]
    return f / 2 if c["causal"] else f


def _reference_rows(q, k, v, causal):
    from ..kernels import reference_attention
    n = q.shape[2]
    rows = torch.linspace(0, n - 1, min(REF_ROWS, n), device=q.device).long().unique()
    full = reference_attention(q[:1, :1], k[:1, :1], v[:1, :1], causal) if n <= 2048 else None
    if full is not None:
        return rows, full[0, 0, rows]
    # large N: recompute only the sampled rows (a causal row i sees keys <= i)
    qd, kd, vd = q[0, 0, rows].double(), k[0, 0].double(), v[0, 0].double()
    s = (qd @ kd.T) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(torch.arange(n, device=q.device)[None, :] > rows[:, None], float("-inf"))
    return rows, torch.softmax(s, -1) @ vd


def run_backward(quick: bool, progress) -> tuple[list[Record], dict]:
    """Backward only: dq, dk, dv of a forward computed once (FLOPs = 2.5 x forward)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa
    from .. import kernels
    records = []
    for c in progress(list(configs(quick, BACKWARD_HEAD_DIMS)), desc="attention backward"):
        shape = {k: c[k] for k in ("B", "H", "N", "D")}
        flags = {"causal": c["causal"], "dtype": "bf16", "pass": "backward"}
        q, k, v, do = (torch.randn(c["B"], c["H"], c["N"], c["D"], device="cuda", dtype=torch.bfloat16)
                       for _ in range(4))
        q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
        # float64 reference on the first (batch, head): heads are independent
        sl = [t[:1, :1].detach().double().requires_grad_() for t in (q, k, v)]
        kernels.reference_attention(*sl, c["causal"]).backward(do[:1, :1].double())
        ref = [t.grad for t in sl]
        del sl
        fwd = {"pykittens": lambda: kernels.attention(q, k, v, causal=c["causal"])}
        for name, backend in (("sdpa-flash", "FLASH_ATTENTION"), ("sdpa-cudnn", "CUDNN_ATTENTION")):
            fwd[name] = (lambda b=getattr(SDPBackend, backend):
                         _with_backend(sdpa_kernel, b, lambda: sdpa(q, k, v, is_causal=c["causal"])))

        def setup(f):  # the forward once (its graph kept), the backward timed on it
            o = f()
            grad = lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True)  # noqa: E731
            return grad(), grad
        gate_and_time(records, "attention_bwd", shape, flags, {n: (lambda f=f: setup(f)) for n, f in fwd.items()},
                      lambda grads: max(rel_err(g[:1, :1], r) for g, r in zip(grads, ref)), 2e-2, 2.5 * flops(c),
                      warmup=3, rounds=20)
        del q, k, v, do
    return records, {}


def run(quick: bool, progress, kernel: str = "auto") -> tuple[list[Record], dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa
    from .. import kernels
    records, extra = [], {}
    cfgs = list(configs(quick, (64, 128) if kernel == "warp" else (64, 128, 256)))
    for c in progress(cfgs, desc="attention"):
        shape = {k: c[k] for k in ("B", "H", "N", "D")}
        flags = {"causal": c["causal"], "dtype": "bf16"}
        q, k, v = (torch.randn(c["B"], c["H"], c["N"], c["D"], device="cuda", dtype=torch.bfloat16) for _ in range(3))
        rows, ref = _reference_rows(q, k, v, c["causal"])
        systems = {"pykittens": lambda: kernels.attention(q, k, v, causal=c["causal"], kernel=kernel)}
        for name, backend in PEERS.items():
            systems[name] = (lambda b=getattr(SDPBackend, backend):
                             _with_backend(sdpa_kernel, b, lambda: sdpa(q, k, v, is_causal=c["causal"])))
        gate_and_time(records, "attention_fwd", shape, flags, {n: (lambda f=f: (f(), f)) for n, f in systems.items()},
                      lambda out: rel_err(out[0, 0, rows], ref), GATE, flops(c))
        del q, k, v
    extra["kernel"] = kernel
    try:
        extra["compile"] = compile_times("warp" if kernel == "warp" else "hopper")
    except Exception as e:  # noqa: BLE001 - the speed records are still worth saving
        extra["compile"] = f"failed: {e}"
    return records, extra


def _with_backend(ctx, backend, fn):
    with ctx(backend):
        return fn()


_COMPILE_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import torch
from pykittens import kernels
q = torch.randn(1, 1, 128, 128, device="cuda", dtype=torch.bfloat16)
t1 = time.perf_counter()
kernels.attention(q, q, q, kernel=sys.argv[1])
torch.cuda.synchronize()
t2 = time.perf_counter()
r = (kernels.warp_attention if sys.argv[1] == "warp" else kernels.hopper_attention).last_compile
print(json.dumps({"first_call_ms": (t2 - t1) * 1e3, "compile_ms": r.seconds * 1e3, "from_cache": r.from_cache}))
"""


def compile_times(kernel: str = "hopper") -> dict:
    """Compile and launch costs of the Hopper attention kernel (D = 128), each compile in a fresh process.

    cold: empty cache (NVRTC library load + compile); warm: the same kernel found in the on-disk cache.
    first_call_ms is the whole first call (trace, codegen, compile or cache read, module load, launch).
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from ..kernels import attention, hopper_attention, warp_attention
    out = {}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYKITTENS_CACHE_DIR=d)
        for label in ("cold", "warm"):
            r = subprocess.run([sys.executable, "-c", _COMPILE_PROBE, kernel], capture_output=True, text=True, env=env)
            if r.returncode:
                out[label] = f"failed: {r.stderr[-300:]}"
                continue
            probe = json.loads(r.stdout.strip().splitlines()[-1])
            out[f"{label}_compile_ms"] = probe["compile_ms"]
            out[f"{label}_first_call_ms"] = probe["first_call_ms"]
            out[f"{label}_source"] = probe["from_cache"] or "nvrtc"
    q = torch.randn(1, 1, 128, 128, device="cuda", dtype=torch.bfloat16)
    attention(q, q, q, kernel=kernel)
    out["host_overhead_us"] = host_overhead_us(lambda: attention(q, q, q, kernel=kernel))
    try:
        k = warp_attention if kernel == "warp" else hopper_attention
        spec = next(s for s in k._specs.values() if s.compiled)
        res = next(iter(spec.compiled.values())).resources()
        out.update(registers_at_entry=res.registers, local_bytes=res.local)
    except (StopIteration, RuntimeError) as e:  # inspection is optional here
        out["resources"] = f"unavailable: {e}"
    return out


def table(records: list[Record]) -> str:
    lines = ["| D | causal | N | pykittens TFLOP/s | FA2 | cuDNN | efficient | vs FA2 | vs cuDNN | error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    by = {}
    for r in records:
        by.setdefault((r.shape["D"], r.flags["causal"], r.shape["N"]), {})[r.system] = r
    fmt = lambda r: f"{r.tflops:.0f}" if r and r.tflops else "—"  # noqa: E731
    for (d, causal, n), row in sorted(by.items()):
        pk = row.get("pykittens")
        ratio = lambda p: f"{pk.ratios[p]:.2f}×" if pk and p in pk.ratios else "—"  # noqa: E731
        lines.append(f"| {d} | {'yes' if causal else 'no'} | {n} | {fmt(pk)} | {fmt(row.get('sdpa-flash'))} | "
                     f"{fmt(row.get('sdpa-cudnn'))} | {fmt(row.get('sdpa-efficient'))} | {ratio('sdpa-flash')} | "
                     f"{ratio('sdpa-cudnn')} | {pk.error if pk and pk.error is not None else float('nan'):.1e} |")
    return "\n".join(lines) + ("\n\nDevice time (CUDA events with the host queued ahead), every system timed call by "
                               "call in turn (median of 30 rounds, backward 20); error: ours against float64.")


def plot(records: list[Record], path, ctx):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted({(r.shape["D"], r.flags["causal"]) for r in records})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (d, causal) in zip(axes[0], panels):
        for system in dict.fromkeys(r.system for r in records):
            pts = sorted((r.shape["N"], r.tflops) for r in records
                         if r.system == system and r.shape["D"] == d and r.flags["causal"] == causal and r.tflops)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=system, lw=2.5 if system == "pykittens" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_title(f"D={d}, {'causal' if causal else 'non-causal'}")
        ax.set_xlabel("sequence length N (B·N = 16k)")
        ax.set_ylabel("TFLOP/s")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    clock = ctx.get("after_run", {}).get("sm_clock", "?")
    fig.suptitle(f"attention forward, bf16 — {ctx.get('gpu', '?')}, SM clock {clock} after the run, "
                 f"commit {ctx.get('commit', '?')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

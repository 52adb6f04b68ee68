"""GEMM: pykittens against torch.matmul (cuBLAS), bf16 in and out (BENCH.md grid)."""
from __future__ import annotations

import torch

from .harness import Record, gate_and_time, host_overhead_us, rel_err, time_ms

GATE = 1e-2
REF_ROWS = 128  # the float64 reference covers this many rows of C (all columns)


def configs(quick: bool):
    shapes = [(n, n, n) for n in (2048, 4096, 8192)]
    shapes += [(8192, 8192, k) for k in (512, 1024, 2048, 4096, 16384)]
    shapes += [(4096, 14336, 4096), (4096, 4096, 14336), (8192, 1024, 8192), (1000, 1000, 1000)]
    if quick:
        shapes = [(4096, 4096, 4096), (8192, 8192, 8192), (4096, 14336, 4096)]
    for m, n, k in shapes:
        for trans in (False, True):
            if trans and (m, n, k) not in ((4096, 4096, 4096), (8192, 8192, 8192)):
                continue
            yield dict(M=m, N=n, K=k, transpose_b=trans)


def run(quick: bool, progress) -> tuple[list[Record], dict]:
    from ..kernels import matmul
    records = []
    for c in progress(list(configs(quick)), desc="gemm"):
        M, N, K, tb = c["M"], c["N"], c["K"], c["transpose_b"]
        shape, flags = {"M": M, "N": N, "K": K}, {"transpose_b": tb, "dtype": "bf16"}
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) if tb else torch.randn(K, N, device="cuda",
                                                                                          dtype=torch.bfloat16)
        rows = torch.linspace(0, M - 1, min(REF_ROWS, M), device="cuda").long().unique()
        bd = b.double().T if tb else b.double()
        ref = a[rows].double() @ bd
        systems = {"pykittens": lambda: matmul(a, b, transpose_b=tb),
                   "torch.matmul": lambda: torch.matmul(a, b.T if tb else b)}
        row = gate_and_time(records, "gemm", shape, flags, {n: (lambda f=f: (f(), f)) for n, f in systems.items()},
                            lambda out: rel_err(out[rows], ref), GATE, 2 * M * N * K)
        for name, r in row.items():
            r.eager_ms = time_ms(systems[name], warmup=2, reps=30, host_ahead=False)
        del a, b
    a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
    return records, {"host_overhead_us": {"pykittens": host_overhead_us(lambda: matmul(a, a)),
                                          "torch.matmul": host_overhead_us(lambda: a @ a)}}


def table(records: list[Record]) -> str:
    lines = ["| M | N | K | Bᵀ | pykittens TFLOP/s | cuBLAS TFLOP/s | ratio | eager ratio | error |",
             "|---|---|---|---|---|---|---|---|---|"]
    by = {}
    for r in records:
        by.setdefault((r.shape["M"], r.shape["N"], r.shape["K"], r.flags["transpose_b"]), {})[r.system] = r
    for (m, n, k, tb), row in by.items():
        pk, cb = row.get("pykittens"), row.get("torch.matmul")
        f = lambda r: f"{r.tflops:.0f}" if r and r.tflops else (r.note if r else "—")  # noqa: E731
        ratio = f"{pk.ratios['torch.matmul']:.3f}×" if pk and pk.ratios else "—"
        eager = f"{cb.eager_ms / pk.eager_ms:.3f}×" if pk and cb and pk.eager_ms and cb.eager_ms else "—"
        err = f"{pk.error:.1e}" if pk and pk.error is not None else "—"
        lines.append(f"| {m} | {n} | {k} | {'yes' if tb else 'no'} | {f(pk)} | {f(cb)} | {ratio} | {eager} | {err} |")
    return ("\n".join(lines) + "\n\nTFLOP/s and ratio: device time (CUDA events with the host queued ahead; the two "
            "systems timed call by call in turn, median of 30). "
            "Eager ratio: time per call of an eager loop, where host launch work shows when it exceeds the kernel's.")


def plot(records: list[Record], path, ctx):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels, pk, cb = [], [], []
    by = {}
    for r in records:
        by.setdefault((r.shape["M"], r.shape["N"], r.shape["K"], r.flags["transpose_b"]), {})[r.system] = r
    for (m, n, k, tb), row in by.items():
        labels.append(f"{m}x{n}x{k}{' Bᵀ' if tb else ''}")
        pk.append(row["pykittens"].tflops if "pykittens" in row and row["pykittens"].tflops else 0)
        cb.append(row["torch.matmul"].tflops if "torch.matmul" in row and row["torch.matmul"].tflops else 0)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels)), 4))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], pk, 0.4, label="pykittens")
    ax.bar([i + 0.2 for i in x], cb, 0.4, label="torch.matmul (cuBLAS)")
    ax.set_xticks(list(x), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("TFLOP/s")
    ax.legend()
    clock = ctx.get("after_run", {}).get("sm_clock", "?")
    ax.set_title(f"bf16 GEMM — {ctx.get('gpu', '?')}, SM clock {clock} after the run, commit {ctx.get('commit', '?')}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

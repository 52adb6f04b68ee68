"""Our attention against SDPA's cuDNN backend, forward and (autograd) backward, timed call by call in turn
(``time_interleaved``) on the BENCH.md grid (16k tokens, model width 2048), so both see the same GPU power state:
    python3 scripts/vs_cudnn.py [--out DIR] [N ...]        (default 1024 2048 4096 16384)
Prints the median ratio cuDNN time / our time (> 1: ours faster) with the middle half's spread; with --out, also
writes DIR/attention_vs_cudnn.json and .md (with the GPU, clocks and versions)."""
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from pykittens.bench.harness import context, time_interleaved
from pykittens.kernels import attention


def cudnn(q, k, v, causal):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return sdpa(q, k, v, is_causal=causal)


def main(ns, out=None):
    rows = []
    print(f"{'D':>4s} {'causal':>6s} {'N':>6s}   fwd ours/cuDNN speed   bwd ours/cuDNN speed   (median [quartiles])")
    for d in (64, 128):
        for causal in (False, True):
            for n in ns:
                B, H = 16384 // n, 2048 // d
                q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
                x = (q.detach(), k.detach(), v.detach())  # the forward without autograd
                fwd = [lambda f=f, x=x: f(*x, causal=causal) for f in (cudnn, attention)]
                for t in (q, k, v):
                    t.requires_grad_()
                outs = [f(q, k, v, causal=causal) for f in (cudnn, attention)]
                bwd = [lambda o=o: torch.autograd.grad(o, (q, k, v), do, retain_graph=True) for o in outs]
                cols, row = [], dict(D=d, causal=causal, N=n)
                for name, pair in (("fwd", fwd), ("bwd", bwd)):
                    (c, c1, c3), (o, o1, o3) = time_interleaved(pair, rounds=20)
                    row.update({f"{name}_cudnn_ms": c, f"{name}_ours_ms": o, f"{name}_ratio": c / o})
                    cols.append(f"{c / o:5.3f} [{c1 / o3:5.3f}-{c3 / o1:5.3f}]")
                rows.append(row)
                print(f"{d:4d} {causal!s:>6s} {n:6d}   {cols[0]:22s} {cols[1]}")
    if out:
        ctx = context()
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "attention_vs_cudnn.json").write_text(json.dumps({"context": ctx, "rows": rows}, indent=1))
        lines = ["# attention, ours vs SDPA cuDNN, timed call by call in turn (scripts/vs_cudnn.py)", "",
                 "Context: " + ", ".join(f"{k} {v}" for k, v in ctx.items()), "",
                 "Median device times over 20 interleaved rounds; ratio = cuDNN time / our time (> 1: ours faster).",
                 "", "| D | causal | N | fwd ratio | bwd ratio (autograd backward) |", "|---|---|---|---|---|"]
        lines += [f"| {r['D']} | {'yes' if r['causal'] else 'no'} | {r['N']} | {r['fwd_ratio']:.3f} | "
                  f"{r['bwd_ratio']:.3f} |" for r in rows]
        (Path(out) / "attention_vs_cudnn.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    out = args[args.index("--out") + 1] if "--out" in args else None
    ns = [int(a) for a in args if a.isdigit() and a != out]
    main(ns or [1024, 2048, 4096, 16384], out)

"""A/B: the Hopper forward with one block per query block vs PERSISTENT (a grid of one block per SM walking the
tiles), interleaved with cuDNN (median of 20 rounds). Usage: python scripts/ab_persistent.py [N ...]"""
import math
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from pykittens.bench.harness import run_once, time_interleaved
from pykittens.kernels import hopper_attention
from pykittens.kernels.attention_ops import forward_config
from tune_attention import grid_point

sms = torch.cuda.get_device_properties(0).multi_processor_count
for n in [int(x) for x in sys.argv[1:]] or [1024, 2048, 4096, 16384]:
    for d, causal in ((64, False), (64, True), (128, False)):
        q, k, v, fl, ref, _ = grid_point(n, d, causal)
        B, H = q.shape[:2]
        cfg = forward_config(d, causal)
        n_qb = -(-n // (64 * cfg["CONSUMERS"]))
        fns = []
        for persistent in (False, True):
            o = torch.full_like(q, float("nan"))
            lse = torch.empty(B, H, 1, n, device="cuda")
            grid = min(sms, n_qb * H * B) if persistent else (n_qb, H, B)
            fn = (lambda o, lse, grid, p: lambda: hopper_attention.launch(
                grid, q, k, v, o, lse, math.log2(math.e) / math.sqrt(d), D=d, CAUSAL=causal, **cfg,
                PERSISTENT=p))(o, lse, grid, persistent)
            failed = run_once(fn)
            err = ((o.double() - ref.double()).norm() / ref.double().norm()).item()
            assert not failed and err < 1e-2, (failed, err)
            fns.append(fn)
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            t = time_interleaved([lambda: sdpa(q, k, v, is_causal=causal)] + fns, rounds=20)
        c, a, p = (fl / x[0] for x in t)
        print(f"D={d} N={n:5d} causal={causal!s:5}: cuDNN {c:4.0f}  blocks {a:4.0f} ({a / c:.3f})  "
              f"persistent {p:4.0f} ({p / c:.3f})  {p / a - 1:+.1%}", flush=True)

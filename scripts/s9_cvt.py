# temporary: dQ conversion, torch .to (plain accumulator) vs attention_bwd_dq_convert (split pairs), BENCH grid size
import torch
from pykittens.bench.harness import time_interleaved
from pykittens.kernels.attention_bwd import attention_bwd_dq_convert
for D in (64, 128):
    H = 2048 // D
    acc = torch.randn(1, H, 16384, D, device="cuda")
    out = torch.empty(1, H, 16384, D, device="cuda", dtype=torch.bfloat16)
    t = time_interleaved([lambda: acc.to(torch.bfloat16),
                          lambda: attention_bwd_dq_convert.launch((256, H, 1), acc, out, D)], rounds=30)
    print(f"D={D}: torch .to {t[0][0] * 1e3:.1f} us, split-pairs convert {t[1][0] * 1e3:.1f} us", flush=True)

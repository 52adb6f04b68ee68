# temporary: the dQ conversion, plain vs split-pairs un-permute (one pass), at the BENCH grid's size
import torch
from pykittens.bench.harness import time_interleaved
from pykittens.kernels.attention_ops import dq_from_accumulator
for D in (64, 128):
    acc = torch.randn(1, 2048 // D, 16384, D, device="cuda")
    t = time_interleaved([lambda: dq_from_accumulator(acc, False, torch.bfloat16),
                          lambda: dq_from_accumulator(acc, True, torch.bfloat16)], rounds=30)
    print(f"D={D}: plain {t[0][0] * 1e3:.1f} us, split {t[1][0] * 1e3:.1f} us")

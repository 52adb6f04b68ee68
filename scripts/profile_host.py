"""Where the host time of a launch goes: per-call overhead (cProfile) and the first call's phases."""
import cProfile
import pstats
import subprocess
import sys
import time

import torch

FIRST_CALL = r"""
import time
t0 = time.perf_counter()
import torch
torch.zeros(1, device="cuda")
t1 = time.perf_counter()
import pykittens
from pykittens.kernels import attention, hopper_attention
t2 = time.perf_counter()
from cuda.bindings import driver, nvrtc
t3 = time.perf_counter()
q = torch.randn(1, 1, 128, 128, device="cuda", dtype=torch.bfloat16)
import pykittens.kernels.attention as A
spec_t = time.perf_counter()
attention(q, q, q)
torch.cuda.synchronize()
t4 = time.perf_counter()
attention(q, q, q)
torch.cuda.synchronize()
t5 = time.perf_counter()
r = hopper_attention.last_compile
print(f"torch+ctx {1e3*(t1-t0):.0f} ms, import pykittens {1e3*(t2-t1):.0f} ms, import cuda.bindings {1e3*(t3-t2):.0f} ms, "
      f"first attention call {1e3*(t4-spec_t):.0f} ms (compile {1e3*r.seconds:.0f} ms, {r.from_cache or 'nvrtc'}), second {1e3*(t5-t4):.2f} ms")
"""


def main():
    from pykittens.bench.harness import context, graph_replay_us
    from pykittens.kernels import attention, matmul
    print("Context: " + ", ".join(f"{k} {v}" for k, v in context().items()))  # GPU, clocks, versions, commit
    a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
    q = torch.randn(1, 2, 128, 128, device="cuda", dtype=torch.bfloat16)
    from pykittens.kernels.attention_ops import _hopper_forward
    import torch.nn.functional as F
    for name, fn in (("torch.matmul 1024 (peer)", lambda: a @ a), ("SDPA (peer)", lambda: F.scaled_dot_product_attention(q, q, q)),
                     ("matmul 1024", lambda: matmul(a, a)), ("attention", lambda: attention(q, q, q)),
                     ("_hopper_forward", lambda: _hopper_forward(q, q, q, False, 0.1))):
        fn()
        torch.cuda.synchronize()
        n = 300
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        print(f"{name}: {1e6 * (t1 - t0) / n:.1f} us host time per call")
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(200):
            fn()
        pr.disable()
        torch.cuda.synchronize()
        pstats.Stats(pr).sort_stats("tottime").print_stats(8)
    # the pieces of one launch, timed alone
    import importlib
    A = importlib.import_module("pykittens.kernels.attention_ops")
    from pykittens.kernels.gemm import gemm
    c = torch.empty_like(a)
    args = gemm._complete((a, a, c, False, 3))
    plan = next(iter(gemm._plans.values()))
    values = [a.data_ptr(), a.data_ptr(), c.data_ptr()]
    stream = torch.cuda.current_stream(0).cuda_stream
    pieces = {"gemm.launch": lambda: gemm.launch((132, 1, 1), *args),
              "validation (_bind, the first launch of a layout)": lambda: gemm._bind(args),
              "plan.launch (pack + cuLaunchKernel)": lambda: plan.launch((132, 1, 1), values, stream),
              "cuLaunchKernel": lambda: plan.loaded.launch((132, 1, 1), plan.pointer, stream),
              "torch._C._cuda_getCurrentRawStream": lambda: torch._C._cuda_getCurrentRawStream(0),
              "torch.empty": lambda: torch.empty(1024, 1024, device="cuda", dtype=torch.bfloat16),
              "attention: _check (cached layout)": lambda: A._check(q, q, q, False),
              "attention: torch.compiler.is_compiling": torch.compiler.is_compiling,
              "attention: grad mode + requires_grad": lambda: torch.is_grad_enabled() and q.requires_grad,
              "attention: _is_hopper": lambda: A._is_hopper(q.device)}
    for name, fn in pieces.items():
        fn()
        t0 = time.perf_counter()
        for _ in range(500):
            fn()
        print(f"  {name}: {1e6 * (time.perf_counter() - t0) / 500:.1f} us")
        torch.cuda.synchronize()
    print("replayed from one CUDA graph of 100 calls (host time of a replay / 100; median of 20 replays):")
    for name, fn in (("SDPA (peer)", lambda: F.scaled_dot_product_attention(q, q, q)),
                     ("attention", lambda: attention(q, q, q))):
        print(f"  {name}: {graph_replay_us(fn):.2f} us host time per call")  # (pykittens.bench.harness)
    for i in range(1):
        r = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True)
        print("fresh process:", r.stdout.strip() or r.stderr[-800:])


if __name__ == "__main__":
    main()

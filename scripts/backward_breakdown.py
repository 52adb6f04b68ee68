"""Where the backward's time goes at N = 4096: the whole autograd backward, its main kernel with and without dQ
(WITH_DQ), the rowsum(dO∘O) kernel (which also zeroes the dQ accumulator) and dQ's bf16 conversion, next to cuDNN's."""
import importlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from pykittens.bench.attention import grid_shape
from pykittens.bench.harness import time_ms
from pykittens.kernels import attention

A = importlib.import_module("pykittens.kernels.attention_ops")


def main_kernel_call(q, k, v, do, lse, causal):
    """(call, delta, dq): ``call(with_dq=True, **constexprs)`` launches the backward's main kernel alone on these
    inputs, with its own delta (zeros: timing only), fp32 dQ accumulator, dK and dV."""
    B, H, n, d = q.shape
    delta = torch.zeros(B, H, 1, n, dtype=torch.float32, device=q.device)
    lse_p = lse.unsqueeze(2).contiguous()
    dq = torch.zeros(B, H, n, d, dtype=torch.float32, device=q.device)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    grid = (-(-n // (64 * A.BACKWARD_CONSUMERS[d, causal])), H, B)
    return (lambda with_dq=True, **kw: A.attention_bwd.launch(
        grid, q, k, v, do, lse_p, delta, dq, dk, dv, 0.1, d, causal, with_dq,
        **{**A.backward_config(d, causal, with_dq), "GQA": q.shape[1] != k.shape[1], **kw})), delta, dq


def main(n=4096):
    print(f"{'case':24s} {'cuDNN':>7s} {'ours':>7s} {'main':>7s} {'no dQ':>7s} {'3 stg':>7s} {'prep+0':>6s} {'dq cvt':>8s}   (us)")
    for d in (64, 128):
        for causal in (False, True):
            B, H = grid_shape(n, d)
            q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))
            for t in (q, k, v):
                t.requires_grad_()
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                o = sdpa(q, k, v, is_causal=causal)
                t_cudnn = time_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, 20)
            o = attention(q, k, v, causal=causal)
            t_ours = time_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), 3, 20)
            o, lse = attention(q.detach(), k.detach(), v.detach(), causal=causal, return_lse=True)
            call, delta, dq = main_kernel_call(q, k, v, do, lse, causal)
            times = []
            for with_dq, stages in ((True, 2), (False, 2), (True, 3 if d == 64 else 2)):
                times.append(time_ms(lambda: call(with_dq, STAGES=stages), 3, 20))
            t_prep = time_ms(lambda: A.attention_bwd_prep.launch((n // 64, H, B), o, do, delta, dq, d, True), 3, 20)
            t_dq = time_ms(lambda: dq.to(torch.bfloat16), 3, 20)
            print(f"D={d:3d} causal={causal!s:5s}      {1e3 * t_cudnn:7.0f} {1e3 * t_ours:7.0f} {1e3 * times[0]:7.0f} "
                  f"{1e3 * times[1]:7.0f} {1e3 * times[2]:7.0f} {1e3 * t_prep:6.0f} {1e3 * t_dq:8.0f}")


if __name__ == "__main__":
    main()

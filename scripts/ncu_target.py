"""One call of a library kernel (or its cuDNN peer) between cudaProfilerStart and Stop, after warm-up calls, for
Nsight Compute to profile that call's kernels only:
    ncu --profile-from-start off --section SpeedOfLight python3 scripts/ncu_target.py bwd128
Cases: gemm[N] or gemm<M>x<N>x<K> (cublas... for torch.matmul), fwd<D>[c][_<N>], bwd<D>[c][_<N>], cudnn_fwd<D>..., cudnn_bwd<D>... (c: causal; N default 4096).
"""
import re
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention as sdpa

from pykittens.bench.attention import grid_shape
from pykittens.kernels import attention, matmul


def case(what: str):
    """The call to profile, as a closure."""
    g = re.fullmatch(r"(gemm|cublas)((?:\d+x?)*)", what)
    if g:
        m, n, k = ([int(x) for x in g.group(2).split("x")] * 3)[:3] if g.group(2) else (4096,) * 3
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        return (lambda: matmul(a, b)) if g.group(1) == "gemm" else (lambda: a @ b)
    m = re.fullmatch(r"(cudnn_)?(fwd|bwd)(\d+)(c?)(?:_(\d+))?", what)
    if not m:
        raise SystemExit(f"unknown case {what!r}: {__doc__}")
    peer, kind, d, causal, n = m.group(1), m.group(2), int(m.group(3)), m.group(4) == "c", int(m.group(5) or 4096)
    B, H = grid_shape(n, d)
    q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=torch.bfloat16) for _ in range(4))

    def fwd():
        if peer:
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return sdpa(q, k, v, is_causal=causal)
        return attention(q, k, v, causal=causal)
    if kind == "fwd":
        return fwd
    for t in (q, k, v):
        t.requires_grad_()
    o = fwd()
    return lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True)


def main():
    call = case(sys.argv[1])
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    call()
    torch.cuda.profiler.stop()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()

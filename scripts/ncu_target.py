"""One launch of each library kernel at a tuning size, after a warm-up, for Nsight Compute to profile:
    ncu --kernel-name regex:pk_ --launch-skip 2 --launch-count 1 --section SpeedOfLight python3 scripts/ncu_target.py gemm
"""
import sys

import torch

from pykittens.kernels import attention, matmul


def main():
    what = sys.argv[1]
    if what.startswith("gemm"):
        n = int(what[4:] or 4096)
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            matmul(a, b)
    else:
        q, k, v = (torch.randn(4, 16, 4096, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        for _ in range(3):
            attention(q, k, v)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()

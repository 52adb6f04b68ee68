"""``pykittens.kernels.matmul``: bf16 matrix products on Hopper (and in the interpreter on CPU tensors)."""
import torch

from ..trace import cdiv
from .checks import LayoutCache, device_info, layout_key, require_bf16
from .gemm import gemm

CLUSTER = 1  # blocks per cluster; 2 shares B by multicast but was slower (NOTES.md)


def tile_config(M: int, N: int, sms: int) -> dict:
    """The GEMM's block tile (64·CONSUMERS rows x BN), ring depth and epilogue for an M x N output on ``sms`` SMs.
    128 x 256 tiles with 4 stages (4 x 48 KB of A/B) and C staged in 64 x 128 pieces (2 x 16 KB), one wgmma kept in
    flight (LAG=1): 1.4-2% faster than 3 stages with C staged whole (NOTES.md). Unless such tiles would occupy
    fewer than half of the SMs (1000³: 32 tiles on 132 SMs); then 128 x 128 tiles (twice as many blocks) with 4
    stages. (CONSUMERS=1, 64-row tiles, is a kernel option that no shape picks yet.)"""
    if cdiv(M, 128) * cdiv(N, 256) < sms // 2:
        return dict(BN=128, STAGES=4, CONSUMERS=2)
    return dict(BN=256, STAGES=4, CONSUMERS=2, EPI=128, LAG=1)


def persistent_grid(a: torch.Tensor, M: int, N: int, transpose_b: bool, cluster: int, **constexprs) -> int:
    """Blocks of the persistent GEMM for an M x N output: one per work tile up to what fits on the GPU at once —
    the SM count, or with clusters the clusters that fit (SMs come in GPCs; asked of the driver) times their size.
    0 for an empty output. The interpreter (CPU) gets one cluster of blocks, which still walks every tile.
    ``constexprs``: the kernel's other constexprs by name, over ``tile_config``'s (BN sets the tile width; all set
    its shared memory, hence what fits; CONSUMERS its height, 64·CONSUMERS rows)."""
    constexprs = {**tile_config(M, N, device_info(a.device)[1]), **constexprs}
    bm = 64 * constexprs["CONSUMERS"]  # block tile rows
    tiles = cdiv(cdiv(M, bm), cluster) * cdiv(N, constexprs["BN"])  # per cluster: its blocks take adjacent rows
    if tiles == 0:
        return 0
    if a.device.type != "cuda":
        return cluster * min(tiles, max(1, 2 // cluster))
    _, sms = device_info(a.device)
    if cluster == 1:
        return min(tiles, sms)
    from ..backend.cuda.launch import device_arch
    ck = gemm.compile(a, a, a, TRANS_B=transpose_b, CLUSTER=cluster, arch=device_arch(a.device), **constexprs)
    return cluster * min(tiles, ck.loaded(a.device).max_active_clusters(cluster))


def _row_major(t: torch.Tensor) -> bool:
    """Row-major with 16-byte aligned rows (with a 16-byte aligned base, checked per call): what TMA can read."""
    return t.stride(-1) == 1 and (t.shape[0] <= 1 or t.stride(0) * 2 % 16 == 0)


def _padded(t: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``t`` in a fresh zero-padded rows x cols row-major tensor (zeros add nothing to the product)."""
    out = t.new_zeros(rows, cols)
    out[: t.shape[0], : t.shape[1]] = t
    return out


_PLANS = LayoutCache()  # (a, b, transpose_b) layouts -> _plan's result


def matmul(a: torch.Tensor, b: torch.Tensor, *, transpose_b: bool = False) -> torch.Tensor:
    """C = A·B (``b`` is K x N) or, with ``transpose_b=True``, C = A·Bᵀ (``b`` is N x K). bf16 in and out, fp32
    accumulation, any M, N, K. The kernel reads row-major operands with 16-byte aligned rows (K and N multiples of 8)
    directly; anything else (other strides, K or N not a multiple of 8) goes through a zero-padded row-major copy
    first, which costs an extra pass over the operands."""
    M, N, K8, N8, grid, config, pad_a, pad_b, launch = _PLANS.lookup(layout_key(a, b, transpose_b),
                                                            lambda: _plan(a, b, bool(transpose_b)))
    if M == 0 or N == 0 or K8 == 0:  # nothing to launch (and TMA cannot describe an empty tensor)
        return torch.zeros(M, N, dtype=torch.bfloat16, device=a.device)
    c = torch.empty(M, N8, dtype=torch.bfloat16, device=a.device)
    if pad_a or pad_b or a.data_ptr() % 16 or b.data_ptr() % 16:  # copies: layouts other than the cached ones
        if pad_a or a.data_ptr() % 16:
            a = _padded(a, M, K8)
        if pad_b or b.data_ptr() % 16:
            b = _padded(b, N8, K8) if transpose_b else _padded(b, K8, N8)
        gemm.launch(grid, a, b, c, TRANS_B=bool(transpose_b), CLUSTER=CLUSTER, **config)
    else:
        launch(a, b, c)  # the layouts of this cache entry: the bound launcher skips the kernel's own layout key
    return c if N8 == N else c[:, :N].contiguous()


def _plan(a, b, transpose_b: bool) -> tuple:
    """Check a layout once: (M, N, K8, N8, grid, tile config, pad a, pad b, launcher), or a TypeError/ValueError
    saying what was wrong."""
    require_bf16("matmul", 2, a=a, b=b)
    if a.device != b.device:
        raise ValueError(f"matmul: a and b must be on one device, got {a.device} and {b.device}")
    if device_info(a.device)[0] != 9:
        raise RuntimeError("matmul: the GEMM kernel uses wgmma and TMA and needs a Hopper GPU (sm_90)")
    M, K = a.shape
    N, Kb = (b.shape if transpose_b else b.shape[::-1])
    if K != Kb:
        raise ValueError(f"matmul: inner dims differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}"
                         f"{' (transposed)' if transpose_b else ''}")
    K8, N8 = -(-K // 8) * 8, -(-N // 8) * 8
    pad_a = K8 != K or not _row_major(a)
    pad_b = K8 != K or N8 != N or not _row_major(b)
    config = tile_config(M, N8, device_info(a.device)[1])
    grid = persistent_grid(a, M, N8, transpose_b, CLUSTER, **config)
    launch = gemm.launcher(grid, TRANS_B=transpose_b, CLUSTER=CLUSTER, **config) if grid else None
    return M, N, K8, N8, grid, config, pad_a, pad_b, launch  # launch None: nothing to launch

"""``pykittens.kernels.matmul``: bf16 matrix products on Hopper (and in the interpreter on CPU tensors)."""
import torch

from .gemm import gemm

STAGES = 3  # 3 x 48 KB of A/B stages + 64 KB of C staging fits the 227 KB of shared memory


_DEVICES: dict = {}  # device index -> (compute capability major, multiprocessors), read once


def _device_info(device) -> tuple[int, int]:
    if device.type != "cuda":
        return 9, 2  # the interpreter: a small persistent grid still exercises the tile loop
    info = _DEVICES.get(device.index)
    if info is None:
        p = torch.cuda.get_device_properties(device)
        info = _DEVICES[device.index] = (p.major, p.multi_processor_count)
    return info


def matmul(a: torch.Tensor, b: torch.Tensor, *, transpose_b: bool = False) -> torch.Tensor:
    """C = A·B (``b`` is K x N) or, with ``transpose_b=True``, C = A·Bᵀ (``b`` is N x K). bf16 in and out, fp32
    accumulation. Any M, N, K ≥ 1 whose rows are 16-byte aligned (K and N multiples of 8) — a TMA requirement."""
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"matmul: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != torch.bfloat16:
            raise TypeError(f"matmul: {name} must be bfloat16, got {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"matmul: {name} must be 2-D, got shape {tuple(t.shape)}")
        if t.numel() and (t.stride(-1) != 1 or (t.shape[0] > 1 and t.stride(0) * 2 % 16)):
            raise ValueError(f"matmul: {name} must be row-major with 16-byte aligned rows, got strides {t.stride()}")
    if a.device != b.device:
        raise ValueError(f"matmul: a and b must be on one device, got {a.device} and {b.device}")
    major, sms = _device_info(a.device)
    if major != 9:
        raise RuntimeError("matmul: the GEMM kernel uses wgmma and TMA and needs a Hopper GPU (sm_90)")
    M, K = a.shape
    N, Kb = (b.shape if transpose_b else b.shape[::-1])
    if K != Kb:
        raise ValueError(f"matmul: inner dims differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}"
                         f"{' (transposed)' if transpose_b else ''}")
    if K % 8 or N % 8:
        raise ValueError(f"matmul: K ({K}) and N ({N}) must be multiples of 8 (16-byte rows for TMA)")
    if M == 0 or N == 0 or K == 0:  # nothing to launch (and TMA cannot describe an empty tensor)
        return torch.zeros(M, N, dtype=torch.bfloat16, device=a.device)
    c = torch.empty(M, N, dtype=torch.bfloat16, device=a.device)
    tiles = -(-M // 128) * -(-N // 256)
    gemm.launch(min(tiles, sms), a, b, c, bool(transpose_b), STAGES)
    return c

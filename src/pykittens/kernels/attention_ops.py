"""Launch glue of the attention kernels: input checks, per-head-dim configurations, the forward and backward
launches, their torch.library ops (torch.compile) and the eager autograd Function. The public functions are in
``attention.py``."""
import math

import torch

from .attention_bwd import attention_bwd, attention_bwd_dq, attention_bwd_dq_convert, attention_bwd_prep
from .attention_hopper import hopper_attention
from .attention_warp import warp_attention
from .checks import LayoutCache, device_info, require_bf16
from ..kernel import _current_stream

SUPPORTED_HEAD_DIMS = (64, 128, 256)
BACKWARD_HEAD_DIMS = (64, 128, 256)  # D = 256: in two launches, dV and then dK + dQ (BACKWARD_BY_GRADIENT)
DETERMINISTIC_HEAD_DIMS = (64, 128)  # (the Q-stationary dQ kernel's accumulators do not fit D = 256's registers)
WARP_HEAD_DIMS = (64, 128)
LOG2E = math.log2(math.e)  # the kernels take the softmax scale in base 2


class _Checked:
    """A (q, k, v, causal) layout that passed the checks, and what its launches need, made on first use."""
    forward = None  # _ForwardLaunch

    def __init__(self, q):
        self.hopper = _is_hopper(q.device)  # (the device is part of the layout)


_CHECKED = LayoutCache()  # layouts (q, k, v, causal) -> _Checked


def _check(q, k, v, causal) -> _Checked:
    try:  # (the layout key spelled out: ~1 us less per call than checks.layout_key's generic loop)
        key = (q.dtype, q.shape, q.stride(), q.device, k.dtype, k.shape, k.stride(), k.device, v.dtype, v.shape,
               v.stride(), v.device, causal)
        checked = _CHECKED.get(key)
    except (AttributeError, TypeError):  # not tensors (the checks say what was expected), or an unhashable causal
        return _check_layouts(q, k, v, causal)
    return checked if checked is not None else _CHECKED.lookup(key, lambda: _check_layouts(q, k, v, causal))


def _check_layouts(q, k, v, causal) -> _Checked:
    require_bf16("attention", 4, " (batch, heads, seq, head_dim)", q=q, k=k, v=v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(-1) != 1:
            raise ValueError(f"attention: {name} must be contiguous in its last dim, got strides {t.stride()}")
    if len({q.device, k.device, v.device}) != 1:
        raise ValueError(f"attention: q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    (B, Hq, Nq, D), (Bk, Hk, Nk, Dk) = q.shape, k.shape
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"attention: head dim must be one of {SUPPORTED_HEAD_DIMS}, got {D}")
    if k.shape != v.shape:
        raise ValueError(f"attention: k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if Bk != B or Dk != D:
        raise ValueError(f"attention: k/v batch and head dim must match q's ({B}, {D}), got ({Bk}, {Dk})")
    if Hk == 0 or Hq % Hk:
        raise ValueError(f"attention: query heads ({Hq}) must be a multiple of key/value heads ({Hk})")
    if min(Nq, Nk) < 1:
        raise ValueError(f"attention: sequence lengths must be >= 1, got N_q={Nq}, N_kv={Nk}")
    if causal and Nq > Nk:
        raise ValueError(f"attention: causal with N_q ({Nq}) > N_kv ({Nk}) leaves query rows with no key; "
                         f"not supported")
    return _Checked(q)


# head dim -> (consumer warpgroups of 64 query rows, K/V ring stages, keys per stage, ping-pong, P·V overlapped with
# the next softmax): what fits 227 KB of shared memory and the register file (3 consumers get setmaxnreg 160), and
# timed fastest (NOTES.md). The overlap keeps P (bf16) live during the softmax: D=64 gains 2-6%; D=128 would need 2
# consumers for it, and 3 without it are faster. D = 256: O alone is 128 registers per thread (2 consumers, 232
# each); two 80-key K+V stages (80 KB each) fill the shared memory next to 64 KB of Q. 80 keys rather than 64:
# +2.4 to +5.7%, causal 1k a tie (NOTES.md, session 15: predicted from the shared-memory reads of a 64-wide Q·Kᵀ,
# which ncu's wavefront count does not confirm; a step also does 25% more work per barrier).
FORWARD_DIAG64 = (64,)  # head dims whose causal forward runs a diagonal block 64 keys wide where it can (NOTES.md)
# (head dim, causal) whose forward prefetches the next wave's Q and first K/V into L2 (AHEAD = SM count): D=64
# +0.7-3.0% at N = 1k-2k, about 0 at 4k-16k; D=128 non-causal +0.1-0.9%; D=256 causal +0.1-5.0%. Not the others:
# D=128 causal -0.8 to -1.6%, D=256 non-causal -0.7 to -1.8% (not understood; NOTES.md, session 12). A launch with
# HEADS_FIRST (below) prefetches at every head dim, half as far
FORWARD_L2_AHEAD = {(64, False), (64, True), (128, False), (256, True)}
# head dims whose causal forward gives a head's leftover query tiles (N/64 not a multiple of the consumers) to its
# first block instead of a block of their own (EXTRA): consumer c runs tile c after its own, on K/V stage 0, when
# those tiles' keys fit one stage. D=64 causal +1.6-4.0% at N = 512-1k, ±0.4% at 2k-8k (NOTES.md, session 16). Not
# D = 128: its first block's 3 steps would wrap the 2-stage ring and overwrite stage 0 (the kernel refuses EXTRA).
FORWARD_EXTRA = (64,)
# head dim -> the query length from which its causal forward launches a batch's heads together, each head's blocks
# longest first (HEADS_FIRST: grid (heads, blocks, batch)), instead of one head's blocks after another's. The long
# blocks then start early and the short ones fill the tail: D=64 +2.5-3.5% at 2k-16k (-1.3% at 1k), D=128 +1.5% at
# 1k and +5.4-7.0% at 2k-16k (-0.6% at 512), D=256 +2.2% at 1k, +10% at 4k (NOTES.md, session 17), +2.4-2.6% at
# 512 (session 23, warm-up at half the SMs; D=128 +0.3% there, D=64 -0.6% at 1k). Not non-causal (blocks of equal
# length; -1 to -2% at D=128)
FORWARD_HEADS_FIRST = {64: 2048, 128: 1024, 256: 512}
# a heads-first launch's L2 warm-up distance (AHEAD), as a share of the SMs. Its blocks get shorter along the launch,
# so more than an SM count of them start while one of its first blocks runs, and a warm-up an SM count ahead mostly
# fetches for blocks that start long after it (or have started already). Half the SMs against all of them (causal,
# N = 1k-16k): D=128 +0.3 to +1.6%, D=256 +0.5 to +2.3%, D=64 -0.6 to +0.9% (most +0.3 to +0.5%) (NOTES.md,
# session 23). (No warm-up at all makes ptxas 13.0 serialise D=64's wgmma: -26 to -33%)
FORWARD_HEADS_FIRST_AHEAD = 1 / 2
# head dim -> the query length from which its non-causal forward runs the last head's blocks twice, once per half of
# the keys, combined through global memory (SPLIT), where the plain launch's last wave would leave more than a third
# of the SMs idle: the launch then ends in half-length blocks. D=128 +1.7-2.0% at 4k, +3.1% at 8k, +3.4% at 16k;
# D=64 +0.5-0.6% at 2k, +1.2-1.3% at 4k. Not shorter (D=128 2k -0.7%, 1k -1.2%; D=64 1k -0.6%: a half's fixed cost
# weighs more) nor with a fuller last wave (D=64 8k and 16k, 85% full: -0.3%) (NOTES.md, session 18)
FORWARD_SPLIT = {64: 2048, 128: 4096}
FORWARD_SPLIT_LAST_WAVE = 2 / 3  # (the most of the SMs the plain launch's last wave may keep busy)
# head dims whose forward consumers pass the ping-pong turn once their Q·Kᵀ is issued rather than done
# (EARLY_TURN), so the tensor cores never wait for the hand-over: D=256 (2 consumers) +3.2 to +7.4% at N = 1k-16k,
# both masks; D=128 (3 consumers) -0.8 to -5.6% (NOTES.md, session 19). D=64 passes it early anyway (PV_LAG)
FORWARD_EARLY_TURN = (256,)
# (head dim, causal) -> the query length from which the forward keeps each row's maximum until it grows by more
# than 2^FORWARD_LAZY_SLACK (FA4's lazy rescaling: `tk.row_max_lazy`), so a warp whose maxima all stayed skips the
# rescale of O (`tk.rescale_rows`). D=256 +1.6 to +2.8% at N = 1k-4k, both masks; D=64 +0.9 to +1.5% non-causal,
# causal +1.2% at 4k, +0.2% at 2k, -0.6% at 1k. Not D=128: -0.4 to -1.9% (with the rescale before the
# exponentials, -0.9 to +0.9%) (NOTES.md, session 20)
FORWARD_LAZY = {(64, False): 0, (64, True): 2048, (256, False): 0, (256, True): 0}
FORWARD_LAZY_SLACK = 8.0
HOPPER_CONFIG = {64: (3, 4, 128, True, True), 128: (3, 2, 128, True, False), 256: (2, 2, 80, True, False)}
# (head dim, causal) -> consumer warpgroups (64 keys each) of the backward kernel: 3 is 6-10% faster at D=64
# (NOTES.md); D=128 needs 2 for its registers (dK and dV alone are 128 per thread)
BACKWARD_CONSUMERS = {(64, False): 3, (64, True): 3, (128, False): 2, (128, True): 2}
# head dims whose backward runs as two launches by gradient: D = 256's dK and dV of 64 keys would need 256 registers
# per thread together. dV alone (S, P, dV: no V, no dP) fits two consumers; dK + dQ one (K, V and two stages of Q
# and dO fill the shared memory). 13-18% faster than two launches of 128 gradient columns each (NOTES.md).
# Value: (consumers of the dV launch, of the dK + dQ launch)
BACKWARD_BY_GRADIENT = {256: (2, 1)}
# head dims whose backward computes dQ in a warpgroup of its own (DQ_WG) rather than by the consumers in turn; D=64's
# three consumers leave no registers for one
BACKWARD_DQ_WARPGROUP = {128}
# (head dim, causal) whose backward (with the dQ warpgroup) gives dSᵀ registers of its own, so dS forms while dV's
# wgmma runs: D=128 non-causal +1-9% in 11 of 12 A/B pairs (main kernel, N = 1k-16k); causal -1% on average (NOTES.md)
BACKWARD_SPLIT_PDS = {(128, False)}
# causal backward: blocks start by key block over groups of 8 heads (the long first key blocks early); the
# list-scheduling model predicts +4-6% at N = 1k-4k (NOTES.md)
BACKWARD_HEAVY_FIRST = True
# head dims whose backward stages dQ with split pairs (stmatrix, no bank conflicts; ``attention_bwd_dq_convert`` puts
# the accumulator's columns back in order as it converts to bf16): whole backward +0.8-6.9%, D=128 non-causal most
# (NOTES.md, session 10)
BACKWARD_DQ_SPLIT = (64, 128, 256)


def forward_config(D: int, causal: bool, sms: int = 0) -> dict:
    """The Hopper forward's configuration constexprs (CONSUMERS, STAGES, KV, PINGPONG, PV_LAG, DIAG64, AHEAD,
    EARLY_TURN) for a head dim on a GPU of ``sms`` SMs (0: no L2 prefetch for later blocks)."""
    consumers, stages, kv, pingpong, pv_lag = HOPPER_CONFIG[D]
    return dict(CONSUMERS=consumers, STAGES=stages, KV=kv, PINGPONG=pingpong, PV_LAG=pv_lag,
                DIAG64=bool(causal) and D in FORWARD_DIAG64, AHEAD=sms if (D, bool(causal)) in FORWARD_L2_AHEAD else 0,
                EARLY_TURN=D in FORWARD_EARLY_TURN)


def forward_launch(D: int, causal: bool, n_q: int, n_kv: int, heads: int = 1, batch: int = 1,
                   sms: int = 0) -> tuple[tuple[int, int, int], dict]:
    """(grid, configuration constexprs) of the Hopper forward for these sizes. Causal at a head dim in
    FORWARD_EXTRA, a head's leftover query tiles (fewer than the consumers) go to its first block (EXTRA) when
    their keys fit one K/V stage; otherwise they get a block. Causal from FORWARD_HEADS_FIRST's length on, a
    batch's heads launch together (HEADS_FIRST). Non-causal from FORWARD_SPLIT's length on, on a GPU of ``sms``
    SMs where the last wave would be short, the last head's blocks run once per key half (SPLIT). Where
    FORWARD_LAZY says, row maxima move lazily (LAZY)."""
    config = forward_config(D, causal, sms)
    full, left = divmod(-(-n_q // 64), config["CONSUMERS"])
    if causal and D in FORWARD_EXTRA and full and left and 64 * left + n_kv - n_q <= config["KV"]:
        config["EXTRA"] = True
    # (blocks per head on the grid's y: at most 65535)
    if causal and n_q >= FORWARD_HEADS_FIRST[D] and forward_blocks(n_q, config) <= 65535:
        config.update(HEADS_FIRST=True, AHEAD=round(sms * FORWARD_HEADS_FIRST_AHEAD))
    if n_q >= FORWARD_LAZY.get((D, bool(causal)), n_q + 1):
        config["LAZY"] = FORWARD_LAZY_SLACK
    last_wave = forward_blocks(n_q, config) * heads * batch % sms if sms else 0  # blocks in the plain last wave
    if not causal and n_q >= FORWARD_SPLIT.get(D, n_q + 1) and -(-n_kv // config["KV"]) >= 2 and \
            4 <= heads < 65535 and 0 < last_wave <= FORWARD_SPLIT_LAST_WAVE * sms:
        config["SPLIT"] = True
    return forward_grid(n_q, heads, batch, config), config


def forward_grid(n_q: int, heads: int, batch: int, config: dict) -> tuple[int, int, int]:
    """The grid of a forward launch with this configuration: (blocks per head, heads, batch), with HEADS_FIRST
    (heads, blocks per head, batch), with SPLIT (blocks per head, batch, heads + 1)."""
    blocks = forward_blocks(n_q, config)
    if config.get("SPLIT"):  # heads last, one more: the last head's blocks run twice, once per key half
        return blocks, batch, heads + 1
    return (heads, blocks, batch) if config.get("HEADS_FIRST") else (blocks, heads, batch)


def forward_split_blocks(n_q: int, batch: int, config: dict) -> int:
    """How many blocks a SPLIT launch runs as two key halves: the last head's, of every batch (0 without SPLIT)."""
    return forward_blocks(n_q, config) * batch if config.get("SPLIT") else 0


class SplitScratch:
    """Where a SPLIT forward's key halves meet, per (device, stream): ``part`` (half 0's unnormalised O), ``stats``
    (its row maxima and sums) and ``flags`` (each set to the call's epoch once a warp's share is written). A flag
    keeps the epoch of the call that set it last, so no call clears them; calls on one stream run one after
    another, so they may share the buffers. Not under CUDA-graph capture: a replay would repeat its epoch."""
    _by_stream: dict = {}
    epoch = 0

    @classmethod
    def get(cls, D: int, c: int, n: int, device) -> tuple:
        """(part, stats, flags, epoch) for a launch of ``c`` consumers with ``n`` split blocks on torch's current
        stream; placeholders (never written) for n = 0."""
        key = (device, _current_stream(device.index or 0) if device.type == "cuda" else 0, n, c, D)
        bufs = cls._by_stream.get(key)
        if bufs is None:
            if len(cls._by_stream) > 64:
                cls._by_stream.clear()
            f32 = dict(dtype=torch.float32, device=device)
            bufs = cls._by_stream[key] = (torch.empty(max(n, 1), c, 64, D if n else 4, **f32),
                                          torch.empty(max(n, 1), c, 2, 64, **f32),
                                          torch.zeros(1, 1, max(n, 1), 4 * c, dtype=torch.int32, device=device))
        if n:
            cls.epoch = cls.epoch % (2 ** 31 - 1) + 1
        return (*bufs, cls.epoch)


def forward_blocks(n_q: int, config: dict) -> int:
    """Blocks per head of a forward launch with this configuration: one per CONSUMERS query tiles of 64 rows; with
    EXTRA the leftover tiles have none (the head's first block runs them)."""
    tiles, c = -(-n_q // 64), config["CONSUMERS"]
    return tiles // c if config.get("EXTRA") else -(-tiles // c)


def backward_config(D: int, causal: bool, with_dq: bool = True) -> dict:
    """The main backward kernel's configuration constexprs (C, W, DQ_WG, SPLIT_PDS, HEAVY_FIRST, DQ_SPLIT) for a
    head dim that runs in one launch (``backward_launches`` gives every head dim's launches)."""
    c = BACKWARD_CONSUMERS[D, causal]
    dq_wg = with_dq and D in BACKWARD_DQ_WARPGROUP
    return dict(C=c, W=4 * (c + 1 + dq_wg), DQ_WG=dq_wg, SPLIT_PDS=dq_wg and (D, causal) in BACKWARD_SPLIT_PDS,
                HEAVY_FIRST=BACKWARD_HEAVY_FIRST, DQ_SPLIT=with_dq and D in BACKWARD_DQ_SPLIT)


def backward_launches(D: int, causal: bool, with_dq: bool = True) -> list[dict]:
    """The main backward kernel's launches for a head dim, each a dict of its constexprs (with WITH_DQ)."""
    if D not in BACKWARD_BY_GRADIENT:
        return [dict(backward_config(D, causal, with_dq), WITH_DQ=with_dq)]
    c_dv, c_dkq = BACKWARD_BY_GRADIENT[D]
    common = dict(DQ_WG=False, SPLIT_PDS=False, HEAVY_FIRST=BACKWARD_HEAVY_FIRST)
    return [dict(common, C=c_dv, W=4 * (c_dv + 1), GRADS="dv", WITH_DQ=False, DQ_SPLIT=False),
            dict(common, C=c_dkq, W=4 * (c_dkq + 1), GRADS="dkq", WITH_DQ=with_dq,
                 DQ_SPLIT=with_dq and D in BACKWARD_DQ_SPLIT)]


def _is_hopper(device) -> bool:
    return device_info(device)[0] == 9  # (the interpreter runs the Hopper kernel)


def positive_scale(q, scale: float):
    """(q, scale) with scale > 0, which the kernels assume (they keep running maxima of the raw scores and mask them
    with -inf before scaling): softmax(q·kᵀ·s) = softmax((−q)·kᵀ·|s|), and s = 0 is q = 0 with s = 1 (uniform over
    the keys a row sees). Only those rare calls pay an elementwise kernel; autograd differentiates through it."""
    if scale > 0:
        return q, scale
    return (-q, -scale) if scale < 0 else (q * 0.0, 1.0)


def _require_positive_scale(op: str, scale: float):
    if not scale > 0:
        raise ValueError(f"{op}: scale must be > 0, got {scale} (pykittens.kernels.attention takes any finite scale)")


def _warp_forward(q, k, v, causal, scale, warps=4):
    _require_positive_scale("attention (warp kernel)", scale)
    B, H, N, D = q.shape
    o = torch.empty_like(q, memory_format=torch.contiguous_format)
    warp_attention[(-(-N // (16 * warps)), H, B)](q, k, v, o, scale * math.log2(math.e), D, warps, bool(causal))
    return o


@torch.library.custom_op("pykittens::attention_fwd", mutates_args=())
def _attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float,
                   deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hopper kernel as a torch.library op: (o, lse)."""
    return _hopper_forward(q, k, v, causal, scale, _check(q, k, v, causal))


class _ForwardLaunch:
    """The Hopper forward for one checked layout: configuration, grid and the bound kernel (``Launcher``); with
    SPLIT also the launch without it, which CUDA-graph captures take (``SplitScratch``)."""

    def __init__(self, q, k, causal: bool):
        B, H, N, D = q.shape
        grid, self.config = forward_launch(D, causal, N, k.shape[2], H, B, device_info(q.device)[1])
        self.bnhd = q.stride(1) < q.stride(2)  # a transposed (B, N, H, D) tensor: o gets the same layout
        self.lse_rows = -(-N // 4) * 4  # lse rows padded to 16 bytes (a global layout requirement)
        self.kernel = hopper_attention.launcher(grid, D=D, CAUSAL=bool(causal), **self.config)
        plain = dict(self.config, SPLIT=False)
        self.plain = hopper_attention.launcher(forward_grid(N, H, B, plain), D=D, CAUSAL=bool(causal), **plain) \
            if self.config.get("SPLIT") else self.kernel
        self.placeholders = SplitScratch.get(D, plain["CONSUMERS"], 0, q.device)  # (never written without SPLIT)
        self.slots = forward_split_blocks(N, B, self.config)
        # calls that return no log-sum-exp pass an lse of zero rows, which the kernel's clipped stores never write
        # (no allocation, no writes); a launcher of its own, since a launcher keeps its first call's layouts
        self.no_lse = torch.empty(B, H, 0, 4, dtype=torch.float32, device=q.device)
        self.kernel_no_lse = hopper_attention.launcher(grid, D=D, CAUSAL=bool(causal), **self.config)


def _hopper_forward(q, k, v, causal: bool, scale: float, checked: _Checked | None = None, with_lse: bool = True):
    """(o, lse) from the Hopper kernel. o is contiguous in (B, N, H, D) order when q is a transposed (B, N, H, D)
    tensor, so ``attention_bnhd`` needs no copy. ``checked``: what ``_check`` returned for these inputs.
    ``with_lse=False``: lse is None and the kernel writes none (eager inference: one allocation less per call)."""
    _require_positive_scale("attention_fwd", scale)
    checked = checked or _check(q, k, v, causal)
    f = checked.forward
    if f is None:
        f = checked.forward = _ForwardLaunch(q, k, causal)
    B, H, N, D = q.shape
    o = torch.empty(B, N, H, D, dtype=q.dtype, device=q.device).transpose(1, 2) if f.bnhd else torch.empty_like(
        q, memory_format=torch.contiguous_format)
    # with SPLIT, a CUDA-graph capture takes the launch without it (a replay would repeat its epoch), with an lse
    capturing = f.plain is not f.kernel and q.is_cuda and torch.cuda.is_current_stream_capturing()
    launch = f.plain if capturing else f.kernel
    scratch = f.placeholders if launch is f.plain else SplitScratch.get(D, f.config["CONSUMERS"], f.slots, q.device)
    if not (with_lse or capturing):  # (then launch is f.kernel, whose twin this is)
        f.kernel_no_lse(q, k, v, o, f.no_lse, *scratch, scale * LOG2E)
        return o, None
    lse = torch.empty(B, H, 1, f.lse_rows, dtype=torch.float32, device=q.device)
    launch(q, k, v, o, lse, *scratch, scale * LOG2E)
    lse = lse.squeeze(2)
    return o, (lse if f.lse_rows == N else lse[..., :N].clone())


@_attention_fwd.register_fake
def _(q, k, v, causal, scale, deterministic=False):
    B, H, N, D = q.shape
    return torch.empty_like(q), q.new_empty(B, H, N, dtype=torch.float32)


def check_backward_head_dim(D: int, deterministic: bool = False):
    if D not in BACKWARD_HEAD_DIMS:
        raise NotImplementedError(f"attention: the backward supports head dims {BACKWARD_HEAD_DIMS}, got {D}")
    if deterministic and D not in DETERMINISTIC_HEAD_DIMS:
        raise NotImplementedError(f"attention: the deterministic backward supports head dims "
                                  f"{DETERMINISTIC_HEAD_DIMS}, got {D} (deterministic=False supports {D})")


def _hopper_backward(do, q, k, v, o, lse, causal: bool, scale: float, deterministic: bool = False):
    """(dq, dk, dv) from the Hopper backward kernels; dk and dv summed over each query-head group."""
    _require_positive_scale("attention_bwd", scale)
    B, H, N, D = q.shape
    check_backward_head_dim(D, deterministic)
    Hk, Nk = k.shape[1], k.shape[2]
    if do.stride(-1) != 1 or do.data_ptr() % 16 or any(s * 2 % 16 for s in do.stride()[:3]):
        do = do.contiguous()
    n_pad = -(-N // 4) * 4  # rows of per-query vectors padded to 16 bytes
    delta = torch.empty(B, H, 1, n_pad, dtype=torch.float32, device=q.device)
    # the fp32 dQ accumulator the main kernel adds into, zeroed by the rowsum kernel (deterministic mode has none)
    dq = delta if deterministic else torch.empty(B, H, N, D, dtype=torch.float32, device=q.device)
    attention_bwd_prep.launch((-(-N // 64), H, B), o, do, delta, dq, D, not deterministic)
    if n_pad == N and lse.is_contiguous() and lse.data_ptr() % 16 == 0:
        lse_p = lse.view(B, H, 1, N)  # rows already 16-byte multiples: the kernels read it in place
    else:
        lse_p = lse.new_zeros(B, H, 1, n_pad)
        lse_p[:, :, 0, :N] = lse
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    launches = backward_launches(D, causal, with_dq=not deterministic)  # (one, but at D = 256: two)
    for config in launches:
        grid = (-(-Nk // (64 * config["C"])), Hk, B)  # a block per 64·C keys
        attention_bwd.launch(grid, q, k, v, do, lse_p, delta, delta if deterministic else dq, dk, dv, scale, D,
                             causal, **config, GQA=H != Hk)
    if deterministic:  # dK, dV without dQ, then dQ in a fixed order by its own kernel
        dq = torch.empty_like(q)
        attention_bwd_dq.launch((-(-N // 128), H, B), q, k, v, do, lse_p, delta, dq, scale, D, causal)
        return dq, dk, dv
    if not launches[-1]["DQ_SPLIT"]:  # (the launch that computes dQ comes last)
        return dq.to(q.dtype), dk, dv
    out = torch.empty(B, H, N, D, dtype=q.dtype, device=q.device)
    attention_bwd_dq_convert.launch((-(-N // 64), H, B), dq, out, D)  # (puts the split columns back in order)
    return out, dk, dv


@torch.library.custom_op("pykittens::attention_bwd", mutates_args=())
def _attention_bwd(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor,
                   lse: torch.Tensor, causal: bool, scale: float,
                   deterministic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Hopper backward as a torch.library op: (dq, dk, dv)."""
    return _hopper_backward(do, q, k, v, o, lse, causal, scale, deterministic)


@_attention_bwd.register_fake
def _(do, q, k, v, o, lse, causal, scale, deterministic):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    q, k, v, causal, scale, deterministic = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse)
    ctx.causal, ctx.scale, ctx.deterministic = causal, scale, deterministic


def _backward(ctx, do, dlse):
    q, k, v, o, lse = ctx.saved_tensors
    dq, dk, dv = torch.ops.pykittens.attention_bwd(do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.deterministic)
    return dq, dk, dv, None, None, None


torch.library.register_autograd("pykittens::attention_fwd", _backward, setup_context=_setup_context)


class _Attention(torch.autograd.Function):
    """Eager autograd without the dispatcher's per-call cost; saves only q, k, v, o and lse."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, deterministic, checked):
        o, lse = _hopper_forward(q, k, v, causal, scale, checked)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.deterministic = causal, scale, deterministic
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _hopper_backward(do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.deterministic)
        return dq, dk, dv, None, None, None, None

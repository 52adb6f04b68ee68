"""Warp-level attention kernel: interpreter and GPU against float64, input checks, compile checks."""
import pytest
import torch

from pykittens.kernels import attention, hopper_attention, reference_attention, warp_attention
from pykittens.kernels.attention_ops import SplitScratch
from util import assert_close, rel_err

CASES = [  # (B, H_q, H_kv, N_q, N_kv, D, causal)
    (1, 2, 2, 40, 40, 64, False),  # ragged N
    (1, 1, 1, 33, 33, 128, True),  # causal, D = 128
    (2, 4, 2, 17, 50, 64, False),  # GQA, N_q != N_kv
    (1, 2, 1, 24, 71, 64, True),  # causal bottom-right with N_q < N_kv, MQA
    (1, 1, 1, 1, 1, 64, False),  # N = 1
]
CASES_256 = [  # head dim 256: the Hopper kernel only (2 consumers, 80-key stages)
    (1, 2, 1, 70, 70, 256, False),  # ragged N, MQA
    (1, 1, 1, 100, 130, 256, True),  # causal bottom-right, N_q != N_kv
    (1, 1, 1, 70, 250, 256, False),  # 4 key steps round the 2-stage ring, the last 10 keys wide
]


def _no_split(D, consumers, device):
    """The kernel's SPLIT arguments (part, stats, flags, epoch) for a launch without SPLIT: placeholders."""
    return SplitScratch.get(D, consumers, 0, device)


def _inputs(B, Hq, Hk, Nq, Nk, D, device="cpu", scale=1.0):
    q = (torch.randn(B, Hq, Nq, D) * scale).bfloat16().to(device)
    k = (torch.randn(B, Hk, Nk, D) * scale).bfloat16().to(device)
    v = torch.randn(B, Hk, Nk, D).bfloat16().to(device)
    return q, k, v


@pytest.mark.parametrize("kernel", ["hopper", "warp"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_interpreter_matches_float64(case, kernel):
    *shape, causal = case
    q, k, v = _inputs(*shape)
    out = attention(q, k, v, causal=causal, kernel=kernel)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    assert_close(out, reference_attention(q, k, v, causal), 1e-2)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("Nq, Nk, D, causal", [(200, 200, 64, True), (150, 330, 128, True), (450, 450, 64, True),
                                                (70, 330, 64, False), (450, 200, 128, False)])
def test_192_row_blocks_partial_block_first(Nq, Nk, D, causal, device):
    """3 consumers (192-row blocks): a head's partial block comes first (its first one or two consumers own tiles
    before row 0 and skip every step), and with a causal mask the first consumers of a block skip key blocks wholly
    right of their diagonal; output and lse must still match float64 (poisoned outputs show unwritten rows)."""
    import math
    q, k, v = _inputs(1, 2, 1, Nq, Nk, D, device)
    o = torch.full_like(q, float("nan"))
    lse = torch.full((1, 2, 1, -(-Nq // 4) * 4), float("nan"), device=device)
    stages = 4 if D == 64 else 2
    hopper_attention[(-(-Nq // 192), 2, 1)](q, k, v, o, lse, *_no_split(D, 3, q.device),
                                           math.log2(math.e) / math.sqrt(D), D, 3, stages, causal, 128, True)
    assert_close(o.cpu(), reference_attention(q.cpu(), k.cpu(), v.cpu(), causal), 1e-2)
    torch.testing.assert_close(lse[0, :, 0, :Nq].cpu().double(), _reference_lse(q.cpu(), k.cpu(), causal)[0],
                               atol=2e-2, rtol=0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("Nq, Nk, extra", [(200, 200, True), (300, 300, True), (200, 230, True), (400, 420, True),
                                           (300, 330, False), (384, 384, False)])
def test_causal_leftover_tiles_run_in_a_heads_first_block(Nq, Nk, extra, device):
    """D=64 causal (3 consumers): a head's leftover query tiles (N/64 % 3) are run by its first block's consumers
    after their own tiles (EXTRA), when their keys fit one K/V stage; otherwise (or with none left over) they keep
    a block. Output (poisoned) and lse must match float64 either way, with GQA."""
    import math
    from pykittens.kernels.attention_ops import forward_launch
    q, k, v = _inputs(2, 4, 2, Nq, Nk, 64, device)
    grid, cfg = forward_launch(64, True, Nq, Nk, heads=4, batch=2)
    assert cfg.get("EXTRA", False) == extra
    assert grid == (-(-Nq // 64) // 3 + (0 if extra else bool(-(-Nq // 64) % 3)), 4, 2)
    o = torch.full_like(q, float("nan"))
    lse = torch.full((2, 4, 1, -(-Nq // 4) * 4), float("nan"), device=device)
    hopper_attention.launch(grid, q, k, v, o, lse, *_no_split(64, cfg["CONSUMERS"], q.device), math.log2(math.e) / 8,
                            D=64, CAUSAL=True, **cfg)
    assert_close(o.cpu(), reference_attention(q.cpu(), k.cpu(), v.cpu(), True), 1e-2)
    torch.testing.assert_close(lse[..., 0, :Nq].cpu().double(), _reference_lse(q.cpu(), k.cpu(), True),
                               atol=2e-2, rtol=0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("D, Nq, Nk", [(64, 200, 200), (64, 300, 330), (64, 384, 384), (128, 200, 260)])
def test_causal_heads_first_launch_order_matches_float64(D, Nq, Nk, device):
    """HEADS_FIRST (grid (heads, blocks, batch)) maps every block to the same work as the default order: with and
    without EXTRA, GQA and N_q != N_kv, output (poisoned) and lse match float64."""
    import math
    from pykittens.kernels.attention_ops import forward_grid, forward_launch
    q, k, v = _inputs(2, 4, 2, Nq, Nk, D, device)
    cfg = dict(forward_launch(D, True, Nq, Nk)[1], HEADS_FIRST=True)
    grid = forward_grid(Nq, 4, 2, cfg)
    assert grid[0] == 4 and grid[2] == 2
    o = torch.full_like(q, float("nan"))
    lse = torch.full((2, 4, 1, -(-Nq // 4) * 4), float("nan"), device=device)
    hopper_attention.launch(grid, q, k, v, o, lse, *_no_split(D, cfg["CONSUMERS"], q.device),
                            math.log2(math.e) / D ** 0.5, D=D, CAUSAL=True, **cfg)
    assert_close(o.cpu(), reference_attention(q.cpu(), k.cpu(), v.cpu(), True), 1e-2)
    torch.testing.assert_close(lse[..., 0, :Nq].cpu().double(), _reference_lse(q.cpu(), k.cpu(), True),
                               atol=2e-2, rtol=0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("D, B, Hq, Hk, Nq, Nk", [(128, 2, 4, 2, 200, 300), (128, 3, 2, 1, 581, 581),
                                                  (64, 2, 4, 4, 384, 451), (128, 1, 1, 1, 384, 384)])
def test_split_last_head_matches_float64(D, B, Hq, Hk, Nq, Nk, device):
    """SPLIT: the last head's blocks run twice, on the first and the second half of the keys; half 0 hands its
    unnormalised O, maxima and sums to half 1 through global memory and a flag per warp. Output (poisoned) and lse
    match float64 with GQA, N_q != N_kv, a ragged last key block and D=64's P·V overlap, and every flag shows the
    current epoch (the halves met)."""
    import math
    from pykittens.kernels.attention_ops import forward_grid, forward_launch, forward_split_blocks
    q, k, v = _inputs(B, Hq, Hk, Nq, Nk, D, device)
    cfg = dict(forward_launch(D, False, Nq, Nk, Hq, B)[1], SPLIT=True, AHEAD=3)  # (and a warm-up across the halves)
    grid = forward_grid(Nq, Hq, B, cfg)
    assert grid == (-(-Nq // 192), B, Hq + 1)
    n = forward_split_blocks(Nq, B, cfg)
    part, stats, flags, epoch = SplitScratch.get(D, cfg["CONSUMERS"], n, q.device)
    o = torch.full_like(q, float("nan"))
    lse = torch.full((B, Hq, 1, -(-Nq // 4) * 4), float("nan"), device=device)
    hopper_attention.launch(grid, q, k, v, o, lse, part, stats, flags, epoch, math.log2(math.e) / math.sqrt(D), D=D,
                            CAUSAL=False, **cfg)
    assert_close(o.cpu(), reference_attention(q.cpu(), k.cpu(), v.cpu(), False), 1e-2)
    torch.testing.assert_close(lse[..., 0, :Nq].cpu().double(), _reference_lse(q.cpu(), k.cpu(), False),
                               atol=2e-2, rtol=0)
    assert (flags == epoch).sum().item() == n * cfg["CONSUMERS"] * 4


def test_forward_launch_decisions():
    """Where the forward gives leftover tiles to a head's first block (EXTRA) and launches heads first."""
    from pykittens.kernels.attention_ops import forward_launch
    assert forward_launch(64, True, 1024, 1024, 32, 16) == ((5, 32, 16), forward_launch(64, True, 1024, 1024)[1])
    assert forward_launch(64, True, 1024, 1024)[1]["EXTRA"]
    assert forward_launch(64, True, 2048, 2048, 32, 8)[0] == (32, 10, 8)  # two leftover tiles: keys 0..127, one stage
    assert forward_launch(64, True, 2048, 2100)[0] == (1, 11, 1)  # 128 + 52 keys: the leftover tiles keep a block
    assert "EXTRA" not in forward_launch(64, True, 2048, 2100)[1]
    assert forward_launch(64, True, 100, 100)[0] == (1, 1, 1)  # no full block
    assert "EXTRA" not in forward_launch(64, False, 1024, 1024)[1]  # non-causal: the leftover tile is the heaviest
    assert "EXTRA" not in forward_launch(128, True, 1024 + 64, 1024 + 64)[1]  # (D = 128: 2 stages, its first block's 3 steps wrap)
    # heads first: causal only, from 2k at D = 64, 1k at D = 128 and 512 at D = 256 (measured: slower below)
    assert [forward_launch(64, True, n, n)[1].get("HEADS_FIRST", False) for n in (1024, 2048)] == [False, True]
    assert [forward_launch(128, True, n, n)[1].get("HEADS_FIRST", False) for n in (512, 1024)] == [False, True]
    assert [forward_launch(256, True, n, n)[1].get("HEADS_FIRST", False) for n in (256, 512)] == [False, True]
    assert forward_launch(256, True, 4096, 4096, 8, 4)[0] == (8, 32, 4)  # 2 consumers: 32 blocks per head
    assert not any(forward_launch(d, False, 4096, 4096)[1].get("HEADS_FIRST") for d in (64, 128, 256))
    # L2 warm-up: none at D = 128 causal in the plain order; half an SM count ahead in a heads-first launch
    assert [forward_launch(128, True, n, n, sms=132)[1]["AHEAD"] for n in (512, 1024)] == [0, 66]
    assert [forward_launch(64, c, 2048, 2048, sms=132)[1]["AHEAD"] for c in (False, True)] == [132, 66]
    assert forward_launch(64, True, 2 ** 24, 2 ** 24)[0] == (87381, 1, 1)  # blocks per head past a grid's y limit
    # SPLIT (non-causal): from 2k at D = 64 and 4k at D = 128, where the last wave of 132 SMs would be <= 2/3 full
    split = lambda D, N, H, B: forward_launch(D, False, N, N, H, B, 132)[1].get("SPLIT", False)  # noqa: E731
    assert [split(64, n, 32, 16384 // n) for n in (1024, 2048, 4096, 8192)] == [False, True, True, False]
    assert [split(128, n, 16, 16384 // n) for n in (2048, 4096, 16384)] == [False, True, True]
    assert forward_launch(128, False, 4096, 4096, 16, 4, 132)[0] == (22, 4, 17)  # (blocks, batch, heads + 1)
    assert not split(128, 4096, 16, 6) and not forward_launch(128, False, 4096, 4096, 16, 4)[1].get("SPLIT")
    assert not forward_launch(128, False, 4096, 100, 16, 4, 132)[1].get("SPLIT")  # one key block: no halves


def _reference_lse(q, k, causal, scale=None):
    Hq, Hk = q.shape[1], k.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q.double() @ k.double().repeat_interleave(Hq // Hk, 1).transpose(-1, -2)) * scale
    if causal:
        Nq, Nk = q.shape[2], k.shape[2]
        s = s.masked_fill(~torch.ones(Nq, Nk, dtype=torch.bool).tril(Nk - Nq), float("-inf"))
    return torch.logsumexp(s, -1)


@pytest.mark.parametrize("case", CASES_256, ids=str)
def test_interpreter_head_dim_256_matches_float64(case):
    *shape, causal = case
    q, k, v = _inputs(*shape)
    out, lse = attention(q, k, v, causal=causal, return_lse=True)
    assert_close(out, reference_attention(q, k, v, causal), 1e-2)
    torch.testing.assert_close(lse.double(), _reference_lse(q, k, causal), atol=2e-2, rtol=0)


def test_head_dim_256_has_no_deterministic_backward_and_no_warp_kernel():
    q, k, v = (t.requires_grad_() for t in _inputs(1, 1, 1, 16, 16, 256))
    with pytest.raises(NotImplementedError, match=r"deterministic backward supports head dims \(64, 128\), got 256"):
        attention(q, k, v, deterministic=True)  # raised before the forward runs
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"warp-level kernel supports head dims \(64, 128\), got 256"):
            attention(q, k, v, kernel="warp")
        assert attention(q, k, v).shape == q.shape


def test_split_through_attention_in_the_interpreter(monkeypatch):
    """``attention`` on CPU tensors at a shape where the launch picks SPLIT (the interpreter counts 2 SMs, so an odd
    block count leaves a short last wave; SPLIT's length threshold lowered to reach it at N = 160): the choice
    between the split launch and a CUDA-graph capture's must not touch CUDA (a CPU-only torch has none), and the
    output with and without the log-sum-exp matches float64."""
    from pykittens.kernels import attention_ops
    from pykittens.kernels.checks import LayoutCache
    monkeypatch.setattr(attention_ops, "_CHECKED", LayoutCache())
    monkeypatch.setitem(attention_ops.FORWARD_SPLIT, 64, 128)
    q, k, v = _inputs(1, 5, 5, 160, 160, 64)
    o, lse = attention(q, k, v, return_lse=True)
    assert attention_ops._check(q, k, v, False).forward.config.get("SPLIT")
    assert torch.equal(attention(q, k, v), o)  # (the launch that writes no lse)
    assert_close(o, reference_attention(q, k, v), 1e-2)
    torch.testing.assert_close(lse.double(), _reference_lse(q, k, False), atol=2e-2, rtol=0)


def test_calls_without_lse_write_none():
    """Eager inference (no ``return_lse``, no grad) launches with an lse of zero rows, which the kernel's clipped
    stores never write: the same output, no lse."""
    from pykittens.kernels.attention_ops import _hopper_forward
    q, k, v = _inputs(2, 2, 1, 70, 90, 128)
    o, lse = _hopper_forward(q, k, v, True, 0.1, with_lse=False)
    o_ref, lse_ref = _hopper_forward(q, k, v, True, 0.1)
    assert lse is None and lse_ref.shape == (2, 2, 70) and torch.equal(o, o_ref)
    assert_close(o, reference_attention(q, k, v, True, 0.1), 1e-2)


@pytest.mark.parametrize("case", [CASES[1], CASES[2]], ids=str)
def test_log_sum_exp(case):
    *shape, causal = case
    q, k, v = _inputs(*shape)
    out, lse = attention(q, k, v, causal=causal, return_lse=True)
    assert lse.shape == q.shape[:3] and lse.dtype == torch.float32
    torch.testing.assert_close(lse.double(), _reference_lse(q, k, causal), atol=2e-2, rtol=0)


def test_large_logits_and_custom_scale_stay_finite():
    q, k, v = _inputs(1, 1, 1, 32, 48, 64, scale=8.0)  # logits in the hundreds: exp would overflow unshifted
    out = attention(q, k, v, scale=0.5)
    assert torch.isfinite(out).all()
    assert_close(out, reference_attention(q, k, v, scale=0.5), 1e-2)


def _growing_inputs(D, N=450):
    """(q, k, v) whose scores grow along the keys, by up to ~100 log2 units per 128-key block for the last query
    rows and barely for the first ones."""
    q, k, v = _inputs(1, 2, 1, N, N, D)
    slope = torch.linspace(-0.1, 6.0, N)[None, None, :, None]  # per query row: how fast its scores grow
    q = (q.float() * 0.3 + slope).bfloat16()
    k = (k.float() * 0.3 + torch.linspace(0, 6.0, N)[None, None, :, None]).bfloat16()
    return q, k, v


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("D, causal", [(64, False), (64, True), (128, True)])
def test_row_maxima_growing_across_key_blocks(D, causal, device):
    """Scores that grow along the keys by up to ~100 (log2 units) per 128-key block for some rows and barely for
    others: O and the row sums must be rescaled at later steps too (a kernel that stopped rescaling after its first
    step would overflow fp32: this test fails for it; it guards FA4-style conditional rescaling, tried in session 7)."""
    q, k, v = _growing_inputs(D)
    out, lse = attention(q.to(device), k.to(device), v.to(device), causal=causal, return_lse=True)
    assert_close(out.cpu(), reference_attention(q, k, v, causal), 1e-2)
    torch.testing.assert_close(lse.cpu().double(), _reference_lse(q, k, causal), atol=2e-2, rtol=1e-4)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("D, causal", [(64, True), (128, False), (256, True)])
def test_lazy_maxima_with_growing_scores(D, causal, device):
    """LAZY (each row's maximum kept until it grows by more than 2^8) on `_growing_inputs`: rows whose scores
    outgrow the slack must still be rescaled, rows within it not, and the lse must use the kept maxima consistently.
    Forced on for every head dim (the launch turns it on only where it was measured faster)."""
    import math
    from pykittens.kernels.attention_ops import forward_launch
    N = 450
    q, k, v = (t.to(device) for t in _growing_inputs(D, N))
    grid, config = forward_launch(D, causal, N, N, 2, 1, 132)  # (as on a 132-SM GPU: with AHEAD, D=64 causal's
    o = torch.full_like(q, float("nan"))  # LAZY compiles unserialised; without, ptxas 13.0 serialises its wgmma)
    lse = torch.full((1, 2, 1, -(-N // 4) * 4), float("nan"), device=device)
    hopper_attention.launch(grid, q, k, v, o, lse, *_no_split(D, config["CONSUMERS"], q.device),
                            math.log2(math.e) / math.sqrt(D), D=D, CAUSAL=causal, **dict(config, LAZY=8.0))
    q, k, v = q.cpu(), k.cpu(), v.cpu()
    assert_close(o.cpu(), reference_attention(q, k, v, causal), 1e-2)
    torch.testing.assert_close(lse[0, :, 0, :N].cpu().double(), _reference_lse(q, k, causal)[0], atol=2e-2,
                               rtol=1e-4)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("kernel", ["hopper", "warp"])
@pytest.mark.parametrize("scale", [0.0, -0.125])
def test_zero_and_negative_scales_match_float64(scale, kernel, device):
    """The kernels keep running maxima of the raw scores and mask before scaling, so they need scale > 0;
    ``attention`` runs scale < 0 as (-q, |scale|) and scale = 0 as (0, 1). A ragged causal case (masked scores)."""
    q, k, v = (t.to(device) for t in _inputs(1, 2, 1, 70, 90, 64))
    got = attention(q, k, v, causal=True, scale=scale, kernel=kernel, return_lse=kernel == "hopper")
    q, k, v = q.cpu(), k.cpu(), v.cpu()
    out, lse = got if kernel == "hopper" else (got, None)
    assert_close(out.cpu(), reference_attention(q, k, v, True, scale=scale), 1e-2)
    if lse is not None:
        torch.testing.assert_close(lse.cpu().double(), _reference_lse(q, k, True, scale), atol=2e-2, rtol=1e-4)


@pytest.mark.parametrize("kernel", ["hopper", "warp"])
def test_empty_batch_returns_empty_outputs(kernel):
    q, k, v = _inputs(0, 2, 1, 16, 24, 64)
    with torch.no_grad():
        out = attention(q, k, v, kernel=kernel)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    if kernel == "hopper":
        q.requires_grad_()
        out, lse = attention(q, k, v, causal=True, return_lse=True)
        assert lse.shape == (0, 2, 16) and lse.dtype == torch.float32
        out.sum().backward()
        assert q.grad.shape == q.shape


@pytest.mark.parametrize("bad, err, match", [
    (dict(q=torch.randn(1, 1, 16, 64)), TypeError, "q must be bfloat16"),
    (dict(q=torch.randn(1, 1, 16, 96).bfloat16()), ValueError, "head dim must be one of"),
    (dict(q=torch.randn(1, 3, 16, 64).bfloat16()), ValueError, r"multiple of key/value heads \(2\)"),
    (dict(q=torch.randn(1, 2, 16, 64).bfloat16().transpose(2, 3)), ValueError, "4-D|contiguous|head dim"),
    (dict(q=torch.randn(2, 16, 64).bfloat16()), ValueError, "must be 4-D"),
    (dict(causal=True, q=torch.randn(1, 2, 40, 64).bfloat16()), ValueError, "causal with N_q"),
    (dict(scale=float("nan")), ValueError, "scale must be a finite number"),
])
def test_bad_inputs_raise_before_launch(bad, err, match):
    args = dict(q=torch.randn(1, 2, 16, 64).bfloat16(), k=torch.randn(1, 2, 32, 64).bfloat16(),
                v=torch.randn(1, 2, 32, 64).bfloat16(), causal=False)
    args.update(bad)
    with pytest.raises(err, match=match):
        attention(**args)


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_warp_kernel_compiles_with_hmma_and_no_spills(D, arch):
    q = torch.empty(1, 1, 64, D, dtype=torch.bfloat16)
    ck = warp_attention.compile(q, q, q, q, 1.0, D, 4, True, arch=arch)
    assert "HMMA" in ck.sass()
    res = ck.resources()
    assert res.local == 0 and res.stack == 0, res


@pytest.mark.parametrize("D,causal,N", [(64, False, 256), (64, True, 256), (64, True, 384), (64, True, 2048),
                                         (128, False, 256), (128, True, 256), (128, True, 1024), (256, False, 256),
                                         (256, True, 256), (256, True, 1024)])
def test_hopper_kernel_compiles_with_hgmma_tma_and_no_spills(D, causal, N):
    """Every configuration ``attention`` launches (D=64 causal: with EXTRA at N = 256 and 2048, without at 384;
    causal heads first from N = 2048 at D=64, 1024 at D=128, 512 at D=256)."""
    from pykittens.kernels.attention_ops import forward_launch
    q = torch.empty(1, 1, N, D, dtype=torch.bfloat16)
    lse = torch.empty(1, 1, 1, N)
    config = forward_launch(D, causal, N, N, sms=132)[1]
    assert config.get("EXTRA", False) == (D == 64 and causal and N in (256, 2048))
    assert config.get("HEADS_FIRST", False) == (causal and N >= {64: 2048, 128: 1024, 256: 512}[D])
    assert config["EARLY_TURN"] == (D == 256)  # (2 consumers: the turn passes once Q·Kᵀ is issued)
    assert bool(config.get("LAZY")) == (D == 256 or D == 64 and (not causal or N >= 2048))
    ck = hopper_attention.compile(q, q, q, q, lse, *_no_split(D, config["CONSUMERS"], q.device), 1.0, D=D,
                                  CAUSAL=causal, **config, arch="sm_90a")
    sass = ck.sass()
    assert "HGMMA" in sass and "UTMALDG" in sass and "UTMASTG" in sass
    assert not ck.wgmma_serialized, ck.result.log[-300:]
    res = ck.resources()
    assert res.local == 0 and res.stack == 0, res


def test_kernels_are_short():
    import inspect
    # the Hopper kernel has two schedules (with and without the P·V overlap, PV_LAG), each with a 64-key diagonal
    # step for causal D=64 (DIAG64), an L2 warm-up for a later block (AHEAD), a head's leftover query tiles run
    # by its first block (EXTRA), the last head by key halves (SPLIT), the early ping-pong turn (EARLY_TURN) and lazy
    # rescaling (LAZY)
    for k, limit in ((warp_attention, 70), (hopper_attention, 200)):
        src = inspect.getsource(k.fn)
        body = [l for l in src.splitlines() if l.strip() and not l.strip().startswith("#")]
        assert len(body) <= limit, (k, len(body))


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["hopper", "warp"])
@pytest.mark.parametrize("case", CASES + [(2, 8, 2, 1000, 1000, 128, True), (1, 4, 4, 4096, 4096, 64, False),
                                          (3, 2, 2, 257, 511, 128, False), (1, 2, 2, 384, 384, 64, True)], ids=str)
def test_gpu_matches_float64(case, kernel):
    *shape, causal = case
    q, k, v = _inputs(*shape, device="cuda")
    out = attention(q, k, v, causal=causal, kernel=kernel)
    ref = reference_attention(q, k, v, causal)
    assert_close(out, ref, 1e-2)
    again = attention(q, k, v, causal=causal, kernel=kernel)  # a race would move the result between runs
    assert torch.equal(out, again)


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES_256 + [(2, 4, 2, 1000, 1000, 256, True), (1, 2, 2, 2048, 2048, 256, False)],
                         ids=str)
def test_gpu_head_dim_256_matches_float64(case):
    *shape, causal = case
    q, k, v = _inputs(*shape, device="cuda")
    out = attention(q, k, v, causal=causal)
    assert_close(out, reference_attention(q, k, v, causal), 1e-2)
    assert torch.equal(out, attention(q, k, v, causal=causal))  # a race would move the result between runs


@pytest.mark.gpu
def test_gpu_log_sum_exp():
    q, k, v = _inputs(2, 4, 2, 300, 300, 128, device="cuda")
    _, lse = attention(q, k, v, causal=True, return_lse=True)
    torch.testing.assert_close(lse.double().cpu(), _reference_lse(q.cpu(), k.cpu(), True), atol=2e-2, rtol=0)


def test_bnhd_layout_matches_and_needs_no_copy():
    q, k, v = (t.transpose(1, 2).contiguous() for t in _inputs(1, 4, 2, 40, 56, 64))  # (B, N, H, D)
    from pykittens.kernels import attention_bnhd
    out = attention_bnhd(q, k, v, causal=True)
    assert out.shape == q.shape and out.is_contiguous()
    ref = reference_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), True).transpose(1, 2)
    assert_close(out, ref, 1e-2)


def test_custom_op_is_registered_and_traceable():
    q, k, v = _inputs(1, 2, 2, 32, 32, 64)
    o, lse = torch.ops.pykittens.attention_fwd(q, k, v, False, 0.125)
    assert_close(o, reference_attention(q, k, v, scale=0.125), 1e-2)
    torch.library.opcheck(torch.ops.pykittens.attention_fwd.default, (q, k, v, False, 0.125),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.gpu
def test_gpu_torch_compile_and_cuda_graph():
    q, k, v = _inputs(2, 4, 4, 300, 300, 128, device="cuda")
    ref = attention(q, k, v, causal=True)
    compiled = torch.compile(lambda a, b, c: attention(a, b, c, causal=True), fullgraph=True)
    assert torch.equal(compiled(q, k, v), ref)
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        attention(q, k, v, causal=True)  # warm up (compile, load) outside the capture
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        out = attention(q, k, v, causal=True)
    q.copy_(torch.randn_like(q))
    g.replay()
    torch.cuda.synchronize()
    assert_close(out, reference_attention(q, k, v, True), 1e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("D, B, H, Hk, N, Nk", [(128, 1, 16, 16, 4096, 4096), (128, 2, 16, 4, 4100, 4000),
                                                (64, 2, 32, 8, 2048, 2100)])
def test_gpu_split_forward_matches_float64_eager_and_captured(D, B, H, Hk, N, Nk):
    """Shapes where ``attention`` runs the last head by key halves (SPLIT): eager calls in a row (each with its own
    epoch) and a CUDA-graph capture (which takes the launch without SPLIT) match float64; checked on the last query
    heads (the split ones) and the first."""
    from pykittens.kernels.attention_ops import forward_launch
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    assert forward_launch(D, False, N, Nk, H, B, sms)[1].get("SPLIT") or sms != 132
    g = H // Hk
    heads = [0, H - g, H - 1]
    for _ in range(2):
        q, k, v = _inputs(B, H, Hk, N, Nk, D, device="cuda")
        out = attention(q, k, v)
        for h in heads:
            ref = reference_attention(q[:, h:h + 1], k[:, h // g:h // g + 1], v[:, h // g:h // g + 1])
            assert rel_err(out[:, h:h + 1], ref) <= 1e-2, h
    graph, side = torch.cuda.CUDAGraph(), torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        attention(q, k, v)
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        out = attention(q, k, v)
    q.copy_(torch.randn_like(q))
    graph.replay()
    torch.cuda.synchronize()
    for h in heads:
        ref = reference_attention(q[:, h:h + 1], k[:, h // g:h // g + 1], v[:, h // g:h // g + 1])
        assert rel_err(out[:, h:h + 1], ref) <= 1e-2, h


@pytest.mark.gpu
def test_gpu_random_grid():
    """Fresh random shapes each run: batch, heads (with GQA), lengths (ragged, N_q != N_kv), head dim, causal."""
    import random
    rng = random.Random()
    for _ in range(12):
        d = rng.choice([64, 128, 256])
        hk = rng.choice([1, 2, 4])
        hq = hk * rng.choice([1, 2, 4])
        nk = rng.randint(1, 3000)
        causal = rng.random() < 0.5
        nq = rng.randint(1, nk) if causal else rng.randint(1, 3000)
        q, k, v = _inputs(rng.randint(1, 3), hq, hk, nq, nk, d, device="cuda")
        out = attention(q, k, v, causal=causal)
        err = rel_err(out, reference_attention(q, k, v, causal))
        assert err <= 1e-2, (q.shape, k.shape, causal, err)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("B, Hq, Hk, Nq, Nk, D, causal, consumers, stages", [
    (1, 2, 1, 450, 450, 64, True, 3, 4),  # causal: the first consumers' rows end before the last key blocks
    (1, 2, 2, 130, 300, 64, False, 3, 4),  # ragged, N_q != N_kv, idle consumers in the last block
    (1, 2, 1, 200, 330, 128, True, 2, 3),  # D = 128 with 2 consumers (3 consumers have no registers for it)
    (2, 4, 1, 70, 200, 64, True, 3, 4),  # GQA, one query block per head: consumer 1 has 6 rows, consumer 2 none
])
def test_pv_lag_overlap_matches_float64(B, Hq, Hk, Nq, Nk, D, causal, consumers, stages, device):
    """PV_LAG (FA3's intra-warpgroup overlap): step j issues its Q·Kᵀ and then step j-1's P·V, whose V stage stays
    held a step longer; finish issues the last P·V. Poisoned outputs show unwritten rows."""
    import math
    q, k, v = _inputs(B, Hq, Hk, Nq, Nk, D, device)
    o = torch.full_like(q, float("nan"))
    lse = torch.full((B, Hq, 1, -(-Nq // 4) * 4), float("nan"), device=device)
    hopper_attention.launch((-(-Nq // (64 * consumers)), Hq, B), q, k, v, o, lse,
                            *_no_split(D, consumers, q.device), math.log2(math.e) / math.sqrt(D),
                            D=D, CONSUMERS=consumers, STAGES=stages, CAUSAL=causal, KV=128,
                            PINGPONG=True, PV_LAG=True)
    assert_close(o.cpu(), reference_attention(q.cpu(), k.cpu(), v.cpu(), causal), 1e-2)
    torch.testing.assert_close(lse[:, :, 0, :Nq].cpu().double(), _reference_lse(q.cpu(), k.cpu(), causal),
                               atol=2e-2, rtol=0)


@pytest.mark.parametrize("D", [64, 128])
def test_split_compiles_without_serialised_wgmma_or_spills(D):
    """The SPLIT variant (a launch's last head by key halves) of the configurations that ship it."""
    from pykittens.kernels.attention_ops import forward_launch
    q = torch.empty(1, 1, 4096, D, dtype=torch.bfloat16)
    lse = torch.empty(1, 1, 1, 4096)
    config = forward_launch(D, False, 4096, 4096, 32, 4, 132)[1]
    assert config.get("SPLIT")
    ck = hopper_attention.compile(q, q, q, q, lse, *SplitScratch.get(D, config["CONSUMERS"], 4, q.device), 1.0, D=D,
                                  CAUSAL=False, **config, arch="sm_90a")
    assert "HGMMA" in ck.sass() and not ck.wgmma_serialized, ck.result.log[-300:]
    res = ck.resources()
    assert res.local == 0 and res.stack == 0, res


@pytest.mark.parametrize("D, consumers, stages", [(64, 3, 4), (128, 2, 3)])
def test_pv_lag_compiles_without_serialised_wgmma(D, consumers, stages):
    """The overlap's waits sit inside static paths (first step, steady step, last P·V): ptxas's wgmma pipeline
    analysis must not serialise it (C7514) nor run out of registers (C7512)."""
    q = torch.empty(1, 1, 256, D, dtype=torch.bfloat16)
    lse = torch.empty(1, 1, 1, 256)
    for causal in (False, True):
        ck = hopper_attention.compile(q, q, q, q, lse, *_no_split(D, consumers, q.device), 1.0,
                                      D, consumers, stages, causal, 128,
                                      True, True, arch="sm_90a")
        assert not ck.wgmma_serialized, ck.result.log[-300:]
        res = ck.resources()
        assert res.local == 0 and res.stack == 0, res

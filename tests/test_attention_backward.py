"""Attention backward (Hopper kernels + autograd): gradients against float64 autograd, in the interpreter and on GPU."""
import pytest
import torch

from pykittens.kernels import attention, attention_bwd, reference_attention
from util import rel_err

CASES = [  # (B, H_q, H_kv, N_q, N_kv, D, causal)
    (1, 1, 1, 64, 128, 64, False),
    (1, 2, 1, 70, 90, 64, True),  # GQA, ragged, causal with N_q < N_kv
    (1, 2, 2, 40, 40, 128, False),
    (2, 4, 2, 33, 33, 64, True),
    (2, 10, 5, 200, 200, 64, True),  # causal blocks start by key block over groups of 8 heads: 10 = 8 + a short group
    (1, 4, 2, 150, 300, 128, True),  # D=128 (dQ by its own warpgroup): GQA, causal, N_q < N_kv, 3 key blocks
    (1, 2, 1, 200, 330, 128, False),  # ragged, 4 query tiles per key block
]
CASES_256 = [  # D=256: a launch for dV, then one for dK and dQ (S recomputed in each)
    (1, 2, 1, 70, 130, 256, False),  # GQA, ragged
    (2, 2, 2, 100, 100, 256, True),
    (1, 1, 1, 90, 200, 256, True),  # causal with N_q < N_kv
]


def _grads(q, k, v, do, causal, fn):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    fn(q, k, v, causal).backward(do)
    return q.grad, k.grad, v.grad


def _check(case, device, tol=2e-2, deterministic=False):
    B, Hq, Hk, Nq, Nk, D, causal = case
    q, k, v = (torch.randn(B, h, n, D, device=device).bfloat16() for h, n in ((Hq, Nq), (Hk, Nk), (Hk, Nk)))
    do = torch.randn(B, Hq, Nq, D, device=device).bfloat16()
    got = _grads(q, k, v, do, causal, lambda a, b, c, m: attention(a, b, c, causal=m, deterministic=deterministic))
    ref = _grads(q.double(), k.double(), v.double(), do.double(), causal, reference_attention)
    for name, g, r in zip(("dq", "dk", "dv"), got, ref):
        assert g.shape == r.shape and g.dtype == torch.bfloat16
        assert rel_err(g, r) <= tol, (name, case, rel_err(g, r))


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_interpreter_gradients_match_float64(case, deterministic):
    _check(case, "cpu", deterministic=deterministic)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("scale", [0.0, -0.125])
def test_gradients_with_zero_and_negative_scales(scale, device):
    """``attention`` runs scale < 0 as (-q, |scale|) and scale = 0 as (0·q, 1) before the kernels (which need
    scale > 0); autograd goes through that, so dq flips sign or is zero. Ragged, causal, GQA."""
    q, k, v = (torch.randn(1, h, 70 + 20 * (h == 1), 64, device=device).bfloat16() for h in (2, 1, 1))
    do = torch.randn(1, 2, 70, 64, device=device).bfloat16()
    got = _grads(q, k, v, do, True, lambda a, b, c, m: attention(a, b, c, causal=m, scale=scale))
    ref = _grads(q.double(), k.double(), v.double(), do.double(), True,
                 lambda a, b, c, m: reference_attention(a, b, c, m, scale=scale))
    for name, g, r in zip(("dq", "dk", "dv"), got, ref):
        if scale == 0 and name != "dv":  # the scores do not depend on q or k at all
            assert torch.equal(g.cpu(), torch.zeros_like(g.cpu())), name
        else:
            assert rel_err(g, r) <= 2e-2, (name, rel_err(g, r))


@pytest.mark.parametrize("case", CASES_256, ids=str)
def test_interpreter_gradients_match_float64_head_dim_256(case):
    _check(case, "cpu")


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[6]], ids=str)
def test_interpreter_gradients_without_split_pairs_dq(case, monkeypatch):
    """DQ_SPLIT off (dQ staged in column order and converted by torch): the path the shipped config does not take."""
    monkeypatch.setattr("pykittens.kernels.attention_ops.BACKWARD_DQ_SPLIT", ())
    _check(case, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[6]], ids=str)
def test_gpu_gradients_without_split_pairs_dq(case, monkeypatch):
    monkeypatch.setattr("pykittens.kernels.attention_ops.BACKWARD_DQ_SPLIT", ())
    _check(case, "cuda")


def test_warp_kernel_refuses_to_be_differentiated():
    q = torch.randn(1, 1, 32, 64).bfloat16().requires_grad_()
    with pytest.raises(NotImplementedError, match="no backward"):
        attention(q, q, q, kernel="warp")
    with torch.no_grad():
        assert attention(q, q, q, kernel="warp").shape == q.shape


def test_lse_is_not_differentiable_and_inference_skips_autograd():
    q = torch.randn(1, 1, 32, 64).bfloat16().requires_grad_()
    o, lse = attention(q, q.detach(), q.detach(), return_lse=True)
    assert o.requires_grad and not lse.requires_grad
    with torch.no_grad():
        assert not attention(q, q, q).requires_grad


@pytest.mark.parametrize("D,causal", [(64, False), (64, True), (128, False), (128, True), (256, False), (256, True)])
def test_shipped_backward_configs_compile_with_hgmma_tma_and_no_spills(D, causal):
    from pykittens.kernels.attention_ops import backward_launches
    q = torch.empty(1, 1, 256, D, dtype=torch.bfloat16)
    f, dq = torch.empty(1, 1, 1, 256), torch.empty(1, 1, 256, D)
    variants = ((True, False), (False, False), (True, True)) if D < 256 else ((True, True),)  # (DQ_SPLIT)
    for with_dq, split in variants:  # (D=256: its dV and dK + dQ launches; no deterministic mode)
        for config in backward_launches(D, causal, with_dq):
            config = dict(config, DQ_SPLIT=config["WITH_DQ"] and split)
            ck = attention_bwd.compile(q, q, q, q, f, f, dq, q, q, 1.0, D, causal, arch="sm_90a", **config)
            sass = ck.sass()
            assert "HGMMA" in sass and "UTMALDG" in sass
            assert not ck.wgmma_serialized, (config, ck.result.log[-300:])  # ptxas would make every wgmma wait
            res = ck.resources()
            assert res.local == 0 and res.stack == 0, (config, res)


GPU_CASES = [(2, 8, 2, 1000, 1000, 128, True), (1, 4, 4, 2048, 2048, 64, False), (2, 4, 1, 257, 700, 128, False),
             (1, 4, 2, 1000, 1000, 256, True), (2, 2, 2, 2048, 2048, 256, False)]


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES + CASES_256 + GPU_CASES, ids=str)
def test_gpu_gradients_match_float64(case):
    _check(case, "cuda")


@pytest.mark.gpu
def test_gpu_random_grid_and_torch_compile():
    import random
    rng = random.Random()
    for _ in range(6):
        hk = rng.choice([1, 2])
        nk = rng.randint(1, 1500)
        causal = rng.random() < 0.5
        _check((rng.randint(1, 2), hk * rng.choice([1, 2]), hk, rng.randint(1, nk) if causal else rng.randint(1, 1500),
                nk, rng.choice([64, 128, 256]), causal), "cuda")
    q, k, v = (torch.randn(1, 2, 300, 64, device="cuda").bfloat16().requires_grad_() for _ in range(3))
    compiled = torch.compile(lambda a, b, c: attention(a, b, c, causal=True).float().square().sum(), fullgraph=True)
    compiled(q, k, v).backward()
    eager = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    attention(*eager, causal=True).float().square().sum().backward()
    for a, b in zip((q, k, v), eager):
        assert rel_err(a.grad, b.grad) <= 1e-2


@pytest.mark.gpu
@pytest.mark.parametrize("case", [(2, 8, 2, 1000, 1000, 128, True), (1, 4, 4, 777, 1500, 64, False)], ids=str)
def test_gpu_deterministic_mode_is_bit_identical_and_correct(case):
    _check(case, "cuda", deterministic=True)
    B, Hq, Hk, Nq, Nk, D, causal = case
    q, k, v = (torch.randn(B, h, n, D, device="cuda").bfloat16() for h, n in ((Hq, Nq), (Hk, Nk), (Hk, Nk)))
    do = torch.randn(B, Hq, Nq, D, device="cuda").bfloat16()
    f = lambda a, b, c, m: attention(a, b, c, causal=m, deterministic=True)  # noqa: E731
    first, second = _grads(q, k, v, do, causal, f), _grads(q, k, v, do, causal, f)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_gpt_training_example_runs_in_the_interpreter():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parent.parent / "examples" / "gpt_training.py"
    spec = importlib.util.spec_from_file_location("gpt_training", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny"])


def test_bnhd_layout_gradients():
    from pykittens.kernels import attention_bnhd
    q, k, v = (torch.randn(1, n, h, 64).bfloat16() for n, h in ((40, 4), (56, 2), (56, 2)))  # (B, N, H, D)
    do = torch.randn(1, 40, 4, 64).bfloat16()
    got = _grads(q, k, v, do, True, lambda a, b, c, m: attention_bnhd(a, b, c, causal=m))
    ref = _grads(q.double(), k.double(), v.double(), do.double(), True,
                 lambda a, b, c, m: reference_attention(*(t.transpose(1, 2) for t in (a, b, c)), m).transpose(1, 2))
    for g, r in zip(got, ref):
        assert g.shape == r.shape and rel_err(g, r) <= 2e-2


@pytest.mark.parametrize("D,N", [(64, 100), (128, 64)])
def test_dq_convert_puts_split_pairs_back_in_order(D, N):
    """The bf16 conversion of a split-pairs dQ accumulator (DQ_SPLIT), odd N: every row written, columns in order."""
    from pykittens.kernels.attention_bwd import attention_bwd_dq_convert
    from pykittens.ops.warpgroup_memory import split_pairs_order
    want = torch.randn(2, 3, N, D)
    acc = want[..., split_pairs_order(D)].contiguous()
    out = torch.full((2, 3, N, D), float("nan"), dtype=torch.bfloat16)
    attention_bwd_dq_convert.launch((-(-N // 64), 3, 2), acc, out, D)
    assert torch.equal(out, want.bfloat16())

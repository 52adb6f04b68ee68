"""Warp-level attention kernel: interpreter and GPU against float64, input checks, compile checks."""
import pytest
import torch

import pykittens as tk
from pykittens.kernels import attention, reference_attention, warp_attention
from util import assert_close, rel_err

CASES = [  # (B, H_q, H_kv, N_q, N_kv, D, causal)
    (1, 2, 2, 40, 40, 64, False),  # ragged N
    (1, 1, 1, 33, 33, 128, True),  # causal, D = 128
    (2, 4, 2, 17, 50, 64, False),  # GQA, N_q != N_kv
    (1, 2, 1, 24, 71, 64, True),  # causal bottom-right with N_q < N_kv, MQA
    (1, 1, 1, 1, 1, 64, False),  # N = 1
]


def _inputs(B, Hq, Hk, Nq, Nk, D, device="cpu", scale=1.0):
    q = (torch.randn(B, Hq, Nq, D) * scale).bfloat16().to(device)
    k = (torch.randn(B, Hk, Nk, D) * scale).bfloat16().to(device)
    v = torch.randn(B, Hk, Nk, D).bfloat16().to(device)
    return q, k, v


@pytest.mark.parametrize("case", CASES, ids=str)
def test_interpreter_matches_float64(case):
    *shape, causal = case
    q, k, v = _inputs(*shape)
    out = attention(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    assert_close(out, reference_attention(q, k, v, causal), 1e-2)


def test_large_logits_and_custom_scale_stay_finite():
    q, k, v = _inputs(1, 1, 1, 32, 48, 64, scale=8.0)  # logits in the hundreds: exp would overflow unshifted
    out = attention(q, k, v, scale=0.5)
    assert torch.isfinite(out).all()
    assert_close(out, reference_attention(q, k, v, scale=0.5), 1e-2)


def test_warps_parameter():
    q, k, v = _inputs(1, 1, 1, 50, 50, 64)
    assert_close(attention(q, k, v, warps=2), reference_attention(q, k, v), 1e-2)


@pytest.mark.parametrize("bad, err, match", [
    (dict(q=torch.randn(1, 1, 16, 64)), TypeError, "q must be bfloat16"),
    (dict(q=torch.randn(1, 1, 16, 96).bfloat16()), ValueError, "head dim must be one of"),
    (dict(q=torch.randn(1, 3, 16, 64).bfloat16()), ValueError, r"multiple of key/value heads \(2\)"),
    (dict(q=torch.randn(1, 2, 16, 64).bfloat16().transpose(2, 3)), ValueError, "4-D|contiguous|head dim"),
    (dict(q=torch.randn(2, 16, 64).bfloat16()), ValueError, "must be 4-D"),
    (dict(causal=True, q=torch.randn(1, 2, 40, 64).bfloat16()), ValueError, "causal with N_q"),
])
def test_bad_inputs_raise_before_launch(bad, err, match):
    args = dict(q=torch.randn(1, 2, 16, 64).bfloat16(), k=torch.randn(1, 2, 32, 64).bfloat16(),
                v=torch.randn(1, 2, 32, 64).bfloat16(), causal=False)
    args.update(bad)
    with pytest.raises(err, match=match):
        attention(**args)


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
def test_compiles_with_hmma_and_no_spills(D, arch):
    q = torch.empty(1, 1, 64, D, dtype=torch.bfloat16)
    ck = warp_attention.compile(q, q, q, q, 1.0, D, 4, True, arch=arch)
    assert "HMMA" in ck.sass()
    res = ck.resources()
    assert res.local == 0 and res.stack == 0, res


def test_kernel_is_short():
    import inspect
    src = inspect.getsource(warp_attention.fn)
    body = [l for l in src.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert len(body) <= 70


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES + [(2, 8, 2, 1000, 1000, 128, True), (1, 4, 4, 4096, 4096, 64, False),
                                          (3, 2, 2, 257, 511, 128, False)], ids=str)
def test_gpu_matches_float64(case):
    *shape, causal = case
    q, k, v = _inputs(*shape, device="cuda")
    out = attention(q, k, v, causal=causal)
    ref = reference_attention(q, k, v, causal)
    assert_close(out, ref, 1e-2)
    again = attention(q, k, v, causal=causal)  # a race would move the result between runs
    assert torch.equal(out, again)

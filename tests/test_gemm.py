"""Hopper GEMM: interpreter against float64 (ragged shapes, both B layouts), SASS checks, input checks, GPU grid."""
import pytest
import torch

import pykittens as tk
from pykittens.kernels import gemm, matmul
from pykittens.kernels.matmul import persistent_grid, tile_config
from util import assert_close, poison, rand


def _ref(a, b, transpose_b):
    return a.double() @ (b.double().T if transpose_b else b.double())


@pytest.mark.parametrize("M,N,K,tb", [(128, 256, 64, False), (130, 264, 72, True), (200, 40, 136, False)],
                         ids=str)
def test_interpreter_matches_float64(M, N, K, tb):
    a = rand(M, K)
    b = rand(N, K) if tb else rand(K, N)
    assert_close(matmul(a, b, transpose_b=tb), _ref(a, b, tb), 1e-2)


def test_tile_config():
    """Outputs whose 128 x 256 tiles would fill under half the SMs get 128 x 128 tiles (the interpreter, with its
    2 SMs, never picks them: the test below runs that configuration directly)."""
    assert tile_config(1000, 1000, 132)["BN"] == 128  # 32 wide tiles on 132 SMs
    assert tile_config(2048, 2048, 132)["BN"] == 256  # 128 wide tiles
    assert tile_config(1000, 1000, 132)["CONSUMERS"] == tile_config(2048, 2048, 132)["CONSUMERS"] == 2  # 128 rows


@pytest.mark.parametrize("config", [dict(BN=128, STAGES=4), dict(BN=256, STAGES=4, EPI=128, LAG=1)], ids=str)
def test_kernel_configs_in_the_interpreter(config):
    """Each block of the persistent grid (2 in the interpreter) walks 3 tiles, ragged in every dim."""
    M, N, K = 300, 136 if config["BN"] == 128 else 264, 72
    a, b = rand(M, K), rand(K, N)
    c = torch.full((M, N), float("nan"), dtype=torch.bfloat16)
    grid = persistent_grid(a, M, N, False, 1, **config)
    assert grid == 2
    gemm.launch(grid, a, b, c, TRANS_B=False, **config)
    assert_close(c, _ref(a, b, False), 1e-2)


ONE_CONSUMER = [dict(CONSUMERS=1, BN=128, STAGES=8), dict(CONSUMERS=1, BN=256, STAGES=4),
                dict(CONSUMERS=1, BN=128, STAGES=4, DIRECT=True, LAG=1), dict(CONSUMERS=1, BN=128, STAGES=4, CLUSTER=2)]


@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("config", ONE_CONSUMER, ids=str)
def test_one_consumer_in_the_interpreter(tb, config):
    """64-row tiles (one consumer warpgroup, 8 warps), ragged in every dim: 4 row tiles x 2 column tiles."""
    M, N, K = 197, 136 if config["BN"] == 128 else 264, 72
    a, b = rand(M, K), rand(N, K) if tb else rand(K, N)
    c = poison(M, N)
    cfg = {k: v for k, v in config.items() if k != "CLUSTER"}
    grid = persistent_grid(a, M, N, tb, config.get("CLUSTER", 1), **cfg)
    assert grid == 2
    gemm.launch(grid, a, b, c, TRANS_B=tb, **config)
    assert_close(c, _ref(a, b, tb), 1e-2)


@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("config", [dict(BN=256, STAGES=4, EPI=128, LAG=1), dict(BN=128, STAGES=4),
                                    dict(CONSUMERS=1, BN=128, STAGES=8)], ids=str)
def test_compiles_with_hgmma_tma_and_no_spills(tb, config):
    x = torch.empty(256, 256, dtype=torch.bfloat16)
    ck = gemm.compile(x, x, x, tb, arch="sm_90a", **config)
    assert ck.kir.warps == 4 * (1 + config.get("CONSUMERS", 2))
    sass = ck.sass()
    assert "HGMMA" in sass and "UTMALDG" in sass and "UTMASTG" in sass
    assert not ck.wgmma_serialized, ck.result.log[-300:]
    res = ck.resources()
    assert res.local == 0 and res.stack == 0, res


def test_empty_shapes():
    assert matmul(rand(0, 64), rand(64, 32)).shape == (0, 32)
    out = matmul(rand(16, 0), rand(0, 32))
    assert out.shape == (16, 32) and not out.any()


def test_bad_inputs():
    a = rand(64, 64)
    with pytest.raises(TypeError, match="bfloat16"):
        matmul(a.float(), a)
    with pytest.raises(ValueError, match="inner dims differ"):
        matmul(a, rand(32, 64))
    with pytest.raises(ValueError, match="2-D"):
        matmul(rand(2, 64, 64), a)


@pytest.mark.parametrize("tb", [False, True])
def test_any_shape_and_layout_through_a_padded_copy(tb):
    a = rand(50, 60)  # K = 60: rows of 120 bytes, not 16-byte aligned
    b = rand(36, 60) if tb else rand(60, 36)  # N = 36
    assert_close(matmul(a, b, transpose_b=tb), _ref(a, b, tb), 1e-2)
    at = rand(64, 48).t()  # a transposed view (column-major)
    b2 = rand(40, 64) if tb else rand(64, 40)
    out = matmul(at, b2, transpose_b=tb)
    assert out.is_contiguous() and out.shape == (48, 40)
    assert_close(out, _ref(at, b2, tb), 1e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("M,N,K,tb", [(4096, 4096, 4096, False), (4096, 4096, 4096, True), (1000, 1000, 1000, False),
                                      (257, 520, 4104, True), (8192, 256, 64, False), (64, 8, 8, False),
                                      (100, 36, 60, False), (77, 130, 1001, True)], ids=str)
def test_gpu_matches_float64(M, N, K, tb):
    a = rand(M, K, device="cuda")
    b = rand(N, K, device="cuda") if tb else rand(K, N, device="cuda")
    c = matmul(a, b, transpose_b=tb)
    assert_close(c, _ref(a, b, tb), 1e-2)
    assert torch.equal(c, matmul(a, b, transpose_b=tb))  # a race would move the result


@pytest.mark.gpu
@pytest.mark.parametrize("M,N,K,tb", [(1000, 1000, 1000, False), (1000, 1000, 1000, True), (257, 520, 4104, True),
                                      (77, 136, 1000, False), (4096, 4096, 4096, False)], ids=str)
@pytest.mark.parametrize("config", [dict(CONSUMERS=1, BN=128, STAGES=8), dict(CONSUMERS=1, BN=128, STAGES=6)],
                         ids=str)
def test_gpu_one_consumer_matches_float64(M, N, K, tb, config):
    """64-row tiles, run directly (``matmul`` does not pick them yet); ragged shapes, a poisoned output."""
    a = rand(M, K, device="cuda")
    b = rand(N, K, device="cuda") if tb else rand(K, N, device="cuda")
    c, c2 = poison(M, N, device="cuda"), poison(M, N, device="cuda")
    grid = persistent_grid(a, M, N, tb, 1, **config)
    gemm.launch(grid, a, b, c, TRANS_B=tb, **config)
    gemm.launch(grid, a, b, c2, TRANS_B=tb, **config)
    assert_close(c, _ref(a, b, tb), 1e-2)
    assert torch.equal(c, c2)  # a race would move the result


def test_epilogue_pieces_must_divide_the_tile():
    x = torch.empty(256, 256, dtype=torch.bfloat16)
    with pytest.raises(tk.KernelTypeError, match="EPI must divide BN = 256"):
        gemm.compile(x, x, x, False, STAGES=4, EPI=96, arch="sm_90a")

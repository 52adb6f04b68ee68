"""``tk.warpgroup.store(..., split_pairs=True)`` (fp32 columns reordered even-then-odd within each group of 8, by
stmatrix on sm_90: the backward's dQ staging) and its inverse ``tk.warpgroup.load(..., split_pairs=True)``
(ldmatrix): interpreter, compiled SASS and GPU agree on the order."""
import pytest
import torch

import pykittens as tk
from pykittens.ops.warpgroup_memory import split_pairs_order
from util import poison


@tk.kernel(warps=4)
def split_store(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32), ADD: tk.constexpr):
    """Each block stores its 64 rows of x to o through a shared tile with split pairs (ADD: adds into o)."""
    t = tk.rt(tk.fp32, 16, 64)
    staging = tk.st(tk.fp32, 64, 64)
    tk.load(t, x, (tk.block_idx.x * 4 + tk.warp_id(), 0))
    tk.warpgroup.store_async(o, staging, t, (tk.block_idx.x, 0), 1, add=ADD, split_pairs=True)
    with tk.if_(tk.warp_id() == 0):
        tk.tma.store_wait(0)


def expected(x):
    return x[:, split_pairs_order(x.shape[1])]


def test_split_pairs_order_is_even_then_odd_within_each_group_of_8():
    order = split_pairs_order(16)
    assert order == [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15]


@pytest.mark.parametrize("add", [False, True])
def test_split_pairs_store_in_interpreter(add):
    x = torch.randn(128, 64)
    base = torch.randn(128, 64)
    o = base.clone() if add else poison(128, 64, dtype=torch.float32)
    split_store[2](x, o, add)
    torch.testing.assert_close(o, expected(x) + (base if add else 0), rtol=0, atol=1e-6)


def test_split_pairs_store_compiles_to_stmatrix_without_spills():
    x = torch.empty(128, 64)
    ck = split_store.compile(x, x, True, arch="sm_90a")
    sass = ck.sass()
    assert "STSM" in sass and "STS.64" not in sass, sass.count("STS")
    assert ck.resources().local == 0


def test_split_pairs_rejects_a_bf16_tile():
    @tk.kernel(warps=4)
    def bad(o: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 16, 64)
        staging = tk.st(tk.bf16, 64, 64)
        tk.zero(t)
        tk.warpgroup.store(staging, t, split_pairs=True)
    with pytest.raises(tk.KernelTypeError, match="split_pairs"):
        bad.compile(torch.empty(64, 64, dtype=torch.bfloat16), arch="sm_90a")


@pytest.mark.gpu
@pytest.mark.parametrize("add", [False, True])
def test_gpu_split_pairs_store(add):
    x = torch.randn(5 * 64, 64, device="cuda")
    base = torch.randn(5 * 64, 64, device="cuda")
    o = base.clone() if add else poison(5 * 64, 64, dtype=torch.float32, device="cuda")
    split_store[5](x, o, add)
    torch.cuda.synchronize()
    torch.testing.assert_close(o, expected(x) + (base if add else 0), rtol=0, atol=1e-5)


@tk.kernel(warps=4)
def split_roundtrip(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
    """x -> registers -> shared (split pairs) -> registers (split pairs) -> o: the load undoes the store (whose own
    order the store tests check, so a round trip through an unpermuting load and store could not pass)."""
    t, back = tk.rt(tk.fp32, 16, 64), tk.rt(tk.fp32, 16, 64)
    staging = tk.st(tk.fp32, 64, 64)
    tk.load(t, x, (tk.warp_id(), 0))
    tk.warpgroup.store(staging, t, split_pairs=True)
    tk.sync()
    tk.warpgroup.load(back, staging, split_pairs=True)
    tk.store(o, back, (tk.warp_id(), 0))


def test_split_pairs_load_undoes_the_store_in_interpreter_and_compiles_to_ldmatrix():
    x = torch.randn(64, 64)
    o = poison(64, 64, dtype=torch.float32)
    split_roundtrip[1](x, o)
    assert torch.equal(o, x)
    assert "LDSM" in split_roundtrip.compile(x, x, arch="sm_90a").sass()


@pytest.mark.gpu
def test_gpu_split_pairs_roundtrip():
    x = torch.randn(64, 64, device="cuda")
    o = poison(64, 64, dtype=torch.float32, device="cuda")
    split_roundtrip[1](x, o)
    torch.cuda.synchronize()
    assert torch.equal(o, x)

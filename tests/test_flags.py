"""Flags in global memory (``tk.signal`` / ``tk.wait_signal``): a block hands data to a later block; waiting for a
later block is a deadlock in the interpreter; type rules; the GPU round trip."""
import pytest
import torch

import pykittens as tk
from util import HAS_GPU, poison, rand


@tk.kernel(warps=2)
def relay(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32), flags: tk.gl(tk.int32), BACKWARDS: tk.constexpr):
    """Block i adds its row of ``x`` to what block i - 1 handed over (block 0 starts from zero) and hands the sum
    on: a running sum over the blocks, one flag per (block, warp). BACKWARDS: block i waits for block i + 1."""
    t, prev = tk.rt(tk.fp32, 16, 16), tk.rt(tk.fp32, 16, 16)
    i, w = tk.block_idx.x, tk.warp_id()
    tk.load(t, x, (i, w, 0, 0))
    src = i + 1 if BACKWARDS else i - 1
    with tk.if_((src >= 0) & (src < tk.grid_dim.x)):
        tk.wait_signal(flags, (src, w), 1)
        tk.signal(flags, (src, w), 0)  # consumed: leave the flags as they were
        tk.load(prev, o, (src, w, 0, 0))
        tk.add(t, t, prev)
    tk.store(o, t, (i, w, 0, 0))
    tk.signal(flags, (i, w), 1)


def _run(device, blocks=5, backwards=False):
    x = rand(blocks, 2, 16, 16, dtype=torch.float32, device=device)
    o = poison(blocks, 2, 16, 16, dtype=torch.float32, device=device)
    flags = torch.zeros(blocks, 4, dtype=torch.int32, device=device)  # (rows of 16 bytes, as every layout)
    relay[blocks](x, o, flags, backwards)
    return x, o, flags


def test_a_block_hands_data_to_the_next():
    x, o, flags = _run("cpu")
    assert torch.allclose(o, x.cumsum(0), rtol=1e-5, atol=1e-5)
    # each block consumed its predecessor's flag; the last block's flag stays raised (nobody waits for it)
    assert flags[:-1].eq(0).all() and flags[-1, :2].eq(1).all()


def test_waiting_for_a_later_block_is_a_deadlock():
    with pytest.raises(tk.DeadlockError, match=r"wait_signal on flags\[0, 0, 1, 0\] for 1 \(it holds 0\)"):
        _run("cpu", backwards=True)


def test_flags_must_be_int32():
    @tk.kernel(warps=1)
    def bad(flags: tk.gl(tk.fp32)):
        tk.signal(flags, (0, 0), 1)

    with pytest.raises(tk.KernelTypeError, match="flags must be an int32 global layout"):
        bad[1](torch.zeros(1, 4))


def test_compiles_to_release_and_acquire_at_gpu_scope():
    x = torch.empty(2, 2, 16, 16)
    ck = relay.compile(x, x, torch.zeros(2, 4, dtype=torch.int32), False, arch="sm_90a")
    assert "st.release.gpu.global.s32" in ck.source and "ld.acquire.gpu.global.s32" in ck.source
    assert ck.resources().local == 0


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU")
def test_gpu_running_sum_over_132_blocks():
    """Every block waits for the one before it (all 132 fit on the GPU at once): the sums must chain exactly."""
    x, o, flags = _run("cuda", blocks=132)
    torch.cuda.synchronize()
    assert torch.allclose(o, x.cumsum(0), rtol=1e-5, atol=1e-5)
    assert flags[:-1].eq(0).all() and flags[-1, :2].eq(1).all()

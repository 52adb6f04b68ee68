"""Thread-block clusters: cluster rank, multicast TMA, remote semaphore arrivals and cluster_sync, in the
interpreter (the blocks of a cluster run together) and compiled for sm_90a; the clustered GEMM."""
import pytest
import torch

import pykittens as tk
from util import assert_close, poison, rand


@tk.kernel(warps=8, cluster=2)
def cluster_copy(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), n_tiles: tk.i32, BOTH: tk.constexpr = True):
    """Each block of a pair loads one 64-row half of every 128-row tile of x and multicasts it to both blocks; each
    block's consumer warpgroup copies the whole tile to its own slice of o (o[block] = x). A ring stage is free when
    the consumers of both blocks have released it (BOTH=False releases only the own block's: a deadlock)."""
    ring = tk.st(tk.bf16, 64, 64, count=(2, 2))  # (stage, half)
    full, empty = tk.semaphore(count=2), tk.semaphore(count=2)
    t = tk.rt(tk.bf16, 16, 64)
    rank = tk.cluster_rank()
    with tk.if_(tk.warp_id() == 0):
        for s in range(2):
            tk.init_semaphore(full[s], 1)
            tk.init_semaphore(empty[s], 8)  # 4 consumer warps x 2 blocks
    tk.cluster_sync()
    with tk.if_(tk.warp_id() < 4):
        with tk.if_(tk.warp_id() == 0):
            for i in tk.range(n_tiles):
                tk.wait(empty[i % 2], ((i // 2) % 2) ^ 1)
                tk.expect(full[i % 2], ring[i % 2, 0], ring[i % 2, 1])  # one half comes from the peer
                tk.tma.load_async(ring[i % 2, rank], x, (2 * i + rank, 0), full[i % 2], multicast=0b11)
    with tk.else_():
        for i in tk.range(n_tiles):
            tk.wait(full[i % 2], (i // 2) % 2)
            for h in range(2):
                tk.warpgroup.load(t, ring[i % 2, h])
                tk.store(o, t, (tk.block_idx.x, (2 * i + h) * 4 + tk.warp_id() - 4, 0))
            for r in (range(2) if BOTH else [rank]):
                tk.arrive(empty[i % 2], cta=r)
    tk.cluster_sync()  # no block exits while its peer may still arrive on its semaphores


def test_multicast_and_remote_arrivals_in_interpreter():
    x = rand(5 * 128, 64)
    o = poison(4, 5 * 128, 64)  # two clusters of two blocks
    cluster_copy[4](x, o, 5)
    for blk in range(4):
        assert torch.equal(o[blk], x), blk


def test_releasing_only_the_own_blocks_stage_deadlocks():
    with pytest.raises(tk.DeadlockError, match=r"none can proceed: wait on sem.* arrivals and 0 bytes outstanding"):
        cluster_copy[2](rand(4 * 128, 64), poison(2, 4 * 128, 64), 4, False)


def test_grid_must_be_a_multiple_of_the_cluster():
    with pytest.raises(tk.LaunchError, match=r"grid x \(3\) must be a multiple of the cluster size \(2\)"):
        cluster_copy[3](rand(128, 64), poison(3, 128, 64), 1)


def test_compiles_with_cluster_dims_multicast_and_cluster_barrier():
    x = torch.empty(256, 64, dtype=torch.bfloat16)
    ck = cluster_copy.compile(x, torch.empty(2, 256, 64, dtype=torch.bfloat16), 2, arch="sm_90a")
    assert "__cluster_dims__(2, 1, 1)" in ck.source and "mapa.shared::cluster" in ck.source
    sass = ck.sass()
    assert "UTMALDG.4D.MULTICAST" in sass and "UCGABAR" in sass  # the multicast copy, the cluster barrier
    assert ck.resources().local == 0


@pytest.mark.parametrize("M,N,K,tb,cluster", [(256, 768, 192, False, 2), (200, 300, 136, True, 2),
                                              (130, 264, 72, False, 1)], ids=str)
def test_gemm_clusters_in_interpreter(M, N, K, tb, cluster):
    """Odd numbers of row tiles leave a pair's second block outside C: it still multicasts its part of B."""
    from pykittens.kernels.gemm import gemm
    a, b = rand(M, K), rand(N, K) if tb else rand(K, N)
    N8 = -(-N // 8) * 8
    c = poison(M, N8)
    gemm.launch(2, a, b, c, TRANS_B=tb, STAGES=3, CLUSTER=cluster)
    ref = a.double() @ (b.double().T if tb else b.double())
    assert_close(c[:, :N], ref, 1e-2)


@pytest.mark.gpu
def test_gpu_multicast_and_remote_arrivals():
    x = rand(7 * 128, 64, device="cuda")
    o = poison(8, 7 * 128, 64, device="cuda")
    cluster_copy[8](x, o, 7)
    torch.cuda.synchronize()
    for blk in range(8):
        assert torch.equal(o[blk], x), blk


@pytest.mark.gpu
def test_gpu_gemm_cluster_grid_fits_the_gpu():
    """The persistent clustered GEMM asks the driver how many clusters fit; all of them must be co-resident."""
    from pykittens.backend.cuda.launch import device_arch
    from pykittens.kernels.gemm import gemm
    x = torch.empty(256, 256, dtype=torch.bfloat16, device="cuda")
    ck = gemm.compile(x, x, x, False, 3, CLUSTER=2, arch=device_arch(x.device))
    n = ck.loaded(x.device).max_active_clusters(2)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    assert 1 <= n <= sms // 2

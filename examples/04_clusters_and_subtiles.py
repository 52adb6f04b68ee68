"""
Tutorial 4: thread-block clusters, multicast and shared sub-tiles
=================================================================

On an H100 the blocks of a *cluster* (2 to 8 consecutive blocks, scheduled together on one GPC) can write each
other's shared memory. The TMA uses that to **multicast**: one load lands in the same shared tile of several blocks,
so an operand they all need crosses from L2 once. Three pieces:

* ``@tk.kernel(cluster=2)`` declares the cluster size (the grid's x size must be a multiple of it);
  ``tk.cluster_rank()`` says which block of its cluster a block is;
* ``tk.tma.load_async(tile, tensor, index, sem, multicast=0b11)`` lands the copy in ``tile`` of every block whose
  rank bit is set, completing on each one's ``sem``; ``tk.arrive(sem, cta=r)`` arrives on block r's semaphore;
* ``tk.cluster_sync()`` is a barrier of every warp of the cluster: after initialising semaphores (a peer's multicast
  may land on them) and before exiting (a peer may still arrive on them).

**Sub-tiles**: ``tk.subtile(tile, (rows, cols), (i, j))`` is a piece of a shared tile that is a tile of its own — for
TMA, wgmma and loads — as long as it is contiguous in the swizzled layout (whole 64-column atoms of a bf16 tile with
all rows, or row ranges of a tile 64 columns wide). Here each block of a pair loads *half* of the weight tile as a
sub-tile and multicasts it; the wgmma then reads the whole tile.

Run: ``PYTHONPATH=src python examples/04_clusters_and_subtiles.py`` (the interpreter runs a cluster's blocks together;
on an sm_90 GPU the compiled kernel runs too).
"""
import torch

import pykittens as tk


@tk.kernel(warps=4, cluster=2)
def shared_weights(x: tk.gl(tk.bf16), w: tk.gl(tk.bf16), y: tk.gl(tk.bf16)):
    """Y = X @ Wᵀ for W of 128 x 64: each block computes 64 rows of Y; the two blocks of a cluster load W once,
    each fetching one 64-row half (a sub-tile) and multicasting it to both."""
    x_s, w_s = tk.st(tk.bf16, 64, 64), tk.st(tk.bf16, 128, 64)
    ready = tk.semaphore()
    acc = tk.rt(tk.fp32, 16, 128)  # per warp: 16 rows of the warpgroup's 64 x 128 result
    with tk.if_(tk.warp_id() == 0):
        tk.init_semaphore(ready, 1)
    tk.cluster_sync()  # the peer's multicast may land on `ready` from now on
    with tk.if_(tk.warp_id() == 0):
        tk.expect(ready, x_s, w_s)  # all of W lands here: this block's half and the peer's
        tk.tma.load_async(x_s, x, (tk.block_idx.x, 0), ready)
        for r in range(2):  # a sub-tile's index is a Python int: one branch per rank
            with tk.if_(tk.cluster_rank() == r):
                tk.tma.load_async(tk.subtile(w_s, (64, 64), (r, 0)), w, (r, 0), ready, multicast=0b11)
    tk.wait(ready, 0)
    tk.warpgroup.mm_ABt(acc, x_s, w_s)
    tk.warpgroup.mma_wait()
    tk.store(y, acc, (tk.block_idx.x * 4 + tk.warp_id(), 0), clip=True)
    tk.cluster_sync()  # (here every copy into this block has landed already; the rule costs nothing)


def main(M=200):
    x = torch.randn(M, 64, dtype=torch.float64).bfloat16()
    w = torch.randn(128, 64, dtype=torch.float64).bfloat16()
    ref = x.double() @ w.double().T
    blocks = 2 * -(-M // 128)  # whole clusters: a block past the end of X still multicasts its half of W
    ok = True
    on_sm90 = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
    for dev in ["cpu"] + (["cuda"] if on_sm90 else []):
        y = torch.full((M, 128), float("nan"), dtype=torch.bfloat16, device=dev)
        shared_weights[blocks](x.to(dev), w.to(dev), y)
        err = float((y.double().cpu() - ref).norm() / ref.norm())
        print(f"shared_weights ({dev}, {blocks} blocks in clusters of 2): relative error {err:.2e} "
              f"{'PASS' if err <= 1e-2 else 'FAIL'}")
        ok &= err <= 1e-2
    ck = shared_weights.compile(x, w, y, arch="sm_90a")
    sass = ck.sass()
    has = {op: op in sass for op in ("UTMALDG.4D.MULTICAST", "UCGABAR", "HGMMA")}
    print("  sm_90a SASS: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in has.items())
          + f"; {ck.resources().local} bytes spilled")
    ok &= all(has.values()) and ck.resources().local == 0
    print("PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)

"""
Tutorial 3: Hopper — TMA, semaphores, warpgroups and a producer/consumer pipeline
=================================================================================

On an H100 (sm_90) the fast path does not look like tutorial 2. Instead of every warp loading and then computing:

* the **TMA** (tensor memory accelerator) copies whole tiles from global to shared memory asynchronously, started
  by *one* thread: ``tk.tma.load_async(shared_tile, tensor, index, semaphore)``;
* a **semaphore** (an mbarrier in shared memory) says when the bytes have landed: ``tk.expect(sem, tile)`` announces
  how many bytes to wait for, ``tk.wait(sem, parity)`` blocks until then, ``tk.arrive(sem)`` signals by hand;
* a **warpgroup** (4 consecutive warps, 128 threads) multiplies 64-row tiles straight from shared memory with
  ``wgmma``: ``tk.warpgroup.mm_ABt(acc, a_s, b_s)`` is ``acc = a @ b^T``, *asynchronous* until
  ``tk.warpgroup.mma_wait()``. Warp i of the group holds rows 16i .. 16i+15 of the 64-row result.

We stream the rows of X (M x 64, M ragged) through a 2-stage ring of shared tiles and compute Y = X @ W^T for a fixed
64x64 W: a *producer* warp keeps the ring full while a *consumer* warpgroup computes — first written by hand, then
with the ``tk.producer_consumer`` template that the library's GEMM and attention kernels use.

Everything here runs in the CPU interpreter (it simulates TMA, semaphores and wgmma, and reports deadlocks and
reads of tiles still in flight); it compiles for sm_90a without a GPU; it runs on the GPU only on an sm_90 device.
Run: ``PYTHONPATH=src python examples/03_hopper_pipeline.py``.
"""
import torch

import pykittens as tk


# %%
# By hand: one producer warp, one consumer warpgroup, a 2-stage ring
# ------------------------------------------------------------------
# Tile i goes to stage i % 2. Each stage has two semaphores: ``full`` (the TMA has landed: the producer's expect is
# its one arrival, plus the bytes) and ``empty`` (the 4 consumer warps are done with it: 4 arrivals). Semaphores
# count *phases* 0, 1, 0, 1, ...; the u-th use of a stage (u = i // 2) waits for phase parity u % 2 on ``full``.
# The producer waits on ``empty`` with the opposite parity, and a fresh semaphore counts as having completed a
# phase of parity 1, so the first pass over the ring does not block.

@tk.kernel(warps=8)
def linear_by_hand(x: tk.gl(tk.bf16), w: tk.gl(tk.bf16), y: tk.gl(tk.bf16)):
    x_s = tk.st(tk.bf16, 64, 64, count=2)  # the ring
    w_s = tk.st(tk.bf16, 64, 64)
    full, empty, w_ready = tk.semaphore(count=2), tk.semaphore(count=2), tk.semaphore()
    acc = tk.rt(tk.fp32, 16, 64)           # per warp: 16 rows of the warpgroup's 64x64 result
    n_tiles = tk.let(tk.cdiv(x.rows, 64))

    with tk.if_(tk.warp_id() == 0):        # one warp initialises the semaphores (arrivals per phase) ...
        for s in range(2):
            tk.init_semaphore(full[s], 1)
            tk.init_semaphore(empty[s], 4)
        tk.init_semaphore(w_ready, 1)
    tk.sync()                              # ... and everyone sees them initialised

    with tk.if_(tk.warp_id() < 4):         # warpgroup 0: the producer (only its warp 0 works)
        with tk.if_(tk.warp_id() == 0):
            tk.expect(w_ready, w_s)
            tk.tma.load_async(w_s, w, (0, 0), w_ready)
            for i in tk.range(n_tiles):
                stage = tk.let(i % 2)
                tk.wait(empty[stage], ((i // 2) % 2) ^ 1)       # the consumers released this stage
                tk.expect(full[stage], x_s[stage])               # arrive + announce 64*64*2 bytes
                tk.tma.load_async(x_s[stage], x, (i, 0), full[stage])  # rows past M arrive as zeros
    with tk.else_():                       # warpgroup 1: the consumer
        tk.wait(w_ready, 0)
        for i in tk.range(n_tiles):
            stage = tk.let(i % 2)
            tk.wait(full[stage], (i // 2) % 2)
            tk.warpgroup.mm_ABt(acc, x_s[stage], w_s)  # acc = X_i @ W^T, issued by all 4 warps together
            tk.warpgroup.mma_wait()                    # the wgmma has finished reading x_s[stage] ...
            tk.arrive(empty[stage])                    # ... so the producer may refill it
            tk.store(y, acc, (i * 4 + tk.warp_id() % 4, 0), clip=True)  # my 16 rows; fp32 -> bf16


# %%
# With the template
# -----------------
# ``tk.producer_consumer`` emits the same control flow (semaphores, ring, parities, and register reallocation
# between the warpgroups) and calls you back: ``load`` in the producer warp for each input step of each work tile,
# ``compute`` in each consumer warpgroup once the step's stage is full (the stage is released when it returns),
# ``start``/``finish`` around each tile. Tiles are spread over a persistent grid: block b takes tiles b, b + grid, ...

@tk.kernel(warps=8, min_blocks=1)          # 4 * (1 + consumers) warps; min_blocks=1 for register reallocation
def linear_template(x: tk.gl(tk.bf16), w: tk.gl(tk.bf16), y: tk.gl(tk.bf16)):
    x_s = tk.st(tk.bf16, 64, 64, count=2)
    w_s = tk.st(tk.bf16, 64, 64)
    w_ready = tk.semaphore()
    acc = tk.rt(tk.fp32, 16, 64)

    def init():                            # warp 0, before the first tk.sync(): our own semaphore
        tk.init_semaphore(w_ready, 1)

    def load(s):                           # s.stage, s.tile, s.step, s.full
        with tk.if_(s.tile == tk.block_idx.x):   # this block's first tile: fetch W once
            tk.tma.load_group(w_ready, (w_s, w, (0, 0)))  # expect + load_async in one call
        tk.tma.load_group(s.full, (x_s[s.stage], x, (s.tile, 0)))

    def start(s):
        tk.wait(w_ready, 0)                # completes once; later waits on parity 0 pass at once

    def compute(s):
        tk.warpgroup.mm_ABt(acc, x_s[s.stage], w_s)
        tk.warpgroup.mma_wait()            # before returning: the stage is released right after

    def finish(s):
        tk.store(y, acc, (s.tile * 4 + tk.warp_id() % 4, 0), clip=True)

    tk.producer_consumer(stages=2, consumers=1, tiles=tk.cdiv(x.rows, 64), steps=1,
                         load=load, compute=compute, finish=finish, start=start, init=init)


def check(name, out, ref, tol):
    out, ref = out.double().cpu(), ref.double().cpu()
    err = float("inf") if torch.isnan(out).any() else float((out - ref).norm() / ref.norm())
    print(f"{name}: relative error {err:.2e} (tol {tol:.0e}) {'PASS' if err <= tol else 'FAIL'}")
    return err <= tol


def main(M=264, grid=2):
    ok = True
    x = torch.randn(M, 64, dtype=torch.float64).bfloat16()
    w = torch.randn(64, 64, dtype=torch.float64).bfloat16()
    ref = x.double() @ w.double().T
    on_h100 = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
    for kern, blocks in ((linear_by_hand, 1), (linear_template, grid)):
        for dev in ["cpu"] + (["cuda"] if on_h100 else []):
            y = torch.full((M, 64), float("nan"), dtype=torch.bfloat16, device=dev)
            kern[blocks](x.to(dev), w.to(dev), y)
            ok &= check(f"{kern.name} ({dev}, {blocks} block{'s' * (blocks > 1)})", y, ref, 1e-2)
        ck = kern.compile(x, w, y, arch="sm_90a")
        sass, res = ck.sass(), ck.resources()
        has = {op: op in sass for op in ("HGMMA", "UTMALDG", "SYNCS")}
        found = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in has.items())
        print(f"  sm_90a SASS: {found}; "
              f"{res.registers} registers, {res.local} bytes spilled")
        ok &= all(has.values()) and res.local == 0
    print("PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)

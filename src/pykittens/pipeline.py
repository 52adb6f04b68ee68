"""``tk.producer_consumer``: the warp-specialised pipeline of ThunderKittens' LCF template ("load, compute,
finish"), as a Python function that emits the control flow into the kernel being traced.

Warpgroup 0 is the producer: one of its warps walks the work tiles and, for each input step, waits for a free
stage of the ring, then calls ``load``. The other warpgroups are consumers: for each input step they wait for the
stage to land, call ``compute``, and release the stage; after the last step of a tile they call ``finish``.
Work tiles are spread over a persistent grid (block b takes tiles b, b + grid, …), in the order the caller's
``tile`` callback maps to coordinates (e.g. ``grouped_tile_order`` for L2 reuse).

With ``cluster=n`` (a kernel declared with ``@tk.kernel(cluster=n)``) the n blocks of a cluster walk the same tiles
in lockstep and may fill each other's stages (multicast TMA in ``load``): a stage counts as free only when the
consumers of every block of the cluster have released it. Consumers release locally; warp 1 of the producer
warpgroup forwards each release to every block (``tk.arrive(..., cta=r)``); the blocks synchronise after
initialising their semaphores and before exiting.

Stage/phase bookkeeping: step g (counted across all tiles a block handles) uses stage g % stages and waits for
phase parity (g // stages) % 2 on ``full``; the producer waits on ``empty`` with the opposite parity, so its first
pass over the ring does not block (a fresh semaphore counts as having completed a phase of parity 1).

``with tk.timeline(times):`` around a kernel's body makes the pipeline record when its events happen (see
``timeline``; ``scripts/timeline_forward.py`` reads them).
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

from . import trace
from .ir import Expr
from .ops.registers import decrease_registers, increase_registers
from .ops.cluster import cluster_sync
from .ops.semaphores import arrive, init_semaphore, wait
from .ops.sync import sync
from .ops.timing import timestamp

# tk.timeline's events, per block: a slot of 4 int32 (ns timer, SM cycles, SM index, unused) each
TIMELINE_BLOCK = ("entry", "past first barrier")  # warp 0 entering the kernel; the producer warp after the barrier
TIMELINE_CONSUMER = ("entered", "first stage landed", "steps done", "finished")  # per consumer: before `start`
# (after it here, ptxas serialised D=64 causal attention's wgmma), after its first wait for a full stage (NVRTC 13.0
# serialises D=64 causal attention's wgmma for this one; 13.5 does not), before `finish`, after `finish`


def timeline_slots(consumers: int) -> int:
    """Slots per block of a ``tk.timeline`` recording of a pipeline with ``consumers`` consumer warpgroups."""
    return len(TIMELINE_BLOCK) + consumers * len(TIMELINE_CONSUMER)


@contextlib.contextmanager
def timeline(times):
    """Record the events of the ``tk.producer_consumer`` pipeline traced inside: ``times`` (an int32 gl of shape
    (blocks, 4 · ``timeline_slots(consumers)``); a block writes the row of its launch index) gets a
    ``tk.timestamp`` per event (TIMELINE_BLOCK, then TIMELINE_CONSUMER for each consumer; one warp per warpgroup
    records). Meant for non-persistent pipelines (a persistent one keeps its last tile's events). A probe: it adds
    a store per event and may change how ptxas schedules the kernel. ``stamped(kernel)`` makes a kernel that does
    this around an existing kernel's body."""
    b = trace.builder()
    b.timeline = times
    try:
        yield
    finally:
        b.timeline = None


def timeline_ns(times):
    """The ns stamps of a ``tk.timeline`` recording as int64 (blocks, slots), measured from the first block's entry
    (the 32-bit timer's wrap-around undone: differences taken modulo 2³²); a slot never stamped (-1) stays -1."""
    import torch
    t = times.view(times.shape[0], -1, 4)[..., 0].long()
    ns = (t - t[0, 0] + 2 ** 31) % 2 ** 32 - 2 ** 31
    return torch.where(t != -1, ns, torch.full_like(ns, -1))


def stamped(kernel, after: str):
    """``kernel`` (a ``tk.kernel`` built on ``tk.producer_consumer``) as a new kernel with an int32 gl parameter
    ``times`` inserted after parameter ``after``, its body traced inside ``tk.timeline(times)``: the same kernel,
    stamping its pipeline's events (``scripts/timeline_forward.py`` does this to the attention forward)."""
    from .kernel import gl, kernel as make_kernel
    from .types import int32
    sig = inspect.signature(kernel.fn)
    params = list(sig.parameters.values())
    at = [p.name for p in params].index(after) + 1
    times = inspect.Parameter("times", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gl(int32))

    def body(*args):
        with timeline(args[at]):
            kernel.fn(*args[:at], *args[at + 1:])
    body.__signature__ = sig.replace(parameters=params[:at] + [times] + params[at:])
    body.__name__ = f"stamped_{kernel.name}"
    return make_kernel(warps=kernel.warps, min_blocks=kernel.min_blocks, cluster=kernel.cluster)(body)


def _record(slot, when=None):
    """A timeline event (no-op without ``tk.timeline``): warp 0 of the calling warpgroup stamps ``slot``."""
    times = trace.builder().timeline
    if times is None:
        return
    cond = trace.warp_id() % 4 == 0
    with trace.if_(cond if when is None else cond & when):
        timestamp(times, (trace.launch_index(), slot * 4))


@dataclass
class Step:
    """What a callback gets: the ring ``stage`` to use, the work ``tile`` and input ``step`` within it, the
    ``full`` semaphore of the stage (loads complete on it), the consumer's index (``consumer``, 0-based) and how
    many tiles the block took before this one (``count``: e.g. the parity of a per-tile semaphore)."""
    stage: Expr
    tile: Expr
    step: Expr
    full: object = None
    consumer: Expr | None = None
    count: Expr | None = None


def producer_consumer(*, stages: int, consumers: int, tiles, steps, load, compute, finish, start=None, end=None,
                      init=None, persistent: bool = True, producer_registers: int = 40, consumer_registers: int = 232,
                      release_lag: int = 0, cluster: int = 1, helper=None, helper_registers: int | None = None):
    """Emit a producer/consumer pipeline into the current kernel (which must have ``4 * (1 + consumers)`` warps,
    one warpgroup more with a ``helper``).

    tiles: number of work tiles (device scalar); steps: input steps per tile (a device scalar, or a function of the
    tile giving each its own count — the ring position is then carried in a ``tk.var`` counter);
    load(step): producer warp, issue the TMA loads of ``step`` into ``step.stage`` completing on ``step.full``
    (announce the bytes with ``tk.expect(step.full, ...)`` first); compute(step): each consumer warpgroup, use the
    stage (wait for its own async mma before returning: the stage is released right after);
    finish(step): each consumer warpgroup after its tile's last step; start(step): before its first step;
    end(step): each consumer warpgroup after its last tile (e.g. drain outstanding TMA stores);
    init(): warp 0, before the block's first barrier (initialise the caller's own semaphores there).
    persistent: block b takes tiles b, b + grid, …; otherwise each block does tile 0 of ``tiles`` (= 1) and
    the caller reads its work from the block index. With ``cluster`` > 1, work tiles are per cluster: its
    blocks all get the same tiles (cluster c takes tiles c, c + clusters, …) and tell their part by
    ``tk.cluster_rank()``.
    helper(): a warpgroup of its own after the consumers (with ``helper_registers`` per thread), called once per
    block: work the consumers hand off through the caller's semaphores (e.g. the attention backward's dQ).
    Non-persistent pipelines only.
    release_lag=1: a stage is released one step late, so ``compute`` may leave its async mma in flight
    (``tk.warpgroup.mma_wait(1)``) and the tensor cores never wait for the consumer; ``finish`` must then wait
    (``mma_wait(0)``) before it reads the accumulator.
    """
    if release_lag not in (0, 1):
        trace.fail(f"release_lag must be 0 or 1, got {release_lag!r}")
    b = trace.builder()
    groups = 1 + consumers + (helper is not None)
    if b.warps != 4 * groups:
        trace.fail(f"producer_consumer with {consumers} consumer warpgroups{' and a helper' if helper else ''} "
                   f"needs {4 * groups} warps, the kernel has {b.warps}")
    if helper is not None and (persistent or helper_registers is None):
        trace.fail("producer_consumer(helper=...) needs persistent=False and helper_registers")
    if b.cluster != cluster:
        trace.fail(f"producer_consumer(cluster={cluster}) in a kernel declared with cluster={b.cluster}")
    full = trace.semaphore(count=stages)
    empty = trace.semaphore(count=stages)
    # clusters: consumers release into `freed` here; warp 1 forwards each release to every block's `empty`, so no
    # consumer waits on a remote arrival (which stalls the issuing warp, and with it the warpgroup's next wgmma)
    freed = trace.semaphore(count=stages) if cluster > 1 else empty
    warp, wg = trace.warp_id(), trace.warp_id() // 4
    with trace.if_(warp == 0):
        _record(0)
        for s in range(stages):
            init_semaphore(full[s], 1)
            init_semaphore(freed[s], 4 * consumers)
            if cluster > 1:
                init_semaphore(empty[s], cluster)  # one forwarded release from each block of the cluster
        if init is not None:
            init()
    cluster_sync() if cluster > 1 else sync()

    def walk(body, before=None, after=None):
        """The block's tiles and their steps, as each role walks them: before(t, count) at a tile's start,
        body(t, k, g, stage) per step (g counts the block's steps over all its tiles), after(t, count, g0, n)."""
        done = trace.var(0, "g0") if callable(steps) else None  # steps of the block's earlier tiles
        for t in trace.range(first, tiles, stride):
            count = (t - first) // stride
            n = trace.let(steps(t), "steps") if done is not None else steps
            base = done if done is not None else trace.let(count * steps, "g0")  # steps before tile t
            if before is not None:
                before(t, count)
            for k in trace.range(n):
                g = trace.let(base + k, "g")
                body(t, k, g, trace.let(g % stages, "stage"))
            if after is not None:
                after(t, count, base, n)
            if done is not None:
                trace.assign(done, done + n)

    def produce(t, k, g, stage):
        wait(empty[stage], ((g // stages) % 2) ^ 1)
        load(Step(stage, t, k, full[stage]))

    def forward(t, k, g, stage):
        wait(freed[stage], (g // stages) % 2)
        for r in range(cluster):
            arrive(empty[stage], cta=r)

    def consume():  # a consumer warpgroup: each step of each of the block's tiles
        increase_registers(consumer_registers)
        consumer = trace.let(wg - 1, "consumer")
        slot = len(TIMELINE_BLOCK) + consumer * len(TIMELINE_CONSUMER)

        def begin(t, count):
            _record(slot)
            if start is not None:
                start(Step(None, t, None, None, consumer, count))

        def step(t, k, g, stage):
            wait(full[stage], (g // stages) % 2)
            _record(slot + 1, k == 0)
            compute(Step(stage, t, k, full[stage], consumer))
            if release_lag:
                with trace.if_(k > 0):
                    arrive(freed[(g + stages - 1) % stages])  # the previous step's mma is done
            else:
                arrive(freed[stage])

        def close(t, count, base, n):
            _record(slot + 2)
            finish(Step(None, t, None, None, consumer, count))
            _record(slot + 3)
            if release_lag:  # finish has waited for the last mma: release its stage
                with trace.if_(n > 0):
                    arrive(freed[(base + n + stages - 1) % stages])

        walk(step, begin, close)
        if end is not None:
            end(Step(None, None, None, None, consumer))

    first, stride = (trace.block_idx.x, trace.grid_dim.x) if persistent else (0, 1)
    if persistent and cluster > 1:
        first, stride = trace.block_idx.x // cluster, trace.grid_dim.x // cluster
    with trace.if_(wg == 0):
        decrease_registers(producer_registers)
        with trace.if_(warp == 0):
            _record(1)
            walk(produce)
        if cluster > 1:  # (an else branch: the two warps run concurrently, also in the interpreter)
            with trace.else_():
                with trace.if_(warp == 1):
                    walk(forward)
    with trace.else_():
        if helper is None:
            consume()
        else:
            with trace.if_(wg <= consumers):
                consume()
            with trace.else_():  # registers at launch: the register file shared evenly, in steps of 8
                launch = min(255, 65536 // (32 * b.warps)) // 8 * 8
                (decrease_registers if helper_registers < launch else increase_registers)(helper_registers)
                helper()
    if cluster > 1:  # no block exits while a peer may still arrive on its semaphores
        cluster_sync()


def grouped_tile_order(t, tiles_m, tiles_n, group: int = 8):
    """Map work tile ``t`` to (row tile, col tile), walking ``group`` row tiles at a time down each column block,
    so blocks running together share rows of A and columns of B in L2."""
    per_group = group * tiles_n
    first_m = trace.let(t // per_group * group, "first_m")
    size = trace.let(trace.minimum(tiles_m - first_m, group), "group_m")
    local = trace.let(t % per_group, "local")
    return trace.let(first_m + local % size, "tm"), trace.let(local // size, "tn")

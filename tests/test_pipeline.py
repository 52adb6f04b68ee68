"""Producer/consumer machinery: semaphores, TMA, warpgroup loads, named barriers, deadlock reports, and the
interpreter's coroutines that let a producer warp and a consumer warpgroup wait on each other."""
import pytest
import torch

import pykittens as tk
from util import poison, rand


@tk.kernel(warps=8)
def ring_copy(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), n_tiles: tk.i32):
    """Warp 0 streams 64x64 tiles through a 2-stage ring by TMA; warpgroup 1 copies each out (16 rows a warp)."""
    ring = tk.st(tk.bf16, 64, 64, count=2)
    full, empty = tk.semaphore(count=2), tk.semaphore(count=2)
    t = tk.rt(tk.bf16, 16, 64)
    with tk.if_(tk.warp_id() == 0):
        for s in range(2):
            tk.init_semaphore(full[s], 1)
            tk.init_semaphore(empty[s], 4)
    tk.sync()
    with tk.if_(tk.warp_id() < 4):
        with tk.if_(tk.warp_id() == 0):
            for i in tk.range(n_tiles):
                tk.wait(empty[i % 2], ((i // 2) % 2) ^ 1)  # a fresh semaphore passes parity 1
                tk.expect(full[i % 2], ring[i % 2])
                tk.tma.load_async(ring[i % 2], x, (i, 0), full[i % 2])
    with tk.else_():
        for i in tk.range(n_tiles):
            tk.wait(full[i % 2], (i // 2) % 2)
            tk.warpgroup.load(t, ring[i % 2])
            tk.arrive(empty[i % 2])
            tk.store(o, t, (i * 4 + tk.warp_id() - 4, 0))


def test_producer_consumer_ring_in_interpreter():
    x = rand(5 * 64, 64)
    o = poison(5 * 64, 64)
    ring_copy[1](x, o, 5)
    assert torch.equal(o, x)


def test_ring_compiles_with_tma_and_no_spills():
    x = torch.empty(128, 64, dtype=torch.bfloat16)
    ck = ring_copy.compile(x, x, 2, arch="sm_90a")
    sass = ck.sass()
    assert "UTMALDG" in sass and "SYNCS" in sass
    assert ck.resources().local == 0
    assert "const __grid_constant__ tk::tensor_map tk_tmap0" in ck.source


def test_missing_arrival_is_a_deadlock_naming_the_wait():
    @tk.kernel(warps=4)
    def stuck(x: tk.gl(tk.bf16)):
        s = tk.semaphore()
        with tk.if_(tk.warp_id() == 0):
            tk.init_semaphore(s, 2)
        tk.sync()
        with tk.if_(tk.warp_id() == 1):
            tk.arrive(s)  # only one of the two arrivals
        with tk.if_(tk.warp_id() == 2):
            tk.wait(s, 0)  # MARK

    with pytest.raises(tk.DeadlockError, match="wait on s for parity 0") as e:
        stuck[1](rand(16, 16))
    import inspect
    lines, start = inspect.getsourcelines(stuck.fn)
    assert f"line {start + next(i for i, l in enumerate(lines) if '# MARK' in l)}" in str(e.value)


def test_reading_a_tma_tile_before_its_semaphore_completes_is_a_race():
    @tk.kernel(warps=1)
    def early(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
        a = tk.st(tk.bf16, 16, 64)
        s = tk.semaphore()
        t = tk.rt(tk.bf16, 16, 64)
        tk.init_semaphore(s, 1)
        tk.tma.load_async(a, x, (0, 0), s)  # no expect: the phase cannot complete
        tk.load(t, a)
        tk.store(o, t, (0, 0))

    with pytest.raises(tk.RaceError, match="in flight"):
        early[1](rand(16, 64), poison(16, 64))


def test_named_barrier_among_consumer_warps():
    @tk.kernel(warps=8)
    def k(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
        a = tk.st(tk.fp32, 16, 16, count=8)
        t = tk.rt(tk.fp32, 16, 16)
        with tk.if_(tk.warp_id() >= 4):
            tk.load(a[tk.warp_id()], x, (tk.warp_id(), 0))
            tk.named_sync(1, 4)
            tk.load(t, a[((tk.warp_id() - 3) % 4) + 4])  # the neighbour's tile
            tk.store(o, t, (tk.warp_id(), 0))

    x = rand(128, 16, dtype=torch.float32)
    o = poison(128, 16, dtype=torch.float32)
    k[1](x, o)
    for w in range(4, 8):
        src = (w - 3) % 4 + 4
        assert torch.equal(o[16 * w:16 * w + 16], x[16 * src:16 * src + 16])


def test_tma_store_and_store_add():
    @tk.kernel(warps=1)
    def k(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
        a = tk.st(tk.bf16, 16, 128)
        s = tk.semaphore()
        tk.init_semaphore(s, 1)
        tk.expect(s, a)
        tk.tma.load_async(a, x, (0, 0), s)
        tk.wait(s, 0)
        tk.tma.store_async(o, a, (0, 0))
        tk.tma.store_add_async(o, a, (1, 0))
        tk.tma.store_commit()
        tk.tma.store_wait(0)

    x = rand(16, 128)
    o = torch.cat([poison(16, 128), rand(16, 128)])
    base = o[16:].clone()
    k[1](x, o)
    assert torch.equal(o[:16], x)
    assert torch.equal(o[16:], (base.float() + x.float()).bfloat16())


def test_tma_load_before_row_0_reads_zeros_and_a_store_there_is_an_error():
    """Seen on the H200: a TMA load at negative coordinates zero-fills, a TMA store there raises an illegal
    instruction; the interpreter reports the store rather than dropping it."""
    @tk.kernel(warps=1)
    def k(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), row: tk.i32):
        a = tk.st(tk.bf16, 16, 128)
        s = tk.semaphore()
        tk.init_semaphore(s, 1)
        tk.tma.load_group(s, (a, x, (row, 0)))
        tk.wait(s, 0)
        tk.tma.store_async(o, a, (row + 1, 0))
        tk.tma.store_commit()
        tk.tma.store_wait(0)

    x, o = rand(16, 128), poison(16, 128)
    k[1](x, o, -1)  # loads tile -1 (zeros), stores it to tile 0
    assert torch.equal(o, torch.zeros_like(o))
    with pytest.raises(tk.OutOfBoundsError, match="negative coordinates fault on the GPU"):
        k[1](x, o, -2)

@tk.kernel(warps=1)
def tma_vectors(x: tk.gl(tk.fp32), o: tk.gl(tk.fp32)):
    """Block j TMA-loads vectors j and j+1 (64 fp32, 128-byte aligned in shared memory) of row 1 of x; one
    semaphore phase covers both; they go back out through registers."""
    s = tk.semaphore()  # declared first: the vectors after it must still land 128-byte aligned
    v = tk.sv(tk.fp32, 64, count=2)
    r = tk.row_vec(tk.rt(tk.fp32, 16, 64))
    tk.init_semaphore(s, 1)
    j = tk.block_idx.x
    tk.tma.load_group(s, (v[0], x, (0, 0, 1, j)), (v[1], x, (0, 0, 1, j + 1)))
    tk.wait(s, 0)
    for i in range(2):
        tk.load(r, v[i])
        tk.store(o, r, (0, 0, 2 * j + i, 0))


def _check_tma_vectors(device):
    x = rand(1, 1, 2, 200, dtype=torch.float32, device=device)  # 200 = 3 vectors and 8 values: the rest reads 0
    o = poison(1, 1, 8, 64, dtype=torch.float32, device=device)
    tma_vectors[4](x, o)
    padded = torch.cat([x[0, 0, 1], x.new_zeros(56)])
    for j in range(4):
        assert torch.equal(o[0, 0, 2 * j], padded[64 * j:64 * j + 64])
        if j < 3:
            assert torch.equal(o[0, 0, 2 * j + 1], padded[64 * j + 64:64 * j + 128])
        else:  # past the end: zero-filled
            assert torch.equal(o[0, 0, 7], torch.zeros_like(o[0, 0, 7]))


def test_tma_vector_loads():
    _check_tma_vectors("cpu")


def test_tma_vector_loads_need_128_byte_vectors_and_16_byte_strides():
    @tk.kernel(warps=1)
    def small(x: tk.gl(tk.fp32)):
        v = tk.sv(tk.fp32, 16)
        s = tk.semaphore()
        tk.tma.load_async(v, x, (0, 0, 0, 0), s)

    with pytest.raises(tk.KernelTypeError, match="multiple of 128 bytes"):
        small[1](torch.zeros(1, 1, 1, 64))
    from types import SimpleNamespace
    from pykittens.backend.cuda.tma import tensor_map_params
    from pykittens.types import SV
    g = SimpleNamespace(dtype=torch.float32, shape=(1, 1, 2, 201), stride=(402, 402, 201, 1))
    with pytest.raises(ValueError, match="multiple of 16 bytes"):
        tensor_map_params(g, SV(tk.fp32, 64))


@pytest.mark.gpu
def test_gpu_tma_vector_loads():
    _check_tma_vectors("cuda")
    torch.cuda.synchronize()


@pytest.mark.gpu
def test_gpu_ring_copy_and_tma_store():
    x = rand(7 * 64, 64, device="cuda")
    o = poison(7 * 64, 64, device="cuda")
    ring_copy[1](x, o, 7)
    torch.cuda.synchronize()
    assert torch.equal(o, x)


def handoff_kernel(persistent=False):
    @tk.kernel(warps=12)
    def handoff(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), n: tk.i32):
        """producer_consumer with a helper warpgroup: the consumer passes each 64x64 tile, doubled, through a
        shared tile to the helper (two semaphores), which writes it out."""
        ring = tk.st(tk.bf16, 64, 64, count=2)
        passed = tk.st(tk.bf16, 64, 64)
        ready, taken = tk.semaphore(), tk.semaphore()
        t = tk.rt(tk.bf16, 16, 64)

        def init():
            tk.init_semaphore(ready, 4)
            tk.init_semaphore(taken, 4)

        def load(s):
            tk.tma.load_group(s.full, (ring[s.stage], x, (s.step, 0)))

        def compute(s):
            tk.warpgroup.load(t, ring[s.stage])
            tk.add(t, t, t)
            tk.wait(taken, (s.step % 2) ^ 1)  # the helper has read the previous tile
            tk.warpgroup.store(passed, t)
            tk.arrive(ready)

        def helper():
            for i in tk.range(n):
                tk.wait(ready, i % 2)
                tk.warpgroup.load(t, passed)
                tk.arrive(taken)
                tk.store(o, t, (i * 4 + tk.warp_id() % 4, 0))

        tk.producer_consumer(stages=2, consumers=1, tiles=1, steps=n, load=load, compute=compute,
                             finish=lambda s: None, init=init, persistent=persistent, helper=helper,
                             helper_registers=56)
    return handoff


def test_helper_warpgroup_in_interpreter_and_compiled():
    x = rand(5 * 64, 64)
    o = poison(5 * 64, 64)
    k = handoff_kernel()
    k[1](x, o, 5)
    assert torch.equal(o, (x.float() * 2).bfloat16())
    ck = k.compile(x, x, 5, arch="sm_90a")
    assert "setmaxnreg.dec.sync.aligned.u32 56" in ck.source and ck.resources().local == 0
    with pytest.raises(tk.KernelTypeError, match="persistent=False"):
        handoff_kernel(persistent=True).compile(x, x, 5, arch="sm_90a")


@pytest.mark.gpu
def test_gpu_helper_warpgroup():
    x = rand(7 * 64, 64, device="cuda")
    o = poison(7 * 64, 64, device="cuda")
    handoff_kernel()[1](x, o, 7)
    assert torch.equal(o, (x.float() * 2).bfloat16())

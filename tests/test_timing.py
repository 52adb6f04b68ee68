"""Timestamps (``tk.timestamp``) and the pipeline's event recording (``tk.timeline``): every event is stamped, in
an order the pipeline allows, on CPU (the interpreter's stamp counter) and on the GPU (ns timer, SM index)."""
import pytest
import torch

import pykittens as tk
from pykittens.pipeline import TIMELINE_BLOCK, TIMELINE_CONSUMER, timeline_ns
from util import poison, rand

CONSUMERS = 2
SLOTS = tk.timeline_slots(CONSUMERS)


@tk.kernel(warps=4 * (1 + CONSUMERS))
def doubled(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16), times: tk.gl(tk.int32)):
    """Each block: its consumers double the 64x64 tiles (x block_idx.x, consumer c) of a 2-stage ring, two steps."""
    ring = tk.st(tk.bf16, 64, 64, count=(2, CONSUMERS))
    t = tk.rt(tk.bf16, 16, 64)

    def load(s):
        tk.tma.load_group(s.full, *((ring[s.stage, c], x, (tk.block_idx.x * 2 + s.step, c)) for c in range(CONSUMERS)))

    def compute(s):
        tk.warpgroup.load(t, ring[s.stage, s.consumer])
        tk.add(t, t, t)
        tk.store(o, t, ((tk.block_idx.x * 2 + s.step) * 4 + tk.warp_id() % 4, s.consumer))

    with tk.timeline(times):
        tk.producer_consumer(stages=2, consumers=CONSUMERS, tiles=1, steps=2, load=load, compute=compute,
                             finish=lambda s: None, persistent=False)


def _run(device, blocks=3):
    x = rand(blocks * 2 * 64, CONSUMERS * 64, device=device)
    o = poison(blocks * 2 * 64, CONSUMERS * 64, device=device)
    times = torch.full((blocks, 4 * SLOTS), -1, dtype=torch.int32, device=device)
    doubled[blocks](x, o, times)
    assert torch.equal(o, (x.float() * 2).bfloat16())  # the stamps do not change what the kernel computes
    return times.cpu().view(blocks, SLOTS, 4).long()


def _check_order(t):
    """Each block's events in the order the pipeline imposes (ns timer, differences taken modulo 2³²)."""
    assert (t[..., 0] != -1).all(), "an event was not stamped"
    ns = timeline_ns(t)
    nb = len(TIMELINE_BLOCK)
    assert (ns[:, 1] >= ns[:, 0]).all()  # the producer passes the barrier after warp 0's entry
    for c in range(CONSUMERS):
        entered, landed, done, finished = (ns[:, nb + c * len(TIMELINE_CONSUMER) + i] for i in range(4))
        assert (entered <= landed).all() and (landed <= done).all() and (done <= finished).all(), ns


def test_timeline_stamps_every_event_in_the_interpreter():
    t = _run("cpu")
    _check_order(t)
    assert (t[..., 2] == 0).all()  # the interpreter's SM


def test_timeline_compiles_with_a_call_per_event():
    x = torch.empty(128, 128, dtype=torch.bfloat16)
    times = torch.empty(1, 4 * SLOTS, dtype=torch.int32)
    ck = doubled.compile(x, x, times, arch="sm_90a")
    assert "%%globaltimer_lo" in ck.source and "%%smid" in ck.source
    # one call per event (the consumers share their code: the slot is computed from the consumer's index)
    assert ck.source.count("tk::timestamp(") == len(TIMELINE_BLOCK) + len(TIMELINE_CONSUMER)
    assert ck.resources().local == 0


def test_timestamp_needs_an_int32_global_and_room_for_three_values():
    @tk.kernel(warps=1)
    def stamp(times: tk.gl(tk.int32), col: tk.i32):
        tk.timestamp(times, (0, col))

    t = torch.full((1, 4), -1, dtype=torch.int32)
    stamp[1](t, 1)
    assert t.tolist() == [[-1, 0, 0, 0]]  # (stamp count, stamp count, SM 0) from column 1 on
    with pytest.raises(tk.OutOfBoundsError, match="outside"):
        stamp[1](t, 2)

    @tk.kernel(warps=1)
    def wrong(times: tk.gl(tk.fp32)):
        tk.timestamp(times, (0, 0))
    with pytest.raises(tk.KernelTypeError, match="int32"):
        wrong[1](torch.zeros(1, 4))


@pytest.mark.gpu
def test_gpu_timeline():
    t = _run("cuda", blocks=5)
    _check_order(t)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    assert ((t[..., 2] >= 0) & (t[..., 2] < sms)).all()
    # one block's events share an SM, and its cycle counter moves forward with the ns timer
    assert (t[..., 2] == t[:, :1, 2]).all()
    cycles = (t[..., 1] - t[:, :1, 1]) % 2 ** 32
    assert (cycles[:, -1] > 0).all()


def test_stamped_attention_forward_compiles_unserialised():
    """``tk.stamped`` wraps a library kernel: the stamped forward keeps its wgmma pipelined. Not D=64 causal: with
    NVRTC 13.0 (the GPU machine's) its "first stage landed" stamp makes ptxas serialise the wgmma (13.5 does not),
    so that config's timeline does not show the shipped kernel."""
    from pykittens.kernels import hopper_attention
    from pykittens.kernels.attention_ops import forward_config
    timed = tk.stamped(hopper_attention, after="lse")
    from pykittens.kernels.attention_ops import SplitScratch
    assert [n for n, _ in timed.params][:7] == ["q", "k", "v", "o", "lse", "times", "part"]
    for d, causal in ((64, False), (128, False), (128, True)):
        q = torch.empty(1, 2, 256, d, dtype=torch.bfloat16)
        config = forward_config(d, causal, 132)
        ck = timed.compile(q, q, q, q, torch.empty(1, 2, 1, 256), torch.empty(1, 64, dtype=torch.int32),
                           *SplitScratch.get(d, config["CONSUMERS"], 0, q.device), 1.0, D=d, CAUSAL=causal, **config,
                           arch="sm_90a")
        assert not ck.wgmma_serialized and ck.resources().local == 0, (d, causal)
        assert ck.source.count("tk::timestamp(") == len(TIMELINE_BLOCK) + len(TIMELINE_CONSUMER)

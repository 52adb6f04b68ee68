"""Memory ops on vectors: register vectors <-> global, shared vectors <-> global (incl. cp.async), register vectors
<-> shared vectors; ragged tails with oob / clip; type rules. Interpreter on CPU, NVRTC compiles, GPU variants."""
import pytest
import torch

import pykittens as tk
from util import poison, rand, tagged_line
from test_ops_memory import DEVICES, TORCH, compiles, opcodes


def vec_kernel(dt, vdt, length, layout, fill, use_async):
    """x -> rv -> o_reg (clip) and o_pad (no clip); x -> sv[w] -> rv -> sv2[w] -> o_sv (clip)."""

    @tk.kernel(warps=2)
    def vectors(x: tk.gl(dt), o_reg: tk.gl(dt), o_pad: tk.gl(dt), o_sv: tk.gl(dt)):
        v = tk.rv(vdt, length, layout)
        v2 = tk.rv(vdt, length, "align" if layout == "ortho" else "ortho")
        s = tk.sv(dt, length, count=2)
        s2 = tk.sv(dt, length, count=2)
        w = tk.warp_id()
        idx = (tk.block_idx.x * 2 + w, tk.block_idx.y)
        tk.load(v, x, idx, oob=fill)
        tk.store(o_reg, v, idx, clip=True)
        tk.store(o_pad, v, idx)
        if use_async:
            tk.load_async(s[w], x, idx, oob=0.0)
            tk.load_async_wait()
        else:
            tk.load(s[w], x, idx, oob=fill)
        tk.load(v2, s[w])
        tk.store(s2[w], v2)
        tk.store(o_sv, s2[w], idx, clip=True)

    return vectors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dt,vdt,length,layout,R,C,use_async", [
    (tk.bf16, tk.bf16, 32, "ortho", 5, 100, False),  # ragged: rows and cols outside, a chunk crossing the edge
    (tk.fp32, tk.fp32, 16, "align", 6, 48, False),
    (tk.fp16, tk.fp32, 64, "align", 3, 150, True),  # fp32 register vector from fp16 memory; async shared path
    (tk.bf16, tk.bf16, 16, "ortho", 4, 64, True),
    (tk.fp32, tk.fp32, 32, "ortho", 3, 70, False),  # fp32 shared vector -> align register vector (8-byte loads)
])
def test_vector_transfers(dt, vdt, length, layout, R, C, use_async, device):
    fill = 0.0 if use_async else 7.0
    k = vec_kernel(dt, vdt, length, layout, fill, use_async)
    gx, gy = -(-R // 2), -(-C // length)
    Cp = -(-C // 16) * 16  # padded row length: rows 16-byte aligned, as a launch needs
    x = rand(R, Cp, dtype=TORCH[dt], device=device)[:, :C]
    big = poison(R + 3, Cp + 48, dtype=TORCH[dt], device=device)
    o_reg = big[:R, :C]
    o_pad = poison(2 * gx, gy * length, dtype=TORCH[dt], device=device)
    o_sv = poison(R, Cp, dtype=TORCH[dt], device=device)[:, :C]
    k[gx, gy](x, o_reg, o_pad, o_sv)
    x, big, o_pad, o_sv = x.cpu(), big.cpu(), o_pad.cpu(), o_sv.cpu()
    assert torch.equal(o_reg.cpu(), x)
    assert torch.equal(o_sv, x)
    outside = torch.ones_like(big, dtype=torch.bool)
    outside[:R, :C] = False
    assert torch.isnan(big[outside].float()).all()
    assert torch.equal(o_pad[:R, :C], x)
    inside = torch.zeros_like(o_pad, dtype=torch.bool)
    inside[:R, :C] = True
    assert (o_pad[~inside].float() == fill).all()
    if device == "cpu":
        ops = opcodes(compiles(k, x, o_reg, o_pad, o_sv))
        if use_async:
            assert any(op.startswith("LDGSTS") for op in ops), ops
        if dt == tk.fp32 and layout == "ortho":  # v2 (align) from fp32 shared: one 8-byte load per pair
            assert "LDS.64" in ops, ops


@tk.kernel(warps=4)
def vec_batch(x: tk.gl(tk.fp32), o: tk.gl(tk.bf16)):
    """4-D index (b, d, r, c): warp w handles batch w // 2, depth w % 2; shared vectors indexed by warp."""
    s = tk.sv(tk.fp32, 32, count=4)
    s2 = tk.sv(tk.bf16, 32, count=4)
    v = tk.rv(tk.fp32, 32, "ortho")
    w = tk.warp_id()
    idx = (w // 2, w % 2, tk.block_idx.x, tk.block_idx.y)
    tk.load(s[w], x, idx)
    tk.load(v, s[w])
    tk.mul(v, v, -2.0)
    tk.store(s2[w], v)  # fp32 -> bf16
    tk.store(o, s2[w], idx)


@pytest.mark.parametrize("device", DEVICES)
def test_vector_4d_index_and_conversion(device):
    x = rand(2, 2, 3, 64, dtype=torch.float32, device=device)
    o = poison(2, 2, 3, 64, device=device)
    vec_batch[3, 2](x, o)
    assert torch.equal(o.cpu(), (x.cpu() * -2.0).to(torch.bfloat16))
    if device == "cpu":
        compiles(vec_batch, x, o)


@tk.kernel(warps=2)
def vec_race(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    s = tk.sv(tk.bf16, 64, count=2)
    v = tk.rv(tk.bf16, 64)
    w = tk.warp_id()
    tk.load(s[w], x, (w, 0))
    tk.load(v, s[1 - w])  # VRACE
    tk.store(o, v, (w, 0))


@tk.kernel(warps=1)
def vec_oob(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
    v = tk.rv(tk.bf16, 64)
    tk.load(v, x, (0, 1))  # VOOB
    tk.store(o, v, (0, 0))


def test_vector_interpreter_checks():
    x, o = rand(2, 64), poison(2, 64)
    with pytest.raises(tk.RaceError) as e:
        vec_race[1](x, o)
    assert f"test_ops_memory_vectors.py:{tagged_line(__file__, 'VRACE')}" in str(e.value)
    with pytest.raises(tk.OutOfBoundsError) as e:
        vec_oob[1](x, o)
    assert f"test_ops_memory_vectors.py:{tagged_line(__file__, 'VOOB')}" in str(e.value)
    compiles(vec_race, x, o)
    compiles(vec_oob, x, o)


def _length_mismatch(x):
    s = tk.sv(tk.bf16, 32)
    v = tk.rv(tk.bf16, 64)
    tk.load(v, s)  # VT-LEN


def _store_length_mismatch(x):
    s = tk.sv(tk.bf16, 32)
    v = tk.rv(tk.bf16, 16, "align")
    tk.store(s, v)  # VT-STORE-LEN


def _async_fill(x):
    s = tk.sv(tk.bf16, 32)
    tk.load_async(s, x, (0, 0), oob=1.0)  # VT-ASYNC


def _tile_from_vector(x):
    s = tk.sv(tk.bf16, 32)
    t = tk.rt(tk.bf16, 16, 32)
    tk.load(t, s)  # VT-KIND


@pytest.mark.parametrize("tag,body,msg", [
    ("VT-LEN", _length_mismatch, "same shape"),
    ("VT-STORE-LEN", _store_length_mismatch, "same shape"),
    ("VT-ASYNC", _async_fill, "oob=0.0"),
    ("VT-KIND", _tile_from_vector, "no such transfer"),
])
def test_vector_type_rules_name_the_line(tag, body, msg):
    @tk.kernel(warps=1)
    def bad(x: tk.gl(tk.bf16)):
        body(x)

    with pytest.raises(tk.KernelTypeError) as e:
        bad.ir(rand(16, 64))
    assert f"test_ops_memory_vectors.py:{tagged_line(__file__, tag)}" in str(e.value), str(e.value)
    assert msg in str(e.value)

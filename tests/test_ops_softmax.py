"""Online-softmax ops. merge_softmax: two partials over disjoint keys merged into one, against a float64 reference;
rows with a part that saw no key (maximum −∞) and rows where neither did. online_softmax with lazy maxima
(row_max_lazy, rescale_rows): several key blocks against float64, with rows whose maxima grow past the slack, rows
that stay within it and a warp whose factors are all 1 (the skipped rescale). CUDA lowerings compile; type errors."""
import pytest
import torch

import pykittens as tk
from util import assert_close, expect_tagged_type_error, poison, sass_and_resources

W, R, C = 2, 32, 48  # warps; each merges its own R x C partials
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@tk.kernel(warps=W)
def merge(parts: tk.gl(tk.fp32), stats: tk.gl(tk.fp32), o_out: tk.gl(tk.fp32), stats_out: tk.gl(tk.fp32)):
    o, o2 = tk.rt(tk.fp32, R, C), tk.rt(tk.fp32, R, C)
    m, l, m2, l2 = (tk.col_vec(o) for _ in range(4))
    w = tk.warp_id()
    tk.load(o, parts, (0, 0, w, 0))
    tk.load(o2, parts, (0, 1, w, 0))
    for i, v in enumerate((m, l, m2, l2)):
        tk.load(v, stats, (0, i, 0, w))
    tk.merge_softmax(o, m, l, o2, m2, l2)
    tk.store(o_out, o, (0, 0, w, 0))
    tk.store(stats_out, m, (0, 0, 0, w))
    tk.store(stats_out, l, (0, 1, 0, w))
    tk.store(stats_out, l2, (0, 2, 0, w))  # the second part's vectors are left as they were


def partials(device):
    """Two parts' (o, m, l) per row, as an attention split would leave them: o and l from exp2(s - m) over each
    part's keys; rows 0-3 saw no key in part 1, rows 4-5 in part 2, rows 6-7 in neither (m = -inf, o = l = 0)."""
    n = W * R
    s = torch.randn(2, n, 40, dtype=torch.float64) * 3  # scores (base-2 domain), 40 keys per part
    v = torch.randn(2, 40, C, dtype=torch.float64)
    m = s.amax(-1)
    p = torch.exp2(s - m[..., None])
    o, l = p @ v, p.sum(-1)
    for part, rows in ((0, [0, 1, 2, 3, 6, 7]), (1, [4, 5, 6, 7])):
        m[part, rows], o[part, rows], l[part, rows] = float("-inf"), 0.0, 0.0
    stats = torch.stack([m[0], l[0], m[1], l[1]])[None, :, None, :]
    return o[None].float().to(device), stats.float().to(device), (s, v)


def reference(s, v):
    """float64 (o, m, l) of both parts' keys together, with the same rows seeing no key in each part."""
    s = s.clone()
    s[0, [0, 1, 2, 3, 6, 7]] = float("-inf")
    s[1, [4, 5, 6, 7]] = float("-inf")
    both = torch.cat([s[0], s[1]], -1)
    m = both.amax(-1)
    p = torch.where(m[:, None] == float("-inf"), 0.0, torch.exp2(both - m[:, None]))
    return p @ torch.cat([v[0], v[1]]), m, p.sum(-1)


@pytest.mark.parametrize("device", DEVICES)
def test_merge_softmax_matches_float64(device):
    parts, stats, (s, v) = partials(device)
    o_out = poison(1, 1, W * R, C, dtype=torch.float32, device=device)
    stats_out = poison(1, 3, 1, W * R, dtype=torch.float32, device=device)
    merge[1](parts, stats, o_out, stats_out)
    o, m, l = reference(s, v)
    assert_close(o_out[0, 0], o, 1e-5)
    assert_close(stats_out[0, 1, 0], l, 1e-5)
    got_m = stats_out[0, 0, 0].cpu().double()
    assert torch.equal(torch.isinf(got_m), torch.isinf(m)) and not torch.isnan(o_out).any()
    assert_close(got_m[~torch.isinf(m)], m[~torch.isinf(m)], 1e-6)
    assert torch.equal(o_out[0, 0, 6:8].cpu(), torch.zeros(2, C)) and torch.equal(stats_out[0, 1, 0, 6:8].cpu(),
                                                                                 torch.zeros(2))
    assert torch.equal(stats_out[0, 2, 0], stats[0, 3, 0])  # l2 untouched


def test_merge_softmax_compiles_for_sm90():
    parts, stats, _ = partials("cpu")
    sass, res = sass_and_resources(merge, parts, stats, torch.empty(1, 1, W * R, C), torch.empty(1, 3, 1, W * R))
    assert "MUFU.EX2" in sass and res.local == 0, res


def test_merge_softmax_type_errors():
    def bf16_tile(x: tk.gl()):
        o = tk.rt(tk.bf16, 16, 16)
        m = tk.col_vec(o, tk.fp32)
        tk.merge_softmax(o, m, m, o, m, m)  # bad:dtype

    def wrong_vector(x: tk.gl()):
        o = tk.rt(tk.fp32, 16, 32)
        m, row = tk.col_vec(o), tk.row_vec(o)
        tk.merge_softmax(o, m, row, o, m, m)  # bad:vec

    expect_tagged_type_error(bf16_tile, "dtype", "fp32 row-layout register tile")
    expect_tagged_type_error(wrong_vector, "vec", "one fp32 value per row", "l")


KEYS, BLOCKS, SLACK, LW = 32, 4, 2.0, 4  # keys per block; blocks; the lazy slack (raw score units); warps


@tk.kernel(warps=LW)
def lazy_steps(scores: tk.gl(tk.fp32), v: tk.gl(tk.bf16), o_out: tk.gl(tk.fp32), stats_out: tk.gl(tk.fp32),
               scale: tk.f32, slack: tk.f32):
    """Warp w runs an online softmax over BLOCKS blocks of KEYS scores of its R rows with lazy maxima; O = P·V
    accumulated in fp32 (P, V in bf16), rescaled by rescale_rows; out: O / l and the kept maxima."""
    p, p_bf, vt = tk.rt(tk.fp32, R, KEYS), tk.rt(tk.bf16, R, KEYS), tk.rt(tk.bf16, KEYS, C, "col")
    pv = tk.rt(tk.fp32, R, C)
    o = tk.rt(tk.fp32, R, C)
    m, m_scaled, l, alpha = (tk.col_vec(p) for _ in range(4))
    tk.neg_infty(m)
    tk.zero(l)
    tk.zero(o)
    w = tk.warp_id()
    for b in range(BLOCKS):
        tk.load(p, scores, (0, b, w, 0))
        tk.online_softmax(p, m, m_scaled, l, alpha, scale, slack)
        tk.rescale_rows(o, alpha)
        tk.load(vt, v, (0, 0, b, 0))
        tk.copy(p_bf, p)
        tk.zero(pv)
        tk.mma_AB(pv, p_bf, vt, pv)
        tk.add(o, o, pv)
    tk.div_row(o, o, l)
    tk.store(o_out, o, (0, 0, w, 0))
    tk.store(stats_out, m, (0, 0, 0, w))


GROWING = [R + 11, 2 * R + 20] + list(range(3 * R, 3 * R + 16))  # rows whose maxima outgrow the slack


def lazy_inputs(device):
    """Scores per (block, row). Warp 0's rows barely move after block 0 (every factor 1 from then on: the skipped
    rescale). In warps 1 and 2 one row grows by 3 per block (past the slack: the warp must rescale), row 11 (the
    second row a lane holds in its first 16) and row 20 (the first it holds in its second 16); warp 3's rows 0-15
    grow by 3. Every other row grows by 0.5 per block (1.5 in all: its maximum is kept)."""
    g = torch.Generator().manual_seed(7)
    s = torch.rand(BLOCKS, LW * R, KEYS, generator=g, dtype=torch.float64)  # in [0, 1)
    s[0, :R, 0] = 1.5  # warp 0: block 0 holds every row's maximum
    growth = torch.full((LW * R,), 0.5)
    growth[:R], growth[GROWING] = 0.0, 3.0
    s = s + growth[None, :, None] * torch.arange(BLOCKS, dtype=torch.float64)[:, None, None]
    v = torch.randn(BLOCKS * KEYS, C, generator=g, dtype=torch.float64)
    return s, v


@pytest.mark.parametrize("device", DEVICES)
def test_online_softmax_with_lazy_maxima_matches_float64(device):
    s, v = lazy_inputs(device)
    o_out = poison(1, 1, LW * R, C, dtype=torch.float32, device=device)
    stats_out = poison(1, 1, 1, LW * R, dtype=torch.float32, device=device)
    lazy_steps[1](s[None].float().to(device), v[None, None].bfloat16().to(device), o_out, stats_out, 1.0, SLACK)
    full = torch.cat(list(s), -1)  # (rows, all keys)
    p = torch.exp2(full - full.amax(-1, keepdim=True))
    v = v.bfloat16().double()
    assert_close(o_out[0, 0], (p @ v) / p.sum(-1, keepdim=True), 5e-3)  # (P rounded to bf16 for the mma)
    # the kept maximum: a row's block maximum replaced it only when it grew by more than SLACK
    kept = s[0].amax(-1)
    for b in range(1, BLOCKS):
        new = s[b].amax(-1)
        kept = torch.where(new > kept + SLACK, new, kept)
    m = stats_out[0, 0, 0].cpu().double()
    assert_close(m, kept, 1e-6)
    true_max, kept_rows = full.amax(-1), [r for r in range(R, LW * R) if r not in GROWING]
    assert (m[kept_rows] < true_max[kept_rows] - 1).all() and torch.allclose(m[GROWING], true_max[GROWING])


def test_lazy_softmax_compiles_for_sm90_with_a_warp_vote():
    s, v = lazy_inputs("cpu")
    sass, res = sass_and_resources(lazy_steps, s[None].float(), v[None, None].bfloat16(),
                                   torch.empty(1, 1, LW * R, C), torch.empty(1, 1, 1, LW * R), 1.0, SLACK)
    assert "VOTE.ALL" in sass and "MUFU.EX2" in sass and res.local == 0, res


def test_lazy_ops_type_errors():
    def bf16_scores(x: tk.gl()):
        p = tk.rt(tk.bf16, 16, 16)
        m = tk.col_vec(p, tk.fp32)
        tk.row_max_lazy(m, p, 1.0)  # bad:lazy-dtype

    def tile_slack(x: tk.gl()):
        p = tk.rt(tk.fp32, 16, 16)
        tk.row_max_lazy(tk.col_vec(p), p, p)  # bad:lazy-slack

    def row_vector(x: tk.gl()):
        o = tk.rt(tk.fp32, 16, 32)
        tk.rescale_rows(o, tk.row_vec(o))  # bad:lazy-vec

    expect_tagged_type_error(bf16_scores, "lazy-dtype", "fp32 row-layout register tile")
    expect_tagged_type_error(tile_slack, "lazy-slack", "slack must be a scalar")
    expect_tagged_type_error(row_vector, "lazy-vec", "rescale_rows", "one value per row")

"""Warp-level FlashAttention forward, after the ThunderKittens blog's RTX 4090 kernel.

Each warp owns 16 query rows (kept in registers). Per step, each warp stages one 16-row tile of K and of V into
shared memory; after a barrier every warp sweeps all the block's K/V tiles with mma.sync, keeping an online softmax
(running row max and row sum, exp2 with the scale folded in). Ragged N: Q/K/V tails load as zeros, masked logits are
-inf, and the O store is clipped. Causal masks align to the bottom-right corner (query i sees keys
j <= i + N_kv - N_q), as FlashAttention does.
"""
import math

import pykittens as tk


@tk.kernel(warps="W")
def warp_attention(q: tk.gl(tk.bf16), k: tk.gl(tk.bf16), v: tk.gl(tk.bf16), o: tk.gl(tk.bf16),
                   scale_log2: tk.f32, D: tk.constexpr, W: tk.constexpr, CAUSAL: tk.constexpr):
    b, h = tk.block_idx.z, tk.block_idx.y
    h_kv = tk.let(h // (q.depth // k.depth))  # GQA: query heads share a K/V head
    q_tile = tk.let(tk.block_idx.x * W + tk.warp_id())
    k_smem, v_smem = tk.st(tk.bf16, 16, D, count=W), tk.st(tk.bf16, 16, D, count=W)
    q_reg, k_reg, v_reg = tk.rt(tk.bf16, 16, D), tk.rt(tk.bf16, 16, D), tk.rt(tk.bf16, 16, D, "col")
    att, att_bf, o_reg = tk.rt(tk.fp32, 16, 16), tk.rt(tk.bf16, 16, 16), tk.rt(tk.fp32, 16, D)
    max_vec, max_scaled, max_last, norm_vec = (tk.col_vec(att) for _ in range(4))

    tk.load(q_reg, q, (b, h, q_tile, 0), oob=0.0)
    tk.neg_infty(max_vec)
    tk.zero(norm_vec)
    tk.zero(o_reg)
    shift = tk.let(k.rows - q.rows)  # bottom-right causal alignment
    n_blocks = tk.cdiv(k.rows, 16 * W)
    if CAUSAL:  # skip key blocks that lie wholly above the diagonal of this block's last query row
        last_row = tk.minimum((tk.block_idx.x + 1) * 16 * W, q.rows) - 1 + shift
        n_blocks = tk.minimum(n_blocks, last_row // (16 * W) + 1)
    for kb in tk.range(n_blocks):
        tk.load(k_smem[tk.warp_id()], k, (b, h_kv, kb * W + tk.warp_id(), 0), oob=0.0)
        tk.load(v_smem[tk.warp_id()], v, (b, h_kv, kb * W + tk.warp_id(), 0), oob=0.0)
        tk.sync()
        for s in range(W):
            k0 = (kb * W + s) * 16  # first key of this tile
            tk.load(k_reg, k_smem[s])
            tk.mm_ABt(att, q_reg, k_reg)
            tk.right_fill(att, att, k.rows - k0, -math.inf)
            if CAUSAL:
                tk.tril(att, att, q_tile * 16 + shift - k0, -math.inf)
            tk.online_softmax(att, max_vec, max_scaled, norm_vec, max_last, scale_log2)
            tk.copy(att_bf, att)
            tk.load(v_reg, v_smem[s])
            tk.mul_row(o_reg, o_reg, max_last)
            tk.mma_AB(o_reg, att_bf, v_reg, o_reg)
        tk.sync()
    tk.div_row(o_reg, o_reg, norm_vec)
    tk.store(o, o_reg, (b, h, q_tile, 0), clip=True)

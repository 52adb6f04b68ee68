"""Train a small GPT with pykittens attention and with PyTorch SDPA, side by side: the loss curves should agree.

    python examples/gpt_training.py --steps 300 --out results      # on an H100: writes gpt_training.{json,png}

The data is synthetic but learnable: token sequences from a fixed random Markov chain (each token has a handful of
likely successors), so the loss falls from ln(vocab) toward the chain's entropy. Both runs start from the same
weights and see the same batches; attention gets bf16 q, k, v in both (the rest of the model is fp32), so any gap
between the curves is the attention kernels' own difference (forward and backward). The curves are plotted on one
chart together with their difference.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, attention):
        super().__init__()
        self.heads, self.attention = heads, attention
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        B, N, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, N, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = self.attention(q.bfloat16(), k.bfloat16(), v.bfloat16())  # (B, H, N, D)
        x = x + self.proj(a.float().transpose(1, 2).reshape(B, N, d))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, d, heads, layers, seq, attention):
        super().__init__()
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Parameter(torch.randn(seq, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, attention) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, tokens):
        x = self.emb(tokens) + self.pos[: tokens.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


def markov_batches(vocab, seq, batch, steps, device, seed=0):
    """Sequences from a fixed random Markov chain with 4 likely successors per token."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.full((vocab, vocab), -4.0)
    logits.scatter_(1, torch.randint(vocab, (vocab, 4), generator=g), 2.0)
    trans = torch.softmax(logits, -1)
    for _ in range(steps):
        t = torch.empty(batch, seq + 1, dtype=torch.long)
        t[:, 0] = torch.randint(vocab, (batch,), generator=g)
        for i in range(seq):
            t[:, i + 1] = torch.multinomial(trans[t[:, i]], 1, generator=g).squeeze(1)
        yield t.to(device)


def train(attention, cfg, device, init_state=None):
    torch.manual_seed(cfg["seed"])
    model = GPT(cfg["vocab"], cfg["d"], cfg["heads"], cfg["layers"], cfg["seq"], attention).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    losses = []
    for step, t in enumerate(markov_batches(cfg["vocab"], cfg["seq"], cfg["batch"], cfg["steps"], device)):
        loss = F.cross_entropy(model(t[:, :-1]).flatten(0, 1), t[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % max(1, cfg["steps"] // 10) == 0:
            print(f"  step {step:4d}  loss {losses[-1]:.4f}", file=sys.stderr)
    return losses, model


def main(argv=None) -> bool:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=None, help="write gpt_training.json and .png here")
    p.add_argument("--tiny", action="store_true", help="a few steps of a tiny model (CPU: runs in the interpreter)")
    args = p.parse_args(argv)
    from pykittens.kernels import attention as pk_attention
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    cfg = dict(vocab=256, d=512, heads=8, layers=4, seq=1024, batch=16, lr=1e-3, steps=args.steps, seed=0)
    if args.tiny:
        cfg.update(vocab=32, d=128, heads=2, layers=1, seq=48, batch=2, steps=min(args.steps, 3))
    init = GPT(cfg["vocab"], cfg["d"], cfg["heads"], cfg["layers"], cfg["seq"], None).state_dict()
    runs = {}
    for name, attn in (("pykittens", lambda q, k, v: pk_attention(q, k, v, causal=True)),
                       ("sdpa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))):
        print(f"training with {name} attention on {device}", file=sys.stderr)
        t0 = time.perf_counter()
        runs[name], _ = train(attn, cfg, device, init)
        print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    a, b = runs["pykittens"], runs["sdpa"]
    tail = max(1, len(a) // 10)
    gap = abs(sum(a[-tail:]) - sum(b[-tail:])) / tail
    # (a tiny run's 3 steps need not lower the loss from every random init: there only the two runs must agree)
    ok = all(math.isfinite(x) for x in a) and gap < 0.05 and (args.tiny or a[-1] < a[0])
    print(f"final loss pykittens {a[-1]:.4f}, sdpa {b[-1]:.4f}; mean gap over the last {tail} steps {gap:.4f} "
          f"-> {'PASS' if ok else 'FAIL'}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        ctx = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
               "config": cfg}
        (args.out / "gpt_training.json").write_text(json.dumps({"context": ctx, "losses": runs}, indent=1))
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, height_ratios=(3, 1))
        for name, ls in runs.items():
            ax.plot(ls, label=f"{name} attention", lw=1.2)
        ax.set_ylabel("training loss")
        ax.set_title(f"GPT ({cfg['layers']} layers, d={cfg['d']}, seq {cfg['seq']}) on {ctx['device']}", fontsize=10)
        ax.legend()
        ax2.plot([x - y for x, y in zip(a, b)], color="gray", lw=0.8)
        ax2.set_ylabel("difference")
        ax2.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(args.out / "gpt_training.png", dpi=120)
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

"""A list-scheduling model of the causal D=64 forward's grid: how much of a launch is the ragged tail, by launch order.

Blocks are dispatched in launch order, each to the SM that frees first (one block per SM); a block takes a fixed
cost plus its key steps (the longest of its 3 consumers'; a last step 64 keys wide costs less, DIAG64; the head's
first block also runs the leftover tiles, EXTRA). Prints, per N of BENCH.md's grid, the makespan over the ideal
(total block time / SMs) when groups of G heads launch together, each group walked longest block first (G = 1: the
default order, one head after another; G = heads: HEADS_FIRST). Constants from the block anatomy of
results/timeline_forward.md; a model, not a measurement (NOTES.md, session 17, compares it with A/B runs).
    python3 scripts/schedule_model.py
"""
import heapq


def block_times(n, fixed=2.8, step=1.25, half=0.7, consumers=3):
    """One head's block times (µs), longest first."""
    full, left = divmod(n // 64, consumers)
    times = []
    for qb in reversed(range(full)):
        tile0 = qb * consumers + left
        steps = max(((tile0 + c + 1) * 64 + 127) // 128 for c in range(consumers))
        last = half if (tile0 + consumers) * 64 % 128 == 64 else step
        times.append(fixed + (steps - 1) * step + last + (step if qb == 0 and left else 0))
    return times


def tail_loss(n, group, heads_total, sms=132):
    """Makespan / ideal − 1 for groups of ``group`` heads launched rank by rank."""
    one, order = block_times(n), []
    for g in range(0, heads_total, group):
        order += [t for t in one for _ in range(min(group, heads_total - g))]
    free = [0.0] * sms
    for t in order:
        heapq.heappush(free, heapq.heappop(free) + t)
    return max(free) / (sum(order) / sms) - 1


if __name__ == "__main__":
    groups = (1, 2, 4, 8, 16, 32)
    print("causal D=64 forward, B·N = 16k, H = 32: tail loss by head group G (G = 32: HEADS_FIRST)")
    print("N      " + "".join(f"G={g:<7d}" for g in groups))
    for n in (1024, 2048, 4096, 8192, 16384):
        print(f"{n:<7d}" + "".join(f"{tail_loss(n, g, 16384 // n * 32):<9.1%}" for g in groups))

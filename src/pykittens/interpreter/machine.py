"""The CPU interpreter: runs a kernel's IR on CPU tensors, one block (or one thread-block cluster) after another.

Inside a block, warps advance statement by statement together; every register tile holds one value per warp
(a tensor of shape ``(warps, rows, cols)``), and an *active mask* says which warps execute the current statement
(loops whose bounds differ between warps narrow it). A branch whose condition differs between warps forks: its two
sides run as coroutines (generators) that interleave at waits — barriers, semaphore waits — as producer and
consumer warpgroups do on the GPU. A state where every coroutine waits on something that can never happen is
reported as ``tk.DeadlockError`` with the lines that wait. Because real warps do not run in lockstep, shared
memory carries shadow state to catch what lockstep execution would hide: which warp last wrote each element and which
warps read it since the last barrier (a race otherwise), and whether it was ever written (an uninitialised read).
The blocks of a cluster run together, their coroutines interleaved at waits, each with its own shared memory;
ops that reach into a peer block (multicast TMA, remote semaphore arrivals) find it in ``Machine.cluster``.
"""
from __future__ import annotations

import inspect
import math

import torch

from .. import ir
from ..errors import (DeadlockError, InterpreterError, OutOfBoundsError, RaceError, UninitializedReadError,
                      check_cluster_grid)
from ..types import GL, RT, RV, ST, SV


class SharedArray:
    """A shared tile/vector (array): logical values plus race and initialisation shadows, per element."""

    def __init__(self, var: ir.Var):
        shape = tuple(var.count) + tuple(var.type.shape)
        self.var = var
        # poison: NaN, so an unchecked read of garbage cannot look plausible
        self.data = torch.full(shape, float("nan"), dtype=var.type.dtype.torch)
        self.written = torch.zeros(shape, dtype=torch.bool)
        self.writer = torch.full(shape, -1, dtype=torch.int16)
        self.write_epoch = torch.full(shape, -1, dtype=torch.int32)
        self.readers = torch.zeros(shape, dtype=torch.int64)  # bitmask of warps that read since read_epoch
        self.read_epoch = torch.full(shape, -1, dtype=torch.int32)
        self.pending = torch.zeros(shape, dtype=torch.bool)  # async copy issued, not yet waited for


class Machine:
    """State of one block while the interpreter runs it. Op ``interpret`` methods use this API."""

    def __init__(self, kir: ir.KernelIR, block: tuple, grid: tuple, env: dict, globals_: dict):
        self.kir = kir
        self.W = kir.warps
        self.env = dict(env)
        self.env.update({"warp_id": torch.arange(self.W)})
        for a, v in zip("xyz", block):
            self.env[f"block_idx.{a}"] = v
        for a, v in zip("xyz", grid):
            self.env[f"grid_dim.{a}"] = v
        self.globals = globals_  # Var -> 4-D CPU tensor (a view of the caller's tensor)
        self.cluster = [self]  # the blocks of this block's cluster, by rank (run_kernel links them)
        self.cluster_barrier = {"arrived": 0, "gen": 0}  # tk.cluster_sync's state, shared by the cluster
        self.env["cluster_rank"] = 0
        self.regs: dict = {}
        self.reg_written: dict = {}
        self.smem: dict = {}
        self.pending_regs: dict = {}  # (var, warp) -> name of the async op still writing it
        self.barriers: dict = {}  # barrier id -> arrival state
        self.semaphores: dict = {}  # (Var, index) -> SemaphoreState
        self.epoch = 0
        self.active = torch.ones(self.W, dtype=torch.bool)
        self.loc = None
        self.stmt = None

    # ------------------------------------------------------------------------------------------ errors
    def error(self, cls, msg: str):
        raise cls(msg, self.loc)

    # ------------------------------------------------------------------------------------------ scalars
    def eval(self, e):
        """Value of a scalar expression: a Python number (uniform) or a tensor with one value per warp."""
        if isinstance(e, (int, float)):
            return e
        if isinstance(e, ir.Const):
            return e.value
        if isinstance(e, ir.Sym):
            if e.name not in self.env:
                self.error(InterpreterError, f"device scalar {e.name} used outside its scope")
            return self.env[e.name]
        if isinstance(e, ir.BinOp):
            return _binop(e.op, self.eval(e.a), self.eval(e.b), e.type)
        if isinstance(e, ir.Call):
            args = [self.eval(a) for a in e.args]
            if e.fn in ("min", "max"):
                if any(isinstance(a, torch.Tensor) for a in args):
                    t = [torch.as_tensor(a) for a in args]
                    return torch.minimum(*t) if e.fn == "min" else torch.maximum(*t)
                return min(args) if e.fn == "min" else max(args)
            if e.fn == "not":
                return ~torch.as_tensor(args[0]).bool() if isinstance(args[0], torch.Tensor) else int(not args[0])
        raise TypeError(f"cannot evaluate {e!r}")

    def scalar(self, e, w: int):
        """Value of a scalar expression for warp ``w`` as a Python number."""
        v = self.eval(e)
        if isinstance(v, torch.Tensor):
            v = v.reshape(-1)[w] if v.numel() > 1 else v.reshape(-1)[0]
            return v.item()
        return v

    def warps(self):
        """Indices of the warps executing the current statement."""
        return [int(w) for w in torch.nonzero(self.active).flatten()]

    def warpgroups(self, size: int = 4):
        """Indices of the warpgroups (``size`` consecutive warps) executing a warpgroup-scope op. Each must be
        active as a whole: a warpgroup op reached by only some of its warps would hang (or be wrong) on the GPU."""
        if self.W % size:
            self.error(InterpreterError, f"warpgroup ops need a multiple of {size} warps per block, got {self.W}")
        act = self.active.view(-1, size)
        partial = act.any(1) & ~act.all(1)
        if bool(partial.any()):
            g = int(torch.nonzero(partial)[0])
            self.error(DeadlockError, f"warpgroup {g} runs a warpgroup op with only some of its warps "
                                      f"({act[g].tolist()}): all {size} must take part")
        return [int(g) for g in torch.nonzero(act.all(1)).flatten()]

    # ------------------------------------------------------------------------------------------ async results
    def mark_pending(self, var, warps, what: str):
        """Register results of an async op (e.g. wgmma) not yet waited for: reading them is an error until
        ``complete_pending`` runs."""
        for w in warps:
            self.pending_regs[(var, w)] = what

    def complete_pending(self, warps):
        for key in [k for k in self.pending_regs if k[1] in warps]:
            del self.pending_regs[key]

    # ------------------------------------------------------------------------------------------ registers
    def read(self, var) -> torch.Tensor:
        """A register tile/vector for all warps, as float32 (shape ``(warps, *shape)``); must be initialised."""
        if var.alias is not None:  # a sub-tile (tk.subtile): that region of its base tile
            base, r0, c0 = var.alias
            return self.read(base)[:, r0:r0 + var.type.rows, c0:c0 + var.type.cols]
        if var not in self.regs or not bool(self.reg_written[var][self.active].all()):
            self.error(UninitializedReadError, f"{var.name} ({var.type}) is read before it was written")
        if self.pending_regs:
            for w in self.warps():
                if (var, w) in self.pending_regs:
                    self.error(RaceError, f"{var.name} is read by warp {w} while the async "
                                          f"{self.pending_regs[(var, w)]} writing it is still in flight (wait first)")
        return self.regs[var].float()

    def write(self, var, value: torch.Tensor):
        """Write ``value`` (shape ``(warps, *shape)`` or broadcastable) to the active warps' copies of ``var``."""
        shape = (self.W,) + tuple(var.type.shape)
        value = torch.as_tensor(value, dtype=torch.float32).expand(shape)
        if var.alias is not None:  # write the region of the base tile (which then counts as written)
            base, r0, c0 = var.alias
            self._ensure(base)
            region = self.regs[base][:, r0:r0 + var.type.rows, c0:c0 + var.type.cols]
            mask = self.active.view((self.W, 1, 1))
            region.copy_(torch.where(mask, value.to(region.dtype), region))
            self.reg_written[base] = self.reg_written[base] | self.active
            return
        self._ensure(var)
        mask = self.active.view((self.W,) + (1,) * len(var.type.shape))
        self.regs[var] = torch.where(mask, value.to(var.type.dtype.torch), self.regs[var])
        self.reg_written[var] = self.reg_written[var] | self.active

    def write_warp(self, var, w: int, value: torch.Tensor):
        """Write one warp's copy of ``var``."""
        if var.alias is not None:
            base, r0, c0 = var.alias
            self._ensure(base)
            self.regs[base][w, r0:r0 + var.type.rows, c0:c0 + var.type.cols] = value.to(self.regs[base].dtype)
            self.reg_written[base][w] = True
            return
        self._ensure(var)
        self.regs[var][w] = value.to(var.type.dtype.torch)
        self.reg_written[var][w] = True

    def _ensure(self, var):
        """Registers for ``var`` (NaN, none written) if it has none yet."""
        if var not in self.regs:
            self.regs[var] = torch.full((self.W,) + tuple(var.type.shape), float("nan"), dtype=var.type.dtype.torch)
            self.reg_written[var] = torch.zeros(self.W, dtype=torch.bool)

    # ------------------------------------------------------------------------------------------ shared memory
    def _slot(self, ref, w: int):
        if isinstance(ref, ir.View):  # a shared sub-tile: its base's slot (smem_read/write shift the region)
            return self._slot(ref.base, w)
        if isinstance(ref, ir.Var):
            return ref, ()
        idx = tuple(int(self.scalar(i, w)) for i in ref.index)
        for i, c in zip(idx, ref.var.count):
            if not 0 <= i < c:
                self.error(OutOfBoundsError, f"index {idx} out of range for {ref.var.name} with shape {ref.var.count}")
        return ref.var, idx

    def _array(self, var):
        if var not in self.smem:
            self.smem[var] = SharedArray(var)
        return self.smem[var]

    def smem_read(self, ref, w: int, region=None) -> torch.Tensor:
        """Warp ``w`` reads (a region of) a shared tile/vector; returns float32. Checks races and initialisation."""
        var, idx = self._slot(ref, w)
        a = self._array(var)
        sel = idx + _region(ref, region)
        if bool(a.pending[sel].any()):
            self.error(RaceError, f"{ref} is read while an async copy into it is still in flight "
                                  f"(call tk.load_async_wait() first)")
        if not bool(a.written[sel].all()):
            self.error(UninitializedReadError, f"warp {w} reads elements of {ref} that were never written")
        other = (a.write_epoch[sel] == self.epoch) & (a.writer[sel] != w)
        if bool(other.any()):
            writer = int(a.writer[sel][other][0])
            self.error(RaceError, f"warp {w} reads {ref} written by warp {writer} with no barrier in between")
        fresh = a.read_epoch[sel] != self.epoch
        r = a.readers[sel]
        r = torch.where(fresh, torch.zeros_like(r), r) | (1 << w)
        a.readers[sel] = r
        a.read_epoch[sel] = self.epoch
        return a.data[sel].float()

    def smem_write(self, ref, w: int, value: torch.Tensor, region=None, pending=False, async_proxy=False,
                   target: Machine | None = None):
        """Warp ``w`` writes (a region of) a shared tile/vector. Checks races against other warps' accesses.

        ``async_proxy``: the copy engine (TMA) writes it; ordering comes from a semaphore, not from barriers, so the
        barrier-epoch race checks do not apply — the data stays ``pending`` until the semaphore's phase completes
        (returns the (array, selection) to hand to ``SemaphoreState.complete_tx``). ``target``: the block of the
        cluster whose copy of ``ref`` is written (a multicast), indexed as this block's warp ``w`` indexes it."""
        var, idx = self._slot(ref, w)
        if target is not None and not async_proxy:
            self.error(InterpreterError, "only the copy engine writes another block's shared memory")
        a = (target or self)._array(var)
        sel = idx + _region(ref, region)
        if async_proxy:
            a.data[sel] = value.to(a.data.dtype)
            a.written[sel] = True
            a.writer[sel] = -1
            a.write_epoch[sel] = -1
            a.pending[sel] = True
            return a, sel
        other_w = (a.write_epoch[sel] == self.epoch) & (a.writer[sel] != w)
        other_r = (a.read_epoch[sel] == self.epoch) & ((a.readers[sel] & ~(1 << w)) != 0)
        if bool(other_w.any()) or bool(other_r.any()):
            who = "written" if bool(other_w.any()) else "read"
            self.error(RaceError, f"warp {w} writes {ref}, which another warp {who} with no barrier in between")
        a.data[sel] = value.to(a.data.dtype)
        a.written[sel] = True
        a.writer[sel] = w
        a.write_epoch[sel] = self.epoch
        if pending:
            a.pending[sel] = True

    def semaphore(self, ref, w: int, init: int | None = None, target: Machine | None = None) -> SemaphoreState:
        """The state of semaphore ``ref`` as warp ``w`` indexes it; ``init`` (re)initialises it. ``target``: the
        block of the cluster whose copy of the semaphore is meant."""
        var, idx = self._slot(ref, w)
        key, sems = (var, idx), (target or self).semaphores
        if init is not None:
            sems[key] = SemaphoreState(init)
        if key not in sems:
            where = f" of cluster block {self.cluster.index(target)}" if target is not None else ""
            self.error(UninitializedReadError, f"semaphore {ref}{where} is used before tk.init_semaphore")
        return sems[key]

    def peer(self, rank: int) -> Machine:
        """The block of this block's cluster with ``rank``."""
        if not 0 <= rank < len(self.cluster):
            self.error(OutOfBoundsError, f"cluster block {rank} does not exist: the cluster has {len(self.cluster)}")
        return self.cluster[rank]

    def complete_async(self):
        """Async copies issued so far have landed (cp.async wait)."""
        for a in self.smem.values():
            a.pending.zero_()

    def barrier(self, bid=0, warps: int | None = None, wait: bool = True):
        """Barrier ``bid`` for ``warps`` warps (default: the whole block). ``bid`` may be a per-warp tensor of ids
        (consumer warpgroups each using their own). A generator: interpreters of ops that wait return it, and the
        executor runs it. Completing a barrier orders shared accesses before it with those after it (the race
        shadows start a new epoch). ``wait=False`` only arrives (``bar.arrive``)."""
        expected = self.W if warps is None else warps
        ids = torch.as_tensor(bid).expand(self.W)
        pending = []
        for i in sorted({int(x) for x in ids[self.active]}):
            arriving = self.active & (ids == i)
            b = self.barriers.setdefault(i, {"arrived": torch.zeros(self.W, dtype=torch.bool), "gen": 0})
            if bool((b["arrived"] & arriving).any()):
                self.error(DeadlockError, f"a warp arrives twice at barrier {i} before it completes")
            b["arrived"] |= arriving
            n = int(b["arrived"].sum())
            if n > expected:
                self.error(DeadlockError, f"{n} warps arrive at barrier {i}, which expects {expected}")
            if n == expected:
                b["arrived"].zero_()
                b["gen"] += 1
                self.epoch += 1
            else:
                pending.append((i, b, b["gen"]))
        if pending and wait:
            what = "; ".join(f"barrier {i}: {int(b['arrived'].sum())} of {expected} warps arrived (warps "
                             f"{[int(w) for w in torch.nonzero(b['arrived']).flatten()]})" for i, b, _ in pending)
            yield Wait(lambda: all(b["gen"] != g for _, b, g in pending), what, self.loc)

    # ------------------------------------------------------------------------------------------ global memory
    def gtensor(self, var) -> torch.Tensor:
        return self.globals[var]

    def global_read(self, var, b, d, r0, c0, nrows, ncols, oob=None) -> torch.Tensor:
        """``nrows x ncols`` elements at (b, d, r0, c0) as float32. Out of bounds is an error unless ``oob`` gives
        the value to read there instead."""
        t = self.globals[var]
        B, D, R, C = t.shape
        if not (0 <= b < B and 0 <= d < D) or r0 < 0 or c0 < 0:
            if oob is None:
                self.error(OutOfBoundsError, f"{var.name}[{b}, {d}, {r0}, {c0}] is outside shape {tuple(t.shape)}")
            return torch.full((nrows, ncols), float(oob))
        if oob is None and (r0 + nrows > R or c0 + ncols > C):
            self.error(OutOfBoundsError, f"reading {nrows}x{ncols} at {var.name}[{b}, {d}, {r0}, {c0}] goes past "
                                         f"shape {tuple(t.shape)}")
        out = torch.full((nrows, ncols), float(oob if oob is not None else 0.0))
        rr, cc = max(0, min(nrows, R - r0)), max(0, min(ncols, C - c0))
        out[:rr, :cc] = t[b, d, r0:r0 + rr, c0:c0 + cc].float()
        return out

    def global_elements(self, var, b, d, r, c, n=1) -> torch.Tensor:
        """The ``n`` elements of row (b, d, r) of ``var`` from column c on, as a view (an error if any is outside)."""
        t = self.globals[var]
        B, D, R, C = t.shape
        if not (0 <= b < B and 0 <= d < D and 0 <= r < R and 0 <= c and c + n <= C):
            cols = f"{c}" if n == 1 else f"{c}:{c + n}"
            self.error(OutOfBoundsError, f"{var.name}[{b}, {d}, {r}, {cols}] is outside shape {tuple(t.shape)}")
        return t[b, d, r, c:c + n]

    def global_write(self, var, b, d, r0, c0, value: torch.Tensor, clip=False):
        """Write a 2-D block at (b, d, r0, c0). Out of bounds is an error unless ``clip`` drops those elements."""
        t = self.globals[var]
        B, D, R, C = t.shape
        nrows, ncols = value.shape
        inside = 0 <= b < B and 0 <= d < D and r0 >= 0 and c0 >= 0
        if not clip and (not inside or r0 + nrows > R or c0 + ncols > C):
            self.error(OutOfBoundsError, f"writing {nrows}x{ncols} at {var.name}[{b}, {d}, {r0}, {c0}] goes past "
                                         f"shape {tuple(t.shape)}")
        if not inside:
            return
        rr, cc = max(0, min(nrows, R - r0)), max(0, min(ncols, C - c0))
        t[b, d, r0:r0 + rr, c0:c0 + cc] = value[:rr, :cc].to(t.dtype)

    # ------------------------------------------------------------------------------------------ execution
    def run(self, stmts):
        """Run a statement list for the active warps to completion (raises DeadlockError if it cannot finish)."""
        run_together([self], stmts)

    def coroutine(self, stmts):
        """The statement list as a coroutine for the active warps. Blocks of several warpgroups run one coroutine
        per warpgroup: warpgroups of one role (e.g. consumers) may wait on different barriers at the same line,
        which lockstep execution could not express."""
        if self.W > 4 and self.W % 4 == 0:
            groups = [self.active & (torch.arange(self.W) // 4 == g) for g in range(self.W // 4)]
            return self._join([self._exec(stmts, m) for m in groups])
        return self._exec(stmts, self.active)

    def _exec(self, stmts, active):
        for s in stmts:
            self.active, self.loc, self.stmt = active, s.loc, s
            if isinstance(s, ir.Decl):
                continue
            if isinstance(s, ir.Let):
                self._bind(s.sym.name, self.eval(s.value), active)
            elif isinstance(s, ir.OpStmt):
                try:
                    r = s.op.interpret(self, *s.args, **s.attrs)
                    if inspect.isgenerator(r):
                        yield from self._resume_in(r, active, s)
                except InterpreterError:
                    raise
                except (RuntimeError, IndexError, ValueError) as e:
                    self.error(InterpreterError, f"{s.op.name}: {e}")
            elif isinstance(s, ir.If):
                cond = torch.as_tensor(self.eval(s.cond)).bool().expand(self.W)
                yes, no = active & cond, active & ~cond
                if bool(yes.any()) and bool(no.any()):
                    # warps disagree: both sides run as coroutines, interleaving at their waits
                    yield from self._join([self._exec(s.then, yes), self._exec(s.orelse, no)])
                elif bool(yes.any()):
                    yield from self._exec(s.then, yes)
                elif s.orelse:
                    yield from self._exec(s.orelse, no)
            elif isinstance(s, ir.For):
                yield from self._exec_for(s, active)
            else:
                raise TypeError(f"unknown statement {s!r}")
        self.active = active

    def _resume_in(self, gen, active, stmt):
        """Drive an op's wait generator; restore this coroutine's view of the machine after each resume."""
        for wait in gen:
            yield wait
            self.active, self.loc, self.stmt = active, stmt.loc, stmt

    @staticmethod
    def _join(gens):
        """Run coroutines to completion, switching at waits; yields upward when all of them wait."""
        waiting = {}  # gen -> Wait
        live = list(gens)
        while live:
            progressed = False
            for g in list(live):
                w = waiting.get(g)
                if w is not None and not w.ready():
                    continue
                try:
                    waiting[g] = next(g)
                except StopIteration:
                    live.remove(g)
                    waiting.pop(g, None)
                progressed = True
            if not progressed:
                ws = [waiting[g] for g in live]
                yield Wait(lambda ws=ws: any(w.ready() for w in ws), "; ".join(
                    f"{w.what} (line {w.loc[1] if w.loc else '?'})" for w in ws), ws[0].loc)

    def _exec_for(self, s: ir.For, active):
        start = torch.as_tensor(self.eval(s.start)).expand(self.W)
        stop = torch.as_tensor(self.eval(s.stop)).expand(self.W)
        step = int(self.eval(s.step))
        trips = torch.clamp((stop - start + step - 1) // step, min=0)
        n = int(trips[active].max()) if bool(active.any()) else 0
        uniform = bool((trips[active] == n).all()) and bool((start[active] == start[active][0]).all())
        for k in range(n):
            v = start + k * step
            self._bind(s.var.name, int(v[active][0]) if uniform else v, active)
            yield from self._exec(s.body, active & (k < trips))
        self.active = active

    def set_scalar(self, sym, value):
        """Set a ``tk.var`` scalar from an op (``value``: one per warp) for the warps executing it."""
        self._bind(sym.name, value, self.active)

    def _bind(self, name, value, active):
        """Set a scalar for the active warps only: coroutines of other warps may be inside the same loop or
        ``let`` at another iteration. A Python number is kept only while every warp shares it."""
        old = self.env.get(name)
        if bool(active.all()) and not isinstance(value, torch.Tensor):
            self.env[name] = value
            return
        base = torch.as_tensor(old if old is not None else 0).expand(self.W)
        self.env[name] = torch.where(active, torch.as_tensor(value).expand(self.W), base)


def _region(ref, region) -> tuple:
    """Index of ``region`` (slices relative to the tile ``ref`` names, default all of it) in the shared array: a
    sub-tile view (``tk.subtile``) shifts it by its origin."""
    if not isinstance(ref, ir.View):
        return tuple(region) if region else ()
    rs, cs = tuple(region) if region else (slice(None), slice(None))
    (r0, c0), (R, C) = (ref.row0, ref.col0), ref.type.shape

    def shift(sl, o, n):
        start, stop, step = sl.indices(n)
        return slice(o + start, o + stop, step)
    return shift(rs, r0, R), shift(cs, c0, C)


class SemaphoreState:
    """An mbarrier: a phase completes when its expected arrivals have arrived and its expected bytes have landed.
    ``phase`` counts completed phases; ``wait(parity)`` may pass once ``phase % 2 != parity``."""

    def __init__(self, arrivals: int):
        self.count = arrivals
        self.pending = arrivals
        self.tx = 0
        self.phase = 0
        self.landing: list = []  # (SharedArray, selection) written by TMA in this phase, visible once it completes

    def arrive(self, n: int = 1, tx: int = 0):
        self.pending -= n
        self.tx += tx
        if self.pending < 0:
            raise DeadlockError(f"semaphore got more arrivals than the {self.count} it was initialised with")
        self._maybe_complete()

    def complete_tx(self, nbytes: int, landing=None):
        self.tx -= nbytes
        if landing is not None:
            self.landing.append(landing)
        self._maybe_complete()

    def _maybe_complete(self):
        if self.pending == 0 and self.tx == 0:
            for arr, sel in self.landing:
                arr.pending[sel] = False
            self.landing.clear()
            self.phase += 1
            self.pending = self.count


class Wait:
    """What a coroutine waits for: ``ready()`` says when it may continue; ``what`` and ``loc`` explain a deadlock."""

    def __init__(self, ready, what: str, loc):
        self.ready, self.what, self.loc = ready, what, loc


def _binop(op, a, b, ty):
    tensor = isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return (a.float() if isinstance(a, torch.Tensor) else float(a)) / b
    if op in ("//", "%"):  # C semantics: truncate toward zero
        if tensor:  # warps outside the active mask may hold stale zeros: never divide by them
            b = torch.as_tensor(b)
            b = torch.where(b == 0, torch.ones_like(b), b)
            q = torch.div(torch.as_tensor(a), b, rounding_mode="trunc")
        else:
            q = abs(a) // abs(b) if isinstance(a, int) and isinstance(b, int) else math.trunc(abs(a) / abs(b))
            q = q if (a >= 0) == (b > 0) else -q
        return q if op == "//" else a - q * b
    if op in ("<", "<=", ">", ">=", "==", "!="):
        r = {"<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b,
             "==": lambda: a == b, "!=": lambda: a != b}[op]()
        return r if tensor else int(r)
    if op in ("&", "|", "^", "<<", ">>"):
        if tensor:
            a, b = (torch.as_tensor(x).long() if isinstance(x, torch.Tensor) else int(x) for x in (a, b))
        return {"&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b, "<<": lambda: a << b,
                ">>": lambda: a >> b}[op]()
    raise TypeError(f"unknown scalar op {op}")


def run_together(machines: list, stmts):
    """Run ``stmts`` on the blocks of one cluster, interleaved at waits; a state where every warp of every block
    waits on something that cannot happen is a DeadlockError."""
    gens = [m.coroutine(stmts) for m in machines]
    for wait in (gens[0] if len(gens) == 1 else Machine._join(gens)):
        # the top level has no one else to run: a wait that is not already satisfied can never be
        raise DeadlockError(f"every warp waits and none can proceed: {wait.what}", wait.loc)


def run_kernel(kir: ir.KernelIR, grid: tuple, scalars: dict, tensors: dict):
    """Run every block of ``grid`` in order, a cluster's blocks together. ``tensors`` maps gl Vars to 4-D CPU tensors
    (written in place)."""
    env = dict(scalars)
    for var, t in tensors.items():
        for d, n in zip("bdrc", t.shape):
            env[f"{var.name}.{d}"] = int(n)
    gx, gy, gz = grid
    n = kir.cluster
    check_cluster_grid(kir.name, grid, n)
    for z in range(gz):
        for y in range(gy):
            for x in range(0, gx, n):
                blocks = [Machine(kir, (x + r, y, z), grid, env, tensors) for r in range(n)]
                shared = {"arrived": 0, "gen": 0}
                for r, m in enumerate(blocks):
                    m.cluster, m.cluster_barrier, m.env["cluster_rank"] = blocks, shared, r
                run_together(blocks, kir.body)

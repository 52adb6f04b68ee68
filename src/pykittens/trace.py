"""Tracing: run the author's Python function once on symbolic values and record the IR.

Python values (ints, floats, lists, ``range``) are evaluated while tracing, so Python loops unroll. Device values
(``tk.warp_id()``, ``tk.block_idx.x``, scalar parameters, gl dimensions) are ``ir.Expr`` objects; device loops and
branches are spelled ``for i in tk.range(...)`` and ``with tk.if_(cond):`` / ``with tk.else_():``.
"""
from __future__ import annotations

import contextlib
import contextvars
import linecache
import os
import re
import sys

from . import ir
from .errors import KernelError, KernelSyntaxError, KernelTypeError
from .types import RT, RV, ST, SV, DType, Semaphore

MAX_SMEM_BYTES = 227 * 1024 - 1024  # H100 per-block opt-in limit, less the slack that 1024-byte alignment of the base takes

CPP_KEYWORDS = frozenset("""alignas alignof asm auto bool break case catch char char16_t char32_t class const constexpr
const_cast continue decltype default delete do double dynamic_cast else enum explicit export extern false float for
friend goto if inline int long mutable namespace new noexcept nullptr operator private protected public register
reinterpret_cast return short signed sizeof static static_assert static_cast struct switch template this
thread_local throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
blockIdx threadIdx gridDim blockDim min max""".split())
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_LIB_DIRS = (os.path.join(_PKG_DIR, "kernels"),)
_current: contextvars.ContextVar["Builder | None"] = contextvars.ContextVar("pykittens_builder", default=None)


def user_loc() -> tuple[str, int]:
    """(file, line) of the innermost frame that belongs to the kernel author (library kernels count as authors)."""
    f = sys._getframe(1)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_PKG_DIR) or fn.startswith(_LIB_DIRS):
            return (f.f_code.co_filename, f.f_lineno)
        f = f.f_back
    return ("?", 0)


class Builder:
    """Collects statements while one kernel is traced."""

    def __init__(self, name: str, warps: int):
        self.name = name
        self.warps = warps
        self.cluster = 1  # blocks per cluster (Kernel sets it from its declaration)
        self.mutable: set = set()  # names of tk.var scalars (tk.assign may set them)
        self.root: list = []
        self.stack: list[list] = [self.root]
        self.smem_bytes = 0
        self.used_names: dict[str, int] = {}
        self.last_if: ir.If | None = None
        self.tensor_maps: list = []  # (gl Var, ST) pairs that TMA ops use; each becomes a kernel parameter
        self.timeline = None  # int32 gl where tk.producer_consumer records its events (tk.timeline)
        self.ptxas_options: list[str] = []  # tk.ptxas_options: passed to ptxas when the kernel is compiled

    def tensor_map(self, gl_var, st_type) -> int:
        """Index of the TMA descriptor for copies between ``gl_var`` and tiles of type ``st_type``."""
        key = (gl_var, st_type)
        if key not in self.tensor_maps:
            self.tensor_maps.append(key)
        return self.tensor_maps.index(key)

    def append(self, stmt):
        self.stack[-1].append(stmt)
        self.last_if = stmt if isinstance(stmt, ir.If) else None

    def fresh(self, base: str) -> str:
        base = re.sub(r"\W", "_", base) or "v"
        if base in CPP_KEYWORDS:
            base += "_"
        n = self.used_names.get(base, 0)
        self.used_names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def alloc_smem(self, nbytes: int, align: int, loc) -> int:
        off = -(-self.smem_bytes // align) * align
        self.smem_bytes = off + nbytes
        if self.smem_bytes > MAX_SMEM_BYTES:
            raise KernelTypeError(f"shared memory over the limit: {self.smem_bytes} bytes allocated, at most "
                                  f"{MAX_SMEM_BYTES} per block", loc)
        return off


def builder() -> Builder:
    b = _current.get()
    if b is None:
        raise KernelSyntaxError("pykittens ops can only be called inside a @tk.kernel function while it is traced")
    return b


@contextlib.contextmanager
def tracing(b: Builder):
    token = _current.set(b)
    try:
        yield b
    finally:
        _current.reset(token)


def _assigned_name(loc, default: str) -> str:
    """The name on the left of ``name = tk.rt(...)`` at the author's line, for readable generated code."""
    m = re.match(r"\s*([A-Za-z_]\w*)\s*(?::[^=]*)?=[^=]", linecache.getline(loc[0], loc[1]))
    return m.group(1) if m else default


# ---------------------------------------------------------------------------------------------- declarations
def _declare(ty, count, default_name):
    b, loc = builder(), user_loc()
    count = (count,) if isinstance(count, int) else tuple(count or ())
    var = ir.Var(b.fresh(_assigned_name(loc, default_name)), ty, count)
    if isinstance(ty, (ST, SV, Semaphore)):
        n = 1
        for c in count:
            n *= c
        var.offset = b.alloc_smem(ty.nbytes * n, ty.align, loc)
    elif count:
        raise KernelTypeError("register tiles and vectors cannot form arrays; use a Python list of tiles", loc)
    b.append(ir.Decl(var, loc=loc))
    return var


def rt(dtype: DType, rows: int, cols: int, layout: str = "row") -> ir.Var:
    """Declare a register tile of ``rows x cols`` (multiples of 16) in ``layout`` ('row' or 'col')."""
    return _declare(_typed(RT, dtype, rows, cols, layout), (), "rt")


def rv(dtype: DType, length: int, layout: str = "ortho") -> ir.Var:
    """Declare a register vector. Prefer ``tk.col_vec(tile)`` / ``tk.row_vec(tile)``, which pick the layout."""
    return _declare(_typed(RV, dtype, length, layout), (), "rv")


def col_vec(tile: ir.Var, dtype: DType | None = None) -> ir.Var:
    """Declare a vector with one value per row of register tile ``tile`` (the result type of ``row_max``)."""
    return _declare(tile.type.col_vec(dtype), (), "col_vec")


def row_vec(tile: ir.Var, dtype: DType | None = None) -> ir.Var:
    """Declare a vector with one value per column of register tile ``tile`` (the result type of ``col_max``)."""
    return _declare(tile.type.row_vec(dtype), (), "row_vec")


def st(dtype: DType, rows: int, cols: int, count=(), swizzle: int | None = None) -> ir.Var:
    """Declare a shared tile (or an array of them: ``count=4`` or ``count=(2, 4)``; index with ``t[i]``)."""
    return _declare(_typed(ST, dtype, rows, cols, swizzle), count, "st")


def sv(dtype: DType, length: int, count=()) -> ir.Var:
    """Declare a shared vector (or an array of them)."""
    return _declare(_typed(SV, dtype, length), count, "sv")


def subtile(tile, shape: tuple, index: tuple) -> ir.View:
    """The ``shape`` = (rows, cols) sub-tile at tile index ``index`` = (i, j) (Python ints) of a shared tile: elements
    [i·rows, (i+1)·rows) × [j·cols, (j+1)·cols), usable wherever a shared tile is (TMA, wgmma, loads, stores).

    It must be contiguous in the tile's swizzled layout (``types.swizzled_offset``): whole column atoms (each
    ``swizzle`` bytes wide) with every row, or — in a tile one atom wide — any 16-row multiple of rows."""
    from .types import ST
    t = kind(tile)
    if isinstance(t, RT):
        return _register_subtile(tile, t, shape, index)
    if not isinstance(t, ST):
        fail(f"tk.subtile takes a shared or register tile, got {t}")
    if isinstance(tile, ir.View):
        fail("tk.subtile of a sub-tile: take the sub-tile of the whole tile instead")
    rows, cols, r0, c0 = _subtile_origin(t, shape, index)
    atom = t.swizzle // t.dtype.size if t.swizzle else t.cols  # columns per atom
    if rows == t.rows and c0 % atom == 0 and cols % atom == 0:
        offset = (c0 // atom) * t.rows * (t.swizzle or t.cols * t.dtype.size)
    elif cols == t.cols and t.cols == atom:
        offset = r0 * t.cols * t.dtype.size
    else:
        fail(f"sub-tile {rows}x{cols} at index {index} of {t} is not contiguous: take whole {atom}-column atoms with "
             f"all {t.rows} rows, or row ranges of a tile one atom ({atom} columns) wide")
    return ir.View(tile, ST(t.dtype, rows, cols, t.swizzle), r0, c0, offset)


def _subtile_origin(t, shape, index) -> tuple:
    """(rows, cols, first row, first col) of sub-tile ``shape`` at tile index ``index`` of a tile of type ``t``,
    checked: Python ints, 16x16 steps, inside the tile."""
    (rows, cols), (i, j) = shape, index
    if not all(isinstance(x, int) for x in (rows, cols, i, j)):
        fail(f"tk.subtile shape and index are Python ints, got {shape} and {index}")
    r0, c0 = i * rows, j * cols
    if rows < 16 or cols < 16 or rows % 16 or cols % 16 or r0 < 0 or c0 < 0 or r0 + rows > t.rows or c0 + cols > t.cols:
        fail(f"sub-tile {rows}x{cols} at index {index} does not fit {t} in 16x16 steps")
    return rows, cols, r0, c0


def _register_subtile(tile, t, shape, index) -> ir.Var:
    """A register sub-tile: a name for a block of 16x16 subtiles of ``tile`` (no copy: reads and writes go to the
    tile). Any 16-multiple block works, also as a wgmma accumulator or register A (16 rows)."""
    rows, cols, r0, c0 = _subtile_origin(t, shape, index)
    base = tile
    if tile.alias is not None:  # a sub-tile of a sub-tile: relative to the root tile
        base, br, bc = tile.alias
        r0, c0 = r0 + br, c0 + bc
    b, loc = builder(), user_loc()
    var = ir.Var(b.fresh(_assigned_name(loc, "sub")), _typed(RT, t.dtype, rows, cols, t.layout), alias=(base, r0, c0))
    b.append(ir.Decl(var, loc=loc))
    return var


def semaphore(count=()) -> ir.Var:
    """Declare a semaphore (mbarrier) in shared memory, or an array of them. Initialise with tk.init_semaphore."""
    return _declare(Semaphore(), count, "sem")


def _typed(cls, *args):
    try:
        return cls(*args)
    except ValueError as e:
        raise KernelTypeError(str(e), user_loc()) from None


# ---------------------------------------------------------------------------------------------- device scalars
def warp_id() -> ir.Expr:
    """Index of the calling warp inside the block (0 .. warps-1)."""
    return ir.Sym("warp_id")


def cluster_rank() -> ir.Expr:
    """Index of the calling block inside its thread-block cluster (0 .. cluster-1; 0 without clusters)."""
    return ir.Sym("cluster_rank")


class _Dim3:
    def __init__(self, prefix):
        self.x, self.y, self.z = (ir.Sym(f"{prefix}.{a}") for a in "xyz")


block_idx = _Dim3("block_idx")
grid_dim = _Dim3("grid_dim")


def launch_index() -> ir.Expr:
    """The calling block's place in launch order: x + grid.x · (y + grid.y · z) (x fastest, then y, then z: the
    order in which the hardware starts blocks)."""
    return block_idx.x + grid_dim.x * (block_idx.y + grid_dim.y * block_idx.z)


def block_after(n) -> tuple[ir.Expr, ir.Expr, ir.Expr, ir.Expr]:
    """(exists, x, y, z): the block index of the block ``n`` places after the calling one in launch order
    (``launch_index``), and whether the grid has it. With one block per SM, the block an SM count later starts
    about when the calling one ends: e.g. warm L2 for it."""
    gx, gy = grid_dim.x, grid_dim.y
    later = let(launch_index() + n, "later_block")
    return later < gx * gy * grid_dim.z, later % gx, later // gx % gy, later // (gx * gy)


def let(value, name: str | None = None) -> ir.Sym:
    """Bind a device scalar to a name once (the generated code computes it once, under that name)."""
    b, loc = builder(), user_loc()
    value = ir.as_expr(value)
    sym = ir.Sym(b.fresh(name or _assigned_name(loc, "s")), value.type)
    b.append(ir.Let(sym, value, loc=loc))
    return sym


def ptxas_options(*options: str):
    """Options for ptxas (the assembler NVRTC runs on the kernel's PTX), e.g. ``"--register-usage-level=8"``:
    they change how ptxas allocates registers and schedules, not what the kernel computes, so the interpreter
    ignores them. Part of the compile's cache key. Call it while the kernel is traced (e.g. from a constexpr)."""
    b = builder()
    for o in options:
        if not (isinstance(o, str) and o.startswith("-") and o.strip() == o and " " not in o):
            fail(f"tk.ptxas_options takes options such as '--register-usage-level=8' (one per argument), got {o!r}")
        b.ptxas_options.append(o)


def var(value, name: str | None = None) -> ir.Sym:
    """A mutable device scalar (int or float, from ``value``), initialised to ``value`` where it is declared and
    changed with ``tk.assign`` — e.g. a counter carried through loops whose trip counts differ."""
    b, loc = builder(), user_loc()
    value = ir.as_expr(value)
    sym = ir.Sym(b.fresh(name or _assigned_name(loc, "v")), value.type)
    b.mutable.add(sym.name)
    b.append(ir.Let(sym, value, mode="var", loc=loc))
    return sym


def assign(sym, value):
    """Set a ``tk.var`` scalar to ``value`` (a device scalar or number)."""
    b, loc = builder(), user_loc()
    if not isinstance(sym, ir.Sym) or sym.name not in b.mutable:
        raise KernelTypeError(f"tk.assign needs a scalar made by tk.var, got {sym!r}", loc)
    b.append(ir.Let(sym, ir.as_expr(value), mode="set", loc=loc))


def minimum(a, b) -> ir.Expr:
    a, b = ir.as_expr(a), ir.as_expr(b)
    return ir.Call("min", (a, b), a.type)


def maximum(a, b) -> ir.Expr:
    a, b = ir.as_expr(a), ir.as_expr(b)
    return ir.Call("max", (a, b), a.type)


def cdiv(a, b):
    """Ceiling division of non-negative values; works on Python ints and device scalars."""
    return (a + b - 1) // b


# ---------------------------------------------------------------------------------------------- control flow
def range(start, stop=None, step=1):
    """A loop that runs on the device: ``for i in tk.range(n):``, ``tk.range(start, stop, step)``; bounds and step
    may be device scalars (the step must be positive). The body is traced once.

    Python's own ``range`` over Python ints unrolls instead.
    """
    if stop is None:
        start, stop = 0, start
    b, loc = builder(), user_loc()
    if isinstance(step, int) and step <= 0:
        raise KernelSyntaxError("tk.range needs a positive step (a device scalar step must be positive too)", loc)
    var = ir.Sym(b.fresh(_loop_name(loc)))
    node = ir.For(var, ir.as_expr(start), ir.as_expr(stop), ir.as_expr(step), loc=loc)
    b.append(node)
    b.stack.append(node.body)
    try:
        yield var
    finally:
        b.stack.pop()
        b.last_if = None


def _loop_name(loc) -> str:
    m = re.match(r"\s*for\s+([A-Za-z_]\w*)\s+in", linecache.getline(loc[0], loc[1]))
    return m.group(1) if m else "i"


@contextlib.contextmanager
def if_(cond):
    """``with tk.if_(cond):`` runs its body on the device only where ``cond`` holds (per warp)."""
    b, loc = builder(), user_loc()
    if not isinstance(cond, ir.Expr):
        raise KernelSyntaxError("tk.if_ needs a device condition; for a Python value use a plain `if`", loc)
    node = ir.If(cond, loc=loc)
    b.append(node)
    b.stack.append(node.then)
    try:
        yield
    finally:
        b.stack.pop()
        b.last_if = node


@contextlib.contextmanager
def else_():
    """``with tk.else_():`` right after a ``with tk.if_(...)`` block."""
    b, loc = builder(), user_loc()
    node = b.last_if
    if node is None or node.orelse:
        raise KernelSyntaxError("tk.else_() must directly follow a `with tk.if_(...)` block", loc)
    b.stack.append(node.orelse)
    try:
        yield
    finally:
        b.stack.pop()
        b.last_if = None


# ---------------------------------------------------------------------------------------------- op emission
def emit(op, *args, **attrs):
    """Type-check one op call and record it. Called by every op's user-facing function."""
    b, loc = builder(), user_loc()
    try:
        op.check(*args, **attrs)
    except KernelError as e:
        if e.loc is None:
            raise type(e)(e.msg, loc) from None
        raise
    b.append(ir.OpStmt(op, args, attrs, loc=loc))


def fail(msg: str):
    """Raise a type error from an op's type rule; ``emit`` attaches the author's line."""
    raise KernelTypeError(msg)


def kind(x):
    """The type of an op operand: a Var's, Ref's or View's type, ``'scalar'`` for device scalars and numbers."""
    if isinstance(x, ir.View):
        return x.type
    if isinstance(x, (ir.Var, ir.Ref)):
        if isinstance(x, ir.Var) and x.count:
            fail(f"{x.name} is an array of shared tiles; index it (e.g. {x.name}[i])")
        return x.type
    if isinstance(x, (ir.Expr, int, float)):
        return "scalar"
    fail(f"unsupported operand {x!r}")



"""The kernel IR: typed variables, scalar expressions, statements and structured control flow.

Small and printable on purpose: ``str(kernel_ir)`` shows what the tracer recorded. Both backends (CUDA code
generator, CPU interpreter) walk the same tree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import RT, RV, ST, SV, GL, ScalarType, i32, f32


# ---------------------------------------------------------------------------------------------- scalar expressions
class Expr:
    """A scalar computed on the device (warp id, block index, loop variable, parameter, arithmetic on them)."""
    type: ScalarType = i32

    def _bin(self, op, other, rev=False):
        other = as_expr(other)
        a, b = (other, self) if rev else (self, other)
        ty = f32 if f32 in (a.type, b.type) or op == "/" else i32
        if op in ("<", "<=", ">", ">=", "==", "!=", "&", "|", "^", "<<", ">>"):
            ty = i32
        return BinOp(op, a, b, ty)

    __add__ = lambda s, o: s._bin("+", o)
    __radd__ = lambda s, o: s._bin("+", o, True)
    __sub__ = lambda s, o: s._bin("-", o)
    __rsub__ = lambda s, o: s._bin("-", o, True)
    __mul__ = lambda s, o: s._bin("*", o)
    __rmul__ = lambda s, o: s._bin("*", o, True)
    __truediv__ = lambda s, o: s._bin("/", o)
    __rtruediv__ = lambda s, o: s._bin("/", o, True)
    __floordiv__ = lambda s, o: s._bin("//", o)
    __rfloordiv__ = lambda s, o: s._bin("//", o, True)
    __mod__ = lambda s, o: s._bin("%", o)
    __rmod__ = lambda s, o: s._bin("%", o, True)
    __lt__ = lambda s, o: s._bin("<", o)
    __le__ = lambda s, o: s._bin("<=", o)
    __gt__ = lambda s, o: s._bin(">", o)
    __ge__ = lambda s, o: s._bin(">=", o)
    # bitwise, as in C (on 0/1 conditions they are also the logical and / or)
    __and__ = lambda s, o: s._bin("&", o)
    __rand__ = lambda s, o: s._bin("&", o, True)
    __or__ = lambda s, o: s._bin("|", o)
    __ror__ = lambda s, o: s._bin("|", o, True)
    __xor__ = lambda s, o: s._bin("^", o)
    __rxor__ = lambda s, o: s._bin("^", o, True)
    __lshift__ = lambda s, o: s._bin("<<", o)
    __rshift__ = lambda s, o: s._bin(">>", o)

    def __eq__(self, o):  # noqa: D105 - builds an expression, like numpy
        return self._bin("==", o)

    def __ne__(self, o):
        return self._bin("!=", o)

    def __neg__(self):
        return BinOp("-", Const(0, self.type), self, self.type)

    def __hash__(self):
        return id(self)

    def __bool__(self):
        from .errors import KernelSyntaxError
        raise KernelSyntaxError(
            "a device value has no Python truth value: branch with `with tk.if_(cond):` and loop with "
            "`for i in tk.range(...)`; Python `if`/`and`/`or` only work on Python values")

    def __index__(self):
        from .errors import KernelSyntaxError
        raise KernelSyntaxError("a device value cannot be used as a Python int (e.g. in range() or to index a "
                                "register tile); use tk.range(...) for device loops")


@dataclass(eq=False)
class Const(Expr):
    value: Any
    type: ScalarType = i32

    def __str__(self):
        return repr(self.value)


@dataclass(eq=False)
class Sym(Expr):
    """A named device scalar: 'warp_id', 'block_idx.x', a loop variable, a scalar parameter, a gl dimension."""
    name: str
    type: ScalarType = i32

    def __str__(self):
        return self.name


@dataclass(eq=False)
class BinOp(Expr):
    op: str
    a: Expr
    b: Expr
    type: ScalarType = i32

    def __str__(self):
        return f"({self.a} {self.op} {self.b})"


@dataclass(eq=False)
class Call(Expr):
    fn: str  # 'min', 'max', 'not'
    args: tuple
    type: ScalarType = i32

    def __str__(self):
        return f"{self.fn}({', '.join(map(str, self.args))})"


def as_expr(x) -> Expr:
    if isinstance(x, Expr):
        return x
    if isinstance(x, bool):
        return Const(int(x))
    if isinstance(x, int):
        return Const(x)
    if isinstance(x, float):
        return Const(x, f32)
    raise TypeError(f"expected a device scalar or a Python number, got {type(x).__name__}")


# ---------------------------------------------------------------------------------------------- variables
@dataclass(eq=False)
class Var:
    """A tile, vector or global-layout variable. Shared arrays have ``count`` > 1 (or a tuple of counts)."""
    name: str
    type: Any  # RT | RV | ST | SV | GL
    count: tuple = ()  # shared arrays only: () for a single tile
    offset: int = 0  # shared memory byte offset (shared tiles/vectors)
    alias: tuple | None = None  # register sub-tiles (tk.subtile): (base tile Var, first row, first col)

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return self.name

    def __getitem__(self, idx) -> "Ref":
        from .errors import KernelSyntaxError
        idx = idx if isinstance(idx, tuple) else (idx,)
        if not self.count:
            raise KernelSyntaxError(f"{self.name} is not an array of shared tiles/vectors and cannot be indexed")
        if len(idx) != len(self.count):
            raise KernelSyntaxError(f"{self.name} has {len(self.count)} array dimension(s), got {len(idx)} indices")
        for i, c in zip(idx, self.count):
            if isinstance(i, int) and not 0 <= i < c:
                raise KernelSyntaxError(f"index {i} out of range for {self.name} with {c} entries")
        return Ref(self, tuple(as_expr(i) for i in idx))

    # global layouts: their runtime dimensions as device scalars
    batch = property(lambda s: s._dim("b"))
    depth = property(lambda s: s._dim("d"))
    rows = property(lambda s: s._dim("r"))
    cols = property(lambda s: s._dim("c"))

    def _dim(self, d):
        if not isinstance(self.type, GL):
            raise AttributeError(f"{self.name} is not a global layout; its shape is {self.type}")
        return Sym(f"{self.name}.{d}")


@dataclass(eq=False)
class Ref:
    """One element of a shared array: ``var[index...]`` with device-scalar indices."""
    var: Var
    index: tuple  # of Expr

    @property
    def type(self):
        return self.var.type

    def __repr__(self):
        return f"{self.var.name}[{', '.join(map(str, self.index))}]"


@dataclass(frozen=True)
class View:
    """A sub-tile of a shared tile (``tk.subtile``): rows ``row0..`` and columns ``col0..`` of ``base`` (a Var or
    Ref), stored contiguously ``offset`` bytes into it, so it is a shared tile of type ``type`` in its own right."""
    base: object
    type: object  # ST
    row0: int
    col0: int
    offset: int

    def __repr__(self):
        return (f"{self.base}[{self.row0}:{self.row0 + self.type.rows}, "
                f"{self.col0}:{self.col0 + self.type.cols}]")


# ---------------------------------------------------------------------------------------------- statements
@dataclass(eq=False)
class Stmt:
    loc: tuple = field(default=("?", 0), kw_only=True)  # (file, line) of the author's call


@dataclass(eq=False)
class Decl(Stmt):
    var: Var


@dataclass(eq=False)
class OpStmt(Stmt):
    op: Any  # ops.base.Op
    args: tuple
    attrs: dict = field(default_factory=dict)

    def __str__(self):
        extra = "".join(f", {k}={v}" for k, v in self.attrs.items())
        return f"{self.op.name}({', '.join(map(_fmt, self.args))}{extra})"


@dataclass(eq=False)
class Let(Stmt):
    """Binds a named device scalar once (keeps generated code readable and avoids recomputation). ``mode``: 'let'
    (a constant), 'var' (declares a mutable scalar, ``tk.var``) or 'set' (assigns one, ``tk.assign``)."""
    sym: Sym
    value: Expr
    mode: str = "let"


@dataclass(eq=False)
class For(Stmt):
    var: Sym
    start: Expr
    stop: Expr
    step: Expr
    body: list = field(default_factory=list)


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: list = field(default_factory=list)
    orelse: list = field(default_factory=list)


def _fmt(a):
    if isinstance(a, Var):
        return a.name
    if isinstance(a, tuple):
        return "(" + ", ".join(map(_fmt, a)) + ")"
    return str(a)


@dataclass
class KernelIR:
    name: str
    warps: int
    params: list  # of Var (GL) or Sym (scalars), in call order
    body: list
    smem_bytes: int = 0
    constexprs: dict = field(default_factory=dict)
    tensor_maps: list = field(default_factory=list)  # (gl Var, ST) per TMA descriptor parameter
    min_blocks: int | None = None  # __launch_bounds__ minimum blocks per SM (setmaxnreg needs 1)
    cluster: int = 1  # blocks per thread-block cluster along x (__cluster_dims__)
    ptxas_options: tuple = ()  # (tk.ptxas_options) for ptxas when compiled

    def __str__(self):
        cluster = f", cluster={self.cluster}" if self.cluster > 1 else ""
        lines = [f"kernel {self.name}(warps={self.warps}, smem={self.smem_bytes} B{cluster})"]
        for p in self.params:
            lines.append(f"  param {p.name}: {p.type}")
        _dump(self.body, lines, 1)
        return "\n".join(lines)


def _dump(stmts, out, depth):
    pad = "  " * depth
    for s in stmts:
        if isinstance(s, Decl):
            n = "".join(f"[{c}]" for c in s.var.count)
            out.append(f"{pad}{s.var.name}{n}: {s.var.type}")
        elif isinstance(s, Let):
            out.append(f"{pad}{'var ' if s.mode == 'var' else ''}{s.sym.name} {'<-' if s.mode == 'set' else '='} "
                       f"{s.value}")
        elif isinstance(s, For):
            out.append(f"{pad}for {s.var} in range({s.start}, {s.stop}, {s.step}):")
            _dump(s.body, out, depth + 1)
        elif isinstance(s, If):
            out.append(f"{pad}if {s.cond}:")
            _dump(s.then, out, depth + 1)
            if s.orelse:
                out.append(f"{pad}else:")
                _dump(s.orelse, out, depth + 1)
        else:
            out.append(f"{pad}{s}")

"""``tk.load`` / ``tk.store`` / ``tk.load_async``: pick the op for the (destination, source) memory levels.

The ops themselves live one file per pair of levels: ``mem_global_reg`` (global <-> registers),
``mem_global_shared`` (global <-> shared, incl. cp.async), ``mem_shared_reg`` (shared <-> registers, ldmatrix).

Global indices are in units of the tile (or vector) shape: ``(b, d, row_tile, col_tile)``; a 2-tuple
``(row_tile, col_tile)`` means batch 0, depth 0. ``oob=value`` makes a load read ``value`` outside the tensor (for
ragged tails) and ``clip=True`` makes a store skip elements outside it; without them, an out-of-bounds access is an
error in the interpreter and undefined on the GPU.
"""
from ..ir import as_expr
from ..trace import emit, kind, user_loc
from ..errors import KernelTypeError
from ..types import GL

_LOADS: dict = {}  # (dst type class, src type class) -> Op
_STORES: dict = {}
_ASYNC_LOADS: dict = {}


def register_load(dst_cls, src_cls, op, table=None):
    (_LOADS if table is None else table)[(dst_cls, src_cls)] = op


def register_store(dst_cls, src_cls, op):
    _STORES[(dst_cls, src_cls)] = op


def register_async_load(dst_cls, src_cls, op):
    _ASYNC_LOADS[(dst_cls, src_cls)] = op


def global_index(idx):
    """Normalise a global index to a 4-tuple of device scalars/ints."""
    if not isinstance(idx, (tuple, list)):
        idx = (idx,)
    idx = tuple(idx)
    if not 1 <= len(idx) <= 4:
        raise KernelTypeError(f"a global index has 1 to 4 coordinates (b, d, row, col), got {len(idx)}", user_loc())
    return tuple(as_expr(i) for i in (0,) * (4 - len(idx)) + idx)


def tile_origin(m, idx, w: int, t) -> tuple[int, int, int, int]:
    """Interpreter: (batch, depth, first row, first col) of tile ``idx`` (in units of tile ``t``'s rows and
    cols; a vector's row in elements and column in vector lengths) for warp ``w``."""
    b, d, r, c = (int(m.scalar(i, w)) for i in idx)
    if hasattr(t, "length"):
        return b, d, r, c * t.length
    return b, d, r * t.rows, c * t.cols


def tile_origin_c(g, idx, t) -> str:
    """CUDA: the same as C++ arguments ``b, d, r0, c0``."""
    b, d, r, c = (g(i) for i in idx)
    return f"{b}, {d}, ({r}) * {t.rows}, ({c}) * {t.cols}"


def _pick(table, dst, src, what):
    try:
        key = (type(kind(dst)), type(kind(src)))
    except KernelTypeError as e:
        raise KernelTypeError(f"{what}: {e.msg}", user_loc()) from None
    op = table.get(key)
    if op is None:
        allowed = ", ".join(f"{d.__name__} <- {s.__name__}" for d, s in table)
        raise KernelTypeError(f"{what}: no such transfer {key[1].__name__} -> {key[0].__name__} "
                              f"(supported: {allowed})", user_loc())
    return op


def load(dst, src, idx=None, *, oob=None):
    """dst <- src. Global sources take a tile-unit index; shared -> register needs none."""
    op = _pick(_LOADS, dst, src, "load")
    if isinstance(kind(src), GL):
        emit(op, dst, src, global_index(idx if idx is not None else (0,)), oob=oob)
    else:
        if idx is not None or oob is not None:
            raise KernelTypeError("only loads from global memory take an index or oob", user_loc())
        emit(op, dst, src)


def store(dst, src, idx=None, *, clip=False):
    """dst <- src. Global destinations take a tile-unit index."""
    op = _pick(_STORES, dst, src, "store")
    if isinstance(kind(dst), GL):
        emit(op, dst, src, global_index(idx if idx is not None else (0,)), clip=clip)
    else:
        if idx is not None or clip:
            raise KernelTypeError("only stores to global memory take an index or clip", user_loc())
        emit(op, dst, src)


def load_async(dst, src, idx, *, oob=None):
    """Start an asynchronous global -> shared copy (cp.async); ``tk.load_async_wait()`` waits for it."""
    op = _pick(_ASYNC_LOADS, dst, src, "load_async")
    emit(op, dst, src, global_index(idx), oob=oob)

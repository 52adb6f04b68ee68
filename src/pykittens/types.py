"""Tile, vector and global-layout types: plain data read by the tracer, the interpreter and the code generator.

A register tile (``RT``) is spread over the 32 lanes of a warp in 16x16 subtiles. Which lane holds which element is
the *fragment map* below (``fragment_coords``); it is the single description the CUDA prelude mirrors and the tests
check. Register vectors (``RV``) line up with one axis of a register tile: ``ortho`` vectors hold 2 values per 16
(the lane's ``g`` and ``g + 8``), ``align`` vectors hold 4 (``2t, 2t+1, 2t+8, 2t+9``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DType:
    name: str
    torch: torch.dtype
    ctype: str  # storage type in the CUDA prelude
    size: int  # bytes

    def __repr__(self):
        return self.name


float32 = DType("float32", torch.float32, "float", 4)
bfloat16 = DType("bfloat16", torch.bfloat16, "tk::bf16", 2)
float16 = DType("float16", torch.float16, "tk::half", 2)
int32 = DType("int32", torch.int32, "int", 4)  # global layouts only (flags between blocks), not tiles
fp32, bf16, fp16 = float32, bfloat16, float16
TILE_DTYPES = (float32, bfloat16, float16)
GLOBAL_DTYPES = TILE_DTYPES + (int32,)
_BY_TORCH = {d.torch: d for d in GLOBAL_DTYPES}


def dtype_of(t: torch.dtype, allowed: tuple = TILE_DTYPES) -> DType:
    """The DType of a torch dtype, if it is one of ``allowed`` (tile dtypes unless told otherwise)."""
    if _BY_TORCH.get(t) not in allowed:
        raise TypeError(f"unsupported dtype {t}; expected one of {', '.join(d.name for d in allowed)}")
    return _BY_TORCH[t]


@dataclass(frozen=True)
class ScalarType:
    name: str
    ctype: str

    def __repr__(self):
        return self.name


i32 = ScalarType("i32", "int")
f32 = ScalarType("f32", "float")


def _check16(what: str, n: int):
    if not isinstance(n, int) or n <= 0 or n % 16:
        raise ValueError(f"{what} must be a positive multiple of 16, got {n!r}")


@dataclass(frozen=True)
class RT:
    """Register tile: ``rows x cols`` elements in registers, spread over one warp."""
    dtype: DType
    rows: int
    cols: int
    layout: str = "row"  # 'row': pairs run along a row (mma A / C operand); 'col': pairs run down a column

    def __post_init__(self):
        _check16("register tile rows", self.rows)
        _check16("register tile cols", self.cols)
        if self.layout not in ("row", "col"):
            raise ValueError(f"register tile layout must be 'row' or 'col', got {self.layout!r}")
        if self.dtype not in TILE_DTYPES:
            raise ValueError(f"register tile dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

    @property
    def shape(self):
        return (self.rows, self.cols)

    def col_vec(self, dtype: DType | None = None) -> "RV":
        """Vector with one value per row (what ``row_max`` produces)."""
        return RV(dtype or self.dtype, self.rows, "ortho" if self.layout == "row" else "align")

    def row_vec(self, dtype: DType | None = None) -> "RV":
        """Vector with one value per column (what ``col_max`` produces)."""
        return RV(dtype or self.dtype, self.cols, "align" if self.layout == "row" else "ortho")

    def cuda(self) -> str:
        return f"tk::rt<{self.dtype.ctype}, {self.rows}, {self.cols}, tk::{self.layout}_l>"

    def __repr__(self):
        return f"rt<{self.dtype}, {self.rows}x{self.cols}, {self.layout}>"


@dataclass(frozen=True)
class RV:
    """Register vector of ``length`` values, laid out to match one axis of a register tile."""
    dtype: DType
    length: int
    layout: str = "ortho"  # 'ortho': 2 values per 16 in each lane; 'align': 4 values per 16

    def __post_init__(self):
        _check16("register vector length", self.length)
        if self.layout not in ("ortho", "align"):
            raise ValueError(f"register vector layout must be 'ortho' or 'align', got {self.layout!r}")

    @property
    def shape(self):
        return (self.length,)

    def cuda(self) -> str:
        return f"tk::rv<{self.dtype.ctype}, {self.length}, tk::{self.layout}_l>"

    def __repr__(self):
        return f"rv<{self.dtype}, {self.length}, {self.layout}>"


def auto_swizzle(row_bytes: int) -> int:
    """Largest swizzle (128, 64, 32 bytes) that divides a row; 0 means no swizzle."""
    for s in (128, 64, 32):
        if row_bytes % s == 0:
            return s
    return 0


@dataclass(frozen=True)
class ST:
    """Shared tile: ``rows x cols`` elements in shared memory, stored in swizzle atoms (see ``swizzled_offset``)."""
    dtype: DType
    rows: int
    cols: int
    swizzle: int | None = None  # bytes; None picks automatically from the row width

    def __post_init__(self):
        _check16("shared tile rows", self.rows)
        _check16("shared tile cols", self.cols)
        if self.swizzle is None:
            object.__setattr__(self, "swizzle", auto_swizzle(self.cols * self.dtype.size))
        if self.swizzle not in (0, 32, 64, 128) or (self.swizzle and (self.cols * self.dtype.size) % self.swizzle):
            raise ValueError(f"swizzle {self.swizzle} does not fit rows of {self.cols * self.dtype.size} bytes")

    @property
    def shape(self):
        return (self.rows, self.cols)

    @property
    def nbytes(self) -> int:
        return self.rows * self.cols * self.dtype.size

    @property
    def align(self) -> int:  # (TMA copies need 128-byte aligned shared memory; a 128-byte swizzle, 1024)
        return 1024 if self.swizzle == 128 else max(self.swizzle * 8, 128)

    def cuda(self) -> str:
        return f"tk::st<{self.dtype.ctype}, {self.rows}, {self.cols}, {self.swizzle}>"

    def __repr__(self):
        return f"st<{self.dtype}, {self.rows}x{self.cols}, swizzle {self.swizzle}>"


def swizzled_offset(t: ST, row: int, col: int) -> int:
    """Byte offset of element (row, col) of shared tile ``t``; mirrored by ``tk::st::offset`` in the CUDA prelude.

    The tile is cut into column blocks ("atoms") ``swizzle`` bytes wide, stored one after another. Inside an atom
    rows are ``swizzle`` bytes apart and the 16-byte chunk index is XORed with address bits 7 and up, the pattern
    TMA and wgmma use for 32/64/128-byte swizzles.
    """
    cb = col * t.dtype.size
    if t.swizzle == 0:
        return row * t.cols * t.dtype.size + cb
    atom, inner = divmod(cb, t.swizzle)
    lin = row * t.swizzle + inner
    lin ^= ((lin >> 7) & (t.swizzle // 16 - 1)) << 4
    return atom * t.rows * t.swizzle + lin


@dataclass(frozen=True)
class SV:
    """Shared vector of ``length`` elements."""
    dtype: DType
    length: int

    def __post_init__(self):
        _check16("shared vector length", self.length)

    @property
    def shape(self):
        return (self.length,)

    @property
    def nbytes(self) -> int:
        return self.length * self.dtype.size

    align = 128  # a TMA destination must be 128-byte aligned

    def cuda(self) -> str:
        return f"tk::sv<{self.dtype.ctype}, {self.length}>"

    def __repr__(self):
        return f"sv<{self.dtype}, {self.length}>"


u64 = DType("uint64", torch.int64, "unsigned long long", 8)  # storage of a semaphore (mbarrier)


@dataclass(frozen=True)
class Semaphore:
    """An mbarrier in shared memory: counts arrivals (and, for TMA, bytes) per phase; waits name a phase parity."""
    dtype: DType = u64
    shape = ()
    nbytes = 8
    align = 8

    def cuda(self) -> str:
        return "tk::semaphore"

    def __repr__(self):
        return "semaphore"


@dataclass(frozen=True)
class GL:
    """Global layout: a 4-D (batch, depth, rows, cols) tensor in device memory; unit stride along cols."""
    dtype: DType

    def cuda(self) -> str:
        return f"tk::gl<{self.dtype.ctype}>"

    def __repr__(self):
        return f"gl<{self.dtype}>"


def fragment_coords(layout: str, lane: int, k: int, e: int) -> tuple[int, int]:
    """(row, col) inside a 16x16 subtile of register k (0..3), half e (0/1) held by ``lane``.

    Row layout is the mma.m16n8k16 A/C fragment; col layout is its transpose (the B fragment).
    """
    g, t = lane // 4, lane % 4
    r = g + 8 * (k % 2)
    c = 2 * t + 8 * (k // 2) + e
    if layout == "row":
        return r, c
    # col layout: register k holds rows (2t, 2t+1) [+8 if k >= 2] of column g [+8 if k odd]
    return 2 * t + 8 * (k // 2) + e, g + 8 * (k % 2)


def vector_coords(layout: str, lane: int, i: int) -> int:
    """Index inside a 16-chunk of register value i held by ``lane`` for an ortho (i < 2) or align (i < 4) vector."""
    g, t = lane // 4, lane % 4
    if layout == "ortho":
        return g + 8 * i
    return 2 * t + (i % 2) + 8 * (i // 2)

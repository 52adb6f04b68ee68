"""TMA descriptors (CUtensorMap) for copies between a global layout and shared tiles of one type.

A shared tile is stored in swizzle atoms (``types.swizzled_offset``): column blocks ``swizzle`` bytes wide, each
holding all of the tile's rows. One TMA box is exactly one atom — ``swizzle`` bytes by ``rows`` — so a tile is one
``cp.async.bulk.tensor`` per atom, and the hardware's swizzle equals ours. Unswizzled tiles use a single box of the
whole tile (at most 256 elements per row). A shared vector is one unswizzled box of ``length`` elements along the
innermost dim.
"""
from __future__ import annotations

import torch

from ...types import ST, SV

_SWIZZLE_ENUM = {0: "CU_TENSOR_MAP_SWIZZLE_NONE", 32: "CU_TENSOR_MAP_SWIZZLE_32B",
                 64: "CU_TENSOR_MAP_SWIZZLE_64B", 128: "CU_TENSOR_MAP_SWIZZLE_128B"}
_DTYPE_ENUM = {torch.bfloat16: "CU_TENSOR_MAP_DATA_TYPE_BFLOAT16", torch.float16: "CU_TENSOR_MAP_DATA_TYPE_FLOAT16",
               torch.float32: "CU_TENSOR_MAP_DATA_TYPE_FLOAT32"}
_cache: dict = {}


def box(st: ST | SV) -> tuple[int, int, int]:
    """(columns, rows, swizzle bytes) of one TMA box of shared tile type ``st``: one swizzle atom (a vector: all
    of it, unswizzled)."""
    if isinstance(st, SV):
        return st.length, 1, 0
    return (st.swizzle // st.dtype.size if st.swizzle else st.cols), st.rows, st.swizzle


def tensor_map_params(g, st: ST | SV) -> dict:
    """The cuTensorMapEncodeTiled arguments for a 4-D global ``g`` (a kernel.GlobalArg: ptr, shape, stride,
    dtype) and tiles (or vectors) of type ``st``, innermost dim first."""
    if g.dtype != st.dtype.torch:
        raise ValueError(f"TMA copies do not convert: tensor is {g.dtype}, tile is {st.dtype}")
    es = st.dtype.size
    dims = [g.shape[3], g.shape[2], g.shape[1], g.shape[0]]
    # bytes, for dims 1..3; a size-1 dim's stride is irrelevant but must be a multiple of 16
    strides = [g.stride[d] * es if g.shape[d] > 1 else 16 for d in (2, 1, 0)]
    cols, rows, swizzle = box(st)
    if cols * es % 16 or cols > 256 or rows > 256:
        raise ValueError(f"tile {st} cannot be a TMA box: a box row must be a multiple of 16 bytes and boxes at "
                         f"most 256 x 256 elements")
    if any(x % 16 for x in strides):
        raise ValueError(f"TMA needs every row, depth and batch stride to be a multiple of 16 bytes, got {strides} "
                         f"(innermost first) for a tensor of shape {tuple(g.shape)}")
    return dict(dtype=_DTYPE_ENUM[g.dtype], dims=dims, strides=strides, box=[cols, rows, 1, 1],
                swizzle=_SWIZZLE_ENUM[swizzle])


def encode(g, st: ST | SV):
    """A CUtensorMap for global ``g`` (a kernel.GlobalArg) and tiles of type ``st``; cached per address, shape,
    strides and tile type (an entry only describes memory, so a stale one is harmless)."""
    key = (g.ptr, g.shape, g.stride, st)
    tm = _cache.get(key)
    if tm is None:
        from cuda.bindings import driver as d
        from .launch import _drv
        p = tensor_map_params(g, st)
        tm = _drv(d.cuTensorMapEncodeTiled(
            getattr(d.CUtensorMapDataType, p["dtype"]), 4, g.ptr,
            [d.cuuint64_t(x) for x in p["dims"]], [d.cuuint64_t(x) for x in p["strides"]],
            [d.cuuint32_t(x) for x in p["box"]], [d.cuuint32_t(1)] * 4,
            d.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE, getattr(d.CUtensorMapSwizzle, p["swizzle"]),
            d.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            d.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE), "cuTensorMapEncodeTiled")
        if len(_cache) > 4096:
            _cache.clear()
        _cache[key] = tm
    return tm

"""``tk.warpgroup``: ops run by a warpgroup (4 consecutive warps) together, ThunderKittens' ``warpgroup::``.

Register tiles in these ops are per warp: a warpgroup's 64 x N accumulator is one 16 x N tile in each warp.
"""
from .ops.warpgroup_memory import load, store  # noqa: F401
from .ops.registers import increase_registers, decrease_registers  # noqa: F401

"""``tk.warpgroup``: ops run by a warpgroup (4 consecutive warps) together, ThunderKittens' ``warpgroup::``.

Register tiles in these ops are per warp: a warpgroup's 64 x N accumulator is one 16 x N tile in each warp.
"""
from .ops.warpgroup_memory import load, store, store_async  # noqa: F401
from .ops.registers import increase_registers, decrease_registers  # noqa: F401
# wgmma (sm_90a): d += / = a @ b with operands as in pykittens.ops.wgmma; results in flight until mma_wait()
from .ops.wgmma import (mma_AB, mma_ABt, mma_AtB, mma_AtBt, mm_AB, mm_ABt, mm_AtB, mm_AtBt,  # noqa: F401
                        mma_wait)

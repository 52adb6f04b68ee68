"""pykittens: ThunderKittens-style tile kernels in Python, JIT-compiled for NVIDIA GPUs or run in a CPU interpreter.

    import pykittens as tk

    @tk.kernel(warps=4)
    def double(x: tk.gl(tk.bf16), o: tk.gl(tk.bf16)):
        t = tk.rt(tk.bf16, 16, 64)
        row = tk.block_idx.x * 4 + tk.warp_id()
        tk.load(t, x, (row, 0))
        tk.mul(t, t, 2.0)
        tk.store(o, t, (row, 0))

    double[n // 64](x, o)     # CUDA tensors -> GPU; CPU tensors -> interpreter
"""
__version__ = "0.1.0"

from .types import float32, bfloat16, float16, int32, fp32, bf16, fp16, i32, f32, RT, RV, ST, SV, GL  # noqa: F401
from .errors import (KernelError, KernelSyntaxError, KernelTypeError, LaunchError, InterpreterError,  # noqa: F401
                     OutOfBoundsError, UninitializedReadError, RaceError, DeadlockError, PerformanceWarning)
from .settings import settings  # noqa: F401
from .trace import (rt, rv, st, sv, semaphore, col_vec, row_vec, warp_id, block_idx, grid_dim, let, range, if_, else_,  # noqa: F401
                    minimum, maximum, cdiv, cluster_rank, launch_index, block_after, subtile, var, assign,
                    ptxas_options)
from .kernel import kernel, gl, constexpr, Kernel  # noqa: F401
from .ops import *  # noqa: F401,F403
from . import tma  # noqa: F401,E402  (tk.tma.load_async, ...)
from . import warpgroup  # noqa: F401,E402  (tk.warpgroup.mma_AB, ...)
from .pipeline import producer_consumer, grouped_tile_order, timeline, timeline_slots, stamped  # noqa: F401,E402

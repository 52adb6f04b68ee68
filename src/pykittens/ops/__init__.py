"""All op families. Importing this registers every op; the flat user API is re-exported by ``pykittens``."""
from .init import zero, one, neg_infty, pos_infty  # noqa: F401
from .maps import exp, exp2, log, log2, abs, relu, copy, add, sub, mul, div, max, min  # noqa: F401
from .memory import load, store, load_async  # noqa: F401
from .mem_global_reg import store_add  # noqa: F401  (and registers the global <-> register transfers)
# families written next (each file registers its ops when imported)
from .reduce import *  # noqa: F401,F403
from .broadcast import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .masks import *  # noqa: F401,F403
from .mma import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .mem_global_shared import *  # noqa: F401,F403
from .mem_shared_reg import *  # noqa: F401,F403
from .mem_vectors import *  # noqa: F401,F403
from .sync import *  # noqa: F401,F403
from .semaphores import *  # noqa: F401,F403
from .cluster import *  # noqa: F401,F403
from .flags import *  # noqa: F401,F403
from .timing import *  # noqa: F401,F403
from .wgmma import *  # noqa: F401,F403  (exports nothing flat: the user API is tk.warpgroup.mma_AB, ...)

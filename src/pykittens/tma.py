"""``tk.tma``: asynchronous tile copies by the tensor memory accelerator (sm_90). See ``pykittens.ops.tma``."""
from .ops.tma import load_async, load_group, store_async, store_add_async, store_commit, store_wait, prefetch  # noqa: F401

"""Input checks shared by the library functions: errors that say what was expected, raised before any launch, and
done once per argument layout (a call with a layout seen before skips them)."""
import torch


class LayoutCache(dict):
    """What a check computed for each argument layout (``layout_key``); cleared when it grows past ``limit``."""

    def __init__(self, limit: int = 4096):
        super().__init__()
        self.limit = limit

    def lookup(self, key, compute):
        """The cached result for ``key``, or ``compute()`` (which raises on bad input), remembered. An unhashable
        ``key`` (arguments that are not tensors) always computes."""
        try:
            value = self.get(key)
        except TypeError:
            key = value = None
        if value is None:
            value = compute()
            if key is not None:
                if len(self) > self.limit:
                    self.clear()
                self[key] = value
        return value


_DEVICES: dict = {}  # device index -> (compute capability major, multiprocessors), read once


def device_info(device) -> tuple[int, int]:
    """(compute capability major, SM count) of a tensor's device; the interpreter (CPU) counts as a Hopper with
    2 SMs: a small persistent grid still walks every tile."""
    if device.type != "cuda":
        return 9, 2
    info = _DEVICES.get(device.index)
    if info is None:
        p = torch.cuda.get_device_properties(device)
        info = _DEVICES[device.index] = (p.major, p.multi_processor_count)
    return info


def layout_key(*args) -> tuple:
    """Dtype, shape, strides and device of each tensor; other arguments as they are. (``Kernel.launch`` keys its
    launch plans the same way, inline: it knows which parameters are tensors, which saves the type tests.)"""
    return tuple([(a.dtype, a.shape, a.stride(), a.device) if isinstance(a, torch.Tensor) else a for a in args])


def require_bf16(op: str, dims: int, shape_doc: str = "", **tensors):
    """Each tensor is a torch.Tensor of dtype bfloat16 with ``dims`` dimensions (``shape_doc`` names them)."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != torch.bfloat16:
            raise TypeError(f"{op}: {name} must be bfloat16, got {t.dtype}")
        if t.dim() != dims:
            raise ValueError(f"{op}: {name} must be {dims}-D{shape_doc}, got shape {tuple(t.shape)}")

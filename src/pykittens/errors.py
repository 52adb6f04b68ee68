"""Typed exceptions. Each names the author's file and line when it is known.

``KernelTypeError`` and ``KernelSyntaxError`` are raised while a kernel is traced (before anything is compiled or
launched); ``InterpreterError`` and its subclasses while the CPU interpreter runs a kernel. ``PerformanceWarning``
(a warning, not an error) when the compiler built a kernel in a way known to be slow.
"""


class KernelError(Exception):
    """Base of all pykittens kernel errors; ``loc`` is (file, line) of the offending call."""

    def __init__(self, msg: str, loc=None):
        self.loc = loc
        self.msg = msg
        super().__init__(f"{loc[0]}:{loc[1]}: {msg}" if loc else msg)


class KernelSyntaxError(KernelError):
    """The kernel uses Python in a way tracing cannot follow (e.g. ``if`` on a device value)."""


class KernelTypeError(KernelError, TypeError):
    """An op got operands of the wrong shape, dtype or layout, or a resource limit was exceeded."""


class LaunchError(KernelError, ValueError):
    """Bad launch arguments: wrong tensor dtype, device, stride, alignment, or grid."""


def check_cluster_grid(kernel: str, grid: tuple, cluster: int):
    """A kernel with thread-block clusters needs a grid whose x size is a multiple of the cluster size (both
    backends check before running)."""
    if grid[0] % cluster:
        raise LaunchError(f"kernel '{kernel}': grid x ({grid[0]}) must be a multiple of the cluster size ({cluster})")


class InterpreterError(KernelError, RuntimeError):
    """The interpreter found a bug in the kernel."""


class OutOfBoundsError(InterpreterError):
    """A global or shared memory access outside the tensor or tile."""


class UninitializedReadError(InterpreterError):
    """A read of a register tile, shared tile or element that was never written."""


class RaceError(InterpreterError):
    """Two warps touched the same shared element without a barrier between them (one of them writing)."""


class DeadlockError(InterpreterError):
    """A barrier that not every warp reaches, or a wait that can never complete."""


class PerformanceWarning(UserWarning):
    """The compiler built a kernel in a way known to be slow (e.g. ptxas serialised its wgmma instructions)."""

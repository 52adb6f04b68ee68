"""Programmatic dependent launch (sm_90): a launch made with ``dependent=True`` (``Kernel.launcher``) may start
before the launch ahead of it on the stream has ended.

``tk.launch_dependents()``: the calling block lets the dependent launch start. Once every block of this launch has
called it (or exited), the dependent launch's blocks take SMs as this launch's blocks leave them: e.g. a second
launch of smaller blocks fills the SMs that the first one's last wave leaves idle.
``tk.wait_prior_launch()``: waits until the launch this one depends on has ended and its global writes are visible.
A dependent launch whose blocks do not read the earlier launch's output calls it last, so that its own end still
means that both launches ended (what stream order promises to the work after it).

Both are no-ops in a launch made without ``dependent=True`` and in the interpreter, which runs launches one after
another.
"""
from .base import Op, emit

__all__ = ["launch_dependents", "wait_prior_launch"]


class GridDependency(Op):
    def __init__(self, name: str, action: str):
        self.name, self.action = name, action

    def check(self):
        pass

    def interpret(self, m):
        pass

    def cuda(self, g):
        return f'asm volatile("griddepcontrol.{self.action};" ::: "memory");'


_LAUNCH_DEPENDENTS = GridDependency("launch_dependents", "launch_dependents")
_WAIT_PRIOR_LAUNCH = GridDependency("wait_prior_launch", "wait")


def launch_dependents():
    """Let the dependent launch (``dependent=True``) start once every block of this launch has called this."""
    emit(_LAUNCH_DEPENDENTS)


def wait_prior_launch():
    """Wait until the launch this dependent launch follows has ended and its global writes are visible."""
    emit(_WAIT_PRIOR_LAUNCH)

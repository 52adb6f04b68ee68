"""Thread-block clusters (sm_90): ``tk.cluster_sync()``, the barrier of every warp of every block in the cluster.

A kernel declared with ``@tk.kernel(cluster=n)`` runs its blocks in groups of ``n`` consecutive ``block_idx.x``
(``tk.cluster_rank()`` says which one a block is) that may write each other's shared memory: multicast TMA loads
(``tk.tma.load_async(..., multicast=mask)``) and semaphore arrivals (``tk.arrive(sem, cta=rank)``). Before any of
that, every block's semaphores must be initialised and visible — ``cluster_sync`` after the initialisation — and
a block must not exit while a peer may still arrive on its semaphores: ``cluster_sync`` again at the end.
"""
from .base import Op, emit

__all__ = ["cluster_sync"]


class ClusterSync(Op):
    name = "cluster_sync"

    def check(self):
        pass

    def interpret(self, m):
        from ..interpreter.machine import Wait
        state, expected = m.cluster_barrier, m.W * len(m.cluster)
        state["arrived"] += len(m.warps())
        if state["arrived"] == expected:
            state["arrived"] = 0
            state["gen"] += 1
            for peer in m.cluster:  # orders every block's shared accesses before it with those after it
                peer.epoch += 1
            return
        gen = state["gen"]
        yield Wait(lambda: state["gen"] != gen, f"cluster_sync: {state['arrived']} of {expected} warps of the "
                                                f"cluster's {len(m.cluster)} blocks arrived", m.loc)

    def cuda(self, g):
        # the fence publishes this block's mbarrier initialisations to the cluster (harmless when there were none)
        return ('asm volatile("fence.mbarrier_init.release.cluster;\\n\\tbarrier.cluster.arrive.release.aligned;'
                '\\n\\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");')


_CLUSTER_SYNC = ClusterSync()


def cluster_sync():
    """Barrier of all warps of all blocks of the cluster (every warp must reach it); also makes semaphore
    initialisations visible to the other blocks."""
    emit(_CLUSTER_SYNC)

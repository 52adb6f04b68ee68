"""The bench harness's gate-then-time step (GPU: it times with CUDA events)."""
import pytest
import torch

from pykittens.bench.harness import gate_and_time


@pytest.mark.gpu
def test_gate_and_time_times_only_the_correct_systems_side_by_side():
    x = torch.randn(1024, 1024, device="cuda")
    want = x @ x

    def slow():  # a matmul behind a 1 ms GPU spin: each system's time must land on its own record
        torch.cuda._sleep(2_000_000)
        return x @ x

    def raises():
        raise ValueError("unsupported shape")
    systems = {"pykittens": lambda: (x @ x, lambda: x @ x),
               "slow peer": lambda: (x @ x, slow),
               "wrong peer": lambda: (x @ x.T, lambda: x @ x.T),
               "broken peer": raises}
    records = []
    rows = gate_and_time(records, "mm", {"n": 1024}, {}, systems,
                         lambda out: float((out.float() - want).norm() / want.norm()), 1e-3, 2 * 1024 ** 3)
    assert set(rows) == {"pykittens", "slow peer"}
    by = {r.system: r for r in records}
    assert by["wrong peer"].ms is None and by["wrong peer"].note == "over the error gate"
    assert by["broken peer"].ms is None and "unsupported shape" in by["broken peer"].note
    pk, slow = rows["pykittens"], rows["slow peer"]
    assert 0 < pk.ms < 0.5 < slow.ms  # (a check of the bookkeeping, not of a kernel's speed)
    assert pk.ratios["slow peer"] == pytest.approx(pk.tflops / slow.tflops)
    assert pk.tflops == pytest.approx(2 * 1024 ** 3 / pk.ms / 1e9)

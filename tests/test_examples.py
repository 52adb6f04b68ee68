"""The tutorials in examples/ run and report PASS (interpreter on CPU; on a GPU too where one is present)."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"pk_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["01_tiles_and_ops", "02_warp_matmul", "03_hopper_pipeline", "04_clusters_and_subtiles"])
def test_example_passes(name, capsys):
    ok = _load(name).main()
    out = capsys.readouterr().out
    assert ok is True, out
    assert out.rstrip().endswith("PASS") and "FAIL" not in out, out


def test_cpu_bench_verdict_covers_every_library_kernel():
    """The README's first command without a GPU: every library kernel (GEMM, attention forward and backward, both
    backward modes) in the interpreter against float64, each under the gate."""
    from pykittens.bench import verify
    results = verify.run(lambda cases, desc: cases)
    names = " ".join(name for name, _, _ in results)
    assert "matmul" in names and "attention (hopper" in names and "backward" in names
    assert "deterministic=True" in names and "deterministic=False" in names
    failed = [(name, err) for name, err, ok in results if not ok]
    assert not failed, failed

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


@pytest.mark.parametrize("name", ["01_tiles_and_ops", "02_warp_matmul", "03_hopper_pipeline"])
def test_example_passes(name, capsys):
    ok = _load(name).main()
    out = capsys.readouterr().out
    assert ok is True, out
    assert out.rstrip().endswith("PASS") and "FAIL" not in out, out

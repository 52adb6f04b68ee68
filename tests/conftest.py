"""Shared test fixtures. GPU tests are marked ``@pytest.mark.gpu`` and skipped where no CUDA device is present."""
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed(request):
    # fresh random data every run (never a fixed seed that could hide a data-dependent bug), but reported
    import random
    seed = random.randrange(2 ** 31)
    torch.manual_seed(seed)
    request.node.user_properties.append(("seed", seed))
    yield

import multiprocessing

import pytest

METHODS = ["fork", "spawn", "forkserver"]


@pytest.fixture(params=METHODS)
def ctx(request):
    """A multiprocessing context of each start method."""
    return multiprocessing.get_context(request.param)

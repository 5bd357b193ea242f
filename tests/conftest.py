"""pytest fixtures shared by the tests; plain helpers live in ``tests/helpers/``."""

from __future__ import annotations

import pytest
import torch

# helpers.fixtures: the `fixtures` fixture, and a missing fixture fails instead of skipping under
# FPSYNTH_REQUIRE_FIXTURES=1; pytester: for the test of that (test_require_fixtures.py).
pytest_plugins = ["helpers.fixtures", "pytester"]


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    faster on a CPU shared with other jobs, and no result depends on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

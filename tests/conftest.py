"""pytest fixtures shared by the tests; plain helpers live in ``tests/helpers/``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.fixtures import fixture_path


@pytest.fixture
def fixtures() -> Path:
    return fixture_path()


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    faster on a CPU shared with other jobs, and no result depends on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""The real fixtures in ../shared/fixtures (read in place, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("FPSYNTH_FIXTURES", REPO.parent / "shared" / "fixtures"))


def fixture_path(*parts: str) -> Path:
    """Path inside ../shared/fixtures; skips the calling test with a reason when it is absent."""
    p = FIXTURES.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real fixture {p} not present (the shared fixtures folder is absent on this machine)")
    return p


def reference_file(filename: str) -> Path:
    """A file of the reference fixtures (fpsynth.reference.fixtures.REFERENCE_DIR); skips when absent."""
    from fpsynth.reference.fixtures import REFERENCE_DIR

    path = REFERENCE_DIR / filename
    if not path.is_file():
        pytest.skip(f"reference fixture not found: {path}")
    return path

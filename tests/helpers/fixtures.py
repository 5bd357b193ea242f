"""The real fixtures in ../shared/fixtures (read in place, never copied).

A test whose fixture is absent is skipped with the missing path in its reason. With
``FPSYNTH_REQUIRE_FIXTURES=1`` (CI, ``.ci/run``) such a skip fails instead, so that a machine
without the fixtures cannot pass by skipping. This module is also a pytest plugin
(``pytest_plugins`` in ``tests/conftest.py``): it gives the ``fixtures`` fixture, and its hooks
turn every skip whose reason names a path in the fixture folders into a failure, the helpers'
skips and a test's own ``pytest.skip(f"... {REFERENCE_DIR}")`` alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("FPSYNTH_FIXTURES", REPO.parent / "shared" / "fixtures"))
REQUIRE_VARIABLE = "FPSYNTH_REQUIRE_FIXTURES"


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


@pytest.fixture
def fixtures() -> Path:
    return fixture_path()


def fixtures_required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE) == "1"


def names_a_fixture(reason: str) -> bool:
    """Whether a skip reason names a path in the fixture folders (the test lacks a fixture)."""
    from fpsynth.reference.fixtures import REFERENCE_DIR

    return any(str(folder) in reason for folder in (FIXTURES, REFERENCE_DIR))


def _fail_if_fixture_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (report.skipped and fixtures_required()):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if names_a_fixture(reason):
        report.outcome = "failed"
        report.longrepr = f"{reason} ({REQUIRE_VARIABLE}=1: a missing fixture fails instead of skipping)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    _fail_if_fixture_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    _fail_if_fixture_skip(report)  # a module-level pytest.skip(..., allow_module_level=True)
    return report

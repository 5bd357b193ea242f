"""FPSYNTH_REQUIRE_FIXTURES=1 (set by .ci/run) turns a skip for a missing fixture into a failure."""

import pytest

from helpers.fixtures import REQUIRE_VARIABLE

INNER = {
    "test_inner": """
import pytest
from helpers.fixtures import fixture_path, reference_file

def test_real_fixture():
    fixture_path("no-such-fixture-h17d")

def test_reference_fixture():
    reference_file("no-such-reference-h17d.json")

def test_other_skip():
    pytest.skip("a skip that names no fixture")
""",
    "test_inner_module": """
import pytest
from fpsynth.reference import fixtures

pytest.skip(f"reference fixtures not found: {fixtures.REFERENCE_DIR / 'no-such-h17d'}", allow_module_level=True)

def test_never_collected():
    pass
""",
}


@pytest.mark.parametrize("required", [False, True])
def test_missing_fixtures_skip_or_fail(pytester, monkeypatch, required):
    pytester.makepyfile(**INNER)
    if required:
        monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    else:
        monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)
    # helpers.fixtures is imported already (no assertion rewriting the second time: harmless)
    result = pytester.runpytest(
        "-p",
        "helpers.fixtures",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    )
    if required:
        result.assert_outcomes(failed=2, skipped=1, errors=1)
        result.stdout.fnmatch_lines([f"*{REQUIRE_VARIABLE}=1: a missing fixture fails*"])
    else:
        result.assert_outcomes(skipped=4)

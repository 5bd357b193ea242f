"""Test modules import shared code from ``tests/helpers/``, never from another test module or conftest.

A helper living in a test module makes that module a dependency of others (pytest then imports
it twice, under its file name and as collected, and a rename breaks unrelated tests); pytest
fixtures belong in ``tests/conftest.py``, which pytest loads itself. Checked over ``ast`` so that
imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module name) of every absolute import in ``path``, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def is_test_module(name: str) -> bool:
    top = name.split(".")[0]
    return top.startswith("test_") or top in ("conftest", "tests")


def test_no_test_module_imports_another_test_module_or_conftest():
    files = sorted(TESTS.glob("*.py")) + sorted((TESTS / "helpers").glob("*.py"))
    assert len(files) > 10 and TESTS / "conftest.py" in files
    bad = [
        f"{path.relative_to(TESTS)}:{line}: {name}"
        for path in files
        for line, name in imported_modules(path)
        if is_test_module(name)
    ]
    assert not bad, "import shared test code from tests/helpers/ instead:\n" + "\n".join(bad)


def test_the_check_sees_nested_imports(tmp_path):
    """The walk counts a function-level import, and helpers' imports pass."""
    sample = tmp_path / "test_sample.py"
    sample.write_text("from helpers.generate import SMALL\n\ndef f():\n    from test_other import x\n")
    names = imported_modules(sample)
    assert names == [(1, "helpers.generate"), (4, "test_other")]
    assert [is_test_module(n) for _, n in names] == [False, True]

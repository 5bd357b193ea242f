"""The named pipelines ship inside the package, so that a wheel install finds ``paper``.

``fpsynth/pipelines`` links to the top-level ``pipelines/`` and pyproject's package-data copies
it into the wheel; these checks build nothing (the wheel itself is checked by hand, README
"Development").
"""

import tomllib
from importlib import resources
from pathlib import Path

from fpsynth.config import pipelines_dir, resolve_config_path

REPO = Path(__file__).resolve().parent.parent


def test_every_named_pipeline_is_package_data(tmp_path, monkeypatch):
    top_level = sorted(p.name for p in (REPO / "pipelines").glob("*.toml"))
    packaged = resources.files("fpsynth") / "pipelines"
    assert "paper.toml" in top_level
    assert sorted(f.name for f in packaged.iterdir() if f.name.endswith(".toml")) == top_level
    monkeypatch.chdir(tmp_path)  # no ./pipelines here: the packaged ones must answer
    for name in top_level:
        found = resolve_config_path(name.removesuffix(".toml"))
        assert found == pipelines_dir() / name
        assert found.read_bytes() == (REPO / "pipelines" / name).read_bytes()


def test_the_wheel_takes_the_pipelines():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "pipelines/*.toml" in setuptools["package-data"]["fpsynth"]
    assert (REPO / "fpsynth" / "pipelines").resolve() == (REPO / "pipelines").resolve()

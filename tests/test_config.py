import dataclasses
from pathlib import Path

import pytest

from fpsynth.config import ConfigError, apply_overrides, from_dict, parse_override, read_toml_tree, to_dict
from fpsynth.pipeline import PipelineConfig, load_pipeline


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    steps: int = 10
    mults: tuple[int, ...] = (1, 2)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    path: Path | None = None
    inner: Inner = Inner()


def test_from_dict_builds_nested_and_coerces():
    cfg = from_dict(Outer, {"name": "y", "path": "a/b", "inner": {"lr": 1, "mults": [1, 1, 2]}})
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.mults == (1, 1, 2)
    assert cfg.path == Path("a/b")
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"steps": 1.5}}, "inner.steps: expected an integer"),
        ({"inner": {"steps": True}}, "inner.steps: expected an integer"),
        ({"inner": {"lr": "fast"}}, "inner.lr: expected a number"),
        ({"inner": {"bogus": 1}}, "unknown key(s) ['bogus']"),
        ({"name": 3}, "name: expected a string"),
    ],
)
def test_from_dict_rejects_wrong_types(data, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(Outer, data)
    assert message in str(exc.value)


def test_overrides_are_parsed_as_toml_values():
    assert parse_override("train.optim.lr=2e-4") == (["train", "optim", "lr"], 2e-4)
    assert parse_override("prepare.meei=./raw") == (["prepare", "meei"], "./raw")
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    merged = apply_overrides({"inner": {"lr": 1.0, "steps": 3}}, ["inner.lr=0.5"])
    assert merged == {"inner": {"lr": 0.5, "steps": 3}}
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_extends_merges_parent_first(tmp_path):
    (tmp_path / "base.toml").write_text('name = "base"\nseed = 1\n[inner]\nlr = 0.1\nsteps = 5\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\nname = "child"\n[inner]\nsteps = 7\n')
    data = read_toml_tree(tmp_path / "child.toml")
    assert data == {"name": "child", "seed": 1, "inner": {"lr": 0.1, "steps": 7}}
    (tmp_path / "loop.toml").write_text('extends = "loop.toml"\n')
    with pytest.raises(ConfigError, match="loops"):
        read_toml_tree(tmp_path / "loop.toml")


def test_every_named_pipeline_loads():
    from fpsynth.config import pipelines_dir

    names = sorted(p.stem for p in pipelines_dir().glob("*.toml"))
    assert "paper" in names and "tiny" in names
    for name in names:
        cfg = load_pipeline(name)
        assert isinstance(cfg, PipelineConfig) and cfg.name == name


def test_unknown_pipeline_lists_the_named_ones():
    with pytest.raises(ConfigError, match="named configs: .*paper"):
        load_pipeline("no-such-pipeline")

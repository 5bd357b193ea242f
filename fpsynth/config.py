"""Pipeline configuration: one frozen dataclass per stage, named TOML files, typed overrides.

A pipeline file (``pipelines/NAME.toml``) has one table per stage (``[prepare]``, ``[train]``,
``[generate]``, ``[report]``) plus ``[weights]`` and top-level ``name``/``seed``. A file may start
with ``extends = "other.toml"``: the other file is read first and this one is merged over it, so
that an ablation states only what it changes. Command-line overrides ``--set train.optim.lr=2e-4``
are parsed as TOML values and checked against the dataclass field types; an unknown key or a value
of the wrong type fails with the valid choices.

The stage dataclasses themselves live next to the code that uses them (``fpsynth.data.config``,
``fpsynth.train.config``, ...); this module only knows how to build, merge and print them.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from fpsynth.errors import FpsynthError


class ConfigError(FpsynthError, ValueError):
    """A pipeline file or override that does not fit the config dataclasses."""


# --------------------------------------------------------------------------- building


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a plain mapping, checking every value against its field type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys: {', '.join(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # __post_init__ validation
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a hint is a class, never an instance
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not one of {[m.value for m in tp]}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # no setting of fpsynth means anything at nan or inf
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path string, got {value!r}")
        return Path(value)
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(f"{where}: unsupported field type {tp}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain TOML-friendly dict of a config dataclass (``None`` fields are left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = _plain(getattr(cfg, f.name))
        if value is not None:
            out[f.name] = value
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


def to_toml(cfg: Any) -> str:
    """TOML text of a config dataclass (or an already plain mapping)."""
    return tomli_w.dumps(to_dict(cfg) if dataclasses.is_dataclass(cfg) else _plain(dict(cfg)))


# --------------------------------------------------------------------------- files and overrides


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``; tables merge key by key, everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_toml_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a pipeline file, following ``extends`` (relative to the file) recursively."""
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    if not path.is_file():
        raise ConfigError(f"pipeline config {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a pipeline config is TOML in UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = read_toml_tree((path.parent / parent), (*_seen, path))
    return deep_merge(base, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.optim.lr=2e-4"`` -> (["train", "optim", "lr"], 0.0002).

    The value is read as a TOML value (numbers, booleans, quoted strings, lists); anything that is
    not valid TOML is taken as a bare string, so ``--set prepare.meei=./raw`` works unquoted.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return keys, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = dict(data)
    for text in overrides:
        keys, value = parse_override(text)
        patch: Any = value
        for k in reversed(keys):
            patch = {k: patch}
        out = deep_merge(out, patch)
    return out


def pipelines_dir() -> Path:
    """The named pipelines shipped with the package: ``fpsynth/pipelines``.

    In a checkout that is a link to the repository's top-level ``pipelines/`` (resolved here, so
    a checkout reports the same paths as before); in a wheel it holds copies of those files.
    """
    return Path(str(resources.files("fpsynth") / "pipelines")).resolve()


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path as given if it exists; else a bare name looked up in ./pipelines, then the repo's."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    stem = p.name if p.suffix == ".toml" else f"{p.name}.toml"
    for folder in (Path.cwd() / "pipelines", pipelines_dir()):
        if (folder / stem).is_file():
            return folder / stem
    known = sorted(f.stem for f in pipelines_dir().glob("*.toml"))
    raise ConfigError(f"pipeline config {name_or_path} not found; named configs: {', '.join(known)}")

"""``train.init_from``: start training from published or earlier weights, as the paper did.

The paper (4.1) trains CCFExp "after initialization from DCFace": the authors' trainer loads
``dcface_5x5.ckpt`` before training. ``train.init_from`` names such a file (a published DCFace or
CCFExp checkpoint: the paper's protocol, or fine-tuning the published CCFExp on one's own data) or
an fpsynth checkpoint folder; ``none`` trains from scratch on purpose. Every tensor of the file
that has a place in the model being trained is copied (the U-Net from the trained, non-EMA copy,
as the authors' trainer does); modules the file does not hold keep their initialisation (the
pretrained networks of ``[weights]``, fresh adapters, the identity-initialised W^Q of the
paper's fusion); tensors of the file with no place in this model (DCFace's style encoder when
training CCFExp, say) are listed as unused. A tensor with a place but another shape is an error
naming it. What came from where is printed and recorded in every checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fpsynth.outputs import sha256_file
from fpsynth.weights import WeightsError

NONE = "none"  # train.init_from = "none": from scratch, on purpose
CONFIG_KEY = "train.init_from"
SOURCES = (
    "dcface_5x5.ckpt / dcface_3x3.ckpt: the DCFace README (mk-minchul/dcface, 'pretrained models'); "
    "CCFExp.ckpt: the CCFExp README (GaoVix/CCFExp, pretrained_models/)"
)


@dataclasses.dataclass
class InitRecord:
    """What ``train.init_from`` put into the model (recorded in state.json and the stage record)."""

    path: str
    sha256: str
    kind: str  # ccfexp / dcface-3x3 / dcface-5x5 / fpsynth
    loaded: dict[str, int]  # fpsynth module -> tensors copied from the file
    kept: list[str]  # modules of the model that the file does not hold (their own initialisation)
    unused: dict[str, int]  # fpsynth module -> tensors of the file with no place in this model

    def lines(self) -> list[str]:
        out = [f"init_from {self.path} ({self.kind}, sha256 {self.sha256[:12]}...)"]
        out.append("  from the file: " + ", ".join(f"{m} ({n} tensors)" for m, n in self.loaded.items()))
        if self.kept:
            out.append("  kept their own initialisation: " + ", ".join(self.kept))
        if self.unused:
            out.append(
                "  in the file but not in this model: " + ", ".join(f"{m} ({n})" for m, n in self.unused.items())
            )
        return out


def resolve_init_from(value: str | None) -> Path | None:
    """The file or folder to start from; None for unset or ``none``; an error naming the key when absent."""
    if value is None or str(value).strip().lower() == NONE:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise WeightsError(
            f"{CONFIG_KEY} = {value}: not found. Get it from {SOURCES}, and set `{CONFIG_KEY}` in your "
            f"pipeline TOML or pass --set {CONFIG_KEY}=/path/to/dcface_5x5.ckpt; "
            f"--set {CONFIG_KEY}=none trains from scratch on purpose"
        )
    return path


def _source_tensors(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(fpsynth-named tensors, kind) of a published file or an fpsynth checkpoint folder."""
    if path.is_dir():
        from fpsynth.train.checkpoint import MODEL_FILE, read_state, read_tensors, resolve_checkpoint

        folder = resolve_checkpoint(path)
        state = read_state(folder)
        tensors, _ = read_tensors(folder, MODEL_FILE, state)
        return tensors, "fpsynth"
    from fpsynth.published.importer import read_published
    from fpsynth.published.mapping import MappingError, detect_kind, map_published

    state, _ = read_published(path)
    try:
        kind = detect_kind({k: tuple(v.shape) for k, v in state.items()})
        return map_published(state, kind, unet="trained").tensors, kind
    except MappingError as exc:
        raise WeightsError(f"{CONFIG_KEY} = {path}: {exc}") from exc


def _by_module(keys: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for k in keys:
        counts[k.split(".", 1)[0]] = counts.get(k.split(".", 1)[0], 0) + 1
    return dict(sorted(counts.items()))


def init_model_from(model: torch.nn.Module, path: Path) -> InitRecord:
    """Copy every tensor of ``path`` that has a place in ``model`` (see the module docstring)."""
    tensors, kind = _source_tensors(path)
    own: Mapping[str, torch.Tensor] = model.state_dict()
    fits = [k for k in tensors if k in own]
    wrong = [k for k in fits if tuple(own[k].shape) != tuple(tensors[k].shape)]
    if wrong:
        raise WeightsError(
            f"{CONFIG_KEY} = {path}: tensors of another shape than the model's: "
            + ", ".join(f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:6])
            + " (is train.model the paper's configuration?)"
        )
    with torch.no_grad():
        for k in fits:
            own[k].copy_(tensors[k].to(own[k].dtype))
    loaded = _by_module(fits)
    modules = {k.split(".", 1)[0] for k in own}
    kept = sorted(m for m in modules if m not in loaded) + sorted(
        f"{m} (partly: {n} of {sum(1 for k in own if k.startswith(m + '.'))})"
        for m, n in loaded.items()
        if n < sum(1 for k in own if k.startswith(m + "."))
    )
    unused = _by_module([k for k in tensors if k not in own])
    return InitRecord(str(path), _digest(path), kind, loaded, kept, unused)


def _digest(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    from fpsynth.train.checkpoint import read_state, resolve_checkpoint

    return str(read_state(resolve_checkpoint(path))["files"].get("model.safetensors", ""))


def init_record_dict(record: InitRecord | None) -> dict[str, Any] | None:
    return dataclasses.asdict(record) if record is not None else None

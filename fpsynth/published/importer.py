"""Import a published checkpoint (CCFExp.ckpt, dcface_3x3/5x5.ckpt) as a self-contained fpsynth one.

    fpsynth weights import CCFExp.ckpt            # -> WORKSPACE/published/CCFExp-<sha12>/

The file is read without unpickling any object (``fpsynth.safeload``: tensors and plain
containers rebuilt, every other global an inert placeholder, GPU-tagged storages read on the
CPU), its kind recognised from its keys, every key mapped or deliberately left
(``fpsynth.published.mapping``), and the result checked against fpsynth's model built with the
authors' profile: any missing, unexpected or mis-shaped key is an error naming it. The output is
a checkpoint folder that ``fpsynth.train.checkpoint.load_checkpoint`` (generate, report, the
Python API) reads like a trained one:

    model.safetensors   every tensor of fpsynth's CCFExp (the U-Net is the authors' EMA copy)
    state.json          written last: model/diffusion/sampler configs, the profile, the source
                        file's name and sha256, what was mapped and left and why, the refused
                        globals, the hyper-parameters as plain JSON

An import is cached by the source file's sha256: importing the same file again reuses the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fpsynth.config import to_dict
from fpsynth.diffusion.config import DiffusionConfig, SamplerConfig
from fpsynth.errors import FpsynthError
from fpsynth.models.config import ModelConfig, Variant
from fpsynth.models.profiles import apply_profile, profile_for_variant
from fpsynth.outputs import sha256_file
from fpsynth.published.mapping import (
    CCFEXP,
    DCFACE_5X5,
    KINDS,
    Mapped,
    MappingError,
    check_against,
    detect_kind,
    map_published,
)
from fpsynth.version import __version__

PUBLISHED_DIR = "published"  # below the workspace
STATE_FILE, MODEL_FILE = "state.json", "model.safetensors"
FORMAT = 1  # the train checkpoint format (fpsynth.train.checkpoint.FORMAT)
# The authors' generation settings (src/syn.sh -> DDIM 50 steps, eta 1, clipped x0, network eps).
AUTHORS_SAMPLER = SamplerConfig()
AUTHORS_DIFFUSION = DiffusionConfig()  # T = 1000, linear betas 1e-4 .. 0.02


class PublishedImportError(FpsynthError, ValueError):
    """A published file that cannot be imported; the message names the file and the reason."""


@dataclasses.dataclass
class Converted:
    """A published checkpoint turned into fpsynth's model config and tensors (in memory)."""

    kind: str
    model_config: ModelConfig
    tensors: dict[str, torch.Tensor]  # fpsynth CCFExp state_dict keys
    source: dict[str, Any]  # file, sha256, kind, profile, container, mapped, left, refused, ...


def model_config_for(kind: str) -> ModelConfig:
    """The paper-size model of a published kind, with the authors' profile."""
    if kind not in KINDS:
        raise PublishedImportError(f"unknown kind {kind!r}: expected auto or one of {', '.join(KINDS)}")
    variant = Variant.CCFEXP if kind == CCFEXP else Variant.DCFACE
    cfg = ModelConfig(variant=variant, dcface_grid=5 if kind == DCFACE_5X5 else 3)
    return apply_profile(cfg, profile_for_variant(variant))


def read_published(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from fpsynth.safeload import load_checkpoint_object, to_plain

    loaded = load_checkpoint_object(path)
    obj = loaded.obj
    if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        raise PublishedImportError(f"{path}: not a Lightning checkpoint (no 'state_dict' dict at the top level)")
    tensors = {str(k): v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
    info = {
        "container": loaded.container,
        "refused_globals": list(loaded.refused),
        "top_level_keys": sorted(str(k) for k in obj),
        "epoch": obj.get("epoch") if isinstance(obj.get("epoch"), int) else None,
        "global_step": obj.get("global_step") if isinstance(obj.get("global_step"), int) else None,
        "hyper_parameters": to_plain(obj.get("hyper_parameters")),
    }
    return tensors, info


def convert(path: Path, kind: str = "auto", digest: str | None = None) -> Converted:
    """Read, recognise, map and check a published file (nothing is written); ``digest`` is its
    sha256 when the caller has it already (a 1.4 GB file is not hashed twice)."""
    from fpsynth.models.ccfexp import CCFExp

    path = Path(path).expanduser()
    if not path.is_file():
        raise PublishedImportError(f"published checkpoint not found: {path}")
    digest = digest or sha256_file(path)
    state, info = read_published(path)
    try:
        found = detect_kind({k: tuple(v.shape) for k, v in state.items()})
        if kind != "auto" and kind != found:
            raise MappingError(f"--kind {kind} was given but the keys say {found}")
        cfg = model_config_for(found)
        mapped: Mapped = map_published(state, found)
        with torch.device("meta"):  # shapes only: no 400 MB of random init
            own = CCFExp(cfg).state_dict()
        check_against(mapped, own, found)
    except MappingError as exc:
        raise PublishedImportError(f"{path}: {exc}") from exc
    tensors = {k: v.to(own[k].dtype) for k, v in mapped.tensors.items()}  # contiguous copies only when written
    source = {
        "file": path.name,
        "sha256": digest,
        "kind": found,
        "profile": cfg.profile,
        "mapped_keys": len(tensors),
        "mapped": _prefix_counts(mapped),
        "left": {p: {"keys": n, "reason": why} for p, (n, why) in sorted(mapped.left.items())},
        **info,
    }
    return Converted(found, cfg, tensors, source)


def _prefix_counts(mapped: Mapped) -> dict[str, int]:
    """fpsynth module -> number of keys mapped onto it (what `weights import` prints)."""
    counts: dict[str, int] = {}
    for key in mapped.tensors:
        module = key.split(".", 1)[0]
        counts[module] = counts.get(module, 0) + 1
    return dict(sorted(counts.items()))


def describe(converted: Converted) -> dict[str, Any]:
    """The state.json fields of an imported checkpoint (also what an in-memory load reports)."""
    return {
        "step": converted.source.get("global_step") or 0,
        "model_config": to_dict(converted.model_config),
        "diffusion_config": to_dict(AUTHORS_DIFFUSION),
        "sampler_config": to_dict(AUTHORS_SAMPLER),
        "unet_is_ema": True,
        "load_records": [
            {
                "name": f"published-{converted.kind}",
                "path": converted.source["file"],
                "sha256": converted.source["sha256"],
                "random_init": False,
            }
        ],
        "published": converted.source,
    }


def write_converted(converted: Converted, folder: Path) -> Path:
    """Write ``converted`` as a checkpoint folder (atomically: a temporary folder renamed last)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {k: v.contiguous() for k, v in converted.tensors.items()}
    save_file(tensors, str(tmp / MODEL_FILE), metadata={"format": str(FORMAT)})
    del tensors
    state = {
        "format": FORMAT,
        "fpsynth_version": __version__,
        "files": {MODEL_FILE: sha256_file(tmp / MODEL_FILE)},
        **describe(converted),
    }
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True, default=str) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def imported_folder(path: Path, root: Path, digest: str) -> Path | None:
    """The folder below ``root`` that already holds an import of ``path`` (sha256 ``digest``), if any."""
    folder = Path(root) / f"{Path(path).stem}-{digest[:12]}"
    state = folder / STATE_FILE
    if state.is_file():
        try:
            if json.loads(state.read_text())["published"]["sha256"] == digest:
                return folder
        except (OSError, KeyError, json.JSONDecodeError):
            return None
    return None


def import_published(
    path: Path, root: Path, kind: str = "auto", force: bool = False
) -> tuple[Path, dict[str, Any], bool]:
    """Import ``path`` below ``root`` (cached by sha256). Returns (folder, source record, reused)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PublishedImportError(f"published checkpoint not found: {path}")
    digest = sha256_file(path)
    if not force:
        cached = imported_folder(path, root, digest)
        if cached is not None:
            return cached, json.loads((cached / STATE_FILE).read_text())["published"], True
    converted = convert(path, kind, digest)
    folder = write_converted(converted, Path(root) / f"{path.stem}-{converted.source['sha256'][:12]}")
    return folder, converted.source, False


def checkpoint_in_workspace(path: Path, workspace: Path) -> Path:
    """A checkpoint given to generate/report: a FILE is a published checkpoint, imported once into
    ``WORKSPACE/published`` (cached by sha256); a folder is returned as it is."""
    path = Path(path).expanduser()
    return import_published(path, Path(workspace) / PUBLISHED_DIR)[0] if path.is_file() else path

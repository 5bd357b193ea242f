"""Training checkpoints: self-contained safetensors + JSON folders, written atomically.

Layout (``WORKSPACE/train/checkpoints/``)::

    step-00002000/
        model.safetensors       every tensor of CCFExp.state_dict(): the trained weights AND the
                                frozen networks (F_ID, F_Face, E_LM/D_LM) and BatchNorm statistics,
                                so the checkpoint alone rebuilds the model (no weight files needed)
        ema.safetensors         the U-Net's EMA weights, keys "unet.<name>" (fp32)
        optimizer.safetensors   AdamW state tensors, keys "<param index>.<name>" (exp_avg, ...)
        optimizer.json          AdamW param groups and the parameter name of every index
        state.json              written last: step, epoch, sampler position, RNG states, the resolved
                                pipeline config, the model and diffusion configs, the load records
                                of the pretrained networks, package version, sha256 of each file
    latest                      text file naming the newest complete folder, updated last

A folder is written as ``.tmp-step-...`` and renamed when complete; ``state.json`` is its last
file, so a folder named ``step-*`` with a ``state.json`` is always whole, and a kill at any
moment leaves at worst a hidden temporary that is ignored (and removed by the next save).
Old checkpoints beyond ``keep_last`` are renamed to a hidden name before they are deleted, for
the same reason. Nothing here unpickles: tensors through safetensors, the rest JSON.

For generation and reports: :func:`latest_checkpoint` and :func:`load_checkpoint` (EMA U-Net
by default, eval mode, the noise schedule the model was trained with).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from fpsynth.config import from_dict, to_dict
from fpsynth.diffusion.config import DiffusionConfig
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.errors import FpsynthError
from fpsynth.models.ccfexp import CCFExp
from fpsynth.models.config import ModelConfig
from fpsynth.stage import atomic_write_text
from fpsynth.stages import run_first
from fpsynth.version import __version__

if TYPE_CHECKING:  # pipeline.py sits above the stage packages
    from fpsynth.pipeline import PipelineConfig

FORMAT = 1
CHECKPOINTS = "checkpoints"  # below WORKSPACE/train
MODEL_FILE, EMA_FILE = "model.safetensors", "ema.safetensors"
OPTIM_FILE, OPTIM_INDEX, STATE_FILE = "optimizer.safetensors", "optimizer.json", "state.json"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(FpsynthError, RuntimeError):
    """A checkpoint that is missing, incomplete, corrupt, or of another model."""


# --------------------------------------------------------------------------- finding


def checkpoints_dir(workspace: Path) -> Path:
    return Path(workspace) / "train" / CHECKPOINTS


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in ``folder``, oldest first."""
    found = []
    if Path(folder).is_dir():
        for p in Path(folder).iterdir():
            m = _STEP_DIR.match(p.name)
            if m and (p / STATE_FILE).is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(workspace: Path) -> Path | None:
    """The newest complete and intact checkpoint of ``WORKSPACE/train``, or None when there is none.

    The ``latest`` pointer is what a person reads; this scans the folders, so that a run killed
    between renaming a new checkpoint into place and updating the pointer still finds it. A
    damaged checkpoint (unreadable state.json, a file missing or not matching its sha256) is
    skipped with a warning naming it, and the newest good one is used.
    """
    return newest_good(checkpoints_dir(workspace))


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be used (None when every file matches state.json)."""
    try:
        state = read_state(path)
    except CheckpointError as exc:
        return str(exc)
    for name, expected in state.get("files", {}).items():
        try:
            h = hashlib.sha256()
            with open(Path(path) / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
        if h.hexdigest() != expected:
            return f"{name} is damaged (sha256 differs from {STATE_FILE})"
    return None


def newest_good(folder: Path) -> Path | None:
    """The newest checkpoint of ``folder`` that passes :func:`checkpoint_problem`; warns per skipped one."""
    import warnings

    for _, path in reversed(complete_checkpoints(folder)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warnings.warn(f"checkpoint {path} skipped: {problem}; using an earlier one", stacklevel=2)
    return None


# --------------------------------------------------------------------------- small codecs


def encode_bytes(t: torch.Tensor) -> str:
    """A uint8 tensor (an RNG state) as base64 text for JSON."""
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def decode_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cpu_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing storage; clone() gives each its own contiguous copy
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def optimizer_to_flat(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> (tensors "<index>.<name>", JSON index of everything else)."""
    tensors, scalars = {}, {}
    for index, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: Mapping[str, torch.Tensor], index: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_flat` (JSON turned the betas tuple into a list: undone here)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *index["scalars"].items()]:
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in index["param_groups"]]
    return {"state": state, "param_groups": groups}


# --------------------------------------------------------------------------- writing


@dataclasses.dataclass
class CheckpointPayload:
    """Everything a checkpoint holds; ``state`` must be JSON-able (see the module docstring)."""

    model: dict[str, torch.Tensor]  # CCFExp.state_dict()
    ema: dict[str, torch.Tensor]  # EMA.state_dict() of the U-Net (keys without the "unet." prefix)
    optimizer: dict[str, Any]  # optimizer.state_dict()
    param_names: list[str]  # name of the parameter at each optimizer index
    state: dict[str, Any]


def describe_run(cfg: PipelineConfig, load_records: list[Any]) -> dict[str, Any]:
    """The part of state.json that describes the run: resolved pipeline config (``to_dict``), model
    and diffusion configs (what :func:`load_checkpoint` rebuilds from), load records."""
    return {
        "config": to_dict(cfg),
        "model_config": to_dict(cfg.train.model),
        "diffusion_config": to_dict(cfg.train.diffusion),
        "load_records": [dataclasses.asdict(r) for r in load_records],
    }


def save_checkpoint(folder: Path, step: int, payload: CheckpointPayload, keep_last: int) -> Path:
    """Write ``folder/step-NNNNNNNN`` atomically, point ``latest`` at it, prune to ``keep_last``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_hidden_leftovers(folder)
    final = folder / step_dir_name(step)
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    tmp.mkdir()
    opt_tensors, opt_index = optimizer_to_flat(payload.optimizer)
    opt_index["param_names"] = payload.param_names
    blobs = {
        MODEL_FILE: save_safetensors(_cpu_tensors(payload.model), metadata={"format": str(FORMAT)}),
        EMA_FILE: save_safetensors(_cpu_tensors({f"unet.{k}": v for k, v in payload.ema.items()})),
        OPTIM_FILE: save_safetensors(_cpu_tensors(opt_tensors)),
        OPTIM_INDEX: json.dumps(opt_index, indent=1).encode(),
    }
    for name, data in blobs.items():
        _write_synced(tmp / name, data)
    state = {
        **payload.state,
        "format": FORMAT,
        "step": step,
        "fpsynth_version": __version__,
        "files": {name: _sha256(data) for name, data in blobs.items()},
    }
    _write_synced(tmp / STATE_FILE, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
    _fsync_dir(tmp)
    if final.exists():  # the same step saved again (a resumed run that was already at its end)
        final.rename(folder / f".del-{final.name}-{os.getpid()}")
    tmp.rename(final)
    _fsync_dir(folder)
    atomic_write_text(folder / LATEST, final.name + "\n")
    for _, old in complete_checkpoints(folder)[:-keep_last]:
        trash = folder / f".del-{old.name}-{os.getpid()}"
        old.rename(trash)  # hidden first: a kill during rmtree never leaves a 'complete' half
    _remove_hidden_leftovers(folder)
    return final


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_hidden_leftovers(folder: Path) -> None:
    """Temporaries of killed saves and checkpoints being deleted (only this module makes them)."""
    for p in folder.iterdir():
        if p.is_dir() and (p.name.startswith(".tmp-step-") or p.name.startswith(".del-step-")):
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- reading


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder itself, a ``checkpoints`` folder, or a workspace -> a complete checkpoint."""
    path = Path(path).expanduser()
    if (path / STATE_FILE).is_file():
        return path
    for folder in (path, path / CHECKPOINTS, path / "train" / CHECKPOINTS):
        if complete_checkpoints(folder):
            good = newest_good(folder)
            if good is None:
                raise CheckpointError(
                    f"every checkpoint in {folder} is damaged (see the warnings); retrain or restore one"
                )
            return good
    if path.is_dir() and _STEP_DIR.match(path.name):
        raise CheckpointError(f"{path} is an incomplete checkpoint (no {STATE_FILE}); use an earlier one")
    raise CheckpointError(
        f"no checkpoint at {path}; {run_first('train')}, or pass a folder such as "
        f"WORKSPACE/train/{CHECKPOINTS}/step-NNNNNNNN"
    )


def read_state(path: Path) -> dict[str, Any]:
    """The JSON state of a checkpoint folder."""
    try:
        state = json.loads((Path(path) / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable {STATE_FILE} ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: checkpoint format {found} is not {FORMAT} (fpsynth {__version__})")
    missing = [k for k in ("step", "files", "model_config", "diffusion_config", "load_records") if k not in state]
    if missing:
        raise CheckpointError(f"{path}/{STATE_FILE} lacks {', '.join(missing)}: not a checkpoint fpsynth wrote whole")
    return state


def read_tensors(
    path: Path, name: str, state: Mapping[str, Any], device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, sha256) of one safetensors file of a checkpoint, checked against state.json."""
    try:
        data = (Path(path) / name).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read {name} ({exc})") from exc
    digest = _sha256(data)
    expected = state["files"].get(name)
    if digest != expected:
        raise CheckpointError(
            f"{path}/{name} is corrupt: sha256 {digest[:12]}... != {str(expected)[:12]}... in {STATE_FILE}"
        )
    tensors = load_safetensors(data)
    if str(device) != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors, digest


def read_optimizer(
    path: Path, state: Mapping[str, Any], device: torch.device | str = "cpu"
) -> tuple[dict[str, Any], list[str]]:
    """(optimizer state_dict, parameter name per index) of a checkpoint."""
    tensors, _ = read_tensors(path, OPTIM_FILE, state, device)
    raw = (Path(path) / OPTIM_INDEX).read_bytes()
    if _sha256(raw) != state["files"].get(OPTIM_INDEX):
        raise CheckpointError(f"{path}/{OPTIM_INDEX} is corrupt (sha256 differs from {STATE_FILE})")
    index = json.loads(raw)
    return optimizer_from_flat(tensors, index), index["param_names"]


def model_config_of(state: Mapping[str, Any]) -> ModelConfig:
    return from_dict(ModelConfig, state["model_config"], "checkpoint model_config")


def rebuild_model(path: Path, state: Mapping[str, Any], *, ema: bool, device: torch.device | str) -> tuple[CCFExp, str]:
    """CCFExp from the checkpoint alone (its model config and model.safetensors), optionally EMA U-Net.

    Returns the model (on ``device``, train/eval mode untouched) and the sha256 identifying the
    weights: sha256 of the per-file digests of model.safetensors (and ema.safetensors with ``ema``).
    """
    with torch.device("meta"):  # no random init of ~230M parameters only to overwrite them
        model = CCFExp(model_config_of(state))
    weights, digest = read_tensors(path, MODEL_FILE, state, device)
    try:
        model.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}/{MODEL_FILE} does not fit its model config: {exc}") from exc
    digests = [digest]
    if ema and not state.get("unet_is_ema"):  # an imported published file holds the EMA U-Net only
        shadow, ema_digest = read_tensors(path, EMA_FILE, state, device)
        model.load_trainable_state_dict({**model.trainable_state_dict(), **shadow})
        digests.append(ema_digest)
    return model, hashlib.sha256(":".join(digests).encode()).hexdigest()


@dataclasses.dataclass
class LoadedCheckpoint:
    model: CCFExp  # eval mode, on the requested device; EMA U-Net weights when loaded with ema=True
    schedule: NoiseSchedule  # the schedule the model was trained with
    state: dict[str, Any]  # state.json: step, config, model_config, load_records, fpsynth_version, ...
    sha256: str  # identifies the weights used (see rebuild_model)
    path: Path  # the checkpoint folder


def load_checkpoint(path: Path, *, ema: bool = True, device: torch.device | str = "cpu") -> LoadedCheckpoint:
    """A trained CCFExp for sampling: ``path`` is a checkpoint folder (or a workspace: its latest),
    or a published file (CCFExp.ckpt, dcface_*.ckpt), imported in memory with the authors' profile."""
    if Path(path).expanduser().is_file():
        return load_published(Path(path).expanduser(), device=device)
    folder = resolve_checkpoint(path)
    state = read_state(folder)
    model, digest = rebuild_model(folder, state, ema=ema, device=device)
    schedule = NoiseSchedule(from_dict(DiffusionConfig, state["diffusion_config"], "checkpoint diffusion_config"))
    return LoadedCheckpoint(model.eval(), schedule, state, digest, folder)


def load_published(path: Path, *, device: torch.device | str = "cpu") -> LoadedCheckpoint:
    """A published checkpoint converted in memory (``fpsynth.published.importer.convert``)."""
    from fpsynth.published.importer import AUTHORS_DIFFUSION, convert, describe

    converted = convert(path)
    with torch.device("meta"):
        model = CCFExp(converted.model_config)
    model.load_state_dict(converted.tensors, strict=True, assign=True)
    return LoadedCheckpoint(
        model.to(device).eval(),
        NoiseSchedule(AUTHORS_DIFFUSION),
        describe(converted),
        converted.source["sha256"],
        Path(path),
    )

"""``fpsynth train``: the training stage over ``WORKSPACE/prepare``'s pairs, into ``WORKSPACE/train``.

Outputs::

    train/checkpoints/step-NNNNNNNN/  train/checkpoints/latest   (fpsynth.train.checkpoint)
    train/log.csv  train/tensorboard/  train/samples/step-NNNNNNNN.png
    train/config.toml  train/stage.json                          (fpsynth.stage)
    train/archive/<time>/                                          earlier runs set aside by --force

What a call does, in order:

- the same config and inputs as a finished run: nothing ("nothing changed, skipping");
- a checkpoint of the same run exists: resume from the newest complete one. "The same run" is the
  same seed, prepared pairs and ``RUN_KEY_FIELDS`` of ``[train]`` (model, diffusion, loss,
  optimizer, EMA, batch size, split); duration, logging, checkpointing, precision, device,
  workers and gradient accumulation may differ, so ``--set train.epochs=20`` extends a finished
  run and a run may continue on another number of GPUs;
- a checkpoint of another run exists: an error that names what differs and suggests ``--force``;
- ``--force``: the current run's files (checkpoints, logs, samples, stage record) are moved to
  ``train/archive/<UTC time>/`` and training starts afresh. Nothing is ever deleted by --force.

Under torchrun every process calls this; rank 0 takes the decisions and writes the files.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpsynth.config import to_dict
from fpsynth.errors import FpsynthError
from fpsynth.outputs import sha256_file
from fpsynth.stage import Input, Stage, hash_paths, weights_made_by
from fpsynth.stages import TRAIN
from fpsynth.train import checkpoint as ckpt
from fpsynth.train.config import RUN_KEY_FIELDS, TrainConfig
from fpsynth.train.distributed import DistContext, barrier, broadcast_object, setup, teardown
from fpsynth.train.loop import train

if TYPE_CHECKING:  # pipeline.py sits above the stage packages
    from fpsynth.pipeline import PipelineConfig

RUN_FILES = (ckpt.CHECKPOINTS, "log.csv", "tensorboard", "samples", "stage.json", "config.toml")
ARCHIVE = "archive"


class RunMismatchError(FpsynthError, RuntimeError):
    """The workspace holds checkpoints of a different run."""


def _pick(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree.get(key, {}) if isinstance(tree, dict) else {}
    return tree


def weight_keys(tc: TrainConfig) -> tuple[str, ...]:
    """The declared weight files (``TRAIN.weights``) the model's variant reads: DCFace only E_ID's."""
    return ("ir50_id",) if tc.model.variant.value == "dcface" else TRAIN.weights


def run_identity(tc: TrainConfig, seed: int, inputs: dict[str, Any]) -> dict[str, Any]:
    """What defines a run (module docstring): seed, inputs' content (paths, or a weights file's
    sha256 under "<key>.sha256"), the run-key fields of [train]."""
    train = to_dict(tc)
    paths = {k: v for k, v in inputs.items() if isinstance(v, Path)}
    digests = {k: v for k, v in inputs.items() if isinstance(v, str)}
    return {
        "seed": seed,
        "inputs": hash_paths(paths),
        **({"weights": digests} if digests else {}),
        **{f"train.{name}": _pick(train, name) for name in RUN_KEY_FIELDS},
    }


def run_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    def flat(tree: Any, prefix: str) -> dict[str, Any]:
        if isinstance(tree, dict):
            return {
                k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}.{key}" if prefix else key).items()
            }
        return {prefix: tree}

    a, b = flat(old, ""), flat(new, "")
    return [
        f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]


def archive_run(train_dir: Path) -> Path | None:
    """Move the current run's files to ``train/archive/<UTC time>/``; None when there were none."""
    present = [train_dir / name for name in RUN_FILES if (train_dir / name).exists()]
    if not present:
        return None
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = train_dir / ARCHIVE / stamp
    n = 1
    while dest.exists():
        dest, n = train_dir / ARCHIVE / f"{stamp}-{n}", n + 1
    dest.mkdir(parents=True)
    for p in present:
        os.replace(p, dest / p.name)
    return dest


def plan(stage: Stage, identity: dict[str, Any], force: bool) -> dict[str, Any]:
    """Rank 0's decision: {"skip": bool, "resume": path or None, "archived": path or None}."""
    if stage.is_up_to_date():
        return {"skip": True, "resume": None, "archived": None}
    latest = ckpt.latest_checkpoint(stage.workspace)
    if force or latest is None:
        # a fresh start: whatever an earlier run left (checkpoints, or logs of a run killed before
        # its first checkpoint) is set aside, never overwritten
        archived = archive_run(stage.dir)
        return {"skip": False, "resume": None, "archived": str(archived) if archived else None}
    state = ckpt.read_state(latest)
    if state.get("run_key") != run_key(identity):
        diffs = _differences(state.get("run_identity", {}), identity)
        raise RunMismatchError(
            f"{stage.dir} holds checkpoints of another run ({latest.name}); what differs: "
            f"{'; '.join(diffs) if diffs else 'the run key'}. Pass --force to start a new run (the old "
            f"one is moved to {stage.dir / ARCHIVE}/), or use another --workspace"
        )
    return {"skip": False, "resume": str(latest), "archived": None}


def run(cfg: PipelineConfig, workspace: Path, force: bool = False) -> dict[str, Any]:
    """Train (or resume, or skip); returns the stage record (``stage.json``) of rank 0."""
    ctx = setup(cfg.train.device)
    try:
        return _run(cfg, Path(workspace), force, ctx)
    finally:
        teardown(ctx)


def train_stage(cfg: PipelineConfig, workspace: Path, force: bool = False) -> tuple[Stage, dict[str, Any]]:
    """The stage of training (declared as ``TRAIN``) and what defines its run: the prepared pairs
    and frames by path, and by sha256 ("<key>.sha256") the weight files the variant reads and
    ``train.init_from`` (checked here, so a missing one names its key): another file is another run."""
    from fpsynth.train.init import CONFIG_KEY, resolve_init_from

    init = resolve_init_from(cfg.train.init_from)
    extra, digests = {}, {}
    if init is not None:
        extra[CONFIG_KEY] = Input(init, weights_made_by(CONFIG_KEY))
        digests[CONFIG_KEY] = _content_digest(init)
    stage = Stage.declared(
        TRAIN, Path(workspace), cfg, force=force, inputs=extra, digests=digests, weights=weight_keys(cfg.train)
    )
    paths = {key: stage.inputs[key].path for key in TRAIN.deps}
    return stage, {**paths, **{f"{k}.sha256": v for k, v in stage.digests.items()}}


def _content_digest(path: Path) -> str:
    """sha256 of ``train.init_from``: of the file, or for an fpsynth checkpoint folder of its
    state.json (which names every file's sha256)."""
    from fpsynth.train.checkpoint import resolve_checkpoint

    path = Path(path)
    if path.is_dir():
        return sha256_file(resolve_checkpoint(path) / ckpt.STATE_FILE)
    return sha256_file(path)


def _run(cfg: PipelineConfig, workspace: Path, force: bool, ctx: DistContext) -> dict[str, Any]:
    prepare_dir = workspace / "prepare"
    stage, inputs = train_stage(cfg, workspace, force)
    stage.require_inputs()
    identity = run_identity(cfg.train, cfg.seed, inputs)
    decision, error = None, None
    if ctx.is_main:
        try:
            decision = plan(stage, identity, force)
        except FpsynthError as exc:  # tell the other ranks before raising, so none waits forever
            error = exc
            decision = {"error": str(exc)}
    decision = broadcast_object(ctx, decision)
    if error is not None:
        raise error
    if "error" in decision:
        raise FpsynthError(decision["error"])
    if decision["skip"]:
        return stage.skipped()
    if ctx.is_main:
        stage.begin(cfg)
    barrier(ctx)
    resume = Path(decision["resume"]) if decision["resume"] else None
    summary = train(
        cfg, stage.dir, prepare_dir, ctx, resume=resume, run={"run_key": run_key(identity), "run_identity": identity}
    )
    summary["archived_previous_run"] = decision["archived"]
    if not ctx.is_main:
        return {"stage": "train", "rank": ctx.rank, "summary": summary}
    return stage.finish(summary)

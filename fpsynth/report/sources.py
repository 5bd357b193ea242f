"""What the report reads: the prepared frames, a trained checkpoint, a generated dataset, the
training log, and where the data came from (real recordings or the synthetic demo renderer).

Nothing here computes a metric; it finds the artifacts of earlier stages, says which command
makes a missing one, and turns them into plain tables with absolute image paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fpsynth.data.dataset import read_manifest
from fpsynth.data.scores import SEVERITY_ORDER, severity_rank
from fpsynth.errors import FpsynthError
from fpsynth.generate.dataset import GENERATE_COMMAND
from fpsynth.generate.merge import METADATA_FILE
from fpsynth.outputs import read_record
from fpsynth.seeds import rng
from fpsynth.stages import TRAIN
from fpsynth.train.checkpoint import latest_checkpoint

TRAIN_COMMAND = TRAIN.usage  # declared with the stage (fpsynth.stages)


class NothingToEvaluateError(FpsynthError, FileNotFoundError):
    """Neither a trained checkpoint nor a generated dataset was found."""


class NotADatasetError(FpsynthError, FileNotFoundError):
    """``--run DIR`` does not hold a generated dataset."""


class CheckpointNotFoundError(FpsynthError, FileNotFoundError):
    """``report.checkpoint`` names a path that does not exist."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The prepare stage's frames manifest, with absolute crop paths and each clip's rest frame."""

    dir: Path
    frames: pd.DataFrame  # frames.parquet rows, plus ``image`` (absolute path) and ``rest_image``

    @classmethod
    def read(cls, prepare_dir: Path) -> Prepared:
        frames = read_manifest(prepare_dir, "frames")
        frames = frames.assign(image=[str(Path(prepare_dir) / p) for p in frames["path"]])
        return cls(Path(prepare_dir), frames.assign(rest_image=rest_images(frames)))

    def split(self, name: str) -> pd.DataFrame:
        return self.frames[self.frames["split"] == name].reset_index(drop=True)

    def by_id(self) -> pd.DataFrame:
        return self.frames.set_index("frame_id", drop=False)


def rest_images(frames: pd.DataFrame) -> list[str | None]:
    """Per frame, the absolute path of its clip's rest shape: the clip's least-moving neutral frame.

    Expression fidelity compares displacements from a face's own rest shape. Clips without a
    neutral frame (plain photos) have none: their rows get None and no expression error.
    """
    neutral = frames[(frames["phase"] == "neutral")].copy()
    neutral["_motion"] = neutral["motion"].astype("float64").fillna(np.inf)
    best = neutral.sort_values(["clip", "_motion", "frame_id"]).drop_duplicates("clip").set_index("clip")
    rest = dict(zip(best.index, best["image"]))
    return [rest.get(clip) for clip in frames["clip"]]


@dataclasses.dataclass(frozen=True)
class Inputs:
    prepared: Prepared
    checkpoint: Path | None  # trained model (aFID); None when there is none
    dataset: Path | None  # generated dataset folder (holds metadata.parquet); None when there is none
    train_log: Path | None  # WORKSPACE/train/log.csv when present


def locate(report_run: Path | None, report_checkpoint: Path | None, workspace: Path) -> Inputs:
    """Find what there is to evaluate; raises with the commands to run when there is nothing."""
    workspace = Path(workspace)
    prepared = Prepared.read(workspace / "prepare")  # raises naming the prepare command
    dataset = _dataset_dir(report_run, workspace)
    checkpoint = _checkpoint(report_checkpoint, workspace)
    if dataset is None and checkpoint is None:
        raise NothingToEvaluateError(
            f"nothing to evaluate in {workspace}: no trained checkpoint and no generated dataset; run "
            f"`{TRAIN_COMMAND}` (a model: aFID and Table 1 on the test patients) and/or "
            f"`{GENERATE_COMMAND}` (a dataset), or pass --run DIR / --set report.checkpoint=PATH"
        )
    log = workspace / "train" / "log.csv"
    return Inputs(prepared, checkpoint, dataset, log if log.is_file() else None)


def _dataset_dir(report_run: Path | None, workspace: Path) -> Path | None:
    if report_run is not None:
        folder = Path(report_run).expanduser()
        if not (folder / METADATA_FILE).is_file():
            raise NotADatasetError(
                f"--run {folder}: no {METADATA_FILE} there, so not a finished generated dataset; "
                f"run `{GENERATE_COMMAND} --out {folder}` (or let it finish) first"
            )
        return folder
    default = workspace / "generate"
    return default if (default / METADATA_FILE).is_file() else None


def _checkpoint(report_checkpoint: Path | None, workspace: Path) -> Path | None:
    if report_checkpoint is not None:
        path = Path(report_checkpoint).expanduser()
        if not path.exists():
            raise CheckpointNotFoundError(
                f"report.checkpoint {path} does not exist; unset it to use the workspace's latest "
                f"checkpoint, or run `{TRAIN_COMMAND}`"
            )
        from fpsynth.published.importer import checkpoint_in_workspace

        return checkpoint_in_workspace(path, workspace)  # a published file: imported once
    return latest_checkpoint(workspace)


# --------------------------------------------------------------------------- provenance


def provenance(workspace: Path, prepared: Prepared) -> dict[str, Any]:
    """Where the prepared data came from, and whether it is the synthetic demo data.

    The prepare stage records its sources in its stage record (``prepare/stage.json``, summary
    ``"sources"``: kind, path as given, found, synthetic, generator), as it found them; the input
    folders themselves are not read again here.
    """
    config_path = Path(workspace) / "prepare" / "config.toml"
    record = read_record(Path(workspace) / "prepare") or {}
    sources = list((record.get("summary") or {}).get("sources", []))
    frames = prepared.frames
    return {
        "prepare_config": str(config_path) if config_path.is_file() else None,
        "sources": sources,
        "synthetic_demo": any(s["synthetic"] for s in sources),
        "frames": int(len(frames)),
        "subjects": int(frames["subject"].nunique()),
        "splits": {
            str(split): {"subjects": int(g["subject"].nunique()), "frames": int(len(g))}
            for split, g in frames.groupby("split")
        },
        "datasets": {str(k): int(v) for k, v in frames["dataset"].value_counts().sort_index().items()},
        "severity_subjects": {
            s: int(frames.loc[frames["severity"] == s, "subject"].nunique())
            for s in SEVERITY_ORDER
            if (frames["severity"] == s).any()
        },
    }


# --------------------------------------------------------------------------- tables


def read_train_log(path: Path | None) -> pd.DataFrame | None:
    """``train/log.csv`` (step, loss terms, lr, images/s) or None."""
    if path is None:
        return None
    log = pd.read_csv(path)
    return log if "step" in log.columns and len(log) else None


def seeded_subset(df: pd.DataFrame, n: int, seed: int, stream: str) -> pd.DataFrame:
    """At most ``n`` rows, a seeded random choice kept in the table's order (all when fewer)."""
    if len(df) <= n:
        return df.reset_index(drop=True)
    keep = np.sort(rng(seed, stream).choice(len(df), size=n, replace=False))
    return df.iloc[keep].reset_index(drop=True)


def severity_sort_key(values: pd.Series) -> pd.Series:
    """Sort key putting severity categories in clinical order (normal first, unknown last)."""
    return values.map(severity_rank)

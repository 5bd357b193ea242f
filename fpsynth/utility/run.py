"""The ``utility`` stage: train palsy graders on real / synthetic / mixed sets, test on real test subjects.

Inputs: ``WORKSPACE/prepare/frames.parquet`` (real crops, train and test splits by subject) and a
generated dataset's ``metadata.parquet`` (``utility.run``, default ``WORKSPACE/generate``).
Outputs in ``WORKSPACE/utility/``::

    utility.json   the summary: per task, grader and regime the metrics (mean over repeats, sd,
                   bootstrap CI over test subjects), the gain over real-only, the leak counts
    runs.parquet   one row per (task, grader, regime, repeat) with its metrics
    config.toml  stage.json

Landmarks of every image, real and generated, come from the same detector: the dlib 68-point
predictor fitted in the fixed box of an aligned crop (:mod:`fpsynth.metrics.landmarks`), so the
geometry grader never compares annotated real points with detected generated ones.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console

from fpsynth.config import to_dict
from fpsynth.data.codec import read_rgb, thumbnail
from fpsynth.errors import FpsynthError
from fpsynth.generate.merge import METADATA_FILE
from fpsynth.seeds import rng
from fpsynth.stage import MissingInputError, Stage, atomic_write_json, atomic_write_parquet
from fpsynth.stages import GENERATE, UTILITY
from fpsynth.utility.benchmark import evaluate
from fpsynth.utility.config import Grader, UtilityConfig
from fpsynth.utility.regimes import Samples
from fpsynth.version import __version__
from fpsynth.weights import WeightsConfig

if TYPE_CHECKING:  # pipeline.py sits above the stage packages
    from fpsynth.pipeline import PipelineConfig

UTILITY_FILE = "utility.json"  # UTILITY.outs declares it with runs.parquet
CROP = 112
console = Console(stderr=True)


def run(cfg: PipelineConfig, workspace: Path, force: bool = False) -> dict[str, Any]:
    """Run the stage for ``cfg``; returns the stage record."""
    uc = cfg.utility
    workspace = Path(workspace)
    prepare_dir = workspace / "prepare"
    dataset = Path(uc.run).expanduser() if uc.run is not None else workspace / "generate"
    stage = Stage.declared(
        UTILITY,
        workspace,
        cfg,
        force=force,
        at={"dataset": dataset / METADATA_FILE},
        weights=UTILITY.weights if Grader.IR50 in uc.graders else (),
    )
    stage.require_inputs()
    if stage.is_up_to_date():
        return stage.skipped()
    image_features, networks = _image_features(
        uc, cfg.weights
    )  # a missing or wrong weights file fails before the stage begins
    stage.begin(cfg)
    landmarker = _landmarker(cfg.weights.dlib_models)
    need_images = Grader.APPEARANCE in uc.graders or Grader.IR50 in uc.graders
    frames = pd.read_parquet(prepare_dir / "frames.parquet")
    t0 = time.perf_counter()
    real = _samples(frames, [prepare_dir / p for p in frames["path"]], landmarker, need_images, uc.batch_size)
    t1 = time.perf_counter()
    meta = _metadata(dataset, frames, uc.max_synthetic, cfg.seed)
    synthetic = _samples(meta, [dataset / f for f in meta["file_name"]], landmarker, need_images, uc.batch_size)
    reading = {"read_landmarks_real": round(t1 - t0, 3), "read_landmarks_generated": round(time.perf_counter() - t1, 3)}
    result = evaluate(
        real, synthetic, uc, cfg.seed, image_features=image_features, log=lambda s: console.print(s, highlight=False)
    )
    result.summary["timings_s"] = {**reading, **result.summary["timings_s"]}
    summary = {
        "title": "fpsynth utility: train on real / synthetic / mixed, test on real test subjects",
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fpsynth_version": __version__,
        "inputs": {"prepare": str(prepare_dir), "dataset": str(dataset), "generated_images": int(len(meta))},
        "landmarks": "dlib 68-point predictor in the fixed crop box, for real and generated images alike",
        "networks": networks,
        **result.summary,
        "config": to_dict(uc),
        "files": {"runs": "runs.parquet"},
    }
    atomic_write_parquet(stage.dir / "runs.parquet", result.runs)
    atomic_write_json(stage.dir / UTILITY_FILE, plain(summary))
    console.print(f"utility: {stage.dir / UTILITY_FILE} ({len(result.runs)} runs)", highlight=False)
    return stage.finish(
        {"runs": int(len(result.runs)), "tasks": {k: v["status"] for k, v in result.summary["tasks"].items()}}
    )


def _image_features(uc: UtilityConfig, weights: WeightsConfig) -> tuple[Any, list[dict[str, Any]]]:
    """(crops -> frozen IR-50 features, [its load record]) when the ir50 grader is asked for, else (None, [])."""
    if Grader.IR50 not in uc.graders:
        return None, []
    from fpsynth.utility.ir50 import ir50_features, load_ir50

    net, record = load_ir50(uc.ir50, weights.ir50_id, weights.random_init)
    return (lambda images: ir50_features(images, net, uc.ir50)), [dataclasses.asdict(record)]


def _landmarker(dlib_models: Path | None) -> Any:
    from fpsynth.data.faces.base import FaceBackendError
    from fpsynth.metrics.landmarks import dlib_crop_landmarker

    try:
        return dlib_crop_landmarker(dlib_models)
    except FaceBackendError as exc:
        raise FpsynthError(f"utility: the landmark detector cannot start ({exc}); set weights.dlib_models") from None


def _metadata(dataset: Path, frames: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    """The generated rows (a seeded subset of ``max_images`` when > 0), with the style frame's side."""
    try:
        meta = pd.read_parquet(dataset / METADATA_FILE).sort_values("item_id").reset_index(drop=True)
    except (OSError, ValueError) as exc:
        raise FpsynthError(
            f"{dataset / METADATA_FILE} cannot be read ({type(exc).__name__}); run "
            f"`{GENERATE.usage} --out {dataset}` again"
        ) from None
    if max_images and len(meta) > max_images:
        rows = np.sort(rng(seed, "utility-rows").choice(len(meta), max_images, replace=False))
        meta = meta.iloc[rows].reset_index(drop=True)
    if "side" in frames:
        side = frames.drop_duplicates("frame_id").set_index("frame_id")["side"]
        meta = meta.assign(side=meta["style_frame"].map(side))
    return meta


def _samples(table: pd.DataFrame, paths: list[Path], landmarker: Any, keep_images: bool, batch: int) -> Samples:
    """Read the crops of ``table`` in batches; landmarks of each from ``landmarker``."""
    lms, images = [], []
    for i in range(0, len(paths), batch):
        crops = np.stack([_read(p) for p in paths[i : i + batch]])
        lms.append(landmarker(crops))
        if keep_images:
            images.append(crops)
    empty = np.zeros((0, 68, 2), np.float32)
    return Samples(
        table,
        np.concatenate(lms) if lms else empty,
        (np.concatenate(images) if images else np.zeros((0, CROP, CROP, 3), np.uint8)) if keep_images else None,
    )


def _read(path: Path) -> np.ndarray:
    rgb = read_rgb(path)
    if rgb is None:
        raise MissingInputError(f"image {path} is missing or unreadable; re-run the stage that wrote it")
    return thumbnail(rgb, CROP)


def plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, paths and enums to text."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)

"""The ``report`` stage: evaluate a trained model and/or a generated dataset.

Outputs in ``WORKSPACE/report/``::

    report.json            every figure, with what it was computed on (n, networks, files, split, thresholds)
    report.html            the same for a person: one self-contained static page
    items-dataset.parquet  per-image values of the generated dataset (when one was evaluated)
    items-model.parquet    per-image values of the model's aFID first pass (when a checkpoint was evaluated)
    afid/first|returned/   the aFID transfer images; identities/: the dataset's identity crops as PNGs
    config.toml  stage.json  parts/

What is evaluated is whatever exists: the generated dataset (``--run DIR``, default
``WORKSPACE/generate``) gets FID against the real frames of ``report.split``, Table 1, identity,
expression fidelity and the privacy audit; a trained checkpoint (``report.checkpoint``, default the
workspace's latest) gets aFID and the same per-image metrics on aFID's first-pass images.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console

from fpsynth.config import to_dict, to_toml
from fpsynth.device import resolve_device
from fpsynth.generate.merge import METADATA_FILE
from fpsynth.generate.synthesizer import Synthesizer
from fpsynth.metrics.fid import FeatureStats, extract_features, fid
from fpsynth.metrics.table1 import describe_convention
from fpsynth.nets.loading import MissingNetwork
from fpsynth.outputs import require_upstream
from fpsynth.report import page, utility_section
from fpsynth.report.afid import AFID_DIR, afid_of, plan_afid, run_transfers
from fpsynth.report.config import ReportConfig
from fpsynth.report.dataset import read_generated
from fpsynth.report.evaluate import SetResult, Timings, evaluate_set
from fpsynth.report.figures import SetSummary
from fpsynth.report.images import batched, load_images
from fpsynth.report.networks import Networks, open_networks
from fpsynth.report.privacy import audit
from fpsynth.report.sources import Inputs, Prepared, locate, provenance, read_train_log, seeded_subset
from fpsynth.report.summary import set_summary, table1_row
from fpsynth.stage import Stage, atomic_write_json, atomic_write_parquet, atomic_write_text
from fpsynth.stages import PREPARE, REPORT, TRAIN
from fpsynth.version import __version__

if TYPE_CHECKING:  # pipeline.py sits above the stage packages
    from fpsynth.pipeline import PipelineConfig

console = Console(stderr=True)


@dataclasses.dataclass
class EvaluatedSet:
    """One evaluated set: its per-image values (items-<name>.parquet) and its figures (report.json)."""

    items: pd.DataFrame
    summary: SetSummary


@dataclasses.dataclass
class ModelEvaluation:
    """A trained checkpoint: what it is, its aFID block, the aFID plan with its images, and the
    first-pass images as an evaluation set (the last two None when no patient can be evaluated)."""

    info: dict[str, Any]
    afid: dict[str, Any]
    plan: pd.DataFrame | None = None
    first_pass: EvaluatedSet | None = None


@dataclasses.dataclass
class Evaluation:
    """Everything the stage evaluated; report.json and the page are made from it."""

    afid: dict[str, Any]  # report.json's afid block (or why it was not computed)
    dataset: dict[str, Any] | None = None  # what the generated dataset is (evaluated.dataset)
    model: ModelEvaluation | None = None
    sets: dict[str, EvaluatedSet] = dataclasses.field(default_factory=dict)  # "dataset", "model"


def run(cfg: PipelineConfig, workspace: Path, force: bool = False) -> dict[str, Any]:
    """Run the stage for ``cfg``; returns the stage record."""
    rc = cfg.report
    workspace = Path(workspace)
    require_upstream(workspace / PREPARE.name, PREPARE.usage)  # before reading: unfinished or damaged is refused
    inputs = locate(rc.run, rc.checkpoint, workspace)
    stage = Stage.declared(REPORT, workspace, cfg, force=force, at=_located(inputs))
    stage.require_inputs()
    if stage.is_up_to_date():
        return stage.skipped()
    stage.begin(cfg)
    if force:  # redo the aFID transfers too, not only the figures
        shutil.rmtree(stage.dir / "parts", ignore_errors=True)
    timings = Timings()
    nets = open_networks(cfg.weights, rc.metrics, resolve_device(rc.device), cfg.seed)
    prepared = inputs.prepared
    reference = seeded_subset(prepared.split(rc.split), rc.max_images, cfg.seed, "report-reference")
    ref_stats = _feature_stats(nets, reference["image"].tolist(), rc.metrics.fid.batch_size, timings)

    ev = Evaluation(afid={"status": "not computed", "reason": f"no trained checkpoint (run `{TRAIN.usage}`)"})
    if inputs.dataset is not None:
        ev.dataset, ev.sets["dataset"] = _dataset(inputs, rc, cfg.seed, nets, ref_stats, stage, timings)
    if inputs.checkpoint is not None and not rc.afid.enabled:
        ev.afid = {"status": "not computed", "reason": "report.afid.enabled is false"}
    elif inputs.checkpoint is not None:
        ev.model = _model(inputs, rc, cfg.seed, nets, ref_stats, stage, timings)
        ev.afid = ev.model.afid
        if ev.model.first_pass is not None:
            ev.sets["model"] = ev.model.first_pass

    train_log = read_train_log(inputs.train_log)
    report = _report(ev, workspace, prepared, reference, nets, rc, inputs, train_log, timings)
    for name, evaluated in ev.sets.items():
        atomic_write_parquet(stage.dir / f"items-{name}.parquet", evaluated.items)
    atomic_write_json(stage.dir / "report.json", plain_json(report))
    html = page.render(
        report,
        {name: s.items for name, s in ev.sets.items()},
        ev.model.plan if ev.model else None,
        train_log,
        prepared.dir,
        rc.page,
        to_toml({"report": to_dict(rc)}),
    )
    atomic_write_text(stage.dir / "report.html", html)
    console.print(f"report: {stage.dir / 'report.html'} (figures in {stage.dir / 'report.json'})", highlight=False)
    return stage.finish(
        {
            "sets": {k: len(v.items) for k, v in ev.sets.items()},
            "missing": [m["metric"] for m in report["missing"]],
            "html": str(stage.dir / "report.html"),
        }
    )


def _report(
    ev: Evaluation,
    workspace: Path,
    prepared: Prepared,
    reference: pd.DataFrame,
    nets: Networks,
    rc: ReportConfig,
    inputs: Inputs,
    train_log: pd.DataFrame | None,
    timings: Timings,
) -> dict[str, Any]:
    """report.json's content, which the page also reads: the one place the typed figures become
    plain dicts (``plain_json`` then makes them JSON-safe)."""
    blocks = {name: s.summary.to_json() for name, s in ev.sets.items()}
    report = {
        "title": "fpsynth report",
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fpsynth_version": __version__,
        "workspace": str(workspace),
        "provenance": provenance(workspace, prepared),
        "evaluated": {"dataset": ev.dataset, "model": ev.model.info if ev.model else None},
        "reference": {
            "split": rc.split,
            "n": int(len(reference)),
            "subjects": int(reference["subject"].nunique()),
            "what": f"real prepared frames of the {rc.split} split (FID reference)",
        },
        "networks": nets.summary(),
        "missing": nets.missing(),
        "random_init": nets.random_init(),
        "sets": blocks,
        "afid": ev.afid,
        "table1_convention": describe_convention(rc.metrics.table1),
        "table1": [
            table1_row(name, block, ev.afid if name == "model" else None, rc.metrics.table1)
            for name, block in blocks.items()
        ],
        "training": _training(inputs.train_log, train_log),
        "timings_s": dict(timings),
        "utility": utility_section.read(workspace),  # fpsynth utility's figures, when it has run
        "config": to_dict(rc),
        "files": {name: f"items-{name}.parquet" for name in ev.sets},
    }
    return report


def _located(inputs: Inputs) -> dict[str, Path | None]:
    """Where this run finds REPORT's dependencies (None: absent, evaluated without)."""
    utility = inputs.prepared.dir.parent / utility_section.UTILITY_JSON
    return {
        "frames": inputs.prepared.dir / "frames.parquet",
        "dataset": inputs.dataset / METADATA_FILE if inputs.dataset is not None else None,
        "checkpoint": inputs.checkpoint,
        "train_log": inputs.train_log,
        "utility": utility if utility.is_file() else None,
    }


def _dataset(
    inputs: Inputs,
    rc: ReportConfig,
    seed: int,
    nets: Networks,
    ref_stats: FeatureStats | None,
    stage: Stage,
    timings: Timings,
) -> tuple[dict[str, Any], EvaluatedSet]:
    """The generated dataset's description, and its per-image table and figures (privacy audit included)."""
    assert inputs.dataset is not None  # the caller evaluates a dataset only when one was found
    items, info = read_generated(inputs.dataset, inputs.prepared, rc.max_images, seed, stage.dir / "identities")
    result = evaluate_set(items, nets, rc.metrics, rc.batch_size, timings)
    privacy = None
    if rc.privacy.enabled:
        result.items, privacy = audit(
            result.items, result.embeddings, inputs.prepared, nets, rc.privacy, rc.batch_size, seed, timings
        )
    return info, _evaluated(result, nets, ref_stats, rc, timings, privacy)


def _model(
    inputs: Inputs,
    rc: ReportConfig,
    seed: int,
    nets: Networks,
    ref_stats: FeatureStats | None,
    stage: Stage,
    timings: Timings,
) -> ModelEvaluation:
    """The checkpoint evaluated: aFID, and every per-image metric on aFID's first-pass images."""
    from fpsynth.train.checkpoint import load_checkpoint

    assert inputs.checkpoint is not None  # the caller evaluates a model only when one was found
    loaded = load_checkpoint(inputs.checkpoint, ema=True, device=nets.device)
    info = _model_info(loaded)
    plan, skipped = plan_afid(inputs.prepared, rc.afid, rc.split, seed)
    base = {
        "split": rc.split,
        "sampler": to_dict(rc.afid.sampler),
        "identity_pool": rc.afid.identity_pool.value,
        "images_per_patient": rc.afid.images_per_patient,
        "skipped": skipped,
    }
    if not len(plan):
        return ModelEvaluation(
            info,
            {"status": "not computed", "reason": f"no test patient can be evaluated ({len(skipped)} skipped)", **base},
        )
    synth = Synthesizer(loaded.model, loaded.schedule, rc.afid.sampler, nets.device)
    plan = run_transfers(plan, synth, rc.afid.batch_size, stage.dir / AFID_DIR, stage.items("afid"), timings)
    items = plan.rename(columns={"first_image": "image", "patient": "style_subject"}).assign(
        identity=plan["id_subject"]
    )
    result = evaluate_set(items, nets, rc.metrics, rc.batch_size, timings)
    if isinstance(nets.fid, MissingNetwork):
        block = {**nets.fid.to_dict(), **base}
    else:
        afid = afid_of(plan, nets, rc.metrics.fid.batch_size, rc.metrics.fid.eps, timings)
        block = {"status": "ok", **afid.to_dict(), **base}
    return ModelEvaluation(info, block, plan, _evaluated(result, nets, ref_stats, rc, timings, None))


def _model_info(loaded: Any) -> dict[str, Any]:
    """What the checkpoint is: step, weights hash, the paper's Table 1 switches, pretrained files."""
    state = loaded.state
    model = state["model_config"]
    loss = state.get("config", {}).get("train", {}).get("loss", {})
    dcface = model["variant"] == "dcface"
    return {
        "path": str(loaded.path),
        "sha256": loaded.sha256,
        "step": state["step"],
        "variant": model["variant"],
        "profile": model.get("profile", "fpsynth"),
        "published": {k: state["published"][k] for k in ("file", "sha256", "kind")} if state.get("published") else None,
        "switches": {  # Table 1: GS grid size (DCFace), LM landmarks, CF cross-fusion, CD cycle diffusion
            "grid": f"{model['dcface_grid']}x{model['dcface_grid']}" if dcface else None,
            "landmarks": not dcface and model["use_landmarks"],
            "cross_fusion": not dcface and model["cross_fusion"],
            "cycle": loss.get("cycle"),
        },
        "random_init": [r["name"] for r in state["load_records"] if r["random_init"]],
        "load_records": state["load_records"],
    }


def _feature_stats(nets: Networks, paths: list[str], batch_size: int, timings: Timings) -> FeatureStats | None:
    """Inception statistics of real images (None when FID is missing or there are < 2)."""
    if not nets.available("fid") or len(paths) < 2:
        return None
    with timings("reference_features"):
        batches = (load_images(paths[sl]).to(nets.device) for sl in batched(len(paths), batch_size))
        return extract_features(nets.net("fid"), batches)


def _evaluated(
    result: SetResult,
    nets: Networks,
    ref_stats: FeatureStats | None,
    rc: ReportConfig,
    timings: Timings,
    privacy: dict[str, Any] | None,
) -> EvaluatedSet:
    fid_result = None
    if result.stats is not None and ref_stats is not None and result.stats.n >= 2:
        with timings("fid_distance"):
            fid_result = fid(result.stats, ref_stats, rc.metrics.fid.eps)
    summary = set_summary(
        result.items, nets, fid_result, f"real frames of the {rc.split} split", rc.metrics.table1, privacy
    )
    return EvaluatedSet(result.items, summary)


def _training(path: Path | None, log: pd.DataFrame | None) -> dict[str, Any] | None:
    if log is None:
        return None
    return {"log": str(path), "rows": int(len(log)), "last": log.iloc[-1].to_dict()}


def plain_json(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, paths and enums to text."""
    if isinstance(obj, dict):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain_json(dataclasses.asdict(obj))
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)

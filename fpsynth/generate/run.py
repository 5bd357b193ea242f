"""The ``generate`` stage: identity photos x prepared palsy frames -> a labelled synthetic dataset.

Output folder (``--out``, default ``WORKSPACE/generate``)::

    README.md                 dataset card (synthetic-data statement, counts, settings, loading)
    metadata.parquet          one row per image, merged from the shard parts (also read by image-folder loaders)
    plan.parquet              the sampling plan, written before any sampling (one row group per shard)
    identities.parquet        the aligned identity faces (PNG bytes), identity_rejects.parquet the unusable photos
    run.json                  the run key and the settings that decide the images
    config.toml  stage.json   resolved pipeline config, stage record
    shards/NNNNN/<item>.png   the images; shards/NNNNN.parquet that shard's rows (written last: "done")

Steps: identities (``--ids``) and the style pool (``WORKSPACE/prepare/frames.parquet``) -> the plan
(written first; ``generate.plan_only`` stops there) -> the checkpoint -> this process's shards
(verified and kept when done, made otherwise) -> when every shard of the run is done, the merge,
the card and the stage record. :func:`produce` is the part after the inputs are in hand; tests and
benchmarks call it with identities and a model loader of their own.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from fpsynth.config import to_dict
from fpsynth.data.provenance import is_synthetic
from fpsynth.data.sources import check_root
from fpsynth.device import resolve_device
from fpsynth.errors import FpsynthError
from fpsynth.generate.card import dataset_card
from fpsynth.generate.config import GenerateConfig
from fpsynth.generate.identities import Identities, IdentityError, prepare_identities, write_identities
from fpsynth.generate.merge import METADATA_FILE, merge, pending_shards, read_metadata_key
from fpsynth.generate.plan import Plan, StylePool, write_plan
from fpsynth.generate.progress import console, image_progress
from fpsynth.generate.shards import RunInfo, ShardMaker, verify_shard
from fpsynth.generate.synthesizer import Synthesizer
from fpsynth.generate.workers import Worker
from fpsynth.outputs import require_upstream
from fpsynth.stage import Input, MissingInputError, Stage, atomic_write_json, atomic_write_text
from fpsynth.stages import GENERATE, PREPARE, TRAIN, run_first
from fpsynth.version import __version__

if TYPE_CHECKING:  # pipeline.py sits above the stage packages
    from fpsynth.pipeline import PipelineConfig

RUN_FILE = "run.json"
CARD_FILE = "README.md"  # the dataset card; GENERATE.outs declares it with METADATA_FILE

Loader = Callable[..., Any]  # (path, *, ema, device) -> object with .model .schedule .sha256 .state


class GenerateOutputError(FpsynthError, NotADirectoryError):
    """The output folder cannot be one (a file is there)."""


class OtherRunError(FpsynthError, FileExistsError):
    """The output folder holds a different run (other settings, inputs or checkpoint)."""


def run(cfg: PipelineConfig, workspace: Path, force: bool = False) -> dict[str, Any]:
    """The CLI's entry; returns the stage record (or a partial summary)."""
    gen = cfg.generate
    workspace = Path(workspace)
    out = Path(gen.out) if gen.out is not None else workspace / "generate"
    if out.exists() and not out.is_dir():
        raise GenerateOutputError(f"--out {out} is a file; give a folder (it is created when absent)")
    prepare_dir = workspace / "prepare"
    require_upstream(prepare_dir, PREPARE.usage)  # before the checkpoint and identities: a clear first error
    if gen.ids is None:
        raise IdentityError("generate needs identity faces: pass --ids DIR (a folder of face photos)")
    ids = check_root(Path(gen.ids), "--ids")
    checkpoint = None if gen.plan_only else _checkpoint_path(gen.checkpoint, workspace)
    stage = Stage.declared(
        GENERATE,
        workspace,
        cfg,
        force=force,
        folder=out,
        at={"frames": prepare_dir / "frames.parquet", "checkpoint": checkpoint},
        inputs={"ids": Input(ids, GENERATE.usage)},
    )  # the user's photos
    stage.require_inputs()
    if not gen.plan_only and stage.is_up_to_date():
        problem = dataset_problem(out) or stage.damage()
        if problem is None:
            return stage.skipped()
        console.print(f"{out}: {problem}; remaking what is damaged")
    identities = prepare_identities(ids, cfg.prepare, out, seed=cfg.seed, dlib_models=cfg.weights.dlib_models)
    pool = StylePool.from_manifest(prepare_dir, gen.plan)
    from fpsynth.train.checkpoint import load_checkpoint

    return produce(cfg, out, identities, pool, checkpoint, load_checkpoint, stage=stage, force=force)


def dataset_problem(out: Path) -> str | None:
    """What is wrong with a finished dataset folder (None when every image of metadata.parquet is
    there with its sha256): a rerun then remakes the damaged shards instead of skipping."""
    try:
        meta = pd.read_parquet(Path(out) / METADATA_FILE, columns=["file_name", "image_sha256"])
    except Exception as exc:  # truncated or missing parquet: pyarrow raises several kinds
        return f"{METADATA_FILE} cannot be read ({type(exc).__name__})"
    bad = 0
    for name, digest in zip(meta["file_name"], meta["image_sha256"]):
        path = Path(out) / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad += 1
    return f"{bad} image(s) missing or damaged" if bad else None


def _checkpoint_path(given: Path | None, workspace: Path) -> Path:
    if given is not None:
        from fpsynth.published.importer import checkpoint_in_workspace

        return checkpoint_in_workspace(given, workspace)  # a published file: imported once
    from fpsynth.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(workspace)
    if latest is None:
        raise MissingInputError(
            f"no finished checkpoint in {workspace / TRAIN.name}; {run_first(TRAIN.name)} (or pass --checkpoint PATH)"
        )
    return latest


def produce(
    cfg: PipelineConfig,
    out: Path,
    identities: Identities,
    pool: StylePool,
    checkpoint: Path | None,
    loader: Loader,
    *,
    stage: Stage | None = None,
    force: bool = False,
    worker: Worker | None = None,
) -> dict[str, Any]:
    """Plan, sample this process's shards, and merge when the whole run is done (see the module docstring)."""
    gen, out = cfg.generate, Path(out)
    plan = Plan(gen.count, gen.plan, cfg.seed, identities, pool)
    if gen.plan_only:
        _claim(out, {"plan_key": plan.key()}, force, "plan_key")
        write_identities(out, identities)
        path = write_plan(out, plan)
        console.print(f"plan of {plan.count} images in {plan.n_shards} shard(s) written to {path}")
        return {
            "stage": "generate",
            "status": "planned",
            "plan": str(path),
            "items": plan.count,
            "shards": plan.n_shards,
        }

    device = resolve_device(gen.runtime.device)
    loaded = loader(checkpoint, ema=gen.ema, device=device)
    synth = Synthesizer(loaded.model, loaded.schedule, gen.sampler, device, gen.runtime)
    settings = _run_settings(gen, cfg.seed, plan, loaded, checkpoint)
    _claim(out, settings, force, "run_key")
    run_key = settings["run_key"]
    if stage is not None:
        stage.begin(cfg)
    atomic_write_json(out / RUN_FILE, settings)
    write_identities(out, identities)
    write_plan(out, plan)
    if read_metadata_key(out) not in (None, run_key):  # a merge of an earlier run must not pass for this one's
        (out / METADATA_FILE).unlink()
        (out / CARD_FILE).unlink(missing_ok=True)

    worker = worker or Worker.from_env(gen.shard_spec)
    made, seconds = _make_shards(out, plan, synth, identities, pool, settings, worker, force)
    pending = pending_shards(out, range(plan.n_shards), run_key)
    summary: dict[str, Any] = {
        "images_made": made,
        "seconds": round(seconds, 2),
        "images_per_s": round(made / seconds, 3) if seconds > 0 else None,
        "worker": worker.describe(),
    }
    if pending:
        console.print(
            f"{worker.describe()}: done; {len(pending)} shard(s) of other processes still pending "
            f"(the last process to finish merges, or run `{GENERATE.command}` without --shard)."
        )
        return {"stage": "generate", "status": "partial", "pending_shards": len(pending), "summary": summary}

    counts = merge(out, plan, run_key)
    card = dataset_card(counts, gen, cfg.seed, settings["checkpoint"], len(identities.rejects), out.name)
    atomic_write_text(out / CARD_FILE, card)
    summary.update(
        {
            "images": counts.images,
            "shards": plan.n_shards,
            "identities": len(counts.identities),
            "style_frames": len(counts.style_frames),
            "severity": dict(sorted(counts.severity.items())),
            "expression": dict(sorted(counts.expression.items())),
            "out": str(out),
        }
    )
    console.print(f"{counts.images} images in {out} ({METADATA_FILE}, {CARD_FILE})")
    if stage is not None:
        summary["ids_synthetic"] = is_synthetic(Path(gen.ids)) if gen.ids is not None else False
        return stage.finish(summary)
    return {"stage": "generate", "status": "finished", "summary": summary}


def _run_settings(gen: GenerateConfig, seed: int, plan: Plan, loaded: Any, checkpoint: Path | None) -> dict[str, Any]:
    """Everything that decides the images, and its hash (the run key)."""
    decisive = {
        "plan_key": plan.key(),
        "count": gen.count,
        "seed": seed,
        "ema": gen.ema,
        "sampler": to_dict(gen.sampler),
        "checkpoint_sha256": loaded.sha256,
    }
    run_key = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
    step = loaded.state.get("step") if isinstance(loaded.state, dict) else None
    return {
        "run_key": run_key,
        **decisive,
        "fpsynth": __version__,
        "checkpoint": {
            "path": str(checkpoint) if checkpoint else None,
            "sha256": loaded.sha256,
            "step": step,
            "profile": getattr(getattr(loaded.model, "cfg", None), "profile", "fpsynth"),
        },
        "shards": plan.n_shards,
        "shard_size": plan.shard_size,
    }


def _claim(out: Path, settings: dict[str, Any], force: bool, key: str) -> None:
    """Refuse an output folder that holds another run, unless forced."""
    try:
        held = json.loads((out / RUN_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    if held.get(key) == settings[key] or force:
        return
    differ = sorted(k for k in settings if k in held and held[k] != settings[k] and k not in ("run_key", "checkpoint"))
    raise OtherRunError(
        f"{out} holds another generation run (differing: {', '.join(differ) or 'inputs'}); "
        "pass --force to replace it, or choose another --out"
    )


def _make_shards(
    out: Path,
    plan: Plan,
    synth: Synthesizer,
    identities: Identities,
    pool: StylePool,
    settings: dict[str, Any],
    worker: Worker,
    force: bool,
) -> tuple[int, float]:
    """Verify this process's done shards, make the others; returns (images made, seconds sampling)."""
    run_key = settings["run_key"]
    mine = worker.shards(plan.n_shards)
    todo, done = [], 0
    for s in mine:
        problem = "redo (--force)" if force else verify_shard(out, s, run_key, plan.shard_rows(s))
        if problem is None:
            done += len(plan.shard_range(s))
        else:
            if problem != "not finished":
                console.print(f"shard {s}: {problem}; making it again")
            todo.append(s)
    total = sum(len(plan.shard_range(s)) for s in mine)
    if not todo:
        return 0, 0.0
    batch_size = synth.batch_size(divides=plan.shard_size)
    info = RunInfo(
        run_key,
        synth.sampler.kind.value,
        synth.sampler.steps,
        synth.sampler.eta,
        settings["checkpoint_sha256"],
        settings["checkpoint"]["step"],
        synth.device.type,
        synth.precision,
        batch_size,
        settings["checkpoint"]["profile"],
    )
    start = time.perf_counter()
    label = f"generate ({worker.describe()}, batch {batch_size}, {synth.device})"
    runtime = synth.runtime
    with (
        ShardMaker(
            synth,
            identities,
            pool.prepare_dir,
            out,
            info,
            batch_size=batch_size,
            writer_threads=runtime.writer_threads,
            png_compression=runtime.png_compression,
            background=synth.background_io,
        ) as maker,
        image_progress(label, total, done, worker.shows_progress) as advance,
    ):
        made = maker.make(((s, plan.shard_rows(s)) for s in todo), advance)
    if synth.cuda:
        torch.cuda.synchronize(synth.device)
    return made, time.perf_counter() - start

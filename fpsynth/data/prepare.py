"""The ``prepare`` stage: raw facial-palsy data -> aligned 112x112 crops + Parquet manifests.

Outputs in ``WORKSPACE/prepare/``::

    frames.parquet  pairs.parquet  rejects.parquet     shareable (pseudonyms only)
    crops/<subject>/<input>/<frame>.png                 the aligned crops
    private/mapping.parquet  private/rejects.parquet   original ids and paths: keep private
    config.toml  stage.json  parts/                    resolved config, record, per-job resume

Each job's rows are stored as soon as it finishes (``Stage.items``), so a killed run resumes
where it stopped, and the manifests are rebuilt from all stored jobs at the end: an interrupted
and resumed run writes the same rows as an uninterrupted one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from fpsynth.config import to_dict
from fpsynth.data.manifests import (
    FRAMES, PAIRS, REJECTS, add_subject_columns, assign_splits, build_pairs, sort_frames, sort_rejects, to_table,
)
from fpsynth.data.privacy import Pseudonymised, pseudonymise
from fpsynth.data.faces import check_backend
from fpsynth.data.process import CROPS_DIR, Context
from fpsynth.data.reasons import Reason
from fpsynth.data.runner import console, execute
from fpsynth.data.scores import ScoreTable, read_scores
from fpsynth.data.sources import Kind, SourceError, check_root, discover_aflfp, discover_images, discover_meei
from fpsynth.stage import Input, ItemStore, Stage, atomic_write_parquet

OUTPUTS = ["frames.parquet", "pairs.parquet", "rejects.parquet", "private/mapping.parquet"]
_DISCOVER = {"meei": discover_meei, "aflfp": discover_aflfp, "images": discover_images}
_LAYOUT = {
    "meei": "<subject>/<expression>[_<side>].mp4|avi|mov|jpg|png",
    "aflfp": "<subject>/<expression>/<NNN>[_<phase>].png|jpg with a .pts beside each",
    "images": "image files (jpg, png, ...), in sub-folders or not",
}


def run(cfg: Any, workspace: Path, force: bool = False) -> dict[str, Any]:
    """Run the stage for ``cfg`` (a PipelineConfig); returns the stage record."""
    pc = cfg.prepare
    roots = {name: getattr(pc, name) for name in _DISCOVER if getattr(pc, name) is not None}
    if not roots:
        raise SourceError("prepare needs input: pass --meei DIR, --aflfp DIR and/or --images DIR")
    roots = {name: check_root(path, f"--{name}") for name, path in roots.items()}
    if pc.scores is not None and not Path(pc.scores).is_file():
        raise SourceError(f"--scores {pc.scores}: file does not exist")
    inputs = {name: Input(path, f"fpsynth prepare --{name} DIR (your data)") for name, path in roots.items()}
    if pc.scores is not None:
        inputs["scores"] = Input(Path(pc.scores), "fpsynth prepare --scores CSV (your data)")
    section = {k: v for k, v in to_dict(pc).items() if k != "n_jobs"}  # workers do not change results
    stage = Stage("prepare", workspace, section, inputs=inputs, outputs=OUTPUTS, force=force,
                  extra={"seed": cfg.seed, "dlib_models": str(cfg.weights.dlib_models)})
    stage.require_inputs()
    if stage.is_up_to_date():
        return stage.skipped()

    found = []
    for name, root in roots.items():
        items = _DISCOVER[name](root, pc.sources)
        if not items:
            raise SourceError(f"--{name} {root}: no files found; expected {_LAYOUT[name]}")
        found.extend(items)
    scores = read_scores(Path(pc.scores)) if pc.scores is not None else ScoreTable({}, [])
    ps = pseudonymise(found, cfg.seed)
    ctx = Context(pc, stage.dir, cfg.weights.dlib_models)
    if any(job.kind is not Kind.SEQUENCE for job in ps.jobs):
        check_backend(pc.faces, cfg.weights.dlib_models)  # fail here, before any work

    stage.begin(cfg)
    if force:
        shutil.rmtree(stage.dir / "parts", ignore_errors=True)
    frames_store, rejects_store = stage.items("frames"), stage.items("rejects")

    def sink(job, result) -> None:  # rejects first: the frames part marks the job done
        rejects_store.write(job.input, pd.DataFrame(result.rejects, columns=REJECTS.names))
        frames_store.write(job.input, pd.DataFrame(result.frames))

    pending = [job for job in ps.jobs if not frames_store.done(job.input)]
    execute(pending, ctx, pc.n_jobs, sink, done=len(ps.jobs) - len(pending))

    summary, crops = _write_manifests(stage, cfg, ps, scores, frames_store, rejects_store)
    _remove_stale(stage, crops)
    _print_summary(summary)
    return stage.finish(summary)


def _write_manifests(stage: Stage, cfg: Any, ps: Pseudonymised, scores: ScoreTable,
                     frames_store: ItemStore, rejects_store: ItemStore) -> tuple[dict[str, Any], set[str]]:
    """Build and write the manifests from every stored job; returns (summary, crop paths in use)."""
    pc = cfg.prepare
    frames = frames_store.read_all()
    if len(frames):
        frames = sort_frames(frames)
        by_pseudonym = {p: s for key, p in ps.subjects.items() if (s := scores.lookup(*key)) is not None}
        splits = assign_splits(frames["subject"].tolist(), pc.split.test_fraction, cfg.seed)
        frames = add_subject_columns(frames, by_pseudonym, splits)
        pairs, pair_rejects = build_pairs(frames, pc.split.pairs_per_frame, cfg.seed, pc.split.pairing)
    else:
        frames, pairs, pair_rejects = pd.DataFrame(columns=FRAMES.names), pd.DataFrame(columns=PAIRS.names), None
    parts = [rejects_store.read_all(), _discovery_rejects(ps), _score_rejects(ps, scores), pair_rejects]
    parts = [p for p in parts if p is not None and len(p)]
    rejects = sort_rejects(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REJECTS.names))

    out = stage.dir
    atomic_write_parquet(out / "frames.parquet", to_table(frames, FRAMES))
    atomic_write_parquet(out / "pairs.parquet", to_table(pairs, PAIRS))
    atomic_write_parquet(out / "rejects.parquet", to_table(rejects, REJECTS))
    atomic_write_parquet(out / "private" / "mapping.parquet", ps.mapping)
    atomic_write_parquet(out / "private" / "rejects.parquet", _rejects_with_paths(rejects, ps.mapping))
    summary = {
        "frames": len(frames), "pairs": len(pairs), "rejects": len(rejects),
        "subjects": int(frames["subject"].nunique()) if len(frames) else 0,
        "inputs": len(ps.jobs) + len(ps.unusable),
        "split_subjects": {s: int(frames.loc[frames["split"] == s, "subject"].nunique()) for s in ("train", "test")}
        if len(frames) else {},
        "reasons": {str(k): int(v) for k, v in rejects["reason"].value_counts().sort_index().items()},
    }
    return summary, set(frames["path"])


def _discovery_rejects(ps: Pseudonymised) -> pd.DataFrame:
    rows = [{"input": input_id, "dataset": f.dataset, "subject": None, "frame_start": None, "frame_end": None,
             "reason": f.reason.value, "detail": f.detail} for input_id, f in ps.unusable]
    return pd.DataFrame(rows, columns=REJECTS.names)


def _score_rejects(ps: Pseudonymised, scores: ScoreTable) -> pd.DataFrame:
    """Problems of the scores CSV, and rows naming no subject of the inputs (a typo in an id?)."""
    def pseudonym(dataset: str | None, subject: str | None) -> str | None:
        hits = [p for (d, s), p in ps.subjects.items() if s == subject and (dataset is None or d == dataset)]
        return hits[0] if hits else None

    rows = [{"input": f"scores:line {p.line}", "dataset": p.dataset, "subject": pseudonym(p.dataset, p.subject),
             "reason": Reason.BAD_SCORE_ROW.value, "detail": p.detail} for p in scores.problems]
    for (dataset, subject) in scores.scores:
        if pseudonym(dataset, subject) is None:
            rows.append({"input": "scores", "dataset": dataset, "subject": None,
                         "reason": Reason.UNMATCHED_SCORE.value,
                         "detail": "a scores row names a subject that has no input (see private/rejects.parquet)",
                         "subject_original": subject})
    return pd.DataFrame(rows, columns=[*REJECTS.names, "subject_original"])


def _rejects_with_paths(rejects: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """The rejects with the original file (or subject id) each refers to, for the data owner only."""
    files = mapping.groupby("input")["path"].apply(list).to_dict()
    out = rejects.copy()
    if "subject_original" not in out.columns:
        out["subject_original"] = None
    paths = []
    for row in out.itertuples(index=False):
        listed = files.get(row.input)
        if listed is None:  # a scores row: its subject_original says which
            paths.append(None)
        elif len(listed) > 1 and pd.notna(row.frame_start) and int(row.frame_start) < len(listed):
            paths.append(listed[int(row.frame_start)])
        else:
            paths.append(listed[0] if len(listed) == 1 else str(Path(listed[0]).parent))
    out["path"] = paths
    return out


def _remove_stale(stage: Stage, keep: set[str]) -> None:
    """Delete crops no manifest row names (an older config's, a killed write's temporaries) and
    the resume parts of other fingerprints."""
    crops = stage.dir / CROPS_DIR
    if crops.is_dir():
        for path in sorted(crops.rglob("*"), reverse=True):
            rel = path.relative_to(stage.dir).as_posix()
            if path.is_file() and rel not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    current = stage.fingerprint[:16]
    for kind in (stage.dir / "parts").glob("*"):
        for folder in kind.glob("*"):
            if folder.name != current:
                shutil.rmtree(folder, ignore_errors=True)


def _print_summary(summary: dict[str, Any]) -> None:
    split = summary.get("split_subjects") or {}
    console.print(
        f"prepare: {summary['frames']} crops of {summary['subjects']} subjects "
        f"({split.get('train', 0)} train / {split.get('test', 0)} test), {summary['pairs']} pairs, "
        f"{summary['rejects']} rejects rows", highlight=False,
    )
    for reason, n in summary["reasons"].items():
        console.print(f"  {reason}: {n}", highlight=False)

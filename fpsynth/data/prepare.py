"""The ``prepare`` stage: raw facial-palsy data -> aligned 112x112 crops + Parquet manifests.

Outputs in ``WORKSPACE/prepare/``::

    frames.parquet  pairs.parquet  rejects.parquet     shareable (pseudonyms only)
    crops/<subject>/<input>/<frame>.png                 the aligned crops
    private/mapping.parquet  private/rejects.parquet   original ids and paths: keep private
    checks.parquet                                      size, mtime, sha256 of every crop
    config.toml  stage.json  parts/                    resolved config, record, per-job resume

Each job's rows are stored as soon as it finishes (``Stage.items``), so a killed run resumes
where it stopped, and the manifests are rebuilt from all stored jobs at the end: an interrupted
and resumed run writes the same rows as an uninterrupted one. The outputs are verified
(:mod:`fpsynth.outputs`): the record keeps the manifests' sizes and hashes and names
``checks.parquet``; a rerun that finds a manifest or a crop missing or damaged redoes the jobs
concerned instead of skipping, and later stages refuse the folder until it passes.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fpsynth.data.config import PrepareConfig
from fpsynth.data.crop_checks import damaged_jobs, with_crop_checks, write_crop_checks
from fpsynth.data.faces import check_backend
from fpsynth.data.grades import merge, read_scores, read_sheet
from fpsynth.data.input_sources import BY_NAME, flags_text, given_roots
from fpsynth.data.jobs import CROPS_DIR, Context, unusable_row
from fpsynth.data.manifests import (
    FRAMES,
    PAIRS,
    REJECTS,
    add_subject_columns,
    assign_splits,
    build_pairs,
    sort_frames,
    sort_rejects,
    to_table,
)
from fpsynth.data.provenance import source_provenance
from fpsynth.data.pseudonyms import Pseudonymised, pseudonymise
from fpsynth.data.reasons import Reason
from fpsynth.data.runner import console, execute
from fpsynth.data.scores import Problem, ScoreTable, norm
from fpsynth.data.sources import Kind, SourceError, check_roots, files_below
from fpsynth.data.standard_set import find_sheets, parse_key
from fpsynth.stage import Input, ItemStore, Stage, atomic_write_parquet
from fpsynth.stages import PREPARE  # its params, outputs and verified files (CHECKS_FILE the list)

if TYPE_CHECKING:  # pipeline.py sits above the stage packages
    from fpsynth.pipeline import PipelineConfig


def run(cfg: PipelineConfig, workspace: Path, force: bool = False) -> dict[str, Any]:
    """Run the stage for ``cfg``; returns the stage record."""
    pc = cfg.prepare
    roots = given_roots(pc)  # the input sources' folders, in registry order
    if not roots:
        raise SourceError(f"prepare needs input: pass {flags_text()}")
    roots = check_roots(roots, workspace)  # also refuses a workspace inside an input folder
    if pc.scores is not None and not Path(pc.scores).is_file():
        raise SourceError(f"--scores {pc.scores}: file does not exist")
    # the user's data: no stage makes it
    inputs = {name: Input(path, f"{PREPARE.command} --{name} DIR (your data)") for name, path in roots.items()}
    if pc.scores is not None:
        inputs["scores"] = Input(Path(pc.scores), f"{PREPARE.command} --scores CSV (your data)")
    stage = Stage.declared(PREPARE, workspace, cfg, inputs=inputs, force=force)
    stage.require_inputs()
    if stage.is_up_to_date():
        damage = stage.damage()
        if damage is None:
            return stage.skipped()
        console.print(f"prepare: {damage}; redoing what is damaged", highlight=False)

    found = []
    for name, root in roots.items():
        items = BY_NAME[name].discover(root, pc)
        if not items:
            raise SourceError(f"--{name} {root}: no files found; expected {BY_NAME[name].layout}")
        found.extend(items)
    scores, notes, graded = _score_tables(pc, roots.get("meei"))
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
        frames_store.write(job.input, with_crop_checks(pd.DataFrame(result.frames), stage.dir, job.input))

    damaged = damaged_jobs(frames_store.read_all(), stage.dir)
    for key in damaged:  # a stored job whose crop was deleted or damaged since: done again
        frames_store.forget(key)
    if damaged:
        console.print(
            f"prepare: {len(damaged)} finished job(s) with missing or damaged crops "
            f"(e.g. {next(iter(damaged.values()))}); making them again",
            highlight=False,
        )
    pending = [job for job in ps.jobs if not frames_store.done(job.input)]
    execute(pending, ctx, pc.n_jobs, sink, done=len(ps.jobs) - len(pending))

    summary, crops = _write_manifests(stage, pc, cfg.seed, ps, scores, frames_store, rejects_store, notes, graded)
    _remove_stale(stage, crops)
    _print_summary(summary)
    summary["sources"] = [source_provenance(name, getattr(pc, name), root) for name, root in roots.items()]
    return stage.finish(summary)


def _score_tables(pc: PrepareConfig, meei: Path | None) -> tuple[ScoreTable, list[Problem], set[str]]:
    """The scores in use: ``--scores`` (CSV or XLSX) and the grades XLSX found in the --meei tree,
    the XLSX's values winning where both have one. Returns (table, notes of values given twice,
    the original subject ids the XLSX holds: "" in it means a grades XLSX was read at all)."""
    csv = read_scores(Path(pc.scores)) if pc.scores is not None else None
    sheets = find_sheets(files_below(meei)) if meei is not None else []
    if len(sheets) > 1:
        raise SourceError(
            f"--meei {meei}: {len(sheets)} spreadsheets ({', '.join(p.name for p in sheets)}); keep the "
            "grades XLSX only, or give one with --scores"
        )
    grades = read_sheet(sheets[0]) if sheets else None
    if grades is None:
        return csv or ScoreTable({}, []), [], set()
    graded = {""} | {subject for _, subject in grades.scores}
    if csv is None:
        return grades, [], graded
    table, notes = merge(grades, csv)
    return table, notes, graded


def _write_manifests(
    stage: Stage,
    pc: PrepareConfig,
    seed: int,
    ps: Pseudonymised,
    scores: ScoreTable,
    frames_store: ItemStore,
    rejects_store: ItemStore,
    notes: list[Problem],
    graded: set[str],
) -> tuple[dict[str, Any], set[str]]:
    """Build and write the manifests from every stored job; returns (summary, crop paths in use)."""
    frames = frames_store.read_all()
    if len(frames):
        frames = sort_frames(frames)
        by_pseudonym = {p: s for key, p in ps.subjects.items() if (s := scores.lookup(*key)) is not None}
        from_name = {
            p: dataclasses.astuple(parse_key(subject))
            for (dataset, subject), p in ps.subjects.items()
            if dataset == "meei"
        }
        splits = assign_splits(frames["subject"].tolist(), pc.split.test_fraction, seed)
        frames = add_subject_columns(frames, by_pseudonym, splits, from_name)
        pairs, pair_rejects = build_pairs(frames, pc.split.pairs_per_frame, seed, pc.split.pairing)
    else:
        frames, pairs, pair_rejects = pd.DataFrame(columns=FRAMES.names), pd.DataFrame(columns=PAIRS.names), None
    parts = [rejects_store.read_all(), _discovery_rejects(ps), _score_rejects(ps, scores, notes, graded), pair_rejects]
    parts = [p for p in parts if p is not None and len(p)]
    rejects = sort_rejects(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=REJECTS.names))

    out = stage.dir
    atomic_write_parquet(out / "frames.parquet", to_table(frames, FRAMES))
    atomic_write_parquet(out / "pairs.parquet", to_table(pairs, PAIRS))
    atomic_write_parquet(out / "rejects.parquet", to_table(rejects, REJECTS))
    atomic_write_parquet(out / "private" / "mapping.parquet", ps.mapping)
    atomic_write_parquet(out / "private" / "rejects.parquet", _rejects_with_paths(rejects, ps.mapping))
    write_crop_checks(out, frames)
    summary = {
        "frames": len(frames),
        "pairs": len(pairs),
        "rejects": len(rejects),
        "subjects": int(frames["subject"].nunique()) if len(frames) else 0,
        "inputs": len(ps.jobs) + len(ps.unusable),
        "split_subjects": {s: int(frames.loc[frames["split"] == s, "subject"].nunique()) for s in ("train", "test")}
        if len(frames)
        else {},
        "reasons": {str(k): int(v) for k, v in rejects["reason"].value_counts().sort_index().items()},
    }
    return summary, set(frames["path"])


def _discovery_rejects(ps: Pseudonymised) -> pd.DataFrame:
    return pd.DataFrame([unusable_row(input_id, f) for input_id, f in ps.unusable], columns=REJECTS.names)


def _score_rejects(ps: Pseudonymised, scores: ScoreTable, notes: list[Problem], graded: set[str]) -> pd.DataFrame:
    """Problems of the scores tables, values given in both, rows naming no subject of the inputs
    (a typo in an id?), and standard-set participants the grades XLSX has no row for."""

    def pseudonym(dataset: str | None, subject: str | None) -> str | None:
        if subject is None:
            return None
        hits = [
            p for (d, s), p in ps.subjects.items() if norm(s) == norm(subject) and (dataset is None or d == dataset)
        ]
        return hits[0] if hits else None

    rows = [
        {
            "input": p.input,
            "dataset": p.dataset,
            "subject": pseudonym(p.dataset, p.subject),
            "reason": Reason.BAD_SCORE_ROW.value,
            "detail": p.detail,
            "subject_original": p.subject,
        }
        for p in scores.problems
    ]
    rows += [
        {
            "input": p.input,
            "dataset": p.dataset,
            "subject": pseudonym(p.dataset, p.subject),
            "reason": Reason.SCORES_BOTH.value,
            "detail": p.detail,
            "subject_original": p.subject,
        }
        for p in notes
    ]
    for dataset, subject in scores.scores:
        if pseudonym(dataset, subject) is None:
            source = "grades" if subject in graded else "scores"
            rows.append(
                {
                    "input": source,
                    "dataset": dataset,
                    "subject": None,
                    "reason": Reason.UNMATCHED_SCORE.value,
                    "detail": f"a {source} row names a subject that has no input (see private/rejects.parquet)",
                    "subject_original": subject,
                }
            )
    if graded:  # a grades XLSX was read: its participants without a row stay unknown, and say so
        for (dataset, subject), p in sorted(ps.subjects.items()):
            if dataset == "meei" and scores.lookup(dataset, subject) is None:
                rows.append(
                    {
                        "input": "grades",
                        "dataset": dataset,
                        "subject": p,
                        "reason": Reason.NO_SCORE_ROW.value,
                        "detail": "the grades XLSX has no row for this participant: severity 'unknown'",
                        "subject_original": subject,
                    }
                )
    return pd.DataFrame(rows, columns=[*REJECTS.names, "subject_original"])


def _rejects_with_paths(rejects: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """The rejects with the original file (or subject id) each refers to, for the data owner only."""
    files = mapping.groupby("input")["path"].apply(list).to_dict()
    out = rejects.copy()
    if "subject_original" not in out.columns:
        out["subject_original"] = None
    paths: list[str | None] = []
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
        f"{summary['rejects']} rejects rows",
        highlight=False,
    )
    for reason, n in summary["reasons"].items():
        console.print(f"  {reason}: {n}", highlight=False)

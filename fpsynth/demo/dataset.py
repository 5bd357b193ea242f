"""Write the built-in synthetic palsy dataset: an AFLFP-style folder that `fpsynth prepare` reads.

Layout of ``OUT`` (see :data:`README_TEMPLATE` for the text written beside the data)::

    OUT/aflfp/<subject>/<movement>/<NNN>_<phase>.png   rendered frame (tEXt chunks say SYNTHETIC)
    OUT/aflfp/<subject>/<movement>/<NNN>_<phase>.pts   its 68 iBUG landmarks, exact by construction
    OUT/scores.csv      subject,eface,house_brackmann,sunnybrook   (the table `prepare --scores` reads)
    OUT/subjects.csv    subject,synthetic,side,severity,eface,category,house_brackmann,sunnybrook,hair_style
    OUT/ids/<name>.png + .pts   neutral faces of extra identities for `fpsynth generate --ids`
    OUT/demo.json       {"synthetic": true, seed, config, subjects, ids, counts}
    OUT/README.md

Everything is drawn from ``numpy`` generators seeded by (seed, stream, index), so one seed gives
the same bytes on every run, and a subject's face does not depend on how many subjects there are.
The whole folder is written under a temporary name beside ``OUT`` and renamed into place at the
end, so a reader never sees half a dataset, and a re-run replaces an older demo dataset whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from fpsynth import seeds
from fpsynth.config import to_dict
from fpsynth.data.provenance import DEMO_GENERATOR, DEMO_MANIFEST
from fpsynth.data.pts import format_pts
from fpsynth.data.scores import eface_bands_text, severity_rank
from fpsynth.demo.face import Identity, neutral_landmarks, sample_identity
from fpsynth.demo.files import png_bytes
from fpsynth.demo.movements import NO_PALSY, PHASES, Palsy, clip_schedule, pose_face
from fpsynth.demo.paint import similarity_matrix
from fpsynth.demo.render import render_face
from fpsynth.demo.scores import grade
from fpsynth.demo_config import DemoConfig, PoseJitter
from fpsynth.errors import FpsynthError
from fpsynth.version import __version__

SUBJECT_PREFIX = "synthetic-"
ID_PREFIX = "synthetic-id-"
SCORES_COLUMNS = ("subject", "eface", "house_brackmann", "sunnybrook")
SUBJECT_COLUMNS = (
    "subject",
    "synthetic",
    "side",
    "severity",
    "eface",
    "category",
    "house_brackmann",
    "sunnybrook",
    "hair_style",
)
DISCLAIMER = "SYNTHETIC: a rendered face of no real person; not a photograph and not clinical data"


class DemoFolderError(FpsynthError):
    """The output folder holds something that is not an fpsynth demo dataset."""


def subject_plan(cfg: DemoConfig, seed: int) -> list[dict[str, Any]]:
    """One row per synthetic subject: id, identity, palsy and its grades (no rendering)."""
    rows = []
    for k in range(cfg.subjects):
        severity = cfg.severities[k % len(cfg.severities)]
        side = ("left", "right")[(k + seed) % 2]  # alternate the affected side across subjects
        g = grade(severity)
        idt = sample_identity(seeds.rng(seed, "demo-identity", k))
        rows.append(
            {
                "subject": f"{SUBJECT_PREFIX}{k + 1:03d}",
                "synthetic": True,
                "side": side,
                "severity": severity,
                "eface": g.eface,
                "category": g.category,
                "house_brackmann": g.house_brackmann,
                "sunnybrook": g.sunnybrook,
                "hair_style": idt.hair_style.value,
                "identity": idt,
            }
        )
    return rows


def _pose(rng: np.random.Generator, jitter: PoseJitter, size: int) -> np.ndarray:
    rot = rng.uniform(-jitter.rotation_deg, jitter.rotation_deg)
    scale = 1.0 + rng.uniform(-jitter.scale, jitter.scale)
    shift = rng.uniform(-jitter.shift, jitter.shift, 2)
    return similarity_matrix(size, rot, scale, (float(shift[0]), float(shift[1])))


def _write_face(stem: Path, rgb: np.ndarray, px: np.ndarray, text: dict[str, str]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    text = {"Disclaimer": DISCLAIMER, "Software": f"fpsynth {__version__} demo renderer", **text}
    stem.with_suffix(".png").write_bytes(png_bytes(rgb, text))
    stem.with_suffix(".pts").write_text(format_pts(px))


def _render_subject(root: Path, row: dict[str, Any], cfg: DemoConfig, seed: int, k: int) -> int:
    idt: Identity = row["identity"]
    neutral = neutral_landmarks(idt)
    palsy = Palsy(row["side"], row["severity"])
    n = 0
    for mi, movement in enumerate(cfg.movements):
        for f, (phase, intensity) in enumerate(clip_schedule(cfg.frames)):
            rng = seeds.rng(seed, "demo-frame", k, mi, f)  # one generator per frame, never shared
            m = _pose(rng, cfg.pose, cfg.image_size)
            state = pose_face(idt, neutral, movement, intensity * idt.effort, palsy)
            rgb, px = render_face(idt, state, m, cfg.image_size, rng, cfg.noise)
            comment = (
                f"subject={row['subject']} movement={movement.value} phase={phase} frame={f} "
                f"intensity={intensity * idt.effort:.3f} palsy_side={palsy.side} "
                f"severity={palsy.severity:.3f} eface={row['eface']}"
            )
            _write_face(
                root / "aflfp" / row["subject"] / movement.value / f"{f:03d}_{phase}", rgb, px, {"Comment": comment}
            )
            n += 1
    return n


def _render_ids(root: Path, cfg: DemoConfig, seed: int) -> list[str]:
    (root / "ids").mkdir()
    names = []
    for j in range(cfg.ids):
        rng = seeds.rng(seed, "demo-extra-identity", j)
        idt = sample_identity(rng)
        state = pose_face(idt, neutral_landmarks(idt), None, 0.0, NO_PALSY)
        rgb, px = render_face(idt, state, _pose(rng, cfg.pose, cfg.image_size), cfg.image_size, rng, cfg.noise)
        name = f"{ID_PREFIX}{j + 1:03d}"
        _write_face(root / "ids" / name, rgb, px, {"Comment": f"identity={name} neutral face, no palsy"})
        names.append(name)
    return names


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_demo_dataset(out_dir: Path, cfg: DemoConfig, seed: int, workers: int | None = None) -> dict[str, Any]:
    """Render the synthetic dataset into ``out_dir`` and return where everything is.

    ``workers`` processes render subjects in parallel (default: one per CPU, at most 4); the bytes
    do not depend on it, since every subject draws from its own generators.

    Returns ``{"root", "aflfp", "scores", "subjects_csv", "ids", "readme", "manifest"}`` (Paths) and
    ``{"synthetic": True, "subjects", "images", "id_images", "categories"}`` (counts).
    Raises :class:`DemoFolderError` if ``out_dir`` is a non-empty folder that is not a demo dataset.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DemoFolderError(f"{out_dir} is a file; give a folder for the demo data")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / DEMO_MANIFEST).is_file():
        raise DemoFolderError(
            f"{out_dir} is not empty and is not an fpsynth demo dataset (no demo.json); "
            "choose a new or empty folder for the demo data"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        plan = subject_plan(cfg, seed)
        n_jobs = workers or min(os.cpu_count() or 1, 4)
        jobs = (delayed(_render_subject)(tmp, row, cfg, seed, k) for k, row in enumerate(plan))
        images = sum(Parallel(n_jobs=min(n_jobs, len(plan)))(jobs))
        ids = _render_ids(tmp, cfg, seed)
        (tmp / "scores.csv").write_text(_csv(plan, SCORES_COLUMNS))
        (tmp / "subjects.csv").write_text(_csv(plan, SUBJECT_COLUMNS))
        subjects = [{c: row[c] for c in SUBJECT_COLUMNS} for row in plan]
        manifest = {
            "synthetic": True,
            "generator": DEMO_GENERATOR,
            "version": __version__,
            "seed": seed,
            "config": to_dict(cfg),
            "subjects": subjects,
            "ids": ids,
            "counts": {"subjects": len(plan), "images": images, "id_images": len(ids)},
            "disclaimer": DISCLAIMER,
        }
        (tmp / DEMO_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(_readme(cfg, seed, plan, images, len(ids)))
        _swap_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "root": out_dir,
        "aflfp": out_dir / "aflfp",
        "scores": out_dir / "scores.csv",
        "subjects_csv": out_dir / "subjects.csv",
        "ids": out_dir / "ids",
        "readme": out_dir / "README.md",
        "manifest": out_dir / DEMO_MANIFEST,
        "synthetic": True,
        "subjects": len(plan),
        "images": images,
        "id_images": len(ids),
        "categories": dict(Counter(row["category"] for row in plan)),
    }


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` onto ``out_dir``, replacing a previous demo dataset whole."""
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


README_TEMPLATE = """\
# SYNTHETIC facial-palsy demo data (rendered, NOT clinical)

Every image here was drawn by fpsynth's parametric face renderer (`fpsynth.demo`). None shows a
real person, none is a photograph, and none comes from a patient. The palsy, its severity and the
scores are parameters of the renderer, not diagnoses. Each PNG says so in a `Disclaimer` text
chunk; subject ids start with `{subject_prefix}`; `demo.json` and `subjects.csv` carry
`synthetic = true`. Use this folder to try the pipeline, never as evidence about palsy.

Made with seed {seed}: {subjects} subjects x {movements} movements x {frames} frames =
{images} images of {size}x{size} px, plus {ids} extra neutral identities.

## Layout
- `aflfp/<subject>/<movement>/<NNN>_<phase>.png` and `.pts`: one clip per movement, frames in
  time order (sorted by name). `.pts` are iBUG 68-point files (1-based pixel coordinates), exact:
  the renderer draws every feature from these points.
  Phases: {phases}.
- `scores.csv`: `subject,eface,house_brackmann,sunnybrook` (HB grade as 1-6).
- `subjects.csv`: the same plus `synthetic`, palsy `side`, `severity` (0-1), eFACE `category`.
- `ids/<name>.png` and `.pts`: neutral faces of people who are not among the subjects.
- `demo.json`: the generating configuration and the subject table.

## The palsy model
One side of the face (`side` is the subject's own side: `left` is the image's right half) is
weakened by `severity` s: voluntary movement on that side is scaled by (1 - s); at rest the brow
droops, the eye opens wider (and cannot close fully), the mouth corner droops and the nasolabial
fold flattens, all growing with s. eFACE = round(98 - 56 s); categories as in the CCFExp paper
({bands}).

Movements:
{movement_list}

| category | subjects |
|---|---|
{category_rows}

## Use (DATA = this folder)
    fpsynth prepare --aflfp DATA/aflfp --scores DATA/scores.csv
    fpsynth generate --ids DATA/ids
"""


def _readme(cfg: DemoConfig, seed: int, plan: list[dict[str, Any]], images: int, ids: int) -> str:
    counts = Counter(row["category"] for row in plan)
    phases = sorted({p for p, _ in clip_schedule(cfg.frames)}, key=PHASES.index)
    return README_TEMPLATE.format(
        subject_prefix=SUBJECT_PREFIX,
        seed=seed,
        subjects=len(plan),
        movements=len(cfg.movements),
        frames=cfg.frames,
        images=images,
        size=cfg.image_size,
        ids=ids,
        phases=", ".join(phases),
        bands=eface_bands_text(),
        movement_list="\n".join(f"- {m.value}" for m in cfg.movements),
        category_rows="\n".join(f"| {c} | {counts[c]} |" for c in sorted(counts, key=severity_rank)),
    )

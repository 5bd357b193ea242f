"""``fpsynth demo``: the four real stages end to end on a built-in default, in minutes on a CPU.

Without ``--videos`` the input is the built-in synthetic palsy dataset (``fpsynth.demo.dataset``:
rendered faces with exact 68-point landmarks, AFLFP-style, a scores table and extra identity
faces), written to ``WORKSPACE/demo-data``. With ``--videos DIR`` the input is a folder of real
face videos, arranged into a MEEI-style tree (one subject per video) under ``WORKSPACE/demo-input``;
the identity faces for ``generate`` are then one neutral crop per prepared subject, with its
landmarks as a ``.pts`` sidecar so that the same face code re-aligns it exactly.

Then prepare -> train -> generate -> utility -> report run unchanged, as ``fpsynth <stage>`` would, with the
pipeline given by ``--config`` (default ``tiny``). Each stage skips when nothing changed, so a
second ``fpsynth demo`` only redoes what is needed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from fpsynth.data.pts import write_pts
from fpsynth.errors import FpsynthError
from fpsynth.pipeline import PipelineConfig, with_section
from fpsynth.stage import Stage, atomic_write_bytes, atomic_write_text
from fpsynth.stages import DEMO_DATA

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
SYNTHETIC_NOTE = (
    "SYNTHETIC DEMO DATA: every face in this workspace was rendered by fpsynth's parametric face\n"
    "model (fpsynth.demo) or generated from such faces. No image shows a real person or patient,\n"
    "and no figure in it says anything about clinical data.\n"
)


def run(cfg: PipelineConfig, workspace: Path, *, videos: Path | None = None, force: bool = False) -> dict[str, Any]:
    """Run the demo; returns each stage's result and the report's path."""
    from fpsynth.data.prepare import run as prepare
    from fpsynth.generate.run import run as generate
    from fpsynth.report.run import run as report
    from fpsynth.train.run import run as train
    from fpsynth.utility.run import run as utility

    console = Console(stderr=True)
    workspace = Path(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}

    synthetic = videos is None

    def step(name: str, fn: Any, stage_cfg: PipelineConfig) -> Any:
        console.rule(f"[bold]demo: {name}")
        t0 = time.perf_counter()
        results[name] = fn(stage_cfg, workspace, force=force)
        timings[name] = round(time.perf_counter() - t0, 1)
        if isinstance(results[name], dict) and results[name].get("skipped"):
            console.print(f"[yellow]{name}: nothing changed, skipping[/] (use --force to redo)")
        if synthetic:  # every output folder carries the label, not only the workspace root
            atomic_write_text(workspace / name / "SYNTHETIC-DEMO.txt", SYNTHETIC_NOTE)
        return results[name]

    if videos is None:
        t0 = time.perf_counter()
        data = demo_data(cfg, workspace, force=force)
        timings["demo-data"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(workspace / "SYNTHETIC-DEMO.txt", SYNTHETIC_NOTE)
        cfg = with_section(cfg, "prepare", aflfp=data / "aflfp", scores=data / "scores.csv", meei=None, images=None)
        step("prepare", prepare, cfg)
        ids = data / "ids"
    else:
        tree = video_tree(Path(videos), workspace / "demo-input" / "meei")
        cfg = with_section(cfg, "prepare", meei=tree)
        step("prepare", prepare, cfg)
        ids = ids_from_prepared(workspace / "prepare", workspace / "demo-input" / "ids")

    cfg = with_section(cfg, "generate", ids=ids)
    step("train", train, cfg)
    step("generate", generate, cfg)
    step("utility", utility, cfg)  # before the report, which shows its figures
    step("report", report, cfg)

    html = (workspace / "report" / "report.html").resolve()
    console.print(f"[bold green]demo finished[/] in {sum(timings.values()):.0f} s {timings}", soft_wrap=True)
    console.print(f"report: [link=file://{html}]{html}[/link]", soft_wrap=True)  # one line, whatever the width
    return {"results": results, "timings_s": timings, "report": str(html)}


# --------------------------------------------------------------------------- built-in data


def demo_data(cfg: PipelineConfig, workspace: Path, *, force: bool = False) -> Path:
    """Render the synthetic dataset into ``WORKSPACE/demo-data`` (skipped when already there)."""
    from fpsynth.demo.dataset import write_demo_dataset

    stage = Stage.declared(DEMO_DATA, workspace, cfg, force=force)
    if not stage.is_up_to_date():
        # The writer renders into a hidden temporary folder and renames it over stage.dir whole.
        write_demo_dataset(stage.dir, cfg.demo, cfg.seed)
        stage.begin(cfg)
        stage.finish({"synthetic": True})
    return stage.dir


# --------------------------------------------------------------------------- --videos


def video_tree(videos: Path, tree: Path) -> Path:
    """Arrange a flat folder of face videos as a MEEI-style tree: ``tree/<video stem>/movements.<ext>``.

    Each video is taken as one subject performing facial movements (the expression name
    ``movements``); links, not copies, so nothing large is duplicated.
    """
    if not videos.is_dir():
        raise FpsynthError(f"--videos {videos}: not a folder")
    found = sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not found:
        raise FpsynthError(f"--videos {videos}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    for video in found:
        link = tree / video.stem / f"movements{video.suffix.lower()}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.resolve() == video.resolve():
                continue
            link.unlink()
        os.symlink(video.resolve(), link)
    return tree


def ids_from_prepared(prepare_dir: Path, out: Path) -> Path:
    """One neutral crop per prepared subject, with its landmarks as a ``.pts`` sidecar."""
    import pandas as pd

    frames = pd.read_parquet(prepare_dir / "frames.parquet")
    if frames.empty:
        raise FpsynthError("demo --videos: prepare kept no frames, so there are no identity faces to generate from")
    # The lowest-motion frame of each subject is its most neutral face.
    frames = frames.assign(_m=frames["motion"].fillna(0.0)).sort_values(["subject", "_m", "frame_id"])
    for row in frames.groupby("subject", sort=True).head(1).itertuples():
        image = out / f"{row.subject}.png"
        atomic_write_bytes(image, (prepare_dir / row.path).read_bytes())
        write_pts(image.with_suffix(".pts"), np.asarray(row.landmarks, dtype=np.float64).reshape(68, 2))
    return out

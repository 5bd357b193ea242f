"""The main job end to end: `fpsynth demo` runs prepare -> train -> generate -> report.

Both runs go through the real CLI in a subprocess at the smallest useful size (a few training
steps, a handful of generated images, two sampling steps) and then check every artifact a user
would open: manifests and crops, the checkpoint, the generated images against their metadata,
report.json and report.html, and that the built-in data is labelled synthetic everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from safetensors import safe_open

from helpers.fixtures import fixture_path

pytestmark = pytest.mark.slow

SMALL = [
    "train.max_steps=3",
    "train.checkpoint.every=2",
    "train.log.every=1",
    "train.sampler.steps=2",
    "generate.count=6",
    "generate.sampler.steps=2",
    "generate.plan.shard_size=4",
    "report.afid.images_per_patient=2",
    "report.afid.sampler.steps=2",
    "report.max_images=6",
]


def demo(workspace: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "fpsynth.cli", "demo", "-w", str(workspace), "-c", "tiny"]
    for override in SMALL:
        args += ["--set", override]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([*args, *extra], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def check_artifacts(ws: Path, count: int) -> dict:
    # prepare: manifests whose rows point at crops that exist
    frames = pd.read_parquet(ws / "prepare" / "frames.parquet")
    pairs = pd.read_parquet(ws / "prepare" / "pairs.parquet")
    pd.read_parquet(ws / "prepare" / "rejects.parquet")
    assert len(frames) > 0 and len(pairs) > 0
    assert set(frames["split"]) == {"train", "test"}
    assert all((ws / "prepare" / p).is_file() for p in frames["path"])
    assert (pairs["id_frame"] != pairs["style_frame"]).all()

    # train: the latest complete checkpoint, self-contained safetensors + JSON state
    latest = (ws / "train" / "checkpoints" / "latest").read_text().strip()
    ckpt = ws / "train" / "checkpoints" / latest
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 3
    with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
        assert any(k.startswith("unet.") for k in f.keys())
    assert (ws / "train" / "log.csv").read_text().count("\n") >= 3

    # generate: exactly `count` images, one metadata row each, labelled
    gen = ws / "generate"
    meta = pd.read_parquet(gen / "metadata.parquet")
    assert len(meta) == count and meta["item_id"].is_unique
    assert all((gen / f).is_file() for f in meta["file_name"])
    assert meta["synthetic"].all()
    assert set(meta["severity"]) <= {"normal", "near-normal", "mild", "moderate", "severe", "complete", "unknown"}
    assert "synthetic" in (gen / "README.md").read_text().lower()

    # report: every figure in JSON and a page with its images inline
    report = json.loads((ws / "report" / "report.json").read_text())
    html = (ws / "report" / "report.html").read_text()
    assert "<img" in html and 'src="http' not in html
    return {"frames": frames, "report": report, "html": html}


def test_demo_on_the_built_in_synthetic_data(tmp_path):
    ws = tmp_path / "ws"
    r = demo(
        ws,
        "--set",
        "demo.subjects=4",
        "--set",
        "demo.movements=['smile_open', 'brow_raise']",
        "--set",
        "demo.frames=3",
        "--set",
        "demo.image_size=128",
        "--set",
        "demo.ids=2",
    )
    assert "report.html" in r.stdout + r.stderr
    out = check_artifacts(ws, count=6)
    for folder in ("", "prepare", "train", "generate", "report"):
        assert "SYNTHETIC" in (ws / folder / "SYNTHETIC-DEMO.txt").read_text()
    assert json.loads((ws / "demo-data" / "demo.json").read_text())["synthetic"] is True
    assert "SYNTHETIC DEMO DATA" in out["html"]
    assert out["frames"]["dataset"].eq("aflfp").all()

    # A second run changes nothing and says so for every stage.
    again = demo(
        ws,
        "--set",
        "demo.subjects=4",
        "--set",
        "demo.movements=['smile_open', 'brow_raise']",
        "--set",
        "demo.frames=3",
        "--set",
        "demo.image_size=128",
        "--set",
        "demo.ids=2",
    )
    assert (again.stdout + again.stderr).count("nothing changed") >= 4


def test_demo_on_real_face_videos(tmp_path):
    videos = fixture_path("videos")
    chosen = tmp_path / "videos"
    chosen.mkdir()
    for name in ("lp_d18.mp4", "lp_d19.mp4"):  # the two shortest real clips keep this quick
        os.symlink(videos / name, chosen / name)
    ws = tmp_path / "ws"
    demo(ws, "--videos", str(chosen), "--set", "prepare.n_jobs=1")
    out = check_artifacts(ws, count=6)
    assert out["frames"]["dataset"].eq("meei").all()
    assert out["frames"]["subject"].nunique() == 2
    assert not (ws / "SYNTHETIC-DEMO.txt").exists()  # real faces: no synthetic banner
    assert "SYNTHETIC DEMO DATA" not in out["html"]
    ids = sorted((ws / "demo-input" / "ids").glob("*.png"))
    assert len(ids) == 2 and all(p.with_suffix(".pts").is_file() for p in ids)

"""Resume exactness, the stage's skip / resume / mismatch / --force rules, and a SIGKILL mid-run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.pipeline import load_pipeline
from fpsynth.train.checkpoint import CHECKPOINTS, complete_checkpoints, latest_checkpoint
from fpsynth.train.logs import COLUMNS
from fpsynth.train.run import ARCHIVE, RunMismatchError, run
from helpers.train import MICRO, flipped_workspace

REPO = Path(__file__).resolve().parent.parent
# 6 training pairs, batch 2: 3 steps per epoch, so 4 steps cross an epoch boundary. Dropout in the
# U-Net makes the global RNG matter; a sample grid every 2 steps checks that sampling with the EMA
# weights leaves training untouched; log rows every 3 steps straddle the checkpoint at step 2.
BASE = [
    *MICRO,
    "train.data.batch_size=2",
    "train.model.unet.dropout=0.1",
    "train.log.every=3",
    "train.log.sample_every=2",
    "train.log.sample_pairs=2",
    "train.sampler.steps=2",
    "train.checkpoint.every=2",
]


def _cfg(*extra: str):
    return load_pipeline("tiny", [*BASE, *extra])


def _tensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(folder / name))


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        ta, tb = _tensors(a, name), _tensors(b, name)
        assert ta.keys() == tb.keys(), name
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{name}: {key} differs"
    ia, ib = (json.loads((p / "optimizer.json").read_text()) for p in (a, b))
    assert ia == ib
    sa, sb = (json.loads((p / "state.json").read_text()) for p in (a, b))
    for key in ("step", "epoch", "batch_in_epoch", "ema_updates", "log_window", "rng", "run_key"):
        assert sa[key] == sb[key], key


def _losses(workspace: Path) -> list[dict[str, str]]:
    with open(workspace / "train" / "log.csv") as fh:
        return [{k: r[k] for k in COLUMNS if k != "images_per_s"} for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_two_n_steps_equal_n_plus_resume_plus_n(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for ws in (straight, resumed):
        flipped_workspace(ws)
    run(_cfg("train.max_steps=4"), straight)

    first = run(_cfg("train.max_steps=2"), resumed)
    assert first["summary"]["steps"] == 2
    second = run(_cfg("train.max_steps=4"), resumed)  # longer duration: same run, resumes at step 2
    assert second["summary"]["start_step"] == 2 and second["summary"]["resumed_from"].endswith("step-00000002")

    ckpts = straight / "train" / CHECKPOINTS
    _assert_same_checkpoint(ckpts / "step-00000002", resumed / "train" / CHECKPOINTS / "step-00000002")
    _assert_same_checkpoint(ckpts / "step-00000004", resumed / "train" / CHECKPOINTS / "step-00000004")
    assert _losses(straight) == _losses(resumed)
    assert [r["step"] for r in _losses(straight)] == ["3", "4"]
    assert sorted(p.name for p in (resumed / "train" / "samples").iterdir()) == [
        "step-00000002.png",
        "step-00000004.png",
    ]
    grid = cv2.imread(str(resumed / "train" / "samples" / "step-00000004.png"))
    assert grid.shape == (2 * 112, 3 * 112, 3)  # 2 held-out pairs: identity | style | sample
    assert any(p.name.startswith("events.out.tfevents") for p in (resumed / "train" / "tensorboard").iterdir())

    # the same config again: nothing to do
    assert run(_cfg("train.max_steps=4"), resumed).get("skipped") is True


def test_missing_prepare_output_names_the_command_to_run(tmp_path):
    result = CliRunner().invoke(app, ["train", "-w", str(tmp_path), "-c", "tiny"])
    assert result.exit_code == 2
    assert "fpsynth prepare" in result.output and "pairs" in result.output


@pytest.mark.slow
def test_other_run_is_refused_and_force_archives(tmp_path):
    flipped_workspace(tmp_path)
    run(_cfg("train.max_steps=2"), tmp_path)
    with pytest.raises(RunMismatchError, match=r"train\.optim\.lr: 0\.0001 -> 0\.0002.*--force"):
        run(_cfg("train.max_steps=2", "train.optim.lr=2e-4"), tmp_path)
    result = run(_cfg("train.max_steps=2", "train.optim.lr=2e-4"), tmp_path, force=True)
    assert result["summary"]["start_step"] == 0
    archived = Path(result["summary"]["archived_previous_run"])
    assert archived.parent == tmp_path / "train" / ARCHIVE
    assert [s for s, _ in complete_checkpoints(archived / CHECKPOINTS)] == [2]  # nothing destroyed
    assert (archived / "log.csv").is_file()
    assert latest_checkpoint(tmp_path).name == "step-00000002"


@pytest.mark.slow
def test_sigkill_then_train_again_resumes_from_last_complete_checkpoint(tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    for ws in (killed, straight):
        flipped_workspace(ws)
    sets = [*BASE, "train.checkpoint.every=1", "train.log.sample_every=0", "train.log.sample_pairs=0"]
    args = [sys.executable, "-m", "fpsynth.cli", "train", "-w", str(killed), "-c", "tiny"]
    args += [a for s in [*sets, "train.max_steps=50"] for a in ("--set", s)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folder = killed / "train" / CHECKPOINTS
    deadline = time.monotonic() + 240
    while len(complete_checkpoints(folder)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = complete_checkpoints(folder)[-1][0]
    assert 1 <= done < 50
    # what a kill can leave: a temporary of a save in progress; and a step folder without its
    # state.json (never made by fpsynth, but a copy interrupted by hand looks like this)
    (folder / f".tmp-step-{done + 1:08d}-99").mkdir()
    (folder / f"step-{done + 5:08d}").mkdir()

    result = run(load_pipeline("tiny", [*sets, f"train.max_steps={done + 2}"]), killed)
    assert result["summary"]["start_step"] == done
    assert result["summary"]["resumed_from"].endswith(f"step-{done:08d}")
    assert not (folder / f".tmp-step-{done + 1:08d}-99").exists()

    run(load_pipeline("tiny", [*sets, f"train.max_steps={done + 2}"]), straight)
    a = folder / f"step-{done + 2:08d}"
    _assert_same_checkpoint(a, straight / "train" / CHECKPOINTS / a.name)

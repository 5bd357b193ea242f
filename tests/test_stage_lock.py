"""One writer per stage folder (issue 14 item 2): a second run fails at once naming the holder;
a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.lock import LOCK_FILE, FolderBusyError, folder_lock

HOLD = (
    "import sys, time\nfrom fpsynth.lock import folder_lock\n"
    "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)"
)


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize(
    "command,stage",
    [
        (["prepare", "--images", "."], "prepare"),
        (["train", "-c", "tiny"], "train"),
        (["report", "-c", "tiny"], "report"),
    ],
)
def test_a_second_run_on_a_held_stage_folder_fails_naming_the_holder(tmp_path, command, stage):
    proc = _holder(tmp_path / stage)
    try:
        result = CliRunner().invoke(app, [*command, "-w", str(tmp_path)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert f"pid {proc.pid}" in text and "being written by" in text
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    proc = _holder(tmp_path / "prepare")
    with pytest.raises(FolderBusyError):
        with folder_lock(tmp_path / "prepare"):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with folder_lock(tmp_path / "prepare"):  # the kernel released it with the process
        assert (tmp_path / "prepare" / LOCK_FILE).is_file()
    with folder_lock(tmp_path / "prepare"):  # and a finished run releases it too
        pass


def test_generate_shards_share_a_folder_by_design(tmp_path, monkeypatch):
    """--shard i/n runs write one folder together: they take no exclusive lock."""
    proc = _holder(tmp_path / "generate")
    try:
        result = CliRunner().invoke(
            app, ["generate", "--ids", str(tmp_path / "none"), "--shard", "0/2", "-w", str(tmp_path), "-c", "tiny"]
        )
        assert "being written by" not in result.output  # it fails later, on the missing --ids folder
        result = CliRunner().invoke(
            app, ["generate", "--ids", str(tmp_path / "none"), "-w", str(tmp_path), "-c", "tiny"]
        )
        assert "being written by" in " ".join(result.output.split())
    finally:
        proc.kill()
        proc.wait()


def test_the_next_run_removes_temporaries_a_killed_run_left(tmp_path):
    folder = tmp_path / "generate"
    (folder / "shards" / "00000").mkdir(parents=True)
    left = [
        folder / ".plan.k3j2h1g0.tmp.parquet",
        folder / ".metadata.a1b2c3d4.tmp.parquet",
        folder / "shards" / "00000" / ".00000.zz99yy88.tmp.parquet",
    ]
    kept = [folder / "plan.parquet", folder / "shards" / "00000" / "00000001.png"]
    for p in left + kept:
        p.write_bytes(b"x")
    with folder_lock(folder):
        assert not any(p.exists() for p in left)
        assert all(p.exists() for p in kept)

"""Prepare's outputs are verified (issue 14 items 7 and 10, the output side): a rerun redoes a
deleted or damaged crop or manifest instead of "nothing changed"; a prepare killed between two
manifests, or whose outputs were damaged since, is refused by train, generate, report and utility
with the command to run; a SIGKILLed prepare leaves no worker process behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.pipeline import load_pipeline, with_section
from helpers.fixtures import fixture_path

PEOPLE = ("John_Salley", "John_Savage", "John_Simm")
MANIFESTS = ("frames", "pairs", "rejects")


def _images(root: Path, people=PEOPLE) -> Path:
    for person in people:
        (root / person).parent.mkdir(parents=True, exist_ok=True)
        (root / person).symlink_to(fixture_path("faces", "people", person), target_is_directory=True)
    return root


def _cfg(images: Path):
    return with_section(load_pipeline("tiny", ["prepare.n_jobs=1"]), "prepare", images=images)


def _crops(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "crops").rglob("*.png"))}


def _manifests(out: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(out / f"{n}.parquet") for n in MANIFESTS}


def _same_manifests(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in MANIFESTS:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One finished prepare of three people's photos: (its workspace, the images folder)."""
    from fpsynth.data.prepare import run

    root = tmp_path_factory.mktemp("prepared")
    images = _images(root / "images")
    record = run(_cfg(images), root / "ws")
    assert record["status"] == "finished" and record["summary"]["frames"] >= 20
    return root / "ws", images


@pytest.fixture
def workspace(prepared, tmp_path):
    """A copy of the finished workspace (times kept) that a test may damage."""
    ws, images = prepared
    shutil.copytree(ws, tmp_path / "ws", symlinks=True)
    return tmp_path / "ws", images


def test_a_rerun_remakes_deleted_and_truncated_crops(workspace, capsys):
    from fpsynth.data.prepare import run

    ws, images = workspace
    out = ws / "prepare"
    crops, manifests = _crops(out), _manifests(out)
    first, second = sorted(crops)[:2]
    (out / first).unlink()
    (out / second).write_bytes(crops[second][:100])
    capsys.readouterr()
    record = run(_cfg(images), ws)
    said = " ".join(capsys.readouterr().err.split())
    assert not record.get("skipped") and record["status"] == "finished"
    assert "missing or damaged" in said and "making them again" in said
    assert _crops(out) == crops  # the same bytes, no crop lost, none added
    _same_manifests(_manifests(out), manifests)
    assert run(_cfg(images), ws).get("skipped")  # repaired: the next run has nothing to do


@pytest.mark.parametrize("damage", ["truncate", "delete"])
@pytest.mark.parametrize("name", ["frames.parquet", "pairs.parquet", "checks.parquet"])
def test_a_rerun_rewrites_a_damaged_manifest(workspace, name, damage):
    from fpsynth.data.prepare import run

    ws, images = workspace
    out = ws / "prepare"
    crops, manifests = _crops(out), _manifests(out)
    if damage == "truncate":
        (out / name).write_bytes((out / name).read_bytes()[:300])
    else:
        (out / name).unlink()
    record = run(_cfg(images), ws)
    assert not record.get("skipped") and record["status"] == "finished"
    _same_manifests(_manifests(out), manifests)
    assert _crops(out) == crops


def test_the_check_hashes_only_a_file_whose_time_changed(workspace):
    """Size + mtime first: a crop touched without change passes (its sha256 matches); a crop
    edited in place at the same size fails and is remade."""
    from fpsynth.data.prepare import run

    ws, images = workspace
    out = ws / "prepare"
    crops = _crops(out)
    touched, edited = sorted(crops)[:2]
    os.utime(out / touched, ns=(time.time_ns(), time.time_ns()))
    assert run(_cfg(images), ws).get("skipped")
    data = bytearray(crops[edited])
    data[-20] ^= 0xFF
    (out / edited).write_bytes(bytes(data))
    record = run(_cfg(images), ws)
    assert not record.get("skipped") and _crops(out) == crops


# --------------------------------------------------------------------------- downstream refusal

KILL_BETWEEN = """
import os, sys
from pathlib import Path
import fpsynth.data.prepare as prepare
real = prepare.atomic_write_parquet
def write(path, frame):
    if Path(path).name == "pairs.parquet":  # frames.parquet is written: die before pairs.parquet
        os.kill(os.getpid(), 9)
    real(path, frame)
prepare.atomic_write_parquet = write
from fpsynth.cli import app
app(sys.argv[1:])
"""

DOWNSTREAM = {
    "train": ["train"],
    "generate": ["generate", "--ids", "IDS", "--count", "2"],
    "report": ["report"],
    "utility": ["utility"],
}


def _downstream(command: str, ws: Path, ids: Path):
    args = [str(ids) if a == "IDS" else a for a in DOWNSTREAM[command]]
    result = CliRunner().invoke(app, [*args, "-c", "tiny", "-w", str(ws)])
    return result.exit_code, " ".join(result.output.split())


def test_a_prepare_killed_between_frames_and_pairs_is_refused_downstream(workspace, tmp_path):
    ws, images = workspace
    out = ws / "prepare"
    fewer = _images(tmp_path / "fewer", PEOPLE[:2])  # another input set: new frames, old pairs on disk
    args = ["prepare", "-c", "tiny", "-w", str(ws), "--images", str(fewer), "--set", "prepare.n_jobs=1"]
    killed = subprocess.run([sys.executable, "-c", KILL_BETWEEN, *args], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    frames, pairs = pd.read_parquet(out / "frames.parquet"), pd.read_parquet(out / "pairs.parquet")
    assert not set(pairs["id_frame"]) <= set(frames["frame_id"])  # the mixed set train once crashed on

    for command in DOWNSTREAM:
        code, said = _downstream(command, ws, images / PEOPLE[0])
        assert code == 2, (command, said)
        assert "did not finish" in said and "fpsynth prepare" in said, (command, said)

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    frames, pairs = pd.read_parquet(out / "frames.parquet"), pd.read_parquet(out / "pairs.parquet")
    assert set(pairs["id_frame"]) <= set(frames["frame_id"]) and set(frames["subject"]) == set(pairs["subject"])
    from fpsynth.train.run import train_stage

    train_stage(load_pipeline("tiny"), ws)[0].require_inputs()  # accepted now


@pytest.mark.parametrize("command", list(DOWNSTREAM))
def test_damaged_prepare_outputs_are_refused_downstream(workspace, command):
    ws, images = workspace
    out = ws / "prepare"
    (out / sorted(_crops(out))[3]).unlink()
    code, said = _downstream(command, ws, images / PEOPLE[0])
    assert code == 2, said
    assert "outputs of `prepare` are damaged" in said and "missing" in said and "fpsynth prepare" in said


def test_hand_made_manifests_without_a_record_are_still_read(workspace):
    """Folders without a prepare record (made by hand, by an older version) are not refused."""
    from fpsynth.train.run import train_stage

    ws, _ = workspace
    (ws / "prepare" / "stage.json").unlink()
    train_stage(load_pipeline("tiny"), ws)[0].require_inputs()


# --------------------------------------------------------------------------- workers die with their parent


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie waits for a reaper: it runs nothing


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_killed_prepare_leaves_no_worker_running(tmp_path):
    meei = tmp_path / "meei"
    for n, video in enumerate(("lp_d3", "lp_d6", "lp_d9"), start=1):
        (meei / f"pat{n:02d}").mkdir(parents=True)
        (meei / f"pat{n:02d}" / "smile_left.mp4").symlink_to(fixture_path("videos", f"{video}.mp4"))
    args = [
        sys.executable,
        "-m",
        "fpsynth.cli",
        "prepare",
        "-c",
        "tiny",
        "-w",
        str(tmp_path / "ws"),
        "--meei",
        str(meei),
        "--set",
        "prepare.n_jobs=2",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(workers) < 2:
            workers = [
                p
                for p in _children(proc.pid)
                if "loky" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
            ]
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) >= 2, "prepare ended before its workers could be seen"
        time.sleep(1.5)  # the workers are busy with their first job (which ties them to the parent)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as a crash or the OOM killer would
        proc.wait(timeout=30)
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "loky workers survived their parent"
    finally:
        for w in workers:  # clean up after a failure: only the processes this test started
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

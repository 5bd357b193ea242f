"""Output-side failures (issue 14 items 10 and 11): a full disk while generate writes its images
gives a one-line error, leaves no short image under a final name and no unfinished shard marked
done, and the rerun after space is freed finishes with the same bytes; a read-only output folder
is a one-line error; a locked run removes what a killed run left half-written.

The full-disk and read-only cases mount a small tmpfs (real ENOSPC / EROFS from the kernel); they
are skipped where mounting is not permitted (not root, no CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fpsynth.cli import app
from fpsynth.lock import folder_lock
from helpers.generate import SMALL, config, copy, image_bytes, make_prepare, save_train_checkpoint

PAGE = 4096


def _out(result) -> str:
    return " ".join(result.output.split())


@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def generation(tmp_path_factory):
    """A workspace with prepare and train outputs, identity photos, and a reference dataset."""
    ws = tmp_path_factory.mktemp("ws")
    make_prepare(ws / "prepare")
    save_train_checkpoint(ws, config())
    ids = copy(["obama.jpg"], ws / "faces")

    def args(out: Path) -> list[str]:
        return [
            "generate",
            "--ids",
            str(ids),
            "--count",
            "8",
            "--out",
            str(out),
            "-w",
            str(ws),
            "-c",
            "tiny",
            *[a for o in SMALL for a in ("--set", o)],
        ]

    reference = ws / "reference"
    result = CliRunner().invoke(app, args(reference))
    assert result.exit_code == 0, result.output
    return args, reference


def _pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


@pytest.mark.slow
def test_a_full_disk_in_generate_stops_cleanly_and_the_rerun_finishes(generation, tmp_path):
    args, reference = generation
    made_first = [
        p
        for p in reference.rglob("*")
        if p.is_file() and "shards" not in p.parts and p.name not in ("metadata.parquet", "README.md")
    ]
    pngs = sorted(p.stat().st_size for p in reference.rglob("*.png"))
    # room for what generate writes before its images, and about one image and a half
    size = sum(_pages(p.stat().st_size) for p in made_first) + _pages(pngs[0]) + _pages(pngs[0] // 2) + 4 * PAGE
    with tmpfs(tmp_path / "disk", f"size={size}") as disk:
        out = disk / "dataset"
        full = CliRunner().invoke(app, args(out))
        said = _out(full)
        assert full.exit_code == 2, said
        assert "No space left on device" in said and "run the same command again" in said
        assert "Traceback" not in said
        expected = image_bytes(reference)
        written = image_bytes(out)
        assert written and len(written) < len(expected)
        assert all(data == expected.get(name) for name, data in written.items())  # no short image, no temporary
        assert not (out / "metadata.parquet").exists()
        parts = sorted(p.stem for p in (out / "shards").glob("*.parquet"))
        assert len(parts) < 2  # the unfinished shard is not marked done
        for shard in parts:  # a shard marked done has every image
            assert all(name in written for name in _shard_images(expected, shard))

        subprocess.run(["mount", "-o", f"remount,size={64 * 1024 * 1024}", str(disk)], check=True)
        again = CliRunner().invoke(app, args(out))
        assert again.exit_code == 0, again.output
        assert image_bytes(out) == expected


def _shard_images(images: dict[str, bytes], shard: str) -> list[str]:
    return [name for name in images if name.startswith(f"shards/{shard}/")]


@pytest.mark.slow
def test_a_read_only_output_folder_is_a_one_line_error(generation, tmp_path):
    args, _ = generation
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        for out in (ro, ro / "dataset"):  # the folder itself, and one to be made inside it
            result = CliRunner().invoke(app, args(out))
            said = _out(result)
            assert result.exit_code == 2, said
            assert "Read-only file system" in said and str(ro) in said and "Traceback" not in said


def test_a_locked_run_removes_what_a_killed_run_left(tmp_path):
    """Temporaries of atomic writes, of generated images and of checkpoint saves are removed at
    the next start; other hidden files and folders are the user's and stay."""
    stage = tmp_path / "train"
    left = [
        stage / "checkpoints" / ".tmp-step-00000020-4242" / "model.safetensors",
        stage / "checkpoints" / ".del-step-00000010-4242" / "state.json",
        stage / ".log.ab12cd.tmp.csv",
        stage / "shards" / "00000" / ".00000007.tmp.png",
    ]
    kept = [stage / ".keep" / "notes.txt", stage / ".tmp-cache" / "x", stage / "checkpoints" / "step-00000010" / "a"]
    for path in left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    with folder_lock(stage):
        pass
    assert not [p for p in left if p.exists()]
    assert not (stage / "checkpoints" / ".tmp-step-00000020-4242").exists()
    assert all(p.exists() for p in kept)

"""The input side of prepare against hostile-but-realistic trees (issue 14 items 3, 4, 5, 8, 10, 11).

Each test reproduces a way the inputs broke prepare: its own outputs re-ingested, a link loop,
one folder under two flags, a FIFO named x.jpg, a full disk while writing a crop, a landmark at
1e9, a 40000 x 40000 PNG, a JPEG named .mp4.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fpsynth.config import ConfigError
from fpsynth.data.config import SourcesConfig
from fpsynth.data.images import read_image
from fpsynth.data.pseudonyms import pseudonymise
from fpsynth.data.reasons import Reason, Rejected
from fpsynth.data.sources import Kind, SourceError, check_roots, discover_aflfp, discover_images, walk
from fpsynth.data.video import VideoDecoder
from fpsynth.pipeline import load_pipeline, with_section
from helpers.fixtures import fixture_path

PEOPLE = ("John_Salley", "John_Savage")


def photo_tree(root: Path, per_person: int = 2) -> Path:
    """ROOT/<person>/<photo>.jpg: real copies (not links: every file is its own inode)."""
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for photo in sorted(fixture_path("faces", "people", person).glob("*.jpg"))[:per_person]:
            shutil.copyfile(photo, root / person / photo.name)
    return root


def prepare(tmp: Path, **roots: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Run prepare in-process (one worker); returns (record, frames, private rejects)."""
    from fpsynth.data.prepare import run

    cfg = with_section(load_pipeline("tiny", ["prepare.n_jobs=1"]), "prepare", **roots)
    record = run(cfg, tmp)
    out = tmp / "prepare"
    return record, pd.read_parquet(out / "frames.parquet"), pd.read_parquet(out / "private" / "rejects.parquet")


def crop_hashes(prepare_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(prepare_dir).as_posix(): p.read_bytes() for p in sorted((prepare_dir / "crops").rglob("*.png"))
    }


# --------------------------------------------------------------------------- item 3: outputs inside inputs


def test_a_workspace_inside_an_input_folder_is_refused_up_front(tmp_path):
    photos = photo_tree(tmp_path / "D")
    with pytest.raises(SourceError, match=r"--images .*the workspace .* lies inside it.*-w \.\./workspace"):
        check_roots({"images": photos}, photos / "workspace")
    with pytest.raises(SourceError, match="lies inside it"):
        check_roots({"images": photos}, photos)
    with pytest.raises(SourceError, match="inside the prepare stage folder"):
        check_roots({"images": _mk(tmp_path / "ws/prepare/crops")}, tmp_path / "ws")
    assert check_roots({"images": photos}, tmp_path / "ws") == {"images": photos}
    # an input inside another stage's folder is fine (generated images given to prepare)
    assert check_roots({"images": _mk(tmp_path / "ws/generate/images")}, tmp_path / "ws")


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_stage_folders_inside_the_input_tree_are_not_ingested(tmp_path):
    """An older workspace left in the photo tree: its crops are outputs, never a subject."""
    photos = photo_tree(tmp_path / "D")
    first, frames, _ = prepare(tmp_path / "ws1", images=photos)
    assert first["summary"]["frames"] == 4
    shutil.copytree(tmp_path / "ws1", photos / "old-workspace")  # 4 crops + stage.json in the tree now
    record, frames, rejects = prepare(tmp_path / "ws2", images=photos)
    assert record["summary"]["frames"] == 4 and record["summary"]["subjects"] == 2
    row = rejects[rejects.reason == "stage_folder"]
    assert len(row) == 1 and row.path.item().endswith("old-workspace/prepare")
    assert crop_hashes(tmp_path / "ws1" / "prepare") == crop_hashes(tmp_path / "ws2" / "prepare")


def test_prepare_run_from_inside_its_input_folder_never_grows(tmp_path, monkeypatch):
    """`cd D && fpsynth prepare --images .` three times (was 22, 43, 62 crops): refused up front
    every time, naming the way out; never its own crops read back as a subject."""
    from fpsynth.cli import app

    photos = photo_tree(tmp_path / "D")
    monkeypatch.chdir(photos)
    for _ in range(3):
        result = CliRunner().invoke(app, ["prepare", "--images", ".", "-c", "tiny", "--set", "prepare.n_jobs=1"])
        assert result.exit_code == 2, result.output
        assert "lies inside it" in result.output and "outside the input folders" in result.output
        assert not list((photos / "workspace").rglob("*.png")) if (photos / "workspace").exists() else True


# --------------------------------------------------------------------------- item 4: links, one file once


def test_a_link_loop_ends_and_files_keep_their_real_subject(tmp_path):
    photos = photo_tree(tmp_path / "X")
    (photos / PEOPLE[0] / "loop").symlink_to("..", target_is_directory=True)  # X/A/loop -> X
    (photos / PEOPLE[0] / "friend").symlink_to(f"../{PEOPLE[1]}", target_is_directory=True)  # B seen from A
    found = discover_images(photos, SourcesConfig())
    taken = [f for f in found if f.kind is Kind.PHOTO]
    assert len(taken) == 4 and len(found) == 4  # was 900 rows: the loop walked until ELOOP
    assert {f.files[0].parent.name: f.subject for f in taken} == {p: p for p in PEOPLE}


def test_a_link_to_a_folder_outside_is_followed_once(tmp_path):
    outside = photo_tree(tmp_path / "elsewhere")
    tree = tmp_path / "X"
    tree.mkdir()
    (tree / "anna").symlink_to(outside / PEOPLE[0], target_is_directory=True)
    (tree / "anna_again").symlink_to(outside / PEOPLE[0], target_is_directory=True)
    found = discover_images(tree, SourcesConfig())
    assert sorted(f.subject for f in found if f.kind) == ["anna", "anna"]
    assert not [f for f in found if f.kind is None]


def test_a_file_link_is_a_duplicate_row_and_the_real_path_wins(tmp_path):
    photos = photo_tree(tmp_path / "X")
    real = sorted((photos / PEOPLE[1]).iterdir())[0]
    (photos / PEOPLE[0] / "aa_link.jpg").symlink_to(real)  # A's folder sorts first, but the file is B's
    found = discover_images(photos, SourcesConfig())
    assert real in [f.files[0] for f in found if f.kind is Kind.PHOTO]
    assert [f.files[0].name for f in found if f.reason is Reason.DUPLICATE] == ["aa_link.jpg"]


def test_a_hard_link_is_taken_once(tmp_path):
    """Hard links are equal names of one file: the first by path is taken, the other is a row."""
    photos = photo_tree(tmp_path / "X")
    real = sorted((photos / PEOPLE[1]).iterdir())[0]
    (photos / PEOPLE[1] / "zz_hard.jpg").hardlink_to(real)
    tree = walk(photos)
    assert len(tree.files) == 4 and real in tree.files and [p.name for p in tree.duplicates] == ["zz_hard.jpg"]


def test_one_folder_under_two_flags_is_taken_once(tmp_path):
    """`--aflfp X --images X`: each image in the AFLFP sequence only; the second flag's paths are
    duplicate rows, not a second pseudonymous subject."""
    seq = tmp_path / "X" / "subj_a" / "smile"
    seq.mkdir(parents=True)
    for n, name in enumerate(("einstein", "breakingbad")):
        src = fixture_path("landmarks68", f"{name}.jpg")
        shutil.copyfile(src, seq / f"{n:03d}.jpg")
        shutil.copyfile(src.with_suffix(".pts"), seq / f"{n:03d}.pts")
    found = discover_aflfp(tmp_path / "X", SourcesConfig()) + discover_images(tmp_path / "X", SourcesConfig())
    ps = pseudonymise(found, seed=0)
    assert [(j.dataset, j.kind, len(j.files)) for j in ps.jobs] == [("aflfp", Kind.SEQUENCE, 2)]
    assert [(f.dataset, f.reason) for _, f in ps.unusable] == [("images", Reason.DUPLICATE)] * 2
    assert set(ps.subjects) == {("aflfp", "subj_a")}
    assert set(ps.mapping.loc[ps.mapping.dataset == "images", "subject"].dropna()) == set()


def test_one_folder_under_two_flags_through_prepare(tmp_path):
    photos = photo_tree(tmp_path / "X")
    record, frames, rejects = prepare(tmp_path / "ws", meei=photos, images=photos)
    assert record["summary"]["frames"] == 4 and record["summary"]["subjects"] == 2  # was 8 crops of 4 subjects
    assert set(frames.dataset) == {"meei"}
    assert (rejects.reason == "duplicate_file").sum() == 4


# --------------------------------------------------------------------------- item 10: special files


def test_special_files_are_listed_apart_and_never_opened(tmp_path):
    photos = photo_tree(tmp_path / "X")
    os.mkfifo(photos / PEOPLE[0] / "x.jpg")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(photos / PEOPLE[1] / "s.png"))
        found = discover_images(photos, SourcesConfig())
    finally:
        sock.close()
    special = sorted(f.files[0].name for f in found if f.reason is Reason.SPECIAL_FILE)
    assert special == ["s.png", "x.jpg"] and sum(f.kind is Kind.PHOTO for f in found) == 4
    with pytest.raises(Rejected) as r:  # and reading one directly refuses at once, not blocking
        read_image(photos / PEOPLE[0] / "x.jpg")
    assert r.value.reason is Reason.SPECIAL_FILE
    with pytest.raises(Rejected) as r:
        VideoDecoder(photos / PEOPLE[0] / "x.jpg")
    assert r.value.reason is Reason.SPECIAL_FILE


def test_a_fifo_named_like_a_photo_does_not_hang_prepare(tmp_path):
    photos = photo_tree(tmp_path / "X", per_person=1)
    os.mkfifo(photos / PEOPLE[0] / "x.jpg")
    args = [
        sys.executable,
        "-m",
        "fpsynth.cli",
        "prepare",
        "-c",
        "tiny",
        "-w",
        str(tmp_path / "ws"),
        "--images",
        str(photos),
        "--set",
        "prepare.n_jobs=1",
    ]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("prepare hung on a FIFO named x.jpg")
    assert done.returncode == 0, done.stderr[-2000:]
    rejects = pd.read_parquet(tmp_path / "ws" / "prepare" / "private" / "rejects.parquet")
    assert rejects.loc[rejects.reason == "special_file", "path"].map(lambda p: Path(p).name).tolist() == ["x.jpg"]


# --------------------------------------------------------------------------- item 5: transient write errors


def test_a_full_disk_stops_the_run_and_the_rerun_retries(tmp_path, monkeypatch):
    """ENOSPC while writing a crop: a one-line error naming the path and what to do, no
    internal_error row, and the rerun makes the crop."""
    import fpsynth.data.jobs as jobs  # the crop writer
    from fpsynth.cli import app

    photos = photo_tree(tmp_path / "X")
    real = jobs.atomic_write_bytes
    calls = []

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 3:  # two crops written, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(jobs, "atomic_write_bytes", full_disk)
    args = ["prepare", "--images", str(photos), "-w", str(tmp_path / "ws"), "-c", "tiny", "--set", "prepare.n_jobs=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "the disk is full" in message and "No space left on device" in message and "crops/" in message
    assert "run the same command again" in message and "Traceback" not in result.output
    assert not (tmp_path / "ws" / "prepare" / "rejects.parquet").exists()

    monkeypatch.setattr(jobs, "atomic_write_bytes", real)  # space freed
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    frames = pd.read_parquet(tmp_path / "ws" / "prepare" / "frames.parquet")
    rejects = pd.read_parquet(tmp_path / "ws" / "prepare" / "rejects.parquet")
    assert len(frames) == 4 and "internal_error" not in set(rejects.reason)


def test_a_file_in_place_of_the_crop_folder_stops_the_run_in_workers_too(tmp_path):
    """A write error met in a worker process (loky, 2 workers) stops the run the same way, and
    the rerun, once the folder is free, makes every crop (works as root, unlike chmod)."""
    from fpsynth.data.jobs import CropWriteError

    photos = photo_tree(tmp_path / "X", per_person=1)
    blocker = _mk(tmp_path / "ws" / "prepare") / "crops"
    blocker.write_text("not a folder")
    from fpsynth.data.prepare import run

    cfg = with_section(load_pipeline("tiny", ["prepare.n_jobs=2"]), "prepare", images=photos)
    with pytest.raises(CropWriteError, match=r"cannot write the crop .*crops/.*a file stands where a folder"):
        run(cfg, tmp_path / "ws")
    blocker.unlink()
    record = run(cfg, tmp_path / "ws")
    assert record["summary"]["frames"] == 2 and "internal_error" not in record["summary"]["reasons"]


def test_the_write_error_survives_a_worker_process():
    """Workers (loky) send it back pickled: same class, same message."""
    from fpsynth.data.jobs import CropWriteError
    from fpsynth.errors import FpsynthError

    err = pickle.loads(pickle.dumps(CropWriteError("prepare stopped: cannot write the crop x")))
    assert isinstance(err, FpsynthError) and str(err) == "prepare stopped: cannot write the crop x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: chmod blocks nothing")
def test_a_read_only_crop_folder_stops_the_run_and_the_rerun_retries(tmp_path):
    photos = photo_tree(tmp_path / "X", per_person=1)
    crops = _mk(tmp_path / "ws" / "prepare" / "crops")
    crops.chmod(0o555)
    from fpsynth.data.jobs import CropWriteError

    try:
        with pytest.raises(CropWriteError, match="no permission to write there"):
            prepare(tmp_path / "ws", images=photos)
    finally:
        crops.chmod(0o755)
    record, frames, rejects = prepare(tmp_path / "ws", images=photos)
    assert len(frames) == 2 and "internal_error" not in set(rejects.reason)


# --------------------------------------------------------------------------- item 8: values out of range


def _annotated(folder: Path, name: str, move: tuple[int, float] | None = None) -> None:
    src = fixture_path("landmarks68", "einstein.jpg")
    shutil.copyfile(src, folder / f"{name}.jpg")
    lines = src.with_suffix(".pts").read_text().splitlines()
    if move is not None:
        start = lines.index("{") + 1
        lines[start + move[0]] = f"{move[1]} 100.0"
    (folder / f"{name}.pts").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("x, said", [(1e9, "far outside"), (-1e9, "far outside"), (1e300, "not a finite float32")])
def test_a_landmark_far_outside_the_image_is_a_bad_annotation_row(tmp_path, x, said):
    photos = tmp_path / "X"
    photos.mkdir()
    _annotated(photos, "good")
    _annotated(photos, "bad", move=(19, x))  # a brow point: no quality gate looks at it
    record, frames, rejects = prepare(tmp_path / "ws", images=photos)
    assert record["summary"]["frames"] == 1
    row = rejects[rejects.path.str.endswith("bad.jpg")]
    assert row.reason.tolist() == ["bad_annotation"] and said in row.detail.item()


def test_a_landmark_just_off_the_picture_is_kept():
    """A chin cut by the frame is a face, not a bad annotation: the bound is 2 image sizes out."""
    from fpsynth.data.pts import check_in_frame

    lm = np.zeros((68, 2), np.float32)
    lm[8] = (50.0, 250.0)  # 150 px below a 100-px-high image
    assert check_in_frame(lm, (100, 80)) is lm
    lm[8] = (50.0, 301.0)
    with pytest.raises(Rejected, match="far outside"):
        check_in_frame(lm, (100, 80))


@pytest.mark.parametrize(
    "override, named",
    [
        ("prepare.video.quota.peak=-1", r"prepare\.video\.quota: peak: frame counts must be >= 0, got -1"),
        (
            "prepare.sources.meei_pattern=(?P<subject>[^/]+",
            r"prepare\.sources: meei_pattern .* is not a valid regular "
            r"expression: missing \), unterminated subpattern",
        ),
        ("prepare.sources.meei_pattern=^(?P<who>[^/]+)/(?P<expression>.+)$", r"has no named group 'subject'"),
        ("prepare.max_image_pixels=0", r"prepare: max_image_pixels must be >= 1"),
        ("prepare.png_compression=12", r"prepare: png_compression must be in 0 \.\. 9"),
    ],
)
def test_prepare_values_out_of_range_are_refused_at_load(override, named):
    with pytest.raises(ConfigError, match=named):
        load_pipeline("tiny", [override])


def test_all_phase_counts_zero_is_refused():
    with pytest.raises(ConfigError, match="add up to 0"):
        load_pipeline(
            "tiny", [f"prepare.video.quota.{k}=0" for k in ("neutral", "onset", "development", "peak", "dissipation")]
        )


# --------------------------------------------------------------------------- item 11: crafted files


def huge_png(path: Path, width: int = 40000, height: int = 40000) -> None:
    """A small valid PNG whose header says ``width`` x ``height`` (the IHDR re-checksummed)."""
    ok, buf = cv2.imencode(".png", np.full((8, 8, 3), 127, np.uint8))
    data = bytearray(buf.tobytes())
    ihdr = 8 + 8  # signature, then the chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    huge_png(tmp_path / "huge.png")
    with pytest.raises(Rejected) as r:
        read_image(tmp_path / "huge.png", max_pixels=100_000_000)
    assert r.value.reason is Reason.IMAGE_TOO_LARGE and "its header states more than" in r.value.detail
    huge_png(tmp_path / "wide.png", 20000, 6000)  # 120 MP: under Pillow's bound, over the limit
    with pytest.raises(Rejected, match="20000 x 6000 pixels, above prepare.max_image_pixels"):
        read_image(tmp_path / "wide.png", max_pixels=100_000_000)


def test_a_jpeg_named_mp4_is_not_a_video(tmp_path):
    shutil.copyfile(fixture_path("faces", "photos", "obama.jpg"), tmp_path / "smile.mp4")
    with pytest.raises(Rejected) as r:
        VideoDecoder(tmp_path / "smile.mp4")
    assert r.value.reason is Reason.NOT_A_VIDEO and "JPEG image" in r.value.detail


def test_crafted_files_through_prepare(tmp_path):
    """A 40000 x 40000 PNG and a JPEG named .mp4 become their rows beside the good inputs; no
    internal_error, no one-frame video."""
    photos = photo_tree(tmp_path / "X", per_person=1)
    huge_png(photos / PEOPLE[0] / "huge.png")
    meei = tmp_path / "meei" / "pat01"
    meei.mkdir(parents=True)
    shutil.copyfile(fixture_path("faces", "photos", "obama.jpg"), meei / "smile_left.mp4")
    record, frames, rejects = prepare(tmp_path / "ws", images=photos, meei=tmp_path / "meei")
    assert record["summary"]["frames"] == 2 and set(frames.kind) == {"photo"}
    rejects = rejects[rejects.reason != "no_pair_partner"]  # one photo per person: no pairs, as expected
    by_file = dict(zip(rejects.path.map(lambda p: Path(p).name), rejects.reason))
    assert by_file == {"huge.png": "image_too_large", "smile_left.mp4": "not_a_video"}

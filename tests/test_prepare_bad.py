"""Bad input through the whole stage: every bad file becomes a reason row (or a clear error),
never a crash, and nothing disappears without a trace."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fpsynth.data.images import read_image
from fpsynth.data.sources import SourceError
from fpsynth.errors import FpsynthError
from fpsynth.pipeline import load_pipeline, with_section
from helpers.fixtures import fixture_path

pytestmark = pytest.mark.slow


def _video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def _face(width: int) -> np.ndarray:
    """A real portrait (obama.jpg, 910 px wide, eyes 104 px apart) scaled to ``width`` px."""
    rgb = read_image(fixture_path("faces", "photos", "obama.jpg"))
    return cv2.resize(rgb, (width, round(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)


def _moving(canvas_hw: tuple[int, int], faces: list[tuple[np.ndarray, int, int]], n: int) -> list[np.ndarray]:
    """``n`` frames of faces pasted on a grey canvas, drifting a pixel per frame."""
    frames = []
    for i in range(n):
        canvas = np.full((*canvas_hw, 3), 120, np.uint8)
        for img, x, y in faces:
            canvas[y + i % 3 : y + i % 3 + img.shape[0], x : x + img.shape[1]] = img
        frames.append(canvas)
    return frames


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    meei, photos = root / "meei", root / "photos"
    for d in ("trunc", "empty", "text", "noface", "twofaces", "small", "ok"):
        (meei / d).mkdir(parents=True)
    real = fixture_path("videos", "lp_d20.mp4").read_bytes()
    (meei / "trunc" / "smile.mp4").write_bytes(real[: len(real) // 2])  # fast-start MP4 cut in half
    (meei / "empty" / "smile.mp4").write_bytes(b"")
    (meei / "text" / "smile.mp4").write_text("not a video\n")
    rng = np.random.default_rng(0)
    _video(meei / "noface" / "smile.avi", [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(12)])
    face = _face(200)
    _video(meei / "twofaces" / "smile.avi", _moving((face.shape[0] + 10, 420), [(face, 5, 2), (face, 215, 2)], 12))
    tiny = _face(157)  # eyes about 18 px apart: found by the detector, below the 20 px gate
    _video(meei / "small" / "smile.avi", _moving((360, 480), [(tiny, 200, 150)], 12))
    (meei / "ok" / "notes.txt").write_text("session notes")

    photos.mkdir()
    upright = read_image(fixture_path("faces", "photos", "obama.jpg"))
    cv2.imwrite(str(photos / "grey.png"), cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(photos / "deep16.png"), cv2.cvtColor(upright, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    alpha = np.full(upright.shape[:2], 255, np.uint8)
    alpha[:, :80] = 0  # a transparent strip at the left
    cv2.imwrite(str(photos / "alpha.png"), np.dstack([cv2.cvtColor(upright, cv2.COLOR_RGB2BGR), alpha]))
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated 90 deg clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=-1))).save(photos / "rotated.jpg", exif=exif, quality=95)
    for name in ("no_face_grass.jpg", "dogs.jpg", "bald_guys.jpg", "two_people.jpg"):
        (photos / name).symlink_to(fixture_path("faces", "photos", name))
    small = np.full((500, 500, 3), 127, np.uint8)
    small[100 : 100 + tiny.shape[0], 200 : 200 + tiny.shape[1]] = tiny
    cv2.imwrite(str(photos / "small_face.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    (photos / "fake.jpg").write_text("just text")
    (photos / "zero.png").write_bytes(b"")
    (photos / "gone.jpg").symlink_to(root / "deleted.jpg")

    scores = root / "scores.csv"
    scores.write_text("subject,eface\ntrunc,95\nempty,\ntext,n/a\n,70\nnoface,250\n")

    from fpsynth.data.prepare import run

    cfg = with_section(load_pipeline("tiny", ["prepare.n_jobs=1"]), "prepare", meei=meei, images=photos, scores=scores)
    record = run(cfg, root / "ws")
    out = root / "ws" / "prepare"
    private = pd.read_parquet(out / "private" / "rejects.parquet")
    private["file"] = [Path(p).name if isinstance(p, str) else None for p in private["path"]]
    return record, out, private


def _reasons(private: pd.DataFrame, file: str) -> set[str]:
    return set(private.loc[private["file"] == file, "reason"])


def test_run_finishes(bad_run):
    record, out, _ = bad_run
    assert record["status"] == "finished"
    for name in ("frames", "pairs", "rejects"):
        assert (out / f"{name}.parquet").is_file()


@pytest.mark.parametrize(
    "file, reason",
    [
        ("smile.mp4", "truncated_video"),
        ("smile.mp4", "empty_file"),
        ("smile.mp4", "not_a_video"),
        ("smile.avi", "no_face"),
        ("smile.avi", "two_faces"),
        ("smile.avi", "face_too_small"),
        ("notes.txt", "unsupported_file"),
        ("no_face_grass.jpg", "no_face"),
        ("dogs.jpg", "no_face"),
        ("bald_guys.jpg", "two_faces"),
        ("two_people.jpg", "two_faces"),
        ("small_face.png", "face_too_small"),
        ("fake.jpg", "not_an_image"),
        ("zero.png", "empty_file"),
        ("gone.jpg", "unreadable_file"),
    ],
)
def test_each_bad_file_has_its_reason(bad_run, file, reason):
    assert reason in _reasons(bad_run[2], file)


def test_truncated_video_keeps_its_decoded_frames(bad_run):
    _, out, private = bad_run
    frames = pd.read_parquet(out / "frames.parquet")
    mapping = pd.read_parquet(out / "private" / "mapping.parquet")
    clip = mapping.loc[mapping.subject_original == "trunc", "input"].item()
    kept = frames[frames["clip"] == clip]
    row = private[(private.input == clip) & (private.reason == "truncated_video")].iloc[0]
    assert 16 <= len(kept) <= 32 and kept.frame_index.max() < row.frame_start
    assert row.frame_end == 174  # the header's last frame


def test_frame_runs_are_ranges(bad_run):
    """A clip with no face gives one row per run of frames, not a row per frame."""
    private = bad_run[2]
    noface = private[(private.file == "smile.avi") & (private.reason == "no_face")]
    assert len(noface) == 1 and (noface.frame_start.item(), noface.frame_end.item()) == (0, 11)


def test_odd_formats_are_kept(bad_run):
    """Grey, 16-bit, alpha and EXIF-rotated versions of one photo all yield a face crop."""
    _, out, _ = bad_run
    frames = pd.read_parquet(out / "frames.parquet")
    mapping = pd.read_parquet(out / "private" / "mapping.parquet")
    kept = set(mapping.loc[mapping.input.isin(frames["clip"]), "path"].map(lambda p: Path(p).name))
    assert {"grey.png", "deep16.png", "alpha.png", "rotated.jpg"} <= kept
    crops = {}
    for name in ("deep16.png", "rotated.jpg", "grey.png"):
        clip = mapping.loc[mapping.path.str.endswith(name), "input"].item()
        crops[name] = cv2.imread(str(out / frames.loc[frames["clip"] == clip, "path"].item())).astype(int)
    assert np.abs(crops["rotated.jpg"] - crops["deep16.png"]).mean() < 6  # upright, same face
    assert (crops["grey.png"][:, :, 0] == crops["grey.png"][:, :, 2]).all()


def test_scores_rows(bad_run):
    private = bad_run[2]
    rows = private[private.reason == "bad_score_row"].set_index("input")["detail"]
    assert "missing" in rows["scores:line 3"] and "not a number" in rows["scores:line 4"]
    assert "without a subject" in rows["scores:line 5"] and "outside" in rows["scores:line 6"]


def test_nothing_silently_dropped(bad_run):
    """Every input file is either behind a kept crop or named in a rejects row."""
    _, out, private = bad_run
    frames = pd.read_parquet(out / "frames.parquet")
    mapping = pd.read_parquet(out / "private" / "mapping.parquet")
    accounted = set(frames["clip"]) | set(private.input)
    assert set(mapping.input) <= accounted


def test_empty_missing_and_absent_inputs(tmp_path):
    from fpsynth.data.prepare import run

    cfg = load_pipeline("tiny")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no files found"):
        run(with_section(cfg, "prepare", meei=tmp_path / "empty"), tmp_path / "ws")
    with pytest.raises(SourceError, match="does not exist"):
        run(with_section(cfg, "prepare", images=tmp_path / "missing"), tmp_path / "ws")
    with pytest.raises(SourceError, match="needs input"):
        run(cfg, tmp_path / "ws")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.jpg").write_bytes(b"x")
    with pytest.raises(FpsynthError, match="--scores"):
        run(with_section(cfg, "prepare", images=tmp_path / "p", scores=tmp_path / "nope.csv"), tmp_path / "ws")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FpsynthError, match="header"):
        run(with_section(cfg, "prepare", images=tmp_path / "p", scores=tmp_path / "bad.csv"), tmp_path / "ws")


def test_cli_exit_code_for_missing_folder(tmp_path):
    from typer.testing import CliRunner

    from fpsynth.cli import app

    result = CliRunner().invoke(app, ["prepare", "--meei", str(tmp_path / "nowhere"), "-w", str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_unexpected_error_becomes_a_row_without_the_path(tmp_path, monkeypatch):
    """A bug met on one input is recorded (type and message, path masked) and the run goes on."""
    import fpsynth.data.process as process
    from fpsynth.data.prepare import run

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):  # copies: two links to one file are one input (a duplicate_file row)
        shutil.copyfile(fixture_path("faces", "photos", "obama.jpg"), photos / name)
    real = process._process_photo

    def flaky(job, ctx):
        if job.files[0].endswith("a.jpg"):
            raise ValueError(f"cannot handle {job.files[0]}")
        return real(job, ctx)

    monkeypatch.setattr(process, "_process_photo", flaky)
    cfg = with_section(load_pipeline("tiny", ["prepare.n_jobs=1"]), "prepare", images=photos)
    record = run(cfg, tmp_path / "ws")
    assert record["summary"]["frames"] == 1
    rejects = pd.read_parquet(tmp_path / "ws" / "prepare" / "rejects.parquet")
    row = rejects[rejects.reason == "internal_error"].iloc[0]
    assert row.detail == "ValueError: cannot handle <input>"

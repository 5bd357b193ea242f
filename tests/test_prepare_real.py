"""`fpsynth prepare` end to end on real faces: the six real videos arranged as a MEEI tree, real
photos, an AFLFP-style annotated sequence and a scores table; then kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fpsynth.data.align import ARCFACE_TEMPLATE
from fpsynth.data.config import PrepareConfig
from fpsynth.data.faces import detect_faces, get_backend
from fpsynth.data.pts import write_pts
from fpsynth.data.video import VideoDecoder
from fpsynth.pipeline import load_pipeline, with_section
from helpers.fixtures import FIXTURES, fixture_path

pytestmark = pytest.mark.slow

VIDEOS = ("lp_d3", "lp_d6", "lp_d9", "lp_d18", "lp_d19", "lp_d20")
# Tests read the first 60 frames of each clip (the full 32-frame pick on a whole clip is tested
# on its own below); everything else is the default configuration.
OVERRIDES = ["prepare.video.max_frames=60"]
PEOPLE = ("John_Salley", "John_Savage", "John_Simm")


def build_raw(root: Path) -> dict[str, Path]:
    """MEEI tree (symlinks to the real videos), annotated AFLFP sequence, people photos, scores."""
    meei = root / "meei"
    for n, video in enumerate(VIDEOS, start=1):
        (meei / f"pat{n:02d}").mkdir(parents=True)
        (meei / f"pat{n:02d}" / "smile_left.mp4").symlink_to(fixture_path("videos", f"{video}.mp4"))
    (meei / "pat01" / "smile.jpg").symlink_to(fixture_path("faces", "photos", "obama.jpg"))
    # AFLFP: 6 frames of a real clip with detector landmarks written as iBUG .pts (1-based).
    seq = root / "aflfp" / "subj_a" / "open_mouth"
    seq.mkdir(parents=True)
    backend = get_backend(PrepareConfig().faces)
    names = ["000_neutral", "001_onset", "002", "003", "004_peak", "005"]
    frames = VideoDecoder(fixture_path("videos", "lp_d18.mp4")).frames(lambda i: i in (0, 112, 118, 124, 140, 160))
    for name, (_, rgb) in zip(names, frames):
        cv2.imwrite(str(seq / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        write_pts(seq / f"{name}.pts", detect_faces(backend, rgb, 640, 0)[0].landmarks)
    images = root / "images"
    for person in PEOPLE:
        (images / person).parent.mkdir(exist_ok=True)
        (images / person).symlink_to(fixture_path("faces", "people", person), target_is_directory=True)
    scores = root / "scores.csv"
    scores.write_text(
        "Subject,eFACE,House-Brackmann\npat01,98,1\npat02,85,II\npat03,72,3\npat04,64,4\n"
        "pat05,41,VI\npat07,88,2\nbroken,not-a-number,\n"
    )
    return {"meei": meei, "aflfp": root / "aflfp", "images": images, "scores": scores}


def _config(raw: dict[str, Path]):
    cfg = load_pipeline("tiny", OVERRIDES)
    return with_section(cfg, "prepare", **raw)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    fixture_path("videos")
    return build_raw(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    from fpsynth.data.prepare import run

    workspace = tmp_path_factory.mktemp("ws")
    t0 = time.perf_counter()
    record = run(_config(raw), workspace)
    print(f"prepare of the real tree: {time.perf_counter() - t0:.1f} s")
    return workspace / "prepare", record


def _read(out: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(out / f"{n}.parquet") for n in ("frames", "pairs", "rejects")}


def test_outputs_and_counts(prepared):
    out, record = prepared
    assert record["status"] == "finished"
    m = _read(out)
    frames = m["frames"]
    per_clip = frames[frames.kind == "video"].groupby("clip").size()
    # 32 per clip, unless a clip has fewer frames at rest or in its main expression (frames of a
    # second expression belong to no phase and are not taken)
    assert len(per_clip) == 6 and (per_clip <= 32).all() and per_clip.sum() >= 6 * 28
    assert set(frames.dataset) == {"meei", "aflfp", "images"}
    assert (frames[frames.kind == "sequence"].landmark_source == "annotation").all()
    assert len(frames[frames.dataset == "images"]) >= 30  # 33 small face crops, a few may fail a gate
    assert frames["frame_id"].is_unique and frames["path"].is_unique
    for path in frames["path"]:
        img = cv2.imread(str(out / path))
        assert img is not None and img.shape == (112, 112, 3)
    assert record["summary"]["frames"] == len(frames)


def test_crop_landmarks_sit_on_the_template(prepared):
    frames = _read(prepared[0])["frames"]
    lm = np.stack(frames["landmarks"].to_numpy()).reshape(-1, 68, 2)
    eyes = np.stack([lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)], 1)  # (N, 2, 2)
    err = np.linalg.norm(eyes - ARCFACE_TEMPLATE[:2], axis=-1)
    assert np.median(err) < 2.0
    inner = lm[:, 17:]  # brows, eyes, nose, mouth (the jaw line may run below the crop)
    assert ((inner >= 0) & (inner <= 112)).mean() > 0.99


def test_phases_times_and_video_metadata(prepared):
    frames = _read(prepared[0])["frames"]
    video = frames[frames["kind"] == "video"]
    assert set(video["phase"]) <= {"neutral", "onset", "development", "peak", "dissipation"}
    for _, clip in video.groupby("clip"):  # a clip's maximum is its peak, unless it never moves
        assert (clip["phase"] == "peak").any() or (clip["phase"] == "neutral").all()
    assert video["time_s"].between(0, 60 / 25).all()  # the first 60 frames at 25-30 fps
    seq = frames[frames["kind"] == "sequence"].sort_values("frame_index")
    assert seq["phase"].iloc[0] == "neutral" and seq["phase"].iloc[4] == "peak"  # from the names
    assert seq["phase"].notna().all()  # the unnamed ones inferred from the curve


def test_severity_scores_and_rejects(prepared):
    out, _ = prepared
    m = _read(out)
    mapping = pd.read_parquet(out / "private" / "mapping.parquet")
    pseud = mapping.drop_duplicates("subject_original").set_index("subject_original")["subject"]
    sev = m["frames"].drop_duplicates("subject").set_index("subject")["severity"]
    assert sev[pseud["pat01"]] == "normal" and sev[pseud["pat02"]] == "mild"
    assert sev[pseud["pat03"]] == "moderate" and sev[pseud["pat04"]] == "severe"
    assert sev[pseud["pat05"]] == "complete" and sev[pseud["pat06"]] == "unknown"
    eface = m["frames"].drop_duplicates("subject").set_index("subject")["eface"]
    assert eface[pseud["pat02"]] == 85 and np.isnan(eface[pseud["pat06"]])
    reasons = m["rejects"].set_index("input")["reason"]
    assert reasons["scores:line 8"] == "bad_score_row"
    private = pd.read_parquet(out / "private" / "rejects.parquet")
    unmatched = private.loc[private.reason == "score_without_input", "subject_original"]
    assert sorted(unmatched) == ["broken", "pat07"]  # no inputs under these ids


def test_shareable_manifests_hold_no_original_names(prepared):
    out, _ = prepared
    forbidden = ["pat0", "subj_a", "John", "lp_d", "obama", str(FIXTURES), "/tmp", "smile_left.mp4"]
    for name in ("frames", "pairs", "rejects"):
        raw_bytes = (out / f"{name}.parquet").read_bytes()
        df = pd.read_parquet(out / f"{name}.parquet")
        text = " ".join(map(str, df.select_dtypes(exclude="number").to_numpy().ravel().tolist()))
        for word in forbidden:
            assert word not in text, (name, word)
            assert word.encode() not in raw_bytes, (name, word)
    mapping = pd.read_parquet(out / "private" / "mapping.parquet")
    assert set(mapping.subject_original.dropna()) >= {"pat01", "subj_a", "John_Salley"}


def test_splits_and_pairs(prepared):
    m = _read(prepared[0])
    frames, pairs = m["frames"], m["pairs"]
    assert frames.groupby("subject")["split"].nunique().max() == 1
    n_subjects = frames.subject.nunique()
    n_test = frames.loc[frames.split == "test", "subject"].nunique()
    assert n_subjects == 6 + 1 + 3 and n_test == 1  # floor(10 x 0.12) = 0, at least 1
    by_id = frames.set_index("frame_id")
    assert (pairs.id_frame != pairs.style_frame).all()
    assert (by_id.loc[pairs.id_frame, "subject"].to_numpy() == pairs.subject.to_numpy()).all()
    assert (by_id.loc[pairs.style_frame, "subject"].to_numpy() == pairs.subject.to_numpy()).all()
    assert len(pairs) == len(frames)  # one pair per frame: every subject has >= 2 images


def test_torch_datasets(prepared):
    import torch

    from fpsynth.data.dataset import EmptySelectionError, FrameDataset, PairDataset

    out, _ = prepared
    pairs = PairDataset(out, split="train")
    item = pairs[0]
    for key in ("x_id", "x0"):
        assert item[key].shape == (3, 112, 112) and item[key].dtype == torch.float32
        assert -1.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
    assert item["lm0"].shape == (68, 2)
    batch = next(iter(torch.utils.data.DataLoader(pairs, batch_size=4)))
    assert batch["x0"].shape == (4, 3, 112, 112) and len(batch["subject"]) == 4
    # the crop on disk and the tensor agree (RGB order, scaling)
    png = cv2.imread(str(out / pairs.pairs.iloc[0]["style_path"]))[:, :, ::-1]
    np.testing.assert_allclose(((item["x0"] + 1) * 127.5).permute(1, 2, 0).numpy(), png, atol=1e-3)
    styles = FrameDataset(out, split=None, datasets=["meei"], phases=["peak"])
    assert len(styles) >= 6 and set(styles.frames.phase) == {"peak"}
    assert styles[0]["image"].shape == (3, 112, 112)
    with pytest.raises(EmptySelectionError):
        FrameDataset(out, split="train", expressions=["no_such_expression"])


def test_second_run_skips(prepared, raw):
    from fpsynth.data.prepare import run

    out, _ = prepared
    assert run(_config(raw), out.parent).get("skipped") is True


def test_full_clip_32_frame_selection(tmp_path):
    """The real selection on a whole real clip (216 frames): 32 frames over all five phases."""
    from fpsynth.data.jobs import Context
    from fpsynth.data.process import run_job
    from fpsynth.data.pseudonyms import Job
    from fpsynth.data.sources import Kind

    path = fixture_path("videos", "lp_d18.mp4")
    job = Job("P0001-smile", "meei", Kind.VIDEO, "P0001", "smile", None, (str(path),))
    result = run_job(job, Context(PrepareConfig(), tmp_path))
    rows = pd.DataFrame(result.frames)
    assert len(rows) == 32 and rows.frame_index.is_unique and rows.frame_index.is_monotonic_increasing
    assert set(rows.phase) == {"neutral", "onset", "development", "peak", "dissipation"}
    order = [p for i, p in enumerate(rows.phase) if i == 0 or rows.phase.iloc[i - 1] != p]
    assert order[1:5] == ["onset", "development", "peak", "dissipation"]
    assert rows.loc[rows.phase == "peak", "motion"].min() > rows.loc[rows.phase == "neutral", "motion"].max()
    np.testing.assert_allclose(rows.time_s, rows.frame_index / 30.0)
    assert result.rejects == []
    print("picked frames:", rows.frame_index.tolist())


# --------------------------------------------------------------------------- kill and resume


def _cli(raw: dict[str, Path], workspace: Path) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "fpsynth.cli",
        "prepare",
        "--config",
        "tiny",
        "-w",
        str(workspace),
        "--meei",
        str(raw["meei"]),
        "--aflfp",
        str(raw["aflfp"]),
        "--images",
        str(raw["images"]),
        "--scores",
        str(raw["scores"]),
    ]
    for o in OVERRIDES:
        args += ["--set", o]
    return args


def test_kill_and_resume_gives_the_same_rows(prepared, raw, tmp_path):
    """SIGKILL `fpsynth prepare` once some jobs are stored, run it again, compare with the
    uninterrupted run: the same rows, no duplicates, no stray crops."""
    reference, _ = prepared
    workspace = tmp_path / "ws"
    proc = subprocess.Popen(
        _cli(raw, workspace), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )  # its own process group: the kill reaches the workers
    parts = workspace / "prepare" / "parts" / "frames"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(parts.glob("*/*.parquet"))) >= 6:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"prepare ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    record = json.loads((workspace / "prepare" / "stage.json").read_text())
    assert record["status"] == "running" and not (workspace / "prepare" / "frames.parquet").exists()
    done_before = len(list(parts.glob("*/*.parquet")))

    resumed = subprocess.run(_cli(raw, workspace), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{done_before}/" not in resumed.stderr.splitlines()[0] if resumed.stderr else True
    ref, got = _read(reference), _read(workspace / "prepare")
    for name in ("frames", "pairs", "rejects"):
        pd.testing.assert_frame_equal(got[name], ref[name], check_exact=True)
    assert got["frames"]["frame_id"].is_unique and got["pairs"]["pair_id"].is_unique
    crops = sorted(
        p.relative_to(workspace / "prepare").as_posix()
        for p in (workspace / "prepare" / "crops").rglob("*")
        if p.is_file()
    )
    assert crops == sorted(got["frames"]["path"])
    for path in got["frames"]["path"][:40]:  # same pixels too
        assert (workspace / "prepare" / path).read_bytes() == (reference / path).read_bytes()


def test_item_store_ignores_temporaries_of_a_killed_write(tmp_path):
    """A kill inside ItemStore.write leaves '.<name>.<random>.tmp.parquet' beside the parts;
    reading must not count it (it once doubled a clip's rows after a resume)."""
    from fpsynth.stage import ItemStore

    store = ItemStore(tmp_path / "parts")
    store.write("clip-a", pd.DataFrame({"frame_id": ["a-0", "a-1"]}))
    stray = tmp_path / "parts" / f".{store._path('clip-a').stem}.x1y2.tmp.parquet"
    pd.DataFrame({"frame_id": ["a-0", "a-1"]}).to_parquet(stray)
    assert store.read_all()["frame_id"].tolist() == ["a-0", "a-1"]

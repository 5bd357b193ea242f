"""The still-frame gate (fpsynth.data.still) and its use in the video analysis; parallel crop writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsynth.data.config import PrepareConfig
from fpsynth.data.still import LEVELS, StillGate
from helpers.fixtures import fixture_path

BOX = np.array([100.0, 80.0, 300.0, 280.0], np.float32)  # a 200 px "face" box


def _frame(seed: int = 0) -> np.ndarray:
    """(480, 480, 3) smooth texture, like a face at video resolution."""
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (480, 480), interpolation=cv2.INTER_CUBIC)


def test_gate_passes_codec_noise_and_stops_a_local_change():
    a = _frame()
    gate = StillGate()
    assert not gate.same(a)  # nothing remembered yet
    gate.remember(a, BOX)
    assert gate.same(a.copy())
    noisy = np.clip(a.astype(int) + np.random.default_rng(1).integers(-2, 3, a.shape), 0, 255).astype(np.uint8)
    assert gate.same(noisy)  # +-2 per pixel averages out within a cell
    blink = a.copy()
    blink[150:154, 170:180] = np.clip(blink[150:154, 170:180].astype(int) + 60, 0, 255)  # 4 x 10 px, one eyelid
    assert not gate.same(blink)
    outside = a.copy()
    outside[440:, 440:] = 0  # the background far from the face does not count
    assert gate.same(outside)
    gate.clear()
    assert not gate.same(a)


def test_gate_compares_with_the_last_fitted_frame_so_drift_adds_up():
    a = _frame(2)
    gate = StillGate()
    gate.remember(a, BOX)
    steps = [np.clip(a.astype(int) + k, 0, 255).astype(np.uint8) for k in range(1, LEVELS + 3)]
    assert [gate.same(s) for s in steps] == [True] * LEVELS + [False, False]  # +1 a frame: caught at +3


def test_repeated_frames_reuse_the_fit_and_real_motion_does_not(tmp_path):
    """A real clip with 1 s of its first frame repeated before and after it (mp4v): the repeats
    keep the last fitted landmarks (source "still"); the clip itself, a person in motion, is fitted
    frame by frame."""
    from fpsynth.data.clip import analyse
    from fpsynth.data.jobs import Context
    from fpsynth.data.video import VideoDecoder, join_clips

    video = tmp_path / "v.mp4"
    [(first, last)] = join_clips([(fixture_path("videos", "lp_d18.mp4"), 0, 89)], video, still_s=1.0, fps=30.0)
    a = analyse(VideoDecoder(video), Context(PrepareConfig(), tmp_path), lambda i: i % 2 == 0)
    by_index = {c.index: c for c in a.candidates}
    inside = [c for c in a.candidates if first + 4 <= c.index <= last]  # the clip's first frame is the repeats' picture
    before = [c for c in a.candidates if c.index < first]
    assert inside and all(c.face.source != "still" for c in inside)
    assert sum(c.face.source == "still" for c in before) >= len(before) - 2  # the first frame is fitted
    for c in before:
        if c.face.source == "still":
            np.testing.assert_array_equal(c.face.landmarks, by_index[0].face.landmarks)
            assert np.abs(c.aligned.crop.astype(int) - by_index[0].aligned.crop).max() <= 16  # its own pixels


def test_write_crops_writes_all_and_raises_a_failed_write(tmp_path):
    from fpsynth.data.clip import write_crops
    from fpsynth.data.jobs import Context

    ctx = Context(PrepareConfig(), tmp_path)
    crops = [(f"crops/s/c/{k:05d}.png", np.full((112, 112, 3), k, np.uint8)) for k in range(9)]
    write_crops(ctx, crops)
    for rel, crop in crops:
        assert np.array_equal(cv2.imread(str(tmp_path / rel))[..., ::-1], crop)
    (tmp_path / "crops" / "blocked").write_bytes(b"a file where a folder must go")
    with pytest.raises(Exception, match="Not a directory"):  # OSError, or prepare's one-line error around it
        write_crops(ctx, crops + [("crops/blocked/x/00000.png", crops[0][1])])
    assert not list(Path(tmp_path).rglob(".*.tmp*"))  # no temporaries left behind

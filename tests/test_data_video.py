"""Video decoding (bad files included) and the motion-curve frame picker."""

from __future__ import annotations

import numpy as np
import pytest

from fpsynth.data.config import PhaseQuota, VideoConfig
from fpsynth.data.motion import Phase, allocate, evenly, label_phases, motion_curve, pick_frames, smooth
from fpsynth.data.reasons import Reason, Rejected
from fpsynth.data.video import VideoDecoder
from helpers.fixtures import fixture_path


def write_video(path, frames, fps=25.0, fourcc="mp4v"):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_decoder_reads_every_frame_with_info(tmp_path):
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(12)]
    write_video(tmp_path / "v.avi", frames, fps=12.5, fourcc="MJPG")
    dec = VideoDecoder(tmp_path / "v.avi")
    assert (dec.info.frame_count, dec.info.width, dec.info.height) == (12, 48, 32)
    assert dec.info.fps == pytest.approx(12.5)
    got = list(dec.frames())
    assert [i for i, _ in got] == list(range(12))
    assert abs(int(got[5][1].mean()) - 50) <= 2
    assert dec.shortfall() is None
    assert dec.info.time_of(5) == pytest.approx(0.4)


def test_decoder_skips_unwanted_frames_but_counts_them(tmp_path):
    write_video(tmp_path / "v.avi", [np.full((16, 16, 3), i, np.uint8) for i in range(10)], fourcc="MJPG")
    dec = VideoDecoder(tmp_path / "v.avi")
    assert [i for i, _ in dec.frames(lambda i: i % 3 == 0)] == [0, 3, 6, 9]
    assert dec.decoded == 10
    dec = VideoDecoder(tmp_path / "v.avi")
    assert [i for i, _ in dec.frames(max_frames=4)] == [0, 1, 2, 3]
    assert dec.shortfall(max_frames=4) is None


def test_zero_byte_video(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(Rejected) as err:
        VideoDecoder(tmp_path / "empty.mp4")
    assert err.value.reason is Reason.EMPTY_FILE


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("patient 12 smile take 2\n" * 20)
    with pytest.raises(Rejected) as err:
        VideoDecoder(tmp_path / "notes.mp4")
    assert err.value.reason is Reason.NOT_A_VIDEO


def test_truncated_real_video_keeps_decoded_frames_and_says_so(tmp_path):
    """A real (fast-start) MP4 cut in half: frames up to the cut decode, the shortfall is reported."""
    data = fixture_path("videos", "lp_d20.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    dec = VideoDecoder(tmp_path / "cut.mp4")
    n = sum(1 for _ in dec.frames())
    assert 0 < n < dec.info.frame_count
    first_missing, last = dec.shortfall()
    assert first_missing == n and last == dec.info.frame_count - 1


def test_truncated_mp4_without_index_is_not_a_video(tmp_path):
    """OpenCV's MP4 writer puts the index at the end: cut, the file cannot be opened at all."""
    write_video(tmp_path / "v.mp4", [np.full((32, 32, 3), i, np.uint8) for i in range(30)])
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(Rejected) as err:
        VideoDecoder(tmp_path / "cut.mp4")
    assert err.value.reason is Reason.NOT_A_VIDEO


# --------------------------------------------------------------------------- motion curve and phases


def _curve() -> np.ndarray:
    """Rest, a slow rise to a plateau, a fall, rest again: 150 frames."""
    t = np.arange(150, dtype=float)
    return np.interp(t, [0, 20, 60, 70, 80, 110, 149], [0, 0, 0.2, 0.2, 0.2, 0, 0])


def test_phases_of_a_clean_expression():
    cfg = VideoConfig(smooth=1)
    labels = label_phases(_curve(), cfg)
    c = _curve()
    peak = labels == Phase.PEAK.value
    assert (c[peak] >= 0.85 * 0.2 - 1e-9).all() and peak.sum() >= 20
    # order in time: neutral, onset, development, peak, dissipation, neutral
    order = [v for i, v in enumerate(labels) if i == 0 or labels[i - 1] != v]
    assert order == ["neutral", "onset", "development", "peak", "dissipation", "neutral"]
    assert (c[labels == "neutral"] < 0.2 * 0.2 + 1e-9).all()


def test_other_event_is_not_onset_and_not_neutral():
    """A first, smaller expression before the main one belongs to no phase."""
    t = np.arange(200, dtype=float)
    c = np.interp(t, [0, 20, 35, 50, 65, 100, 130, 140, 170, 199], [0, 0, 0.12, 0.12, 0, 0, 0.3, 0.3, 0, 0])
    labels = label_phases(c, VideoConfig(smooth=1))
    first_event = (t < 80) & (c >= 0.2 * 0.3)  # above the rest level of the main event
    assert first_event.sum() > 20 and set(labels[first_event]) == {None}
    assert labels[10] == "neutral" and labels[135] == "peak"
    assert labels[110] == "onset"


def test_still_clip_is_all_neutral():
    rng = np.random.default_rng(0)
    c = np.abs(rng.normal(0, 0.005, 80))
    assert set(label_phases(c, VideoConfig())) == {"neutral"}


def test_pick_frames_meets_quota_and_spreads_in_time():
    cfg = VideoConfig(smooth=1)
    labels = label_phases(_curve(), cfg)
    keep = pick_frames(labels, cfg.quota)
    assert len(keep) == 32 and len(set(keep.tolist())) == 32 and (np.diff(keep) > 0).all()
    counts = {p.value: int((labels[keep] == p.value).sum()) for p in Phase}
    assert counts == {"neutral": 4, "onset": 6, "development": 6, "peak": 8, "dissipation": 8}
    peak_idx = keep[labels[keep] == "peak"]
    span = np.flatnonzero(labels == "peak")
    assert peak_idx[0] == span[0] and peak_idx[-1] == span[-1]  # ends of the phase included


def test_allocation_passes_shortfalls_on():
    quota = PhaseQuota()
    take = allocate({"neutral": 50, "onset": 2, "development": 3, "peak": 8, "dissipation": 20}, quota)
    assert take["onset"] == 2 and take["development"] == 3 and sum(take.values()) == 32
    assert allocate({"neutral": 5, "peak": 3}, quota) == {
        "neutral": 5,
        "onset": 0,
        "development": 0,
        "peak": 3,
        "dissipation": 0,
    }


@pytest.mark.parametrize("n, k", [(10, 10), (33, 32), (100, 7), (5, 1), (2, 2), (1000, 32)])
def test_evenly_is_distinct_and_spans(n, k):
    pos = evenly(n, k)
    assert len(pos) == k and len(set(pos.tolist())) == k
    assert pos.min() >= 0 and pos.max() <= n - 1
    if k > 1:
        assert pos[0] == 0 and pos[-1] == n - 1


def test_smooth_keeps_length_and_constant():
    x = np.r_[np.zeros(10), np.ones(10)]
    y = smooth(x, 5)
    assert len(y) == len(x) and y[0] == 0 and y[-1] == 1
    np.testing.assert_allclose(smooth(np.full(30, 2.0), 5), 2.0)


def test_motion_curve_ignores_head_motion():
    """A still face that only translates, rotates and scales has no motion; an opening mouth has."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 100, (68, 2))
    base[36:42] += [-20, 0]  # eyes apart so the inter-ocular distance is sane
    base[42:48] += [20, 0]
    frames = []
    for i in range(40):
        a, s = np.radians(i), 1 + 0.01 * i
        rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lm = base.copy()
        if i >= 20:
            lm[48:68, 1] += 10.0  # the mouth drops: expression, not pose
        frames.append(lm @ rot.T + [i, -i])
    curve, ref = motion_curve(np.stack(frames), VideoConfig(smooth=1))
    assert ref < 4
    assert curve[:20].max() < 1e-6
    assert curve[20:].min() > 0.05

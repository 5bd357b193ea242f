"""Seeking past unwanted frames in a second pass (VideoDecoder.frames(known=..., next_wanted=...)).

A second pass over a video (prepare's dense pass over the movements the first pass left short)
skips long stretches by seeking to frames the first pass decoded, and checks each such frame
against its signature: the frames it yields must be exactly those of decoding from the start,
and a container whose seeking lands elsewhere must be caught, not trusted.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fpsynth.data.video import SEEK_AHEAD, SeekMismatch, VideoDecoder, frame_signature

N = 240  # frames; mp4v puts a keyframe every 12, so seeks land mid-GOP as on real files


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """(path, every decoded frame): a square that moves a pixel a frame over noise, so each frame differs."""
    path = tmp_path_factory.mktemp("seek") / "v.mp4"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 64))
    for i in range(N):
        f = base.copy()
        f[8:24, (i % 40) : (i % 40) + 16] = (255, (5 * i) % 256, 0)
        writer.write(f)
    writer.release()
    decoded = [rgb for _, rgb in VideoDecoder(path).frames()]
    assert len(decoded) == N
    return path, decoded


def _spans_pass(path, spans, known):
    wanted = lambda i: any(lo <= i <= hi for lo, hi in spans)  # noqa: E731
    end = max(hi for _, hi in spans) + 1

    def next_wanted(i):
        return min((max(lo, i) for lo, hi in spans if hi >= i), default=end)

    dec = VideoDecoder(path)
    return dec, list(dec.frames(wanted, end, known=known, next_wanted=next_wanted))


def test_seeking_pass_yields_exactly_the_frames_of_decoding_from_the_start(video):
    path, decoded = video
    known = {i: frame_signature(decoded[i]) for i in range(0, N, 2)}  # a first pass at stride 2
    spans = [(101, 120), (131, 133), (201, 230)]  # far apart: two seeks (0 -> 100, 134 -> 200)
    dec, got = _spans_pass(path, spans, known)
    assert [i for i, _ in got] == [i for lo, hi in spans for i in range(lo, hi + 1)]
    for i, rgb in got:
        assert np.array_equal(rgb, decoded[i]), i
    assert dec.seeks == 2
    assert SEEK_AHEAD <= 100  # the first stretch (0-100) is long enough to be sought


def test_short_stretches_are_grabbed_not_sought(video):
    path, decoded = video
    known = {i: frame_signature(decoded[i]) for i in range(0, N, 2)}
    dec, got = _spans_pass(path, [(10, 12), (10 + SEEK_AHEAD // 2, 10 + SEEK_AHEAD // 2 + 1)], known)
    assert dec.seeks == 0
    assert all(np.array_equal(rgb, decoded[i]) for i, rgb in got)


def test_without_known_frames_nothing_is_sought(video):
    path, decoded = video
    dec, got = _spans_pass(path, [(150, 152)], known=None)
    assert dec.seeks == 0 and [i for i, _ in got] == [150, 151, 152]


def test_a_seek_that_lands_on_another_frame_is_caught(video):
    """Signatures one frame off stand for a container that seeks inexactly: the pass must raise."""
    path, decoded = video
    off_by_one = {i: frame_signature(decoded[i + 1]) for i in range(0, N - 1, 2)}
    with pytest.raises(SeekMismatch):
        _spans_pass(path, [(150, 160)], off_by_one)


def test_signature_tells_frames_apart_and_is_stable(video):
    _, decoded = video
    sigs = [frame_signature(f) for f in decoded]
    assert len(set(sigs)) == N
    assert frame_signature(decoded[7].copy()) == sigs[7]


def _fake_dense_pass(monkeypatch, frames: int, seek_misses: bool = False):
    """session._densify over a stand-in analysis: every frame ``wanted`` is a candidate, the first
    pass had every 2nd frame of ``frames``. Returns (first pass, calls: True for a seeking pass)."""
    from types import SimpleNamespace

    import fpsynth.data.session as session

    calls = []

    def fake_analyse(decoder, ctx, wanted, end, restart, known=None, next_wanted=None):
        calls.append(known is not None)
        if known is not None and seek_misses:
            raise SeekMismatch("lands elsewhere")
        picked = [i for i in range(end) if wanted(i)]
        return SimpleNamespace(candidates=[SimpleNamespace(index=i) for i in picked], failures=[])

    monkeypatch.setattr(session, "analyse", fake_analyse)
    monkeypatch.setattr(session, "VideoDecoder", lambda path: None)
    first = SimpleNamespace(
        candidates=[SimpleNamespace(index=i) for i in range(0, frames, 2)],
        failures=[],
        signatures={i: b"x" for i in range(0, frames, 2)},
    )
    return first, calls


def test_dense_pass_decodes_from_the_start_when_a_seek_misses(monkeypatch):
    """prepare's dense pass (session._densify): a SeekMismatch from the seeking pass is answered by a
    pass from the start over the same frames, whose results are the ones kept."""
    import fpsynth.data.session as session
    from fpsynth.data.config import VideoConfig
    from fpsynth.data.movements import Movement, Segmentation

    first, calls = _fake_dense_pass(monkeypatch, 400, seek_misses=True)
    seg = Segmentation([Movement(200, 210, 190, 220, np.zeros((68, 2)))], [], [], [])
    dense = session._densify("v.mp4", None, first, seg, 2, VideoConfig())
    assert dense == {0: (190, 220)} and calls == [True, False]
    assert [c.index for c in first.candidates if 190 <= c.index <= 220] == list(range(190, 221))


def test_dense_pass_covers_the_movement_not_its_rest(monkeypatch):
    """A short movement is analysed again over its own frames only: the rest on each side gives the
    neutral share, which the coarse pass covers. Its rest too only when even every frame of the
    movement and the rest's coarse frames would not reach the quota."""
    import fpsynth.data.session as session
    from fpsynth.data.config import VideoConfig
    from fpsynth.data.movements import Movement, Segmentation

    first, _ = _fake_dense_pass(monkeypatch, 600)
    # 51 frames moving (26 analysed at stride 2: short of 28), a second of rest either side analysed
    # coarsely: 51 + 30 >= 32, so only 200-250 is analysed again; 400-410 with 10 rest frames either
    # side cannot reach 32 without its rest at every frame: 390-420 is.
    seg = Segmentation(
        [Movement(200, 250, 170, 280, np.zeros((68, 2))), Movement(400, 410, 390, 420, np.zeros((68, 2)))], [], [], []
    )
    assert session._densify("v.mp4", None, first, seg, 2, VideoConfig()) == {0: (200, 250), 1: (390, 420)}
    got = {c.index for c in first.candidates}
    assert set(range(200, 251)) <= got and not {i for i in range(171, 200, 2)} & got
    assert not {i for i in range(251, 281, 2)} & got
    assert set(range(390, 421)) <= got


def test_shortfall_says_how_a_partly_densified_movement_was_analysed():
    """A movement analysed again over its own frames says so in its too_few_frames row (its rest was
    analysed at the coarse stride); otherwise the stride is given as an ordinal."""
    from types import SimpleNamespace

    from fpsynth.data.clip import ordinal, shortfall_rows

    job = SimpleNamespace(input="P0001-video", dataset="meei", subject="P0001")
    mixed = "every frame of the movement analysed, every 2nd of the rest around it"
    (row,) = shortfall_rows(job, "movement smile", 20, 32, 20, [], 100, 160, 1, analysed=mixed)
    assert row["reason"] == "too_few_frames" and row["detail"].endswith(f"(frames 100-160, {mixed})")
    (row,) = shortfall_rows(job, "the clip", 20, 32, 20, [], 0, 60, 3)
    assert row["detail"].endswith("(frames 0-60, every 3rd frame analysed)")
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd", "111th"
    ]  # fmt: skip

"""Cutting a whole-sequence video into movements, on landmark sequences with known boundaries
(a real annotated face, moved region by region), and the 32-frame top-up of narrow events."""

from __future__ import annotations

import numpy as np
import pytest

from fpsynth.data.config import MovementsConfig, PhaseQuota, VideoConfig
from fpsynth.data.motion import label_phases, level_phases, pick_frames
from fpsynth.data.movements import EYELIDS, aligned_onto, regional_motion, segment
from fpsynth.data.pts import read_pts
from fpsynth.data.session import movement_labels
from helpers.fixtures import fixture_path

FPS = 30.0
MOUTH, BROWS = np.arange(48, 68), np.arange(17, 27)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """(68, 2) a real annotated face (iBUG points of einstein.jpg)."""
    return read_pts(fixture_path("landmarks68", "einstein.pts")).astype(np.float64)


def _io(lm):
    return float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))


def session(face, script, seed=0, jitter=0.006):
    """Landmarks (N, 68, 2) of a scripted video at 30 fps, every frame analysed.

    ``script``: (seconds, region, amplitude) steps; amplitude in inter-ocular distances (0 = rest),
    each movement a smooth rise and fall over its duration. The head drifts and turns slowly
    throughout (pose must not count) and the points jitter like a landmark detector's.
    Returns (landmarks, frame numbers, true (first, last) frames of each movement).
    """
    rng = np.random.default_rng(seed)
    io = _io(face)
    frames, truth, n = [], [], 0
    for seconds, region, amp in script:
        k = round(seconds * FPS)
        shape = np.sin(np.linspace(0, np.pi, k)) ** 2 if amp else np.zeros(k)  # rest -> peak -> rest
        if amp:
            lit = np.flatnonzero(shape >= 0.02)
            truth.append((n + lit[0], n + lit[-1]))
        for s in shape:
            lm = face.copy()
            if region is not None:
                lm[region, 1] += amp * s * io * (-1 if region is BROWS else 1)
            frames.append(lm)
        n += k
    out = []
    for i, lm in enumerate(frames):
        a, sc = np.radians(3 * np.sin(i / 40)), 1 + 0.03 * np.sin(i / 55)
        rot = sc * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        out.append(
            (lm - lm.mean(0)) @ rot.T
            + lm.mean(0)
            + [0.3 * i, 5 * np.sin(i / 30)]
            + rng.normal(0, jitter * io, lm.shape)
        )
    return np.stack(out), np.arange(len(out)), truth


def test_aligned_onto_matches_a_similarity(face):
    a, s, t = np.radians(20), 1.7, np.array([12.0, -5.0])
    moved = face @ (s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])).T + t
    np.testing.assert_allclose(aligned_onto(moved[None], face)[0], face, atol=1e-6)
    assert regional_motion(moved[None], face)[0] < 1e-8


def test_regional_motion_sees_an_eye_closure_that_the_mean_does_not(face):
    closed = face.copy()
    closed[[37, 38, 43, 44], 1] += 0.12 * _io(face)  # upper lids down
    assert regional_motion(closed[None], face)[0] == pytest.approx(0.06, abs=1e-6)  # 4 of the 8 eyelid points
    mean = np.linalg.norm(closed - face, axis=1).mean() / _io(face)
    assert mean < 0.01  # below landmark jitter: invisible to the whole-face curve


TOL = 6  # frames: the scripted movements start and end softly (sin^2), jitter and smoothing shift them a little


def test_movements_rest_between_them_and_pose_drift(face):
    script = [
        (1.5, None, 0),
        (2.0, MOUTH, 0.25),
        (1.5, None, 0),
        (1.5, BROWS, 0.2),
        (1.5, None, 0),
        (1.5, EYELIDS, 0.3),
        (2.0, None, 0),
    ]
    lms, index, truth = session(face, script)
    seg = segment(lms, index, FPS, MovementsConfig())
    found = [(m.start, m.end) for m in seg.movements]
    assert len(found) == 3 and not seg.bursts and not seg.cuts
    for (a, b), (ta, tb) in zip(found, truth):
        # motion reaches active_at a little after the true start and leaves it a little before the end
        assert ta <= a <= ta + 0.35 * (tb - ta) and tb - 0.35 * (tb - ta) <= b <= tb + TOL
    for m in seg.movements:  # up to 1 s of rest either side, half of a gap at most, for neutral frames
        assert m.pad_from < m.start and m.pad_to > m.end and m.start - m.pad_from <= FPS + 1
    rest = [(r.start, r.end) for r in seg.rest]
    assert rest[0][0] == 0 and rest[-1][1] == index[-1] and len(rest) == 4


def test_a_held_peak_is_one_movement_and_a_blink_is_a_burst(face):
    io = _io(face)
    lms, index, _ = session(face, [(1.5, None, 0), (6.0, None, 0)])
    # a smile held for 2 s: rise 0.5 s, hold, fall 0.5 s
    ramp = np.r_[np.linspace(0, 1, 15), np.ones(60), np.linspace(1, 0, 15)]
    start = 45
    for k, s in enumerate(ramp):
        lms[start + k, MOUTH, 1] += 0.25 * s * io
    blink = start + len(ramp) + 45  # an eye closure for 4 frames (0.13 s), at rest 1.5 s later
    lms[blink : blink + 4, EYELIDS[:4], 1] += 0.3 * io
    seg = segment(lms, index, FPS, MovementsConfig())
    assert len(seg.movements) == 1 and seg.movements[0].end - seg.movements[0].start > 60
    assert len(seg.bursts) == 1 and seg.bursts[0][0] <= blink + 3 and seg.bursts[0][1] >= blink


def _speech(face, hover):
    """A scripted video: rest, a smile (0.2 inter-ocular), 1.5 s of the mouth hovering at ``hover``
    (speech between two expressions, never back at rest), another smile, rest. Returns
    (landmarks, frame numbers, (first, last) frames of the hover)."""
    io = _io(face)
    lms, index, _ = session(face, [(1.5, None, 0), (8.0, None, 0)])
    profile = np.r_[
        np.linspace(0, 0.2, 15), np.full(15, 0.2), np.linspace(0.2, hover, 9), np.full(45, hover),
        np.linspace(hover, 0.2, 9), np.full(15, 0.2), np.linspace(0.2, 0, 15),
    ]  # fmt: skip
    start = 45
    lms[start : start + len(profile), MOUTH, 1] += profile[:, None] * io
    return lms, index, (start + 39, start + 83)


@pytest.mark.parametrize("hover", [0.055, 0.065, 0.075])
def test_motion_hovering_below_active_at_but_not_at_rest_is_one_movement(face, hover):
    """Between rest_at and active_at the face is neither moving enough to start a movement nor back
    at rest: a movement there goes on (two thresholds); with one threshold (rest_at = active_at, the
    earlier rule) the same landmarks split into two movements at the hover."""
    lms, index, (a, b) = _speech(face, hover)
    seg = segment(lms, index, FPS, MovementsConfig())
    assert len(seg.movements) == 1 and seg.movements[0].start < a and seg.movements[0].end > b
    single = segment(lms, index, FPS, MovementsConfig(rest_at=MovementsConfig().active_at))
    assert len(single.movements) == 2 and single.movements[0].end < b and single.movements[1].start > a


def test_the_movement_ends_only_once_back_below_rest_at(face):
    """The fall of a movement is its own until motion is below rest_at, not merely below active_at."""
    lms, index, _ = session(face, [(1.5, None, 0), (2.0, MOUTH, 0.25), (2.0, None, 0)])
    cfg = MovementsConfig()
    end = segment(lms, index, FPS, cfg).movements[0].end
    single_end = segment(lms, index, FPS, MovementsConfig(rest_at=cfg.active_at)).movements[0].end
    assert end > single_end
    motion = regional_motion(lms[end + 3 : end + 30], lms[:45].mean(0))
    assert np.median(motion) < cfg.rest_at


def test_a_cut_to_another_face_starts_a_new_rest(face):
    """Another face, held still, straight after a movement: the movement ends at the cut and the
    new face's rest is not a movement (its shape differs from the first face's by more than active_at)."""
    lms, index, truth = session(
        face, [(1.5, None, 0), (2.0, MOUTH, 0.25), (3.0, None, 0), (2.0, MOUTH, 0.25), (1.5, None, 0)]
    )
    io = _io(face)
    other = face.copy()
    other[MOUTH, 1] += 0.2 * io  # another person: a lower mouth, higher brows
    other[BROWS, 1] -= 0.15 * io
    cut = truth[0][1] - 5  # at the end of the first movement
    lms[cut:] += (other - face)[None]
    seg = segment(lms, index, FPS, MovementsConfig())
    assert seg.cuts == [cut]
    assert [m.end for m in seg.movements][0] == cut - 1 and len(seg.movements) == 2
    assert abs(seg.movements[1].start - truth[1][0]) < 0.35 * (truth[1][1] - truth[1][0])
    assert seg.movements[1].pad_from >= cut  # neutral frames never from the other side of a cut


def test_labels_named_only_when_the_count_matches():
    mc = MovementsConfig()
    labels, note = movement_labels(7, mc)
    assert labels == list(mc.expected) and note is None and "rest" not in labels
    labels, note = movement_labels(5, mc)
    assert labels == [f"movement_0{k}" for k in range(1, 6)]
    assert "expected 7 movements (brow_elevation, gentle_eye_closure" in note and "found 5" in note
    assert movement_labels(0, mc)[0] == []


def test_movements_config_checks_names():
    with pytest.raises(ValueError, match="distinct"):
        MovementsConfig(names=("rest", "smile", "smile"))
    with pytest.raises(ValueError, match="lower-case"):
        MovementsConfig(names=("Big Smile",))
    with pytest.raises(ValueError, match="rest_at must be in"):
        MovementsConfig(rest_at=0.09)  # above active_at (0.08)
    with pytest.raises(ValueError, match="rest_at must be in"):
        MovementsConfig(rest_at=0.0)


# --------------------------------------------------------------------------- 32 frames whatever the shape


@pytest.mark.parametrize("shape", ["speech", "two_peaks", "slow_drift"])
def test_narrow_main_event_is_topped_up_to_32(shape):
    """Curves on which the main event around the maximum is narrow: the other frames are phased by
    level and slope and fill the quota; the labelled frames are all kept."""
    t = np.arange(120, dtype=float)
    curve = {
        "speech": 0.08 + 0.04 * np.sin(t / 2.3) + 0.03 * np.sin(t / 0.9) + 0.05 * np.exp(-(((t - 70) / 3) ** 2)),
        "two_peaks": 0.1
        + 0.03 * np.sin(t / 1.1)
        + 0.12 * np.exp(-(((t - 45) / 4) ** 2))
        + 0.13 * np.exp(-(((t - 75) / 4) ** 2)),
        "slow_drift": 0.06 + 0.06 * t / 120 + 0.04 * np.sin(t / 1.5),  # never at rest, wobbling
    }[shape]
    cfg, quota = VideoConfig(smooth=1), PhaseQuota()
    labels = label_phases(curve, cfg)
    assert len(pick_frames(labels, quota)) < 32  # what the main event alone gives
    filled = level_phases(curve, labels, cfg)
    keep = pick_frames(labels, quota, filled)
    assert len(keep) == 32 and len(set(keep.tolist())) == 32
    assert set(pick_frames(labels, quota).tolist()) <= set(keep.tolist())  # nothing taken back
    assert set(filled[keep]) <= {"neutral", "onset", "development", "peak", "dissipation"}

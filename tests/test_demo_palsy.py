"""The synthetic palsy acts on one side only and grows with severity; its grades follow eFACE."""

from __future__ import annotations

import numpy as np
import pytest

from fpsynth.data.scores import GRADED, severity_from_eface
from fpsynth.demo.face import neutral_landmarks, sample_identity
from fpsynth.demo.movements import NO_PALSY, Palsy, clip_schedule, pose_face
from fpsynth.demo.scores import grade
from fpsynth.demo_config import DemoConfig, Movement

SEVERITIES = np.linspace(0.0, 1.0, 6)
# Per image half: (upper lid points, lower lid points, eye corners, brow, mouth corner).
HALVES = {
    "image_left": ([37, 38], [41, 40], [36, 39], list(range(17, 22)), 48),
    "image_right": ([43, 44], [47, 46], [42, 45], list(range(22, 27)), 54),
}
# The subject's left is the image's right half.
AFFECTED = {"left": "image_right", "right": "image_left"}


def measures(lm: np.ndarray) -> dict[str, dict[str, float]]:
    """Per half: lid opening, brow height above the eye corners, mouth-corner drop below point 33."""
    out = {}
    for half, (upper, lower, corners, brow, corner) in HALVES.items():
        out[half] = {
            "eye_open": float(np.mean(lm[lower, 1] - lm[upper, 1])),
            "brow_height": float(lm[corners, 1].mean() - lm[brow, 1].mean()),
            "corner_drop": float(lm[corner, 1] - lm[33, 1]),
        }
    return out


def _identity(seed: int):
    idt = sample_identity(np.random.default_rng(seed))
    return idt, neutral_landmarks(idt)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resting_asymmetry_grows_with_severity_on_the_affected_side_only(side, seed):
    idt, neutral = _identity(seed)
    rows = [measures(pose_face(idt, neutral, None, 0.0, Palsy(side, s)).landmarks) for s in SEVERITIES]
    aff, healthy = AFFECTED[side], "image_left" if AFFECTED[side] == "image_right" else "image_right"
    # symmetric without palsy
    for key in ("eye_open", "brow_height", "corner_drop"):
        assert abs(rows[0][aff][key] - rows[0][healthy][key]) < 1e-12
    # the healthy half never changes
    for row in rows:
        assert row[healthy] == pytest.approx(rows[0][healthy], abs=1e-12)
    # the affected half: wider eye, lower brow, lower mouth corner, each strictly growing
    assert np.all(np.diff([r[aff]["eye_open"] for r in rows]) > 0)
    assert np.all(np.diff([r[aff]["brow_height"] for r in rows]) < 0)
    assert np.all(np.diff([r[aff]["corner_drop"] for r in rows]) > 0)
    # and the asymmetry is clinically visible at complete palsy (canonical units = image fractions)
    last = rows[-1]
    assert last[aff]["corner_drop"] - last[healthy]["corner_drop"] > 0.015
    assert last[healthy]["brow_height"] - last[aff]["brow_height"] > 0.015


@pytest.mark.parametrize(
    "movement, key, sign",
    [
        (Movement.BROW_RAISE, "brow_height", 1),
        (Movement.EYE_CLOSE_GENTLE, "eye_open", -1),
        (Movement.EYE_CLOSE_TIGHT, "eye_open", -1),
        (Movement.SMILE_CLOSED, "corner_drop", -1),
        (Movement.SMILE_OPEN, "corner_drop", -1),
    ],
)
def test_voluntary_movement_shrinks_with_severity_on_the_affected_side(movement, key, sign):
    idt, neutral = _identity(4)
    side = "left"
    aff, healthy = AFFECTED[side], "image_left"
    amp = {aff: [], healthy: []}
    for s in SEVERITIES:
        rest = measures(pose_face(idt, neutral, movement, 0.0, Palsy(side, s)).landmarks)
        peak = measures(pose_face(idt, neutral, movement, 1.0, Palsy(side, s)).landmarks)
        for half in amp:
            amp[half].append(sign * (peak[half][key] - rest[half][key]))
    assert amp[healthy][0] > 0.005  # the movement really moves
    assert np.allclose(amp[healthy], amp[healthy][0], atol=1e-9)  # the healthy side keeps its range
    assert amp[aff][0] == pytest.approx(amp[healthy][0])
    assert np.all(np.diff(amp[aff]) < 0)
    np.testing.assert_allclose(amp[aff], (1 - SEVERITIES) * amp[aff][0], atol=1e-9)


def test_complete_palsy_leaves_the_eye_open_and_rolls_it_up():
    idt, neutral = _identity(5)
    rest_open = measures(neutral)["image_left"]["eye_open"]
    st = pose_face(idt, neutral, Movement.EYE_CLOSE_GENTLE, 1.0, Palsy("right", 1.0))
    m = measures(st.landmarks)
    assert m["image_right"]["eye_open"] < 0.05 * rest_open  # healthy eye closes
    assert m["image_left"]["eye_open"] > rest_open  # lagophthalmos: the affected eye stays open
    assert st.gaze_up[0] == pytest.approx(1.0) and st.gaze_up[1] == 0.0  # Bell's phenomenon, affected side
    assert pose_face(idt, neutral, Movement.EYE_CLOSE_GENTLE, 1.0, NO_PALSY).gaze_up == (0.0, 0.0)


def test_nasolabial_fold_flattens_and_forehead_lines_fade_on_the_affected_side():
    idt, neutral = _identity(6)
    for s in SEVERITIES:
        st = pose_face(idt, neutral, Movement.SMILE_CLOSED, 1.0, Palsy("left", s))
        assert st.nasolabial[1] == pytest.approx((1 - s) * st.nasolabial[0])
        br = pose_face(idt, neutral, Movement.BROW_RAISE, 1.0, Palsy("left", s))
        assert br.forehead == pytest.approx((1.0, 1.0 - s))


def test_jaw_opening_is_not_weakened_by_a_facial_palsy():
    idt, neutral = _identity(7)
    chins = [pose_face(idt, neutral, Movement.SMILE_OPEN, 1.0, Palsy("left", s)).landmarks[8] for s in SEVERITIES]
    assert chins[0][1] > neutral[8, 1] + 0.02  # the jaw drops
    np.testing.assert_allclose(chins, np.broadcast_to(chins[0], (len(chins), 2)))


def test_every_movement_moves_the_face_and_palsy_validates():
    idt, neutral = _identity(8)
    for movement in Movement:
        moved = pose_face(idt, neutral, movement, 1.0).landmarks
        assert np.abs(moved - neutral).max() > 0.005, movement
    with pytest.raises(ValueError, match="side"):
        Palsy("up", 0.5)
    with pytest.raises(ValueError, match="severity"):
        Palsy("left", 1.5)


def test_clip_schedule_runs_from_neutral_through_peak_and_back():
    assert clip_schedule(2) == [("neutral", 0.0), ("peak", 1.0)]
    sched = clip_schedule(6)
    assert [p for p, _ in sched] == ["neutral", "onset", "development", "peak", "dissipation", "dissipation"]
    np.testing.assert_allclose([a for _, a in sched], [0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    for n in range(2, 12):
        sched = clip_schedule(n)
        assert len(sched) == n and sched[0] == ("neutral", 0.0)
        assert sum(p == "peak" for p, _ in sched) == 1
        names = [f"{i:03d}_{p}" for i, (p, _) in enumerate(sched)]
        assert sorted(names) == names  # file names sort in temporal order


def test_grades_follow_the_paper_categories():
    assert grade(0.0).eface == 98 and grade(0.0).category == "normal" and grade(0.0).house_brackmann == 1
    assert grade(1.0).category == "complete" and grade(1.0).house_brackmann == 6
    grades = [grade(s) for s in np.linspace(0, 1, 101)]
    for a, b in zip(grades, grades[1:]):  # all three scores worsen together
        assert b.eface <= a.eface and b.house_brackmann >= a.house_brackmann and b.sunnybrook <= a.sunnybrook
    for g in grades:  # the same bands as prepare's reading of a scores table
        assert severity_from_eface(g.eface).value == g.category
    default = {grade(s).category for s in DemoConfig().severities}
    assert default == set(GRADED)  # the demo covers all six categories
    with pytest.raises(ValueError):
        grade(-0.1)

"""Facial movements as landmark displacement fields, and a one-sided facial palsy acting on them.

A movement at intensity ``a`` (0 relaxed .. 1 peak) moves the neutral landmarks by ``a`` times a
displacement field. The field has two parts:
  * the *facial* part (muscles of the facial nerve: brows, lids, lips, nose), which a palsy weakens
    on the affected side;
  * the *jaw* part (mouth opening by the jaw, trigeminal nerve), which a facial palsy leaves intact.

Palsy (side, severity s in [0, 1]) on top of that:
  * voluntary movement of affected-side points is scaled by (1 - s); points on the midline of
    the lips by (1 - s/2), blending smoothly across the mouth;
  * resting signs on the affected side grow linearly with s: brow ptosis, a wider palpebral
    fissure (lid retraction and lower-lid sag, so eye closure stays incomplete), mouth-corner
    droop, a lowered nasal ala and a flattened nasolabial fold;
  * Bell's phenomenon: an affected eye that tries to close rolls its iris upward.

``side`` names the SUBJECT's side: "left" is the image-right half (iBUG points 22-26, 42-47, 54).
Fields are written for the image-left half and mirrored, so a face with s = 0 stays symmetric.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np

from fpsynth.demo.face import CENTRE_X, MIRROR, Identity, mirror_vectors
from fpsynth.demo_config import Movement

Side = Literal["left", "right"]
PHASES = ("neutral", "onset", "development", "peak", "dissipation")


@dataclasses.dataclass(frozen=True)
class Palsy:
    side: Side = "left"
    severity: float = 0.0  # 0 none .. 1 complete

    def __post_init__(self) -> None:
        if self.side not in ("left", "right"):
            raise ValueError(f"palsy side must be 'left' or 'right', got {self.side!r}")
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(f"palsy severity must be in [0, 1], got {self.severity}")


NO_PALSY = Palsy()


@dataclasses.dataclass(frozen=True)
class FaceState:
    """What the renderer needs for one frame. Pairs are (image-left, image-right) strengths 0..1."""

    landmarks: np.ndarray  # (68, 2) canonical
    forehead: tuple[float, float]  # horizontal forehead lines (brow raise)
    nasolabial: tuple[float, float]  # depth of the cheek-to-mouth-corner fold
    nose_wrinkle: tuple[float, float]  # lines across the nasal bridge (snarl, tight closure)
    gaze_up: tuple[float, float]  # upward roll of the iris (Bell's phenomenon)


@dataclasses.dataclass(frozen=True)
class _Field:
    facial: np.ndarray  # (68, 2) displacement at intensity 1, symmetric
    jaw: np.ndarray  # (68, 2)
    forehead: float = 0.0
    nasolabial: float = 0.0
    nose_wrinkle: float = 0.0
    closure: float = 0.0  # effort to close the eyes (drives Bell's phenomenon)


def _half() -> np.ndarray:
    return np.zeros((68, 2))


def _gap(lm: np.ndarray) -> np.ndarray:
    """Vertical lid gaps (upper 37 -> lower 41, upper 38 -> lower 40) of the image-left eye."""
    return np.array([lm[41, 1] - lm[37, 1], lm[40, 1] - lm[38, 1]])


def _brow_raise(lm: np.ndarray) -> _Field:
    d = _half()
    d[17:22, 1] = [-0.027, -0.032, -0.035, -0.034, -0.03]
    d[[37, 38], 1] = -0.25 * _gap(lm)  # the lids follow the brow up a little
    return _Field(mirror_vectors(d), _half(), forehead=1.0)


def _eye_close(lm: np.ndarray, tight: bool) -> _Field:
    d, g = _half(), _gap(lm)
    lower = 0.1 if tight else 0.05
    d[[37, 38], 1] = (0.985 - lower) * g  # upper lid comes down onto the risen lower lid
    d[[41, 40], 1] = -lower * g
    if tight:  # orbicularis squeeze: brows down and in, outer corner in, cheeks up
        d[17:22] = [[0.002, 0.014], [0.003, 0.014], [0.004, 0.013], [0.006, 0.011], [0.007, 0.009]]
        d[36, 0] = 0.1 * (lm[39, 0] - lm[36, 0])
        d[[31, 32], 1] = -0.004
        d[48] = d[60] = (0.0, -0.006)
    else:
        d[17:22, 1] = 0.004
    return _Field(mirror_vectors(d), _half(), nose_wrinkle=0.6 if tight else 0.0, closure=1.0)


def _smile(lm: np.ndarray, open_: bool) -> _Field:
    d, j = _half(), _half()
    k = 1.25 if open_ else 1.0
    d[48] = d[60] = (-0.023 * k, -0.026 * k)
    d[49] = (-0.012 * k, -0.012 * k - (0.01 if open_ else 0.0))
    d[50] = (-0.004 * k, -0.004 - (0.012 if open_ else 0.0))
    d[51] = (0.0, -0.003 - (0.012 if open_ else 0.0))
    d[61] = (-0.008 * k, -0.008 - (0.012 if open_ else 0.0))
    d[62] = (0.0, -0.003 - (0.012 if open_ else 0.0))
    d[59] = d[67] = (-0.014 * k, -0.01)
    d[58] = (-0.004 * k, -0.002)
    d[[40, 41], 1] = -0.12 * _gap(lm)  # cheeks push the lower lids up (Duchenne smile)
    d[3:6, 0] = -0.004  # cheeks widen
    if open_:  # the jaw drops: lower lip and chin follow
        j[[55, 56, 57, 58, 59, 65, 66, 67], 1] = 0.03
        j[4:9, 1] = [0.008, 0.018, 0.028, 0.035, 0.038]
    return _Field(mirror_vectors(d), mirror_vectors(j), nasolabial=1.0)


def _lip_pucker(lm: np.ndarray) -> _Field:
    d = _half()
    toward = CENTRE_X - lm[:, 0]  # positive on the image-left half: pull toward the midline
    for i, k in ((48, 0.36), (60, 0.5), (49, 0.22), (59, 0.22), (50, 0.1), (58, 0.1), (61, 0.3), (67, 0.3)):
        d[i, 0] = k * toward[i]
    d[[48, 60], 1] = 0.002
    d[[49, 50, 51], 1] = [-0.006, -0.005, -0.005]  # protruding lips look fuller
    d[[59, 58, 57], 1] = [0.006, 0.007, 0.007]
    d[[61, 62], 1] = -0.004  # a small round opening
    d[[67, 66], 1] = 0.004
    return _Field(mirror_vectors(d), _half())


def _nose_wrinkle(lm: np.ndarray) -> _Field:
    d = _half()
    d[31] = (0.002, -0.01)
    d[32] = (0.001, -0.008)
    d[33, 1] = -0.006
    d[[49, 50, 51, 61, 62], 1] = [-0.012, -0.014, -0.012, -0.01, -0.01]
    d[48] = d[60] = (0.0, -0.005)
    d[[20, 21]] = [[0.003, 0.007], [0.005, 0.009]]
    d[[40, 41], 1] = -0.1 * _gap(lm)
    return _Field(mirror_vectors(d), _half(), nasolabial=0.7, nose_wrinkle=1.0)


def _lower_lip_depress(lm: np.ndarray) -> _Field:
    d, j = _half(), _half()
    d[59] = (-0.006, 0.022)
    d[58] = (-0.002, 0.027)
    d[57] = (0.0, 0.028)
    d[67] = (-0.004, 0.017)
    d[66] = (0.0, 0.02)
    d[48] = d[60] = (-0.004, 0.008)
    j[6:9, 1] = [0.004, 0.007, 0.008]
    return _Field(mirror_vectors(d), mirror_vectors(j))


_FIELDS: dict[Movement, Callable[[np.ndarray], _Field]] = {
    Movement.BROW_RAISE: _brow_raise,
    Movement.EYE_CLOSE_GENTLE: lambda lm: _eye_close(lm, tight=False),
    Movement.EYE_CLOSE_TIGHT: lambda lm: _eye_close(lm, tight=True),
    Movement.SMILE_CLOSED: lambda lm: _smile(lm, open_=False),
    Movement.SMILE_OPEN: lambda lm: _smile(lm, open_=True),
    Movement.LIP_PUCKER: _lip_pucker,
    Movement.NOSE_WRINKLE: _nose_wrinkle,
    Movement.LOWER_LIP_DEPRESS: _lower_lip_depress,
}


def affected_weight(neutral: np.ndarray, side: Side) -> np.ndarray:
    """(68,) how much each point belongs to the affected side: 1 there, 0 opposite, 0.5 midline.

    Blends over 0.02 of the image width around the midline, so the lips weaken gradually toward
    the affected corner instead of tearing at the centre.
    """
    sign = 1.0 if side == "left" else -1.0  # the subject's left is the image right (+x)
    return np.clip(0.5 + sign * (neutral[:, 0] - CENTRE_X) / 0.04, 0.0, 1.0)


def _resting_signs(lm: np.ndarray, palsy: Palsy) -> np.ndarray:
    """(68, 2) displacement of the relaxed face by the palsy, nonzero on the affected side only."""
    s, d, g = palsy.severity, _half(), _gap(lm)
    d[17:22, 1] = s * np.array([0.03, 0.027, 0.023, 0.018, 0.014])  # brow ptosis, worst laterally
    d[[37, 38], 1] = -0.06 * s * g  # upper-lid retraction ...
    d[[41, 40], 1] = 0.28 * s * g  # ... and lower-lid sag: a wider palpebral fissure
    d[48] = d[60] = (0.006 * s, 0.02 * s)  # mouth corner droops and slides toward the midline
    d[[49, 59], 1] = 0.011 * s
    d[[61, 67]] = (0.002 * s, 0.01 * s)
    d[[50, 58], 1] = 0.004 * s
    d[31] = (0.004 * s, 0.004 * s)  # the ala drops with the flattened fold
    d[32] = (0.002 * s, 0.002 * s)
    d[3:7, 1] = 0.005 * s  # cheek sag
    # Written for an affected image-left half (the subject's right); a left palsy is its mirror image.
    return d[MIRROR] * (-1.0, 1.0) if palsy.side == "left" else d


def _halves(values: Iterable[float]) -> tuple[float, float]:
    """(image-left, image-right): the two values of a per-half quantity, as they come."""
    left, right = values
    return left, right


def pose_face(
    idt: Identity, neutral: np.ndarray, movement: Movement | None, intensity: float, palsy: Palsy = NO_PALSY
) -> FaceState:
    """The face of ``idt`` performing ``movement`` at ``intensity`` (0..1) with ``palsy``.

    ``neutral`` is :func:`fpsynth.demo.face.neutral_landmarks` of ``idt`` (passed in so that a
    clip computes it once). ``movement=None`` gives the resting face.
    """
    field = _FIELDS[movement](neutral) if movement is not None else _Field(_half(), _half())
    s = palsy.severity
    w = affected_weight(neutral, palsy.side)  # (68,)
    keep = 1.0 - s * w  # (68,) remaining voluntary movement per point
    lm = neutral + intensity * (keep[:, None] * field.facial + field.jaw) + _resting_signs(neutral, palsy)
    # Per image half: (image-left, image-right); the affected half is image-right for a left palsy.
    aff = (0.0, 1.0) if palsy.side == "left" else (1.0, 0.0)
    keep_half = _halves(1.0 - s * a for a in aff)
    fold = _halves(k * (idt.fold_depth + 0.6 * intensity * field.nasolabial) for k in keep_half)
    return FaceState(
        landmarks=lm,
        forehead=_halves(k * intensity * field.forehead for k in keep_half),
        nasolabial=_halves(float(min(f, 1.0)) for f in fold),
        nose_wrinkle=_halves(k * intensity * field.nose_wrinkle for k in keep_half),
        gaze_up=_halves(s * a * intensity * field.closure for a in aff),
    )


def clip_schedule(frames: int) -> list[tuple[str, float]]:
    """(phase, intensity) per frame of a clip: neutral, rising to the peak, then dissipating.

    About two thirds of the frames rise (neutral first, peak last of them); the rest fall back
    toward, but not onto, the neutral face. 6 frames -> neutral 0, onset 1/3, development 2/3,
    peak 1, dissipation 2/3, dissipation 1/3.
    """
    rise = max(2, int(np.ceil(frames * 2 / 3)))
    rise = min(rise, frames)
    out = []
    for k in range(rise):
        a = k / (rise - 1)
        phase = "neutral" if k == 0 else "peak" if k == rise - 1 else "onset" if a < 0.5 else "development"
        out.append((phase, a))
    fall = frames - rise
    out += [("dissipation", 1.0 - (k + 1) / (fall + 1)) for k in range(fall)]
    return out

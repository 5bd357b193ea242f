"""Expression fidelity and facial asymmetry from 68-point landmarks (iBUG order), as arrays.

All functions take landmark arrays (N, 68, 2) in pixels (x right, y down) and return per-face
values (N,), so the caller can group them (by severity category, expression, ...). Landmarks of
generated images come from a landmark detector the caller chooses (by default dlib's 68-point
predictor on the crop: :func:`fpsynth.metrics.landmarks.dlib_crop_landmarker`).

Sides are anatomical, following the iBUG layout: "right" is the subject's right (brow 17-21, eye
36-41, mouth corner 48: the image's left in an unmirrored frontal photo), "left" the subject's
left (brow 22-26, eye 42-47, mouth corner 54).

The eye frame of a face: origin midway between the eye centres (means of 36-41 and 42-47),
x along the line from the right to the left eye centre, y perpendicular to it pointing down
(chin-ward), unit = the inter-ocular distance (IOD, between the eye centres). Head roll and
scale drop out; measures are in IOD units.

Asymmetry indices (signed, left minus right; 0 for a symmetric face):
- ``eye_closure``: EAR_left - EAR_right, with the eye aspect ratio (Soukupova & Cech 2016)
  EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) (dimensionless already). Negative: left eye more closed.
- ``mouth_droop``: (y_54 - y_48) in the eye frame, i.e. how much lower the left mouth corner sits
  below the eye line than the right one, in IOD. Positive: left corner droops.
- ``brow_height``: (eye centre y - mean brow y) left minus the same right, in the eye frame.
  Positive: left brow higher above its eye.

Expression fidelity (identity shape removed): a face's expression is its displacement from its
own rest shape. The expressive shape is first similarity-aligned (least squares, Umeyama) onto
the rest shape on points that expressions barely move (nose 27-35, eye corners 36, 39, 42, 45),
which removes head pose and scale; the displacement is expressed in the rest shape's eye frame.
``expression_error`` = mean over the 68 points of |D_generated - D_style| (IOD units), with
D_generated relative to the identity source's landmarks (the X_ID image; assumed at rest) and
D_style relative to the style subject's own rest shape (e.g. the neutral frame of the same clip).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fpsynth.data.align import similarity_align_batch
from fpsynth.data.ibug68 import LEFT_BROW, LEFT_EYE, LEFT_MOUTH, RIGHT_BROW, RIGHT_EYE, RIGHT_MOUTH, STABLE_POINTS


def _check(lm: np.ndarray) -> np.ndarray:
    lm = np.asarray(lm, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks (N, 68, 2), got {lm.shape}")
    return lm


def _frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eye frame of faces (N, 68, 2): origin (N, 2), axes (N, 2, 2) as rows (x, y), IOD (N,)."""
    right, left = lm[:, RIGHT_EYE].mean(1), lm[:, LEFT_EYE].mean(1)  # (N, 2)
    iod = np.linalg.norm(left - right, axis=1)
    u = (left - right) / iod[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # u turned 90 degrees towards image-down
    return (right + left) / 2, np.stack([u, v], axis=1), iod


def _in_frame(points: np.ndarray, frame: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    origin, axes, iod = frame
    return np.einsum("nkd,nad->nka", points - origin[:, None], axes) / iod[:, None, None]


def eye_frame(lm: np.ndarray) -> np.ndarray:
    """Landmarks (N, 68, 2) in each face's own eye frame (see the module notes), in IOD units."""
    lm = _check(lm)
    return _in_frame(lm, _frame(lm))


def eye_aspect_ratio(eye: np.ndarray) -> np.ndarray:
    """EAR of eyes (N, 6, 2) ordered p1..p6 (corner, two upper lid, corner, two lower lid)."""
    vertical = np.linalg.norm(eye[:, 1] - eye[:, 5], axis=1) + np.linalg.norm(eye[:, 2] - eye[:, 4], axis=1)
    return vertical / (2.0 * np.linalg.norm(eye[:, 0] - eye[:, 3], axis=1))


@dataclasses.dataclass(frozen=True)
class Asymmetry:
    """Signed left-minus-right indices, each (N,)."""

    eye_closure: np.ndarray
    mouth_droop: np.ndarray
    brow_height: np.ndarray

    NAMES = ("eye_closure", "mouth_droop", "brow_height")

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.NAMES}


def asymmetry(lm: np.ndarray) -> Asymmetry:
    """Asymmetry indices of faces (N, 68, 2); see the module notes for definitions and signs."""
    lm = _check(lm)
    f = eye_frame(lm)
    eye = eye_aspect_ratio(lm[:, LEFT_EYE]) - eye_aspect_ratio(lm[:, RIGHT_EYE])
    droop = f[:, LEFT_MOUTH, 1] - f[:, RIGHT_MOUTH, 1]
    brow_r = f[:, RIGHT_EYE, 1].mean(1) - f[:, RIGHT_BROW, 1].mean(1)
    brow_l = f[:, LEFT_EYE, 1].mean(1) - f[:, LEFT_BROW, 1].mean(1)
    return Asymmetry(eye, droop, brow_l - brow_r)


def asymmetry_error(generated: np.ndarray, style: np.ndarray) -> Asymmetry:
    """|index(generated) - index(style)| per face and index: is the palsy's asymmetry carried over?"""
    g, s = asymmetry(generated), asymmetry(style)
    return Asymmetry(*(np.abs(getattr(g, n) - getattr(s, n)) for n in Asymmetry.NAMES))


def similarity_align(src: np.ndarray, dst: np.ndarray, points: np.ndarray = STABLE_POINTS) -> np.ndarray:
    """``src`` (N, 68, 2) moved by the similarity transform that best fits its ``points`` onto ``dst``'s."""
    return similarity_align_batch(_check(src), _check(dst), points)


def expression_displacement(expressive: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Each face's expression (N, 68, 2): aligned expressive shape minus its rest shape, in the
    rest shape's eye frame (IOD units)."""
    rest = _check(rest)
    frame = _frame(rest)
    return _in_frame(similarity_align(expressive, rest), frame) - _in_frame(rest, frame)


def expression_error(
    generated: np.ndarray, generated_rest: np.ndarray, style: np.ndarray, style_rest: np.ndarray
) -> np.ndarray:
    """Landmark expression-transfer error per pair (N,), in IOD units (see the module notes)."""
    d_gen = expression_displacement(generated, generated_rest)
    d_style = expression_displacement(style, style_rest)
    return np.linalg.norm(d_gen - d_style, axis=2).mean(1)

"""Quality figures of a face and the gates of :class:`~fpsynth.data.config.QualityConfig`.

Every gate that fails raises :class:`Rejected` with the gate's reason and the figure that failed,
so that the rejects manifest says exactly why a frame or photo was left out.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from fpsynth.data.config import QualityConfig
from fpsynth.data.faces import Face
from fpsynth.data.ibug68 import eye_centres
from fpsynth.data.reasons import Reason, Rejected


@dataclasses.dataclass(frozen=True)
class Quality:
    blur: float  # variance of the Laplacian of the grey crop (higher = sharper)
    interocular: float  # eye-centre distance in source pixels
    yaw: float  # degrees; positive = face turned towards the image's right


def interocular(lm: np.ndarray) -> float:
    left, right = eye_centres(np.asarray(lm, np.float64))
    return float(np.linalg.norm(right - left))


def yaw_proxy(lm: np.ndarray) -> float:
    """Yaw in degrees from where the nose tip (30) sits between the jaw ends (0, 16).

    Along the eye axis (so head roll does not count), a = nose - jaw_left, b = jaw_right - nose.
    On a cylinder head turned by yaw, a - b = 2 R sin(yaw) and a + b = 2 R, so
    yaw = asin((a - b) / (a + b)). The jaw line and the nose are bone, so palsy asymmetry of the
    soft tissue barely moves this figure.
    """
    lm = np.asarray(lm, np.float64)
    left, right = eye_centres(lm)
    axis = right - left
    norm = np.linalg.norm(axis)
    if norm == 0:
        return 90.0
    axis /= norm
    a = float((lm[30] - lm[0]) @ axis)
    b = float((lm[16] - lm[30]) @ axis)
    if a + b <= 0:
        return 90.0
    return float(np.degrees(np.arcsin(np.clip((a - b) / (a + b), -1.0, 1.0))))


def blur_score(crop: np.ndarray) -> float:
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(lm_source: np.ndarray, crop: np.ndarray) -> Quality:
    return Quality(blur_score(crop), interocular(lm_source), yaw_proxy(lm_source))


def check(q: Quality, cfg: QualityConfig) -> None:
    """Raise :class:`Rejected` for the first gate ``q`` fails (size, then pose, then blur)."""
    if q.interocular < cfg.min_interocular_px:
        raise Rejected(Reason.FACE_TOO_SMALL, f"eye distance {q.interocular:.1f} px < {cfg.min_interocular_px:g}")
    if abs(q.yaw) > cfg.max_abs_yaw_deg:
        raise Rejected(Reason.POSE, f"yaw {q.yaw:.0f} deg beyond +-{cfg.max_abs_yaw_deg:g}")
    if q.blur < cfg.min_blur:
        raise Rejected(Reason.BLURRY, f"Laplacian variance {q.blur:.1f} < {cfg.min_blur:g}")


def dominant_face(faces: list[Face], min_score: float, cfg: QualityConfig) -> Face:
    """The one face to keep among detections (largest first), or :class:`Rejected`.

    Candidates scoring below ``min_score`` are not faces. A second face at least
    ``second_face_ratio`` the size of the largest makes the image ambiguous; a much smaller one
    (a photo on the wall, a passer-by) is tolerated.
    """
    if not faces:
        raise Rejected(Reason.NO_FACE, "the detector found no face")
    strong = [f for f in faces if f.score >= min_score]
    if not strong:
        best = max(f.score for f in faces)
        raise Rejected(Reason.LOW_SCORE, f"best detection score {best:.2f} < {min_score:g}")
    strong.sort(key=lambda f: -f.side)
    if len(strong) > 1 and strong[1].side >= cfg.second_face_ratio * strong[0].side:
        raise Rejected(
            Reason.TWO_FACES,
            f"{len(strong)} faces; the second is {strong[1].side / strong[0].side:.0%} the size of the first",
        )
    return strong[0]

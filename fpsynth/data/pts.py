"""iBUG ``.pts`` landmark files (68 points).

Layout: ``version: 1``, ``n_points: 68``, ``{``, 68 lines ``x y``, ``}``. The iBUG/300-W
annotations count pixels from 1 (Matlab convention; menpo subtracts 1 on import); fpsynth's
coordinates count from 0, so reading subtracts ``origin`` and writing adds it back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpsynth.data.reasons import Reason, Rejected
from fpsynth.stage import atomic_write_text

N_POINTS = 68
PTS_ORIGIN = 1.0  # first pixel's coordinate in .pts files


def read_pts(path: Path, origin: float = PTS_ORIGIN) -> np.ndarray:
    """(68, 2) float32 landmarks, 0-based; :class:`Rejected` (bad_annotation) when malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise Rejected(Reason.BAD_ANNOTATION, f".pts unreadable: {exc.strerror}") from None
    if "{" not in text or "}" not in text:
        raise Rejected(Reason.BAD_ANNOTATION, ".pts without a { ... } block")
    header, rest = text.split("{", 1)
    body = rest.split("}", 1)[0]
    for line in header.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "n_points" and value.strip() != str(N_POINTS):
            raise Rejected(Reason.BAD_ANNOTATION, f".pts declares n_points {value.strip()}, expected {N_POINTS}")
    try:
        rows = [[float(v) for v in line.split()] for line in body.splitlines() if line.strip()]
    except ValueError:
        raise Rejected(Reason.BAD_ANNOTATION, ".pts holds a value that is not a number") from None
    if len(rows) != N_POINTS or any(len(r) != 2 for r in rows):
        raise Rejected(Reason.BAD_ANNOTATION, f".pts holds {len(rows)} rows, expected {N_POINTS} of 'x y'")
    with np.errstate(over="ignore"):  # 1e300 is finite in float64, not in float32
        pts = (np.asarray(rows, np.float64) - origin).astype(np.float32)
    if not np.isfinite(pts).all():
        raise Rejected(Reason.BAD_ANNOTATION, ".pts holds a coordinate that is not a finite float32")
    return pts


def check_in_frame(landmarks: np.ndarray, size: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    """``landmarks`` (68, 2) unchanged when every point lies within ``margin`` image sizes beyond
    the edges of an image of ``size`` (H, W); :class:`Rejected` (bad_annotation) otherwise.

    A face may run off the picture (a chin cut by the frame), so the bound is generous: it only
    catches coordinates that cannot be of this image (a typo's 1e9, another image's points).
    """
    h, w = size
    lo = -margin * np.array([w, h], np.float64)
    hi = (1 + margin) * np.array([w, h], np.float64)
    lm = np.asarray(landmarks, np.float64)
    outside = ~((lm >= lo) & (lm <= hi)).all(axis=1)  # also catches nan
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise Rejected(
            Reason.BAD_ANNOTATION,
            f"{int(outside.sum())} point(s) far outside the {w} x {h} image "
            f"(point {i + 1} at {lm[i, 0]:.6g}, {lm[i, 1]:.6g})",
        )
    return landmarks


def format_pts(landmarks: np.ndarray, origin: float = PTS_ORIGIN) -> str:
    lm = np.asarray(landmarks, np.float64).reshape(N_POINTS, 2) + origin
    lines = [f"{x:.6f} {y:.6f}" for x, y in lm]
    return "version: 1\nn_points: 68\n{\n" + "\n".join(lines) + "\n}\n"


def write_pts(path: Path, landmarks: np.ndarray, origin: float = PTS_ORIGIN) -> None:
    """Write (68, 2) 0-based landmarks as an iBUG .pts file (atomically)."""
    atomic_write_text(Path(path), format_pts(landmarks, origin))

"""Geometry features of faces from their 68 landmarks in crop coordinates.

Each face is moved into its own eye frame (origin between the eye centres, x along the eye line,
IOD units: :func:`fpsynth.metrics.expression.eye_frame`), so head pose and scale drop out. Features:

- the report's three asymmetry indices (eye closure, mouth droop, brow height) and their magnitudes;
- the mirror asymmetry of every point: the point minus its mirrored iBUG partner (x negated),
  signed and as magnitudes (a palsy of either side shows in the magnitudes);
- the shape itself (movement away from the mean face is what the grader learns from).

(N, 68, 2) -> (N, 3 + 3 + 136 + 136 + 136) float32.
"""

from __future__ import annotations

import numpy as np

from fpsynth.metrics.expression import asymmetry, eye_frame

# iBUG 68 mirror partners (image-left <-> image-right)
_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)
MIRROR = np.arange(68)
for _a, _b in _PAIRS:
    MIRROR[_a], MIRROR[_b] = _b, _a


def geometry_features(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks in crop pixels -> (N, 414) features (see the module notes)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    if not len(lm):
        return np.zeros((0, 414), np.float32)
    f = eye_frame(lm)  # (N, 68, 2), IOD units
    mirrored = f[:, MIRROR] * np.array([-1.0, 1.0])
    mirror_asym = (f - mirrored).reshape(len(f), -1)  # (N, 136)
    idx = np.stack(list(asymmetry(lm).as_dict().values()), axis=1)  # (N, 3)
    out = np.concatenate([idx, np.abs(idx), mirror_asym, np.abs(mirror_asym), f.reshape(len(f), -1)], axis=1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

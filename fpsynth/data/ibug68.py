"""The iBUG / 300-W 68-point layout: index groups shared by alignment, motion, metrics and the demo.

Sides are the subject's: the "right eye" (36-41) is on the image's left in a frontal photo.
"""

from __future__ import annotations

import numpy as np

# Eye corners and the nose: points that expressions (smiles, eye closure) barely move.
STABLE_POINTS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])

# MIRROR[i] is the point that i becomes under a left-right flip of the face.
MIRROR = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]  # jaw
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)

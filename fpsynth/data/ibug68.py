"""The iBUG / 300-W 68-point layout: index groups shared by alignment, motion, metrics and the demo.

Sides are the subject's: the "right eye" (36-41) is on the image's left in a frontal photo.
"""

from __future__ import annotations

import numpy as np

# Index groups (slices keep indexing a view: lm[RIGHT_EYE] is (..., 6, 2) without a copy).
JAW = slice(0, 17)
RIGHT_BROW, LEFT_BROW = slice(17, 22), slice(22, 27)  # numbered from the image's left to its right
BROWS = slice(17, 27)
NOSE = slice(27, 36)  # bridge 27-30, then the lower edge 31-35
# p1..p6 each: a corner, two upper-lid points, the other corner, two lower-lid points (clockwise)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
EYELIDS = np.array([37, 38, 40, 41, 43, 44, 46, 47])  # both eyes' lid points, corners left out
OUTER_LIP, INNER_LIP = slice(48, 60), slice(60, 68)
MOUTH = slice(48, 68)
NOSE_TIP = 30
RIGHT_MOUTH, LEFT_MOUTH = 48, 54  # the mouth corners


def indices(group: slice) -> np.ndarray:
    """The point numbers of a group as an index array (fancy indexing: a copy, for code that writes)."""
    return np.arange(group.start, group.stop)


def eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-left and image-right eye centres (2,) of landmarks (68, 2): means of 36-41 and 42-47."""
    return lm[RIGHT_EYE].sum(0) / 6, lm[LEFT_EYE].sum(0) / 6  # sum / 6: np.mean's overhead is per call


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

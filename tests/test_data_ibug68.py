"""The iBUG-68 groups (fpsynth.data.ibug68) and the two shapes of the Umeyama fit (fpsynth.data.align)."""

from __future__ import annotations

import numpy as np

from fpsynth.data import ibug68
from fpsynth.data.align import similarity_align_batch, transform_points, umeyama


def test_groups_cover_the_layout_and_mirror_onto_each_other():
    parts = (ibug68.JAW, ibug68.BROWS, ibug68.NOSE, ibug68.RIGHT_EYE, ibug68.LEFT_EYE, ibug68.MOUTH)
    assert np.array_equal(np.concatenate([ibug68.indices(p) for p in parts]), np.arange(68))
    assert (ibug68.OUTER_LIP.start, ibug68.OUTER_LIP.stop, ibug68.INNER_LIP.stop) == (48, 60, 68)
    for right, left in ((ibug68.RIGHT_EYE, ibug68.LEFT_EYE), (ibug68.RIGHT_BROW, ibug68.LEFT_BROW)):
        assert set(ibug68.MIRROR[right]) == set(ibug68.indices(left))
    assert ibug68.MIRROR[ibug68.RIGHT_MOUTH] == ibug68.LEFT_MOUTH and ibug68.MIRROR[ibug68.NOSE_TIP] == ibug68.NOSE_TIP


def test_eye_centres_are_the_means_of_each_eye():
    lm = np.random.default_rng(1).normal(size=(68, 2))
    right, left = ibug68.eye_centres(lm)
    np.testing.assert_allclose(right, lm[36:42].mean(0), atol=1e-15)
    np.testing.assert_allclose(left, lm[42:48].mean(0), atol=1e-15)


def test_batched_and_single_umeyama_fit_the_same_similarity():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(3, 68, 2)) * 20 + 50
    angle, scale, shift = 0.3, 1.7, np.array([4.0, -9.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift  # an exact similarity: both fits recover it
    moved = similarity_align_batch(src, dst, ibug68.STABLE_POINTS)
    np.testing.assert_allclose(moved, dst, atol=1e-9)
    for s, d in zip(src, dst):
        np.testing.assert_allclose(
            transform_points(umeyama(s[ibug68.STABLE_POINTS], d[ibug68.STABLE_POINTS]), s), d, atol=1e-9
        )

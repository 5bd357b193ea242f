"""Asymmetry indices and expression-transfer error on constructed landmark sets of known geometry.

Shapes start from real annotated faces (the fixtures' iBUG .pts), made exactly symmetric by
averaging each with its mirror image, then given known one-sided changes.
"""

from __future__ import annotations

import numpy as np
import pytest

from fpsynth.data.ibug68 import MIRROR, STABLE_POINTS
from fpsynth.data.pts import read_pts
from fpsynth.metrics.expression import asymmetry, asymmetry_error, expression_error, eye_frame
from helpers.fixtures import fixture_path

NON_STABLE = np.setdiff1d(np.arange(68), STABLE_POINTS)


def _symmetric(name: str) -> np.ndarray:
    """A real face's landmarks averaged with their mirror image about x = 0: exactly symmetric."""
    lm = read_pts(fixture_path("landmarks68", f"{name}.pts")).astype(np.float64)
    lm = lm - lm[[36, 39, 42, 45]].mean(0)
    mirrored = lm[MIRROR] * np.array([-1.0, 1.0])
    return (lm + mirrored) / 2


def _eyes(lm: np.ndarray, width: float, h_right: float, h_left: float) -> np.ndarray:
    """Replace both eyes with 6-point eyes of known EAR = 2h / width, centred where they were."""
    lm = lm.copy()
    for sl, h in ((slice(36, 42), h_right), (slice(42, 48), h_left)):
        c = lm[sl].mean(0)
        lm[sl] = c + np.array(
            [[-width / 2, 0], [-width / 6, -h], [width / 6, -h], [width / 2, 0], [width / 6, h], [-width / 6, h]]
        )
    return lm


def _pose(lm: np.ndarray, angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return scale * lm @ rot.T + np.array(shift)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return _eyes(_symmetric("lenna"), width=30.0, h_right=6.0, h_left=6.0)


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))


def test_a_symmetric_face_has_zero_indices(face):
    got = asymmetry(face[None])
    for name, value in got.as_dict().items():
        assert value[0] == pytest.approx(0.0, abs=1e-12), name
    np.testing.assert_allclose(eye_frame(face[None])[0, [36, 45]].sum(0), 0.0, atol=1e-12)  # mirror points


def test_known_one_sided_changes(face):
    iod = _iod(face)
    droop, brow, closed_h = 4.0, 3.0, 1.5
    palsy = _eyes(face, 30.0, h_right=6.0, h_left=closed_h)  # left eye half closed
    palsy[54, 1] += droop  # left mouth corner lower (y grows downwards)
    palsy[22:27, 1] -= brow  # left brow raised
    shapes = np.stack([palsy, _pose(palsy, 17.0, 2.5, (300.0, -40.0))])  # the same face, rolled and scaled
    got = asymmetry(shapes)
    np.testing.assert_allclose(got.eye_closure, 2 * closed_h / 30.0 - 2 * 6.0 / 30.0, atol=1e-12)
    np.testing.assert_allclose(got.mouth_droop, droop / iod, rtol=1e-9)
    np.testing.assert_allclose(got.brow_height, brow / iod, rtol=1e-9)
    # Mirroring the face swaps sides: every index changes sign.
    mirrored = asymmetry((palsy[MIRROR] * np.array([-1.0, 1.0]))[None])
    for name in ("eye_closure", "mouth_droop", "brow_height"):
        assert getattr(mirrored, name)[0] == pytest.approx(-getattr(got, name)[0], rel=1e-9)


def test_asymmetry_error_between_generated_and_style(face):
    style = face.copy()
    style[54, 1] += 5.0
    generated = _pose(face, -8.0, 0.7, (10.0, 20.0))  # the droop was not transferred
    err = asymmetry_error(generated[None], style[None])
    assert err.mouth_droop[0] == pytest.approx(5.0 / _iod(face), rel=1e-9)
    assert err.eye_closure[0] == pytest.approx(0.0, abs=1e-12) and err.brow_height[0] == pytest.approx(0.0, abs=1e-12)


def test_expression_error_removes_identity_shape_and_pose():
    rest_a = _symmetric("lenna")  # identity source
    rest_b = _symmetric("einstein")  # the style subject: another face shape
    rng = np.random.default_rng(0)
    expression = np.zeros((68, 2))
    expression[NON_STABLE] = rng.normal(0, 0.04, (len(NON_STABLE), 2))  # IOD units, eye-frame axes
    # Both faces are symmetric and unrolled, so the eye frame's axes are the image axes.
    style = rest_b + expression * _iod(rest_b)
    generated = _pose(rest_a + expression * _iod(rest_a), 23.0, 1.7, (50.0, 5.0))
    unchanged = _pose(rest_a, 23.0, 1.7, (50.0, 5.0))
    err = expression_error(
        np.stack([generated, unchanged]),
        np.stack([rest_a, rest_a]),
        np.stack([style, style]),
        np.stack([rest_b, rest_b]),
    )
    assert err[0] == pytest.approx(0.0, abs=1e-9)  # perfect transfer, whatever the faces' shapes and pose
    assert err[1] == pytest.approx(np.linalg.norm(expression, axis=1).mean(), rel=1e-9)  # nothing transferred
    raw = np.linalg.norm(rest_a / _iod(rest_a) - rest_b / _iod(rest_b), axis=1).mean()
    assert raw > 0.05  # the two identities' shapes do differ: the error above is not trivially 0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        asymmetry(np.zeros((68, 2)))

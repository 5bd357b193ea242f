"""The demo renderer draws what its landmarks say: features lie under their .pts points."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsynth.data.align import ARCFACE_TEMPLATE, align, five_points, transform_points
from fpsynth.demo.face import LEFT_EYE, MIRROR, RIGHT_EYE, neutral_landmarks, sample_identity, symmetrize
from fpsynth.demo.movements import NO_PALSY, Palsy, pose_face
from fpsynth.demo.paint import similarity_matrix, spline
from fpsynth.demo.render import render_face
from fpsynth.demo_config import Movement

# The renderer's fixed paints (fpsynth.demo.render).
SCLERA, PUPIL = np.array([236, 232, 226.0]), np.array([14, 10, 10.0])
MOUTH_INSIDE, TEETH = np.array([62, 24, 30.0]), np.array([238, 234, 222.0])


def _face(seed: int, movement=None, intensity=0.0, palsy=NO_PALSY, size=256, rot=0.0, scale=1.0, shift=(0, 0)):
    idt = sample_identity(np.random.default_rng([seed, 99]))
    state = pose_face(idt, neutral_landmarks(idt), movement, intensity, palsy)
    img, px = render_face(idt, state, similarity_matrix(size, rot, scale, shift), size)
    return idt, img, px


def _classify(idt, rgb: np.ndarray, among: tuple[str, ...]) -> str:
    """Which of the face's own paints (``among``) a pixel shows, allowing for shading and blending.

    Distance to a reference colour c is min over k in [0.7, 1.2] of |rgb - k c|, so a lit or
    shadowed patch of a paint still matches it. "eye" is any blend of pupil, iris and white
    (sclera, catchlight), since those paints share a few pixels at the eye's centre.
    """
    parts = np.stack([PUPIL, np.array(idt.iris), SCLERA])
    weights = [(a, b, 1 - a - b) for a in np.linspace(0, 1, 11) for b in np.linspace(0, 1 - a, 11)]
    eye = [np.array(w) @ parts for w in weights]
    refs = {
        "skin": [np.array(idt.skin)],
        "lips": [np.array(idt.lips)],
        "eye": eye,
        "brow": [np.array(idt.brows)],
        "mouth": [MOUTH_INSIDE],
        "teeth": [TEETH],
    }
    p = rgb.astype(float)

    def dist(c: np.ndarray) -> float:
        k = np.clip(p @ c / max(c @ c, 1e-9), 0.7, 1.2)
        return float(np.linalg.norm(p - k * c))

    return min(among, key=lambda name: min(dist(c) for c in refs[name]))


EYE = ("skin", "lips", "eye")
MOUTH = ("skin", "lips")
BROW = ("skin", "brow")


def _at(img: np.ndarray, p: np.ndarray) -> np.ndarray:
    return img[int(round(p[1])), int(round(p[0]))]


def _feature_hits(idt, img, px) -> dict[str, bool]:
    eyes = [px[RIGHT_EYE].mean(0), px[LEFT_EYE].mean(0)]
    hits = {f"eye{k}": _classify(idt, _at(img, c), EYE) == "eye" for k, c in enumerate(eyes)}
    centre = 0.5 * (px[62] + px[66])
    for i in (48, 54):  # a corner lies on lip colour, and so does the lip just inside it
        inward = px[i] + 3.0 * (centre - px[i]) / np.linalg.norm(centre - px[i])
        hits[f"corner{i}"] = _classify(idt, _at(img, inward), MOUTH) == "lips"
    for i in (51, 57):  # outer lip edges: just inside the lip outline
        hits[f"lip{i}"] = _classify(idt, _at(img, px[i] + 0.3 * (centre - px[i])), MOUTH) == "lips"
    for i in (19, 24):  # brow middles
        hits[f"brow{i}"] = _classify(idt, _at(img, px[i]), BROW) == "brow"
    hits["nose30"] = _classify(idt, _at(img, px[30]), ("skin", "lips", "brow", "mouth")) == "skin"
    return hits


@pytest.mark.parametrize("seed", range(6))
def test_landmarks_fall_on_the_drawn_features(seed):
    rng = np.random.default_rng(seed)
    idt, img, px = _face(
        seed,
        rot=rng.uniform(-4, 4),
        scale=rng.uniform(0.95, 1.05),
        shift=tuple(rng.uniform(-0.03, 0.03, 2)),
        palsy=Palsy("left", seed / 5),
    )
    hits = _feature_hits(idt, img, px)
    assert all(hits.values()), hits


def test_feature_check_fails_for_shifted_landmarks():
    """The check above can fail: landmarks moved by a few pixels no longer sit on their features."""
    misses = 0
    for seed in range(6):
        idt, img, px = _face(seed)
        hits = _feature_hits(idt, img, px + (0.0, 9.0))
        misses += sum(not v for v in hits.values())
    assert misses >= 12


def test_open_mouth_shows_its_inside_and_a_closed_one_does_not():
    for seed in range(4):
        idt, img, px = _face(seed, Movement.SMILE_OPEN, 1.0)
        assert px[66, 1] - px[62, 1] > 5  # the inner lips part by several pixels
        inside = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(px[60:68]).astype(np.int32)], 1)
        inside = cv2.erode(inside, np.ones((3, 3), np.uint8))  # off the anti-aliased edge
        among = ("skin", "lips", "mouth", "teeth")
        kinds = [_classify(idt, img[y, x], among) for y, x in zip(*np.nonzero(inside))]
        assert len(kinds) > 20
        assert np.mean([k in ("mouth", "teeth") for k in kinds]) > 0.8, kinds
        idt, img, px = _face(seed)
        assert abs(px[66, 1] - px[62, 1]) < 1.0
        assert _classify(idt, _at(img, 0.5 * (px[62] + px[66])), ("lips", "mouth", "teeth")) == "lips"


def test_a_closed_eye_is_drawn_closed():
    idt, img, px = _face(1, Movement.EYE_CLOSE_GENTLE, 1.0)
    for eye in (RIGHT_EYE, LEFT_EYE):
        gap = px[eye[[4, 5]], 1] - px[eye[[2, 1]], 1]  # lower minus upper lid
        assert np.all(gap < 1.0)
        assert _classify(idt, _at(img, px[eye].mean(0)), EYE) != "eye"


def test_neutral_face_is_mirror_symmetric_and_ordered_like_ibug():
    idt = sample_identity(np.random.default_rng(7))
    lm = neutral_landmarks(idt)
    flipped = np.stack([1.0 - lm[:, 0], lm[:, 1]], 1)[MIRROR]
    np.testing.assert_allclose(flipped, lm, atol=1e-12)
    np.testing.assert_allclose(symmetrize(lm), lm, atol=1e-12)
    assert lm[8, 1] == lm[:17, 1].max()  # chin lowest on the jaw
    assert np.all(np.diff(lm[0:9, 0]) > 0)  # jaw runs left to right
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # eye corners
    assert lm[19, 1] < lm[37, 1] < lm[41, 1] < lm[30, 1] < lm[33, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]
    assert lm[48, 0] < lm[31, 0] < lm[35, 0] < lm[54, 0]  # mouth wider than the nose


def test_pts_follow_the_global_transform_exactly():
    idt = sample_identity(np.random.default_rng(3))
    state = pose_face(idt, neutral_landmarks(idt), Movement.SMILE_CLOSED, 0.7, Palsy("right", 0.4))
    m = similarity_matrix(200, 3.0, 1.04, (0.02, -0.01))
    _, px = render_face(idt, state, m, 200)
    np.testing.assert_allclose(px, transform_points(m, state.landmarks))
    # 3 degrees counter-clockwise on screen: the image-right eye ends up higher than the left one.
    assert px[45, 1] < px[36, 1]
    # the spline through the outline touches its control points
    curve = spline(px[0:17], per_segment=6)
    assert np.min(np.linalg.norm(curve[:, None] - px[None, 0:17], axis=2), axis=0).max() < 1e-9


def test_aligning_by_the_pts_puts_the_eyes_on_the_arcface_template():
    """prepare's 5-point similarity warp, driven by the .pts, lands the drawn eyes on the template."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        idt, img, px = _face(
            seed, rot=rng.uniform(-4, 4), scale=rng.uniform(0.95, 1.05), palsy=Palsy("right", 0.25 * seed)
        )
        aligned = align(img, px)
        residual = np.linalg.norm(transform_points(aligned.matrix, five_points(px)) - ARCFACE_TEMPLATE, axis=1)
        assert residual.mean() < 3.0, residual  # the face's proportions match the template's
        for eye in ARCFACE_TEMPLATE[:2]:
            assert _classify(idt, _at(aligned.crop, eye), EYE) == "eye"
        assert 0.45 < np.sqrt(abs(np.linalg.det(aligned.matrix[:, :2]))) < 0.9  # 256 px faces shrink onto 112


def _dlib_models() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")  # located, not imported (pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder if (folder / "shape_predictor_68_face_landmarks.dat").is_file() else None


def test_dlib_finds_the_rendered_faces_and_agrees_with_their_pts():
    """Not needed by the demo (.pts sidecars are used), but a sign the faces read as faces."""
    dlib = pytest.importorskip("dlib")
    models = _dlib_models()
    if models is None:
        pytest.skip("face_recognition_models' shape_predictor_68_face_landmarks.dat not installed")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    found, errors = 0, []
    for seed in range(8):
        idt, img, px = _face(100 + seed)
        dets = detector(img, 1)
        if len(dets) != 1:
            continue
        found += 1
        shape = predictor(img, dets[0])
        fit = np.array([[p.x, p.y] for p in shape.parts()], float)
        errors.append(np.linalg.norm(fit - px, axis=1).mean() / np.linalg.norm(px[36] - px[45]))
    assert found >= 6
    assert np.mean(errors) < 0.08  # normalised mean error vs. our .pts (outer eye corners)

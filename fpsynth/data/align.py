"""Similarity alignment of a face onto the ArcFace 112x112 template.

Five points are derived from the 68 (eye centres, nose tip, mouth corners), a least-squares
similarity (Umeyama: rotation, uniform scale, translation; no reflection) maps them onto the
template, and the image is warped. Landmarks are carried into crop coordinates by the same matrix.

The Umeyama least-squares similarity lives here in its two shapes: :func:`umeyama`, one point set
onto another as a (2, 3) matrix (the crop warp, motion's stabilisation), and
:func:`similarity_align_batch`, a batch of shapes moved onto a batch of others (the expression
metric, ``fpsynth.metrics.expression``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from fpsynth.data.ibug68 import LEFT_MOUTH, NOSE_TIP, RIGHT_MOUTH, eye_centres

CROP_SIZE = 112
# ArcFace / insightface 112x112 template: image-left eye, image-right eye, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


@dataclasses.dataclass(frozen=True)
class Aligned:
    crop: np.ndarray  # (112, 112, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float32, crop coordinates
    matrix: np.ndarray  # (2, 3) float64, source pixel -> crop pixel


def five_points(lm68: np.ndarray) -> np.ndarray:
    """(5, 2): eye centres (mean of 36-41 and 42-47), nose tip 30, mouth corners 48 and 54."""
    lm = np.asarray(lm68, np.float64)
    return np.stack([*eye_centres(lm), lm[NOSE_TIP], lm[RIGHT_MOUTH], lm[LEFT_MOUTH]])


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) similarity minimising sum |M [src; 1] - dst|^2 (Umeyama 1991), reflections excluded.

    In 2-D the rotation-and-scale is one complex number a, and the least-squares fit of
    w = a z + b has the closed form a = sum(w_c conj(z_c)) / sum|z_c|^2 on the centred points:
    Umeyama's SVD solution without the SVD (a tenth of the time, the same matrix to ~1e-12).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    z, w = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]  # (N,) complex
    mu_z, mu_w = z.mean(), w.mean()
    zc = z - mu_z
    var = float((zc.real**2 + zc.imag**2).sum())
    a = complex(((w - mu_w) * zc.conj()).sum() / var) if var > 0 else 1.0 + 0j
    b = mu_w - a * mu_z
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def similarity_align_batch(src: np.ndarray, dst: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Shapes ``src`` (N, P, 2) each moved by the similarity (Umeyama 1991, reflections excluded)
    that best fits its ``points`` onto those of ``dst`` (N, P, 2); float64 (N, P, 2).

    Umeyama's SVD form, batched. It differs from :func:`umeyama`'s closed form only in the last
    bits (~1e-14), and is kept so that the expression metric's values of earlier versions
    reproduce bit for bit.
    """
    a, b = src[:, points], dst[:, points]  # (N, k, 2)
    ma, mb = a.mean(1, keepdims=True), b.mean(1, keepdims=True)
    ac, bc = a - ma, b - mb
    cov = np.einsum("nki,nkj->nij", bc, ac) / len(points)  # (N, 2, 2)
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u) * np.linalg.det(vt))  # forbid reflections (Umeyama 1991)
    fix = np.stack([np.ones_like(d), d], axis=1)  # (N, 2)
    rot = u @ (fix[:, :, None] * vt)
    scale = (s * fix).sum(1) / (ac**2).sum((1, 2)) * len(points)
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rot, src - ma) + mb


def transform_points(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    pts = np.asarray(pts, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def align(rgb: np.ndarray, lm68: np.ndarray) -> Aligned:
    """Warp the face with landmarks ``lm68`` (68, 2) in ``rgb`` (H, W, 3) onto the template."""
    matrix = umeyama(five_points(lm68), ARCFACE_TEMPLATE)
    crop = warp(rgb, matrix, CROP_SIZE)
    return Aligned(crop, transform_points(matrix, lm68).astype(np.float32), matrix)


def warp(img: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``cv2.warpAffine`` onto (size, size), area-averaging first when the warp shrinks by > 2x.

    A bilinear warp samples 4 source pixels per output pixel, so a face 4x larger than the crop
    would alias (jagged edges, shimmering between video frames). The region the crop covers is
    therefore first reduced with INTER_AREA by a whole factor (to 1-2x crop scale), and the matrix
    adjusted to match.
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        shrunk = _shrink_region(img, matrix, size, scale)
        if shrunk is not None:
            img, matrix = shrunk
    return cv2.warpAffine(
        img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def _shrink_region(img: np.ndarray, matrix: np.ndarray, size: int, scale: float):
    inv = cv2.invertAffineTransform(matrix)
    corners = transform_points(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
    h, w = img.shape[:2]
    x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 2), min(h, int(np.ceil(corners[:, 1].max())) + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None  # the crop lies outside the image: nothing to average
    # Average whole k x k pixel blocks, k the largest power of 2 <= 1 / scale: OpenCV's INTER_AREA
    # is fastest for a factor of 2 (0.02 ms for a 480 px face, against 0.28 ms for a factor of 3
    # and ~10x that for a fractional one), halvings chain, and the warp left then shrinks by
    # 0.5-1, which bilinear sampling does without aliasing.
    k = 1 << int(np.log2(1.0 / scale) + 1e-9)  # 1e-9: a scale of 1/8 computed as 0.12500000000000003
    x1, y1 = min(w, x0 + -(-(x1 - x0) // k) * k), min(h, y0 + -(-(y1 - y0) // k) * k)
    nw, nh = (x1 - x0) // k, (y1 - y0) // k
    if nw < 1 or nh < 1:
        return None
    x1, y1 = x0 + nw * k, y0 + nh * k
    small = img[y0:y1, x0:x1]
    while small.shape[1] > nw:  # (H / 2, W / 2, 3) each time
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    fx, fy = 1.0 / k, 1.0 / k
    # small pixel q <-> source pixel p = (q + 0.5) / f - 0.5 + origin (cv2.resize's centre convention)
    a = matrix[:, :2]
    offset = np.array([0.5 / fx - 0.5 + x0, 0.5 / fy - 0.5 + y0])
    adjusted = np.hstack([a @ np.diag([1.0 / fx, 1.0 / fy]), (a @ offset + matrix[:, 2])[:, None]])
    return small, adjusted

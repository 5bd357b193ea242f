"""Drawing primitives for the face renderer: a float RGB canvas with anti-aliased, soft-edged fills.

Shapes are drawn into a region of interest only (their bounding box plus the blur margin), as an
8-bit anti-aliased coverage mask (OpenCV fills with 4 fractional bits), optionally blurred, then
blended over the canvas. Lengths are in pixels here; the renderer converts from face units.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

_SHIFT = 4  # fractional bits of the fixed-point coordinates handed to OpenCV
_ONE = 1 << _SHIFT


def similarity_matrix(
    size: int, rotation_deg: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """(2, 3) map from the canonical frame (image fractions) to pixels.

    Rotates by ``rotation_deg`` (counter-clockwise on screen) and scales about the image centre,
    then shifts by ``shift`` (fractions of the image size).
    """
    th = math.radians(rotation_deg)
    c, s = scale * math.cos(th), scale * math.sin(th)
    a = size * np.array([[c, s], [-s, c]])  # y points down, so this turns counter-clockwise on screen
    t = size * (np.array([0.5, 0.5]) + np.asarray(shift)) - a @ np.array([0.5, 0.5])
    return np.concatenate([a, t[:, None]], axis=1)


def spline(pts: np.ndarray, closed: bool = False, per_segment: int = 8) -> np.ndarray:
    """Uniform Catmull-Rom curve through ``pts`` (N, 2) -> (M, 2).

    The curve passes through every control point, so outlines drawn from landmarks touch them.
    """
    p = np.asarray(pts, np.float64)
    if len(p) < 3:
        return p
    ext = np.concatenate([p[-1:], p, p[:2]]) if closed else np.concatenate([p[:1], p, p[-1:]])
    n_seg = len(p) if closed else len(p) - 1
    t = np.arange(per_segment) / per_segment
    t2, t3 = t * t, t * t * t
    # Catmull-Rom basis rows for (p0, p1, p2, p3).
    b = 0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], axis=1)
    out = [b @ ext[i : i + 4] for i in range(n_seg)]
    if not closed:
        out.append(p[-1:])
    return np.concatenate(out)


def ellipse(centre: np.ndarray, axes: tuple[float, float], angle_deg: float = 0.0, n: int = 32) -> np.ndarray:
    """(n, 2) polygon of an ellipse with semi-axes ``axes`` rotated by ``angle_deg``."""
    cos, sin = _unit_circle(n)
    th = math.radians(angle_deg)
    x, y = axes[0] * cos, axes[1] * sin
    return np.stack([x * math.cos(th) - y * math.sin(th), x * math.sin(th) + y * math.cos(th)], 1) + centre


@functools.lru_cache(maxsize=8)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(a), np.sin(a)


class Canvas:
    """A (H, W, 3) float32 RGB image in 0..255 with soft painting operations."""

    def __init__(self, size: int, background: np.ndarray, light: np.ndarray) -> None:
        self.size = size
        self.img = np.empty((size, size, 3), np.float32)
        self.img[...] = background
        self.light = light  # (H, W) multiplier applied to colours painted with lit=True

    def _roi(self, pts: list[np.ndarray], pad: float) -> tuple[int, int, int, int] | None:
        allp = np.concatenate(pts)
        x0 = max(int(math.floor(allp[:, 0].min() - pad)), 0)
        y0 = max(int(math.floor(allp[:, 1].min() - pad)), 0)
        x1 = min(int(math.ceil(allp[:, 0].max() + pad)) + 1, self.size)
        y1 = min(int(math.ceil(allp[:, 1].max() + pad)) + 1, self.size)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def coverage(
        self, polys: list[np.ndarray], blur: float = 0.0, thickness: float | None = None, closed: bool = True
    ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Anti-aliased coverage (0..1) of filled polygons, or of polylines when ``thickness`` is set."""
        pad = 3 * blur + (thickness or 0) + 2
        roi = self._roi(polys, pad)
        if roi is None:
            return None
        x0, y0, x1, y1 = roi
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        fixed = [np.round((p - (x0, y0)) * _ONE).astype(np.int32) for p in polys]
        if thickness is None:
            cv2.fillPoly(mask, fixed, 255, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(mask, fixed, closed, 255, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)
        cov: np.ndarray = mask.astype(np.float32) * (1.0 / 255.0)  # (h, w) float32; the blur keeps the dtype
        if blur > 0.3:
            cov = cv2.GaussianBlur(cov, (0, 0), blur)
        return roi, cov

    def paint(self, roi: tuple[int, int, int, int], alpha: np.ndarray, colour: np.ndarray, lit: bool = False) -> None:
        """Blend ``colour`` ((3,) or a field of the roi's shape) into ``roi`` with per-pixel ``alpha``."""
        x0, y0, x1, y1 = roi
        sub = self.img[y0:y1, x0:x1]
        col = np.asarray(colour, np.float32)
        if lit:
            col = col * self.light[y0:y1, x0:x1, None]
        sub += (col - sub) * alpha[..., None]

    def fill(
        self,
        poly: np.ndarray | list[np.ndarray],
        colour: np.ndarray,
        alpha: float = 1.0,
        blur: float = 0.0,
        clip: tuple[tuple[int, int, int, int], np.ndarray] | None = None,
        lit: bool = False,
    ) -> None:
        """Fill polygon(s); ``clip`` (a coverage result) restricts the paint to another shape."""
        polys = poly if isinstance(poly, list) else [poly]
        got = self.coverage(polys, blur)
        if got is not None:
            roi, cov = got
            if clip is not None:
                cov = cov * _crop(clip, roi)
            self.paint(roi, cov * alpha, colour, lit)

    def stroke(
        self,
        pts: np.ndarray,
        colour: np.ndarray,
        thickness: float,
        alpha: float = 1.0,
        blur: float = 0.0,
        closed: bool = False,
    ) -> None:
        got = self.coverage([pts], blur, thickness=thickness, closed=closed)
        if got is not None:
            self.paint(got[0], got[1] * alpha, colour)

    def finish(self, rng: np.random.Generator | None, noise: float, soften: float) -> np.ndarray:
        """(H, W, 3) uint8 RGB: a slight optical blur, then sensor noise drawn from ``rng``."""
        img: np.ndarray = self.img  # (H, W, 3) float32
        if soften > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), soften)
        if rng is not None and noise > 0:
            img = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _crop(got: tuple[tuple[int, int, int, int], np.ndarray], roi: tuple[int, int, int, int]) -> np.ndarray:
    """The coverage ``got`` re-cut to ``roi`` (zero outside its own box)."""
    (a0, b0, a1, b1), cov = got
    x0, y0, x1, y1 = roi
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    ix0, iy0, ix1, iy1 = max(a0, x0), max(b0, y0), min(a1, x1), min(b1, y1)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = cov[iy0 - b0 : iy1 - b0, ix0 - a0 : ix1 - a0]
    return out

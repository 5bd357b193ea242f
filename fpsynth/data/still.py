"""Is the face region of this frame the same as at the last fitted frame? (then reuse its fit)

A frame in which nothing moved has the landmarks of the frame before it, so the fit (about a
millisecond) and any detection scheduled on it are skipped: the frame keeps the last fitted
frame's landmarks (``landmark_source = "still"``) and is still aligned and gated on its own
pixels, so its crop is its own. Refitting would only add noise: dlib's landmarks on identical
frames wobble by up to 0.1 inter-ocular distance (the tracker's box moves, the detector reruns).

The gate is strict. The face region (the last fitted face's box, ``MARGIN`` of its side added
on each side) is averaged into cells of 2**k px, about 1/``CELLS`` of its side, and *every* cell
of every colour channel must lie within ``LEVELS`` of the last fitted frame's. Averaging absorbs
a codec's noise on a repeated picture; the maximum, not the mean, keeps a local movement from
hiding among still cells (a blink or a lip corner moving by one pixel changes the cells it
crosses by tens of levels); comparing with the last *fitted* frame, not the last frame, lets
no slow drift pass a level at a time. Measured on the fixtures (every 2nd frame analysed):
the repeated frames of the benchmark's joined videos (OpenCV mp4v) pass about 165 times per
video, the frames of the six real clips never (a person at rest is not pixel-still: their
cells change by 3 to 100 levels between analysed frames). On real recordings the gate
therefore saves nothing, and costs about 0.03 ms a frame (two small area-averages).
"""

from __future__ import annotations

import cv2
import numpy as np

CELLS = 32  # cells per side of the face region's thumbnail
LEVELS = 2  # the largest change of any cell (0-255 levels) still counted as "nothing moved"
MARGIN = 0.25  # of the box side, added on each side: the brows and chin edges are in the region


class StillGate:
    """Remembers the last analysed face's region as a thumbnail; :meth:`same` compares a frame to it."""

    def __init__(self) -> None:
        self.region: tuple[int, int, int, int, int] | None = None  # x0, y0, x1, y1, halvings
        self.thumb: np.ndarray | None = None  # (rows, cols, 3) uint8
        self.shape: tuple[int, int] = (0, 0)  # (H, W) of the remembered frame
        self._now: tuple[tuple[int, int, int, int, int], np.ndarray] | None = None  # the last same()'s thumbnail

    def clear(self) -> None:
        """Forget the last frame (a rejected frame, a restart: nothing to compare with)."""
        self.region, self.thumb, self._now = None, None, None

    def same(self, rgb: np.ndarray) -> bool:
        """True when every cell of ``rgb``'s face region is within ``LEVELS`` of the remembered one."""
        self._now = None
        if self.region is None or self.thumb is None or rgb.shape[:2] != self.shape:
            return False
        now = _thumb(rgb, self.region)
        self._now = (self.region, now)  # reused by remember() when the new face keeps the region
        return int(cv2.absdiff(now, self.thumb).max()) <= LEVELS

    def remember(self, rgb: np.ndarray, bbox: np.ndarray) -> None:
        """Keep ``rgb``'s face region around ``bbox`` (4,) x1, y1, x2, y2 as the reference.

        Called for fitted frames only: frames found still are compared with the last fitted
        one, so a slow drift of a level a frame cannot pass unnoticed.
        """
        region = _region(bbox, rgb.shape[:2])
        if region is None:
            self.clear()
            return
        now = self._now[1] if self._now is not None and self._now[0] == region else _thumb(rgb, region)
        self.region, self.thumb, self.shape = region, now, rgb.shape[:2]


def _region(bbox: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int, int] | None:
    """(x0, y0, x1, y1, halvings): the box grown by ``MARGIN`` on each side, corners on a grid of
    cells of 2**halvings px (about 1/``CELLS`` of the grown box), clipped to the image; None when
    not one cell fits. A face that moves less than a cell keeps its region (one thumbnail a frame)."""
    h, w = shape
    side = float(max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1.0))
    grown = side * (1 + 2 * MARGIN)
    halvings = max(0, int(np.log2(max(grown / CELLS, 1.0))))
    cell = 1 << halvings
    x0, y0 = (max(0, int(v - MARGIN * side) // cell * cell) for v in bbox[:2])
    n = -(-int(grown) // (4 * cell)) * 4  # cells a side, in steps of 4: box jitter keeps the region
    cols, rows = min(n, (w - x0) // cell), min(n, (h - y0) // cell)
    if cols < 1 or rows < 1:
        return None
    return x0, y0, x0 + cols * cell, y0 + rows * cell, halvings


def _thumb(rgb: np.ndarray, region: tuple[int, int, int, int, int]) -> np.ndarray:
    """(rows, cols, 3) uint8 means of the region's cells: halved ``halvings`` times by INTER_AREA
    (OpenCV's fast exact path for a factor of 2: ~0.03 ms for a 256 px region, a quarter of one
    resize by a factor of 9)."""
    x0, y0, x1, y1, halvings = region
    img = rgb[y0:y1, x0:x1]
    for _ in range(halvings):
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return img

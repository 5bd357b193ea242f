"""What every face backend shares: the :class:`Face` it returns, the :class:`FaceBackend`
interface, and the error of a backend that cannot start. The backends import this module, and
:mod:`fpsynth.data.faces` picks one of them, so no backend imports the package that chooses it.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from fpsynth.errors import FpsynthError


class FaceBackendError(FpsynthError, RuntimeError):
    """A face backend that cannot start: package or model files missing; the message says which."""


@dataclasses.dataclass(frozen=True)
class Face:
    bbox: np.ndarray  # (4,) float32 x1, y1, x2, y2
    score: float  # detector confidence in the backend's own units
    landmarks: np.ndarray  # (68, 2) float32

    @property
    def side(self) -> float:
        """Geometric mean of the box's width and height (px)."""
        w, h = self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


class FaceBackend(Protocol):
    name: str
    min_score: float  # candidates below this are not faces

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Face]:
        """Faces in an (H, W, 3) uint8 RGB image, each with its landmarks.

        ``upsample``: how many times the detector doubles the image first to find faces smaller
        than its window (dlib); backends with a fixed input size ignore it.
        """
        ...

    def landmarks(self, rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """(68, 2) landmarks of the face in ``bbox`` (4,) x1, y1, x2, y2."""
        ...

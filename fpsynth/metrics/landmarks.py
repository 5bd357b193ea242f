"""68-point landmarks of aligned 112x112 crops (generated or real), for the expression metrics.

Crops are aligned on the ArcFace template, so the face sits at a known place and no detector is
needed: a landmark backend (any :class:`fpsynth.data.faces.FaceBackend`, dlib's 68-point
predictor by default) is fitted inside a fixed box. The box is where dlib's HOG detector puts the
face in such crops, measured on the 55 real faces of the shared fixtures (faces/people, aligned
to the template from their own dlib landmarks): mean box (18.3, 30.3, 95.4, 107.3), sd 2-6 px;
refitting in the fixed box (18, 30, 96, 108) reproduced the aligned landmarks to 0.73 px on
average (1.37 px worst face). The box scales with the crop size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from fpsynth.data.pixels import to_uint8

CROP_SIZE = 112
DLIB_CROP_BOX = np.array([18.0, 30.0, 96.0, 108.0], np.float32)  # x1, y1, x2, y2 in a 112 crop


class LandmarkBackend(Protocol):
    def landmarks(self, rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """(68, 2) landmarks of the face inside ``bbox`` (4,) of an (H, W, 3) uint8 RGB image."""
        ...


def to_rgb_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, 3, H, W) tensors in [-1, 1] (or uint8 (N, H, W, 3) arrays, unchanged) -> (N, H, W, 3) uint8."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) uint8 arrays, got {images.dtype} {images.shape}")
        return images
    return to_uint8(images)


class CropLandmarker:
    """Callable: crops ((N, 3, H, W) in [-1, 1] or (N, H, W, 3) uint8) -> landmarks (N, 68, 2)."""

    def __init__(self, backend: LandmarkBackend, box: np.ndarray = DLIB_CROP_BOX) -> None:
        self.backend = backend
        self.box = np.asarray(box, np.float32)

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        rgb = to_rgb_uint8(images)
        box = self.box * (rgb.shape[2] / CROP_SIZE)
        return np.stack([self.backend.landmarks(img, box) for img in rgb]).astype(np.float32)


def dlib_crop_landmarker(dlib_models: Path | None = None) -> CropLandmarker:
    """The default: dlib's 68-point predictor (``weights.dlib_models`` or face_recognition_models)."""
    from fpsynth.data.config import FaceConfig
    from fpsynth.data.faces import get_backend

    return CropLandmarker(get_backend(FaceConfig(), dlib_models))

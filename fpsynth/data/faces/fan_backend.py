"""Optional backend: face-alignment (S3FD detector + 2D-FAN-4, 68 points, torch on CPU).

face-alignment fetches its two checkpoints into ``torch.hub.get_dir()/checkpoints`` (that is
``$TORCH_HOME/hub/checkpoints``) on first use; nothing may download at run time here, so the files
are checked first and a missing one is named. Install the package with
``pip install --no-deps face-alignment`` (it declares ``opencv-python``, which would overwrite the
headless build).
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import numpy as np

from fpsynth.data.faces.base import Face, FaceBackendError

# The files face-alignment 1.4 loads for a 2D landmarks model on torch >= 1.7.
CHECKPOINTS = ("s3fd-619a316812.pth", "2DFAN4-cd938726ad.zip")


def checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def check() -> Path:
    """The checkpoint folder, once its files and the package are there; else :class:`FaceBackendError`."""
    folder = checkpoint_dir()
    missing = [f for f in CHECKPOINTS if not (folder / f).is_file()]
    if missing:
        raise FaceBackendError(
            f"face-alignment checkpoints missing in {folder}: {', '.join(missing)}; copy them there "
            "(or set TORCH_HOME to a folder whose hub/checkpoints holds them) before choosing "
            "prepare.faces.backend='face-alignment'"
        )
    if importlib.util.find_spec("face_alignment") is None:
        raise FaceBackendError(
            "the face-alignment backend needs the face-alignment package; install it with "
            "`pip install --no-deps face-alignment` (README, optional face backends)"
        )
    return folder


class FanBackend:
    name = "face-alignment"

    def __init__(self, min_score: float) -> None:
        check()
        try:
            import face_alignment
        except ImportError as exc:  # installed, but one of its own dependencies is not
            raise FaceBackendError(
                f"the face-alignment package does not import ({exc}); install its missing dependency "
                "(README, optional face backends)"
            ) from None
        kwargs: dict = {
            "device": "cpu",
            "face_detector": "sfd",
            "face_detector_kwargs": {"filter_threshold": min_score},
        }
        if "compile" in inspect.signature(face_alignment.FaceAlignment).parameters:
            kwargs["compile"] = False  # torch.compile on first call costs minutes on CPU
        self.min_score = min_score
        self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, **kwargs)

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Face]:
        landmarks, _, boxes = self._fa.get_landmarks_from_image(np.ascontiguousarray(rgb), return_bboxes=True)
        if landmarks is None:
            return []
        return [
            Face(np.asarray(b[:4], np.float32), float(b[4]), np.asarray(lm[:, :2], np.float32))
            for lm, b in zip(landmarks, boxes)
        ]

    def landmarks(self, rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        box = np.array([*np.asarray(bbox, np.float32)[:4], 1.0], np.float32)
        out = self._fa.get_landmarks_from_image(np.ascontiguousarray(rgb), detected_faces=[box])
        return np.asarray(out[0][:, :2], np.float32)

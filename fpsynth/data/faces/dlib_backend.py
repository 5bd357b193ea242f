"""The default backend: dlib's HOG frontal detector and its 68-point shape predictor.

The predictor file comes from the ``face_recognition_models`` package, opened by path (the
package's own helpers import ``pkg_resources``, which new setuptools no longer ships), or from
the folder set by ``weights.dlib_models``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dlib
import numpy as np

from fpsynth.data.faces.base import Face, FaceBackendError

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def default_models_dir() -> Path | None:
    """``face_recognition_models/models`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def check(models_dir: Path | None) -> Path:
    """The 68-point predictor file to use, or :class:`FaceBackendError` naming it."""
    folder = Path(models_dir).expanduser() if models_dir else default_models_dir()
    path = folder / PREDICTOR_FILE if folder else None
    if path is None or not path.is_file():
        where = f"in {folder}" if folder else "(package face_recognition_models is not installed)"
        raise FaceBackendError(
            f"dlib 68-point model {PREDICTOR_FILE} not found {where}; install "
            "face_recognition_models (pip install face_recognition_models) or set "
            "weights.dlib_models to a folder holding the file"
        )
    return path


class DlibBackend:
    name = "dlib"

    def __init__(self, models_dir: Path | None, min_score: float) -> None:
        path = check(models_dir)
        self.min_score = min_score
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Face]:
        # run() returns every window whose SVM margin exceeds adjust_threshold (0 = dlib's default).
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), upsample, self.min_score)
        faces = []
        for rect, score in zip(rects, scores):
            bbox = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float32)
            faces.append(Face(bbox, float(score), self._fit(rgb, rect)))
        return faces

    def landmarks(self, rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(float(v))) for v in bbox)
        return self._fit(rgb, dlib.rectangle(x1, y1, max(x2 - 1, x1 + 1), max(y2 - 1, y1 + 1)))

    def _fit(self, rgb: np.ndarray, rect: dlib.rectangle) -> np.ndarray:
        shape = self._predictor(np.ascontiguousarray(rgb), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # (68, 2)

"""Face detection and 68-point landmarks behind one small interface.

A backend finds faces (``detect``) and refits the 68 landmarks inside a given box (``landmarks``),
which is what lets the video path track a face between detector runs. All coordinates are image
pixels, x right, y down, 0-based (pixel centres at integers, the OpenCV convention); landmarks
follow the iBUG 68-point order (0-16 jaw from image left, 36-41 the image-left eye, 48 and 54 the
mouth corners).

Backends: ``dlib`` (default, offline: HOG detector + the 68-point predictor of
``face_recognition_models``), ``insightface`` (SCRFD + 1k3d68) and ``face-alignment`` (S3FD +
2D-FAN-4). The last two are optional packages whose model files the user supplies; their files
are checked before the package is imported, so a missing file is named even where the package
is absent.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from fpsynth.data.config import Backend, FaceConfig
from fpsynth.data.faces.base import Face, FaceBackend
from fpsynth.data.ibug68 import STABLE_POINTS

DEFAULT_MIN_SCORE = {Backend.DLIB: 0.0, Backend.INSIGHTFACE: 0.5, Backend.FACE_ALIGNMENT: 0.5}


@functools.lru_cache(maxsize=4)
def get_backend(cfg: FaceConfig, dlib_models: Path | None = None) -> FaceBackend:
    """The configured backend, built once per process (loading models takes about a second)."""
    min_score = DEFAULT_MIN_SCORE[cfg.backend] if cfg.min_score is None else cfg.min_score
    if cfg.backend is Backend.DLIB:
        from fpsynth.data.faces.dlib_backend import DlibBackend

        return DlibBackend(dlib_models, min_score)
    if cfg.backend is Backend.INSIGHTFACE:
        from fpsynth.data.faces.insightface_backend import InsightFaceBackend

        return InsightFaceBackend(cfg.insightface_root, cfg.insightface_name, min_score)
    from fpsynth.data.faces.fan_backend import FanBackend

    return FanBackend(min_score)


def check_backend(cfg: FaceConfig, dlib_models: Path | None = None) -> None:
    """Fail now, with the backend's own message, if it could not start (files, packages);
    cheap: nothing is loaded, so the parent process can check before its workers start."""
    if cfg.backend is Backend.DLIB:
        from fpsynth.data.faces.dlib_backend import check as check_dlib

        check_dlib(dlib_models)
    elif cfg.backend is Backend.INSIGHTFACE:
        from fpsynth.data.faces.insightface_backend import check as check_insightface

        check_insightface(cfg.insightface_root, cfg.insightface_name)
    else:
        from fpsynth.data.faces.fan_backend import check as check_fan

        check_fan()


def detect_faces(backend: FaceBackend, rgb: np.ndarray, max_side: int, upsample: int) -> list[Face]:
    """Faces of ``rgb``, largest first: detected on a copy shrunk to ``max_side``, landmarks refitted
    at full resolution (the shrunk copy only has to find the face, not place its points)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        faces = backend.detect(rgb, upsample)
    else:
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        faces = []
        for f in backend.detect(small, upsample):
            bbox = (f.bbox / scale).astype(np.float32)
            faces.append(Face(bbox, f.score, backend.landmarks(rgb, bbox)))
    return sorted(faces, key=lambda f: -f.side)


def detect_near(
    backend: FaceBackend, rgb: np.ndarray, bbox: np.ndarray, face_px: int = 110, upsample: int = 0
) -> list[Face]:
    """Faces in a window around ``bbox`` (4,) (the box's size again on every side), shrunk so that
    the box is about ``face_px`` wide; landmarks refitted at full resolution, largest first.

    A face being tracked is searched where it was: a window a few times its size at the
    detector's own scale costs a fraction of a whole-frame search (dlib HOG: ~4 ms against ~12 ms
    on a 480 px frame, far less than that on HD video).
    """
    h, w = rgb.shape[:2]
    side = float(max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1.0))
    x0, y0 = max(0, int(bbox[0] - side)), max(0, int(bbox[1] - side))
    x1, y1 = min(w, int(np.ceil(bbox[2] + side))), min(h, int(np.ceil(bbox[3] + side)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return []
    roi = rgb[y0:y1, x0:x1]
    scale = min(1.0, face_px / side)
    if scale < 1.0:  # linear: a detector's input needs no area averaging (the whole-frame search's
        # INTER_AREA at a fractional factor costs more than the search it saves)
        roi = cv2.resize(
            roi, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))), interpolation=cv2.INTER_LINEAR
        )
    faces = []
    for f in backend.detect(np.ascontiguousarray(roi), upsample):
        box = (f.bbox / scale + np.array([x0, y0, x0, y0])).astype(np.float32)
        faces.append(Face(box, f.score, backend.landmarks(rgb, box)))
    return sorted(faces, key=lambda f: -f.side)


def box_from_landmarks(lm: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """A detector-like box for tracked landmarks.

    ``anchor`` (4,) is the detector's box at the last detection expressed in units of that
    frame's stable-point frame (:func:`box_anchor`); carrying it to the new landmarks keeps the
    box the landmark regressor was trained on, however the face moved or scaled since.
    """
    centre, scale = _stable_frame(lm)
    return np.concatenate([centre + anchor[:2] * scale, centre + anchor[2:] * scale]).astype(np.float32)


def box_anchor(lm: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """(4,) ``bbox`` relative to the landmarks' stable-point centre, in units of their scale."""
    centre, scale = _stable_frame(lm)
    return np.concatenate([(bbox[:2] - centre) / scale, (bbox[2:] - centre) / scale]).astype(np.float32)


def _stable_frame(lm: np.ndarray) -> tuple[np.ndarray, float]:
    centre = lm[STABLE_POINTS].sum(0) / len(STABLE_POINTS)  # sum / n: np.mean's overhead is per call
    dx, dy = lm[45] - lm[36]  # outer eye corners
    scale = float(np.hypot(dx, dy)) or 1.0
    return centre, scale

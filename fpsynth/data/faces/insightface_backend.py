"""Optional backend: insightface (SCRFD detector + the 1k3d68 landmark network, ONNX on CPU).

insightface downloads its model pack when the folder ``<root>/models/<name>`` is absent, and
nothing may download at run time here, so the files are checked first and a missing one is
named. The package declares ``opencv-python`` (which overwrites the headless build's files):
install it with ``pip install --no-deps insightface onnxruntime`` (README, optional backends).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fpsynth.data.faces.base import Face, FaceBackendError

LANDMARK_FILE = "1k3d68.onnx"
DETECTOR_GLOBS = ("det_*.onnx", "scrfd_*.onnx")


def check(root: Path | None, name: str) -> Path:
    """The model folder, once its files and the packages are there; else :class:`FaceBackendError`."""
    folder = check_model_dir(root, name)
    missing = [m for m in ("insightface", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise FaceBackendError(
            f"the insightface backend needs the package(s) {', '.join(missing)}; install them with "
            "`pip install --no-deps insightface onnxruntime` plus their small dependencies "
            "(README, optional face backends)"
        )
    return folder


def check_model_dir(root: Path | None, name: str) -> Path:
    """``<root>/models/<name>`` when it holds a detector and the 68-point model; else a clear error."""
    if root is None:
        raise FaceBackendError(
            "the insightface backend needs its model folder: set prepare.faces.insightface_root to "
            f"the folder that holds models/{name}/ (with det_10g.onnx and {LANDMARK_FILE}, from "
            f"insightface's {name}.zip)"
        )
    folder = Path(root).expanduser() / "models" / name
    detectors = [p for g in DETECTOR_GLOBS for p in folder.glob(g)]
    missing = ([] if detectors else ["det_10g.onnx (or another det_*/scrfd_* detector)"]) + (
        [] if (folder / LANDMARK_FILE).is_file() else [LANDMARK_FILE]
    )
    if missing:
        raise FaceBackendError(
            f"insightface model files missing in {folder}: {', '.join(missing)}; unpack insightface's "
            f"{name}.zip there or point prepare.faces.insightface_root/insightface_name at the right folder"
        )
    return folder


class InsightFaceBackend:
    name = "insightface"

    def __init__(self, root: Path | None, name: str, min_score: float) -> None:
        check(root, name)
        assert root is not None  # check() refused a missing root
        try:
            from insightface.app import FaceAnalysis
        except ImportError as exc:  # installed, but one of its own dependencies is not
            raise FaceBackendError(
                f"the insightface package does not import ({exc}); install its missing dependency "
                "(README, optional face backends)"
            ) from None
        self.min_score = min_score
        self._app = FaceAnalysis(
            name=name,
            root=str(Path(root).expanduser()),
            allowed_modules=["detection", "landmark_3d_68"],
            providers=["CPUExecutionProvider"],
        )
        self._app.prepare(ctx_id=-1, det_thresh=min_score, det_size=(640, 640))
        self._landmarker = self._app.models["landmark_3d_68"]

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Face]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        return [
            Face(np.asarray(f.bbox, np.float32), float(f.det_score), np.asarray(f.landmark_3d_68[:, :2], np.float32))
            for f in self._app.get(bgr)
        ]

    def landmarks(self, rgb: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        from insightface.app.common import Face as InsightFace

        face = InsightFace(bbox=np.asarray(bbox, np.float32), kps=None, det_score=1.0)
        self._landmarker.get(np.ascontiguousarray(rgb[:, :, ::-1]), face)
        return np.asarray(face.landmark_3d_68[:, :2], np.float32)

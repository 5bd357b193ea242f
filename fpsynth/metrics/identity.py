"""Identity similarity of generated images to their identity sources, and verification rates.

An :class:`Embedder` maps face crops to identity embeddings and carries its :class:`Verifier`
(how two embeddings are compared and the threshold at which they are the same person):

- :class:`DlibEmbedder`, the offline default: dlib's face-recognition ResNet
  (``dlib_face_recognition_resnet_model_v1.dat`` of face_recognition_models, or the folder set by
  ``weights.dlib_models``), 128-d descriptors compared by Euclidean distance; dlib's published
  rule is "same person when the distance is below 0.6" (99.38% on LFW). It needs a 68-point
  shape per face: the crop's known landmarks when given, else the landmark backend fitted in the
  crop (see :mod:`fpsynth.metrics.landmarks`); dlib then cuts its own 150x150 chip from it.
- :class:`IR50Embedder`, when an IR-50 is supplied (``weights.ir50_id``): L2-normalised 512-d
  embeddings compared by cosine similarity; its threshold depends on the checkpoint and must be
  stated in the report (the default here, 0.3, is a common operating point for ArcFace-family
  models on aligned 112x112 crops, not a calibrated value).
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import dlib
import numpy as np
import torch
import torch.nn.functional as F

from fpsynth.data.pixels import to_unit
from fpsynth.metrics.config import DLIB_THRESHOLD, IR50_COSINE_THRESHOLD
from fpsynth.metrics.landmarks import CropLandmarker, dlib_crop_landmarker, to_rgb_uint8
from fpsynth.nets.loading import MissingNetwork
from fpsynth.outputs import sha256_file
from fpsynth.weights import LoadRecord, WeightsError, load_into

if TYPE_CHECKING:
    from fpsynth.nets.config import IRConfig

DLIB_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class SimilarityKind(enum.Enum):
    EUCLIDEAN = "euclidean"  # a distance: lower is more similar
    COSINE = "cosine"  # a similarity: higher is more similar


@dataclasses.dataclass(frozen=True)
class Verifier:
    kind: SimilarityKind
    threshold: float

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scores of row-aligned embeddings: (N, D) x (N, D) -> (N,)."""
        if self.kind is SimilarityKind.EUCLIDEAN:
            return np.linalg.norm(a - b, axis=1)
        return np.sum(_unit(a) * _unit(b), axis=1)

    def matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """All scores: (N, D) x (M, D) -> (N, M), float32."""
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        if self.kind is SimilarityKind.EUCLIDEAN:
            sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
            return np.sqrt(np.maximum(sq, 0.0))
        return _unit(a) @ _unit(b).T

    def same(self, scores: np.ndarray) -> np.ndarray:
        """Boolean: the pair is the same person."""
        return scores < self.threshold if self.kind is SimilarityKind.EUCLIDEAN else scores >= self.threshold

    def best_index(self, scores: np.ndarray, axis: int) -> np.ndarray:
        return scores.argmin(axis=axis) if self.kind is SimilarityKind.EUCLIDEAN else scores.argmax(axis=axis)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Embedder(Protocol):
    name: str
    verifier: Verifier

    def embed(self, images: torch.Tensor | np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Crops ((N, 3, H, W) in [-1, 1] or (N, H, W, 3) uint8) -> embeddings (N, D) float32."""
        ...


class DlibEmbedder:
    name = "dlib-resnet-v1"

    def __init__(self, recognition_model: Path, landmarker: CropLandmarker, threshold: float = DLIB_THRESHOLD) -> None:
        self._net = dlib.face_recognition_model_v1(str(recognition_model))
        self.landmarker = landmarker
        self.verifier = Verifier(SimilarityKind.EUCLIDEAN, threshold)

    def embed(self, images: torch.Tensor | np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        rgb = to_rgb_uint8(images)
        if len(rgb) == 0:
            return np.zeros((0, 128), np.float32)
        points = self.landmarker(rgb) if landmarks is None else np.asarray(landmarks)
        shapes = []
        for lm in np.rint(points).astype(int):
            rect = dlib.rectangle(int(lm[:, 0].min()), int(lm[:, 1].min()), int(lm[:, 0].max()), int(lm[:, 1].max()))
            shapes.append(
                dlib.full_object_detections(
                    [dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in lm])]
                )
            )
        # One call for the batch: dlib cuts each 150x150 chip from the shape and runs the ResNet.
        out = self._net.compute_face_descriptor(list(rgb), shapes)
        return np.array([list(faces[0]) for faces in out], np.float32)  # (N, 128)


def dlib_embedder(
    dlib_models: Path | None = None, threshold: float = DLIB_THRESHOLD, landmarker: CropLandmarker | None = None
) -> tuple[DlibEmbedder, LoadRecord]:
    """The default embedder from ``weights.dlib_models`` (or face_recognition_models' folder)."""
    missing = missing_dlib("identity", dlib_models)
    if missing is not None:
        raise WeightsError(missing.message)
    path = dlib_recognition_path(dlib_models)
    assert path is not None  # checked by missing_dlib
    embedder = DlibEmbedder(path, landmarker or dlib_crop_landmarker(dlib_models), threshold)
    return embedder, LoadRecord(DlibEmbedder.name, str(path), sha256_file(path), False)


def dlib_recognition_path(dlib_models: Path | None) -> Path | None:
    from fpsynth.data.faces.dlib_backend import default_models_dir

    folder = Path(dlib_models).expanduser() if dlib_models else default_models_dir()
    return folder / DLIB_RECOGNITION_FILE if folder else None


def missing_dlib(metric: str, dlib_models: Path | None) -> MissingNetwork | None:
    """None when dlib's recognition model is available, else the structured 'missing' result."""
    path = dlib_recognition_path(dlib_models)
    if path is not None and path.is_file():
        return None
    reason = f"file not found: {path}" if path else "not configured (package face_recognition_models is not installed)"
    return MissingNetwork(
        metric=metric,
        network=DlibEmbedder.name,
        config_key="weights.dlib_models",
        files=(DLIB_RECOGNITION_FILE,),
        source="pip install face_recognition_models, or a folder holding dlib's .dat models",
        reason=reason,
    )


class IR50Embedder:
    """An IR-50 (:class:`fpsynth.nets.ir50.IResNet`) as an embedder; cosine similarity."""

    name = "ir50"

    def __init__(
        self, network: torch.nn.Module, threshold: float = IR50_COSINE_THRESHOLD, batch_size: int = 64
    ) -> None:
        self.network = network.eval()
        self.verifier = Verifier(SimilarityKind.COSINE, threshold)
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, images: torch.Tensor | np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        if isinstance(images, np.ndarray):  # uint8 (N, H, W, 3) -> [-1, 1] (N, 3, H, W)
            images = to_unit(images)
        device = next(self.network.parameters()).device
        chunks = [
            F.normalize(self.network(images[i : i + self.batch_size].to(device, torch.float32)).embedding, dim=1)
            for i in range(0, len(images), self.batch_size)
        ]
        return torch.cat(chunks).cpu().numpy().astype(np.float32) if chunks else np.zeros((0, 512), np.float32)


def ir50_embedder(
    path: Path | None,
    random_init: tuple[str, ...] = (),
    threshold: float = IR50_COSINE_THRESHOLD,
    batch_size: int = 64,
    ir_config: IRConfig | None = None,
) -> tuple[IR50Embedder, LoadRecord]:
    """IR50Embedder from ``weights.ir50_id``; ``ir_config`` as the training run's identity IR
    (default: IR-50, AdaFace layout). fpsynth.models is imported only when asked for."""
    from fpsynth.nets.config import IRConfig
    from fpsynth.nets.ir50 import IR50_ID, IResNet

    net = IResNet(ir_config or IRConfig())
    record = load_into(net, IR50_ID, path, random_init)
    return IR50Embedder(net.requires_grad_(False), threshold, batch_size), record


@dataclasses.dataclass(frozen=True)
class IdentityResult:
    embedder: str
    kind: SimilarityKind
    threshold: float
    scores: np.ndarray  # (N,) distance or similarity of each generated image to its identity source
    same: np.ndarray  # (N,) bool: verified as the same person

    @property
    def verification_rate(self) -> float:
        return float(self.same.mean()) if len(self.same) else float("nan")

    def summary(self) -> dict[str, object]:
        return {
            "embedder": self.embedder,
            "kind": self.kind.value,
            "threshold": self.threshold,
            "n": int(len(self.scores)),
            "mean": float(self.scores.mean()) if len(self.scores) else None,
            "verification_rate": self.verification_rate,
        }


def identity_similarity(embedder: Embedder, generated: np.ndarray, sources: np.ndarray) -> IdentityResult:
    """Compare row-aligned embeddings (N, D) of generated images and of their identity sources."""
    scores = embedder.verifier.pairs(np.asarray(generated), np.asarray(sources))
    v = embedder.verifier
    return IdentityResult(embedder.name, v.kind, v.threshold, scores, v.same(scores))

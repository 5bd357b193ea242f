"""The metric networks of one report, opened once from ``[weights]``, each present or missing.

A metric whose network is not configured is carried as a
:class:`~fpsynth.nets.loading.MissingNetwork` (file + config key) and shown as missing; it is
never computed with another network. A configured file that is wrong still raises (an error to
fix, not a missing network).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from fpsynth.data.faces.base import FaceBackendError
from fpsynth.metrics.config import IdentityBackend, MetricsConfig
from fpsynth.metrics.identity import Embedder
from fpsynth.metrics.landmarks import CropLandmarker, dlib_crop_landmarker
from fpsynth.metrics.suite import Opened, open_embedder, open_inception, open_lpips, open_vgg16
from fpsynth.nets.loading import MissingNetwork
from fpsynth.weights import LoadRecord, WeightsConfig

DLIB_PREDICTOR = "shape_predictor_68_face_landmarks.dat"

# What each metric of the report needs; the keys are the metric names used in report.json.
METRICS = ("fid", "lpips", "perceptual", "identity", "landmarks")


@dataclasses.dataclass
class Networks:
    fid: Opened | MissingNetwork  # Inception-v3: images -> (N, 2048)
    lpips: Opened | MissingNetwork  # LPIPS v0.1: (x, y) -> (N,)
    perceptual: Opened | MissingNetwork  # VGG16 features for PL
    identity: Opened[Embedder] | MissingNetwork
    landmarks: Opened[CropLandmarker] | MissingNetwork  # 68 points of crops (expression fidelity)
    device: torch.device

    def get(self, metric: str) -> Opened | MissingNetwork:
        return getattr(self, metric)

    def available(self, metric: str) -> bool:
        return isinstance(self.get(metric), Opened)

    def net(self, metric: str) -> Any:
        """The loaded network of ``metric`` (Inception, LPIPS, VGG16, an Embedder, a CropLandmarker);
        callers check :meth:`available` first."""
        item = self.get(metric)
        if isinstance(item, MissingNetwork):
            raise LookupError(item.message)
        return item.net

    def missing(self) -> list[dict[str, Any]]:
        return [item.to_dict() for m in METRICS if isinstance(item := self.get(m), MissingNetwork)]

    def summary(self) -> dict[str, Any]:
        """Per metric: the files loaded (LoadRecords, random_init flagged) or the missing row."""
        out: dict[str, Any] = {}
        for metric in METRICS:
            item = self.get(metric)
            if isinstance(item, Opened):
                out[metric] = {"status": "ok", "records": [dataclasses.asdict(r) for r in item.records]}
            else:
                out[metric] = item.to_dict()
        return out

    def random_init(self) -> list[str]:
        """Networks running on random weights (tests and tiny configs): their figures mean nothing."""
        names = []
        for metric in METRICS:
            item = self.get(metric)
            if isinstance(item, Opened):
                names += [r.name for r in item.records if r.random_init and r.name not in names]
        return names


def open_networks(weights: WeightsConfig, cfg: MetricsConfig, device: torch.device, seed: int) -> Networks:
    """Every metric network of the report (on ``device``), or why it is missing."""
    verify = cfg.fid.verify_checksum
    fid = open_inception(weights, cfg.fid, seed=seed)
    lp = open_lpips(weights, verify_checksum=verify, seed=seed)
    pl = open_vgg16(weights, "perceptual", verify_checksum=verify, seed=seed)
    for opened in (fid, lp, pl):
        if isinstance(opened, Opened):
            opened.net.to(device)
    landmarks = _open_landmarker(weights)
    if cfg.identity.backend is IdentityBackend.DLIB and isinstance(landmarks, MissingNetwork):
        # dlib's recognition model needs 68 points per face; without the predictor it cannot run.
        identity: Opened | MissingNetwork = dataclasses.replace(landmarks, metric="identity")
    else:
        landmarker = landmarks.net if isinstance(landmarks, Opened) else None
        identity = open_embedder(weights, cfg.identity, landmarker)
    if isinstance(identity, Opened) and hasattr(identity.net, "network"):
        identity.net.network.to(device)  # IR-50
    return Networks(fid, lp, pl, identity, landmarks, device)


def _open_landmarker(weights: WeightsConfig) -> Opened[CropLandmarker] | MissingNetwork:
    from fpsynth.data.faces.dlib_backend import check
    from fpsynth.outputs import sha256_file

    try:
        path = check(weights.dlib_models)
    except FaceBackendError as exc:
        return MissingNetwork(
            metric="landmarks",
            network="dlib-shape-predictor-68",
            config_key="weights.dlib_models",
            files=(DLIB_PREDICTOR,),
            source="pip install face_recognition_models, or a folder holding dlib's .dat models",
            reason=str(exc).split(";")[0],
        )
    record = LoadRecord("dlib-shape-predictor-68", str(path), sha256_file(path), False)
    return Opened(dlib_crop_landmarker(weights.dlib_models), (record,))

"""Settings of the metric library, for the report stage to embed in its ``[report]`` section.

Defaults are the standard settings each metric is defined with (see the metric modules).
"""

from __future__ import annotations

import dataclasses
import enum

DLIB_THRESHOLD = 0.6  # dlib's published rule: same person when the Euclidean distance is below it
IR50_COSINE_THRESHOLD = 0.3  # a common ArcFace-family operating point, not calibrated per checkpoint


class Table1Convention(enum.Enum):
    """How the paper's Table 1 metrics are computed (``fpsynth.metrics.table1``); both are always computed."""

    AUTHORS = "authors"  # the CCFExp authors' evaluation script: figures on the paper's scale (default)
    STANDARD = "standard"  # each metric as its defining paper states it (fpsynth's Table 1 before)


class Distance(enum.Enum):
    MSE = "mse"  # Johnson et al.'s squared Euclidean distance, normalised by C*H*W
    L1 = "l1"


@dataclasses.dataclass(frozen=True)
class PerceptualConfig:
    taps: tuple[str, ...] = ("relu2_2",)  # VGG16 activations compared (summed over taps)
    distance: Distance = Distance.MSE


@dataclasses.dataclass(frozen=True)
class FIDConfig:
    batch_size: int = 50  # images per Inception forward
    eps: float = 1e-6  # added to both covariance diagonals when sqrtm(S1 S2) is not finite
    verify_checksum: bool = True  # the .pth's published sha256 prefix; off only for a re-saved copy


class IdentityBackend(enum.Enum):
    DLIB = "dlib"  # offline default: dlib ResNet, Euclidean distance
    IR50 = "ir50"  # weights.ir50_id, cosine similarity


@dataclasses.dataclass(frozen=True)
class IdentityConfig:
    backend: IdentityBackend = IdentityBackend.DLIB
    dlib_threshold: float = DLIB_THRESHOLD
    ir50_threshold: float = IR50_COSINE_THRESHOLD  # depends on the checkpoint: state it with the results
    batch_size: int = 64


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    fid: FIDConfig = FIDConfig()
    table1: Table1Convention = Table1Convention.AUTHORS  # which convention the report's Table 1 shows
    perceptual: PerceptualConfig = PerceptualConfig()  # the standard convention's PL (``pl_johnson``)
    identity: IdentityConfig = IdentityConfig()

"""The configuration of the pretrained recognition networks: plain values, no torch.

Read by the networks (:mod:`fpsynth.nets.ir50`, :mod:`fpsynth.nets.mobilefacenet`) and held by
the configs above them (``ModelConfig``, the utility's IR-50 grader), so it sits with the networks.
"""

from __future__ import annotations

import dataclasses
import enum


class IRLayout(enum.Enum):
    """Key layout of the published IR-50 checkpoints (they differ inside each residual block)."""

    ADAFACE = "adaface"  # mk-minchul/AdaFace, TFace: BN-conv-BN-PReLU-conv-BN, affine-free final BN1d
    INSIGHTFACE = "insightface"  # TreB1eN/InsightFace_Pytorch: BN-conv-PReLU-conv-BN, affine final BN1d


class LandmarkInput(enum.Enum):
    """What the 68-point MobileFaceNet (E_LM and D_LM) is fed."""

    BGR_01 = "bgr_01"  # what it was trained on (pytorch_face_landmark): BGR, x / 255 (paper, default)
    RGB_PM1 = "rgb_pm1"  # the CCFExp authors' code: the generator's RGB [-1, 1] tensor unchanged


@dataclasses.dataclass(frozen=True)
class IRConfig:
    """An IR ResNet (IR-50 by default) with the key layout of the public checkpoints."""

    layout: IRLayout = IRLayout.ADAFACE
    stage_units: tuple[int, ...] = (3, 4, 14, 3)  # IR-50
    stage_channels: tuple[int, ...] = (64, 128, 256, 512)
    embedding_dim: int = 512

    def __post_init__(self) -> None:
        if len(self.stage_units) != len(self.stage_channels) or len(self.stage_units) != 4:
            raise ValueError("an IR network has four stages: stage_units and stage_channels need 4 values each")

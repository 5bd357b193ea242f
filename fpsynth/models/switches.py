"""The model's switch values (plain enums, no torch): what ``ModelConfig`` fields hold and what the
profiles (:mod:`fpsynth.models.profiles`) set, below both so the config can check its profile."""

from __future__ import annotations

import enum


class Variant(enum.Enum):
    CCFEXP = "ccfexp"  # identity + expression + landmark tokens, cross-fusion
    DCFACE = "dcface"  # the DCFace baseline: identity tokens + k x k patch statistics of the style


class TokenLayout(enum.Enum):
    """How a (B, C, 7, 7) feature map becomes 49 tokens."""

    TRANSPOSE = "transpose"  # (B, 49, C): one token per position (paper: "flatten and rearrange")
    VIEW = "view"  # the authors' landmark tokens: the channel-major buffer reshaped to (B, 49, C)


class FusionQuery(enum.Enum):
    """The queries of the cross-fusion attentions."""

    PROJECTED = "projected"  # Eq. 6: Q = F W^Q, a learnable W^Q per stream (paper, default)
    RAW = "raw"  # the authors' Condition_Adapter: the stream's tokens themselves


class PatchStats(enum.Enum):
    """The second statistic of the DCFace baseline's k x k patch statistics."""

    STD = "std"  # standard deviation sqrt(E[x^2] - mean^2) (DCFace paper, fpsynth default)
    MEAN_MINUS_SQUARE = "mean_minus_square"  # the DCFace code: mean - E[x^2] (a defect, kept as a switch)

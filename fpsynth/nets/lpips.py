"""LPIPS v0.1 (Zhang et al. 2018) with the VGG16 backbone: the network and its calibrated heads.

LPIPS(x, y), images (N, 3, H, W) in [-1, 1]:
  1. the scaling layer: (x - shift) / scale with shift (-0.030, -0.088, -0.188) and scale
     (0.458, 0.448, 0.450), i.e. ImageNet statistics re-expressed for [-1, 1] inputs;
  2. VGG16 activations at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
  3. each activation unit-normalised along channels (x / (||x||_2 + 1e-10));
  4. squared difference, weighted per channel by the v0.1 linear layer ``lin{k}`` (a 1x1 conv
     to one channel, no bias, non-negative weights), averaged over space, summed over layers.
The linear layers are the published v0.1 calibration (``vgg.pth``, keys ``lin0.model.1.weight``
... ``lin4.model.1.weight``; ``model.0`` was a Dropout used in training), config key
``weights.lpips``; the backbone is torchvision's ImageNet VGG16 (``weights.vgg16``).

The perceptual losses built on the same VGG16 are metrics: :mod:`fpsynth.metrics.perceptual`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fpsynth.nets.vgg import TAP_CHANNELS, VGG16Features
from fpsynth.weights import LoadRecord, WeightSpec, load_into

SPEC = WeightSpec(
    name="lpips-v0.1-vgg",
    config_key="weights.lpips",
    files=("vgg.pth",),
    expected_keys=tuple(f"lin{k}.model.1.weight" for k in range(5)),
    source="richzhang/PerceptualSimilarity, lpips/weights/v0.1/vgg.pth (also inside `pip download lpips`)",
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",  # the v0.1 release file
)

LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class _LinearHead(nn.Module):
    """1x1 conv C -> 1 without bias; ``model.1`` keeps the published key names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Index 0 was Dropout during calibration; at evaluation it is the identity.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPSHeads(nn.Module):
    """The five v0.1 linear layers ``lin0`` ... ``lin4``."""

    def __init__(self) -> None:
        super().__init__()
        for k, tap in enumerate(LPIPS_TAPS):
            self.add_module(f"lin{k}", _LinearHead(TAP_CHANNELS[tap]))

    def head(self, k: int) -> nn.Module:
        return getattr(self, f"lin{k}")


def load_lpips_heads(path: Path | None) -> tuple[LPIPSHeads, LoadRecord]:
    """The v0.1 linear layers from ``weights.lpips`` (checksum verified); there is no random option."""
    heads = LPIPSHeads()
    record = load_into(heads, SPEC, path)
    heads.eval().requires_grad_(False)
    return heads, record


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1: (N, 3, H, W) x2 in [-1, 1] -> distances (N,)."""

    shift: torch.Tensor  # buffer (1, 3, 1, 1)
    scale: torch.Tensor  # buffer (1, 3, 1, 1)

    def __init__(self, vgg: VGG16Features, heads: LPIPSHeads) -> None:
        super().__init__()
        self.vgg = vgg
        self.heads = heads
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        both = (torch.cat([x, y]).float() - self.shift) / self.scale
        feats = self.vgg(both, LPIPS_TAPS)  # one pass for both images: {tap: (2N, C, h, w)}
        total = x.new_zeros(n, dtype=torch.float32)
        for k, tap in enumerate(LPIPS_TAPS):
            fx, fy = _unit(feats[tap][:n]), _unit(feats[tap][n:])
            total = total + self.heads.head(k)((fx - fy) ** 2).mean(dim=(1, 2, 3))  # spatial average
        return total

"""VGG16 ``features`` (the convolutional part), torchvision's ImageNet layout, for LPIPS and PL.

Keys are torchvision's ``features.N.weight`` / ``features.N.bias`` with N the index in its
``features`` Sequential (convolutions at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), so the
published ``vgg16-397923af.pth`` loads directly (its ``classifier.*`` keys are dropped; its
torch-hub sha256 prefix ``397923af`` is verified). The network returns the activations after the
ReLUs named below ("taps"), or ``pool5``: the output of the whole ``features`` stack, through its
last max-pool (index 30; (N, 512, 3, 3) at 112x112), which the CCFExp authors' PL compares. It
expects inputs already normalised by the caller (LPIPS and the two perceptual losses differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fpsynth.nets.loading import build_on_meta, load_network
from fpsynth.weights import LoadRecord, WeightSpec

SPEC = WeightSpec(
    name="vgg16",
    config_key="weights.vgg16",
    files=("vgg16-397923af.pth",),
    expected_keys=("features.0.weight", "features.28.weight"),
    source="torchvision's ImageNet VGG16: https://download.pytorch.org/models/vgg16-397923af.pth",
    sha256="397923af",  # torch-hub prefix published in the file name
)

# torchvision's configuration "D": channels per conv, "M" = 2x2 max-pool.
_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# Index in ``features`` of the ReLU whose output each tap returns.
TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29, "pool5": 30}
TAP_CHANNELS = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512, "pool5": 512}

# ImageNet statistics the torchvision weights were trained with, for [0, 1] RGB inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """Normalised images (N, 3, H, W) -> {tap name: (N, C, H', W')} for the requested taps."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU()]
                cin = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        unknown = [t for t in taps if t not in TAPS]
        if unknown or not taps:
            raise ValueError(f"unknown VGG16 taps {unknown}; choose from {list(TAPS)}")
        wanted = {TAPS[t]: t for t in taps}
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(list(self.features)[: max(wanted) + 1]):  # up to the deepest tap
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB -> the ImageNet-standardised input torchvision's weights expect."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((images + 1.0) / 2.0 - mean) / std


def load_vgg16(
    path: Path | None,
    random_init: tuple[str, ...] = (),
    *,
    verify_checksum: bool = True,
    seed: int = 0,
) -> tuple[VGG16Features, LoadRecord]:
    """VGG16 features from ``weights.vgg16`` (frozen, eval mode), or seeded random weights when allowed."""
    return load_network(
        build_on_meta(VGG16Features),
        SPEC,
        path,
        random_init,
        drop=lambda key: key.startswith("classifier."),
        verify_checksum=verify_checksum,
        seed=seed,
    )

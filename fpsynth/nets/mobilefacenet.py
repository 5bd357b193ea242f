"""The 68-point MobileFaceNet landmark detector of cunjian/pytorch_face_landmark.

Layout (checked against that repository's ``models/mobilefacenet.py``, built there as
``MobileFaceNet([112, 112], 136)`` with the GDC head): ``conv1``, ``conv2_dw`` (conv/bn/prelu
blocks), ``conv_23``, ``conv_34``, ``conv_45`` (depth-wise units: ``conv``, ``conv_dw``,
``project``), ``conv_3``, ``conv_4``, ``conv_5`` (residual stacks ``model.N``), ``conv_6_sep``
(1x1 to 512 channels at 7x7) and ``output_layer`` (``conv_6_dw`` 7x7 depth-wise, ``linear``
512 -> 136 without bias, ``bn`` BatchNorm1d(136)). The public ``mobilefacenet_model_best.pth.tar``
is a dict whose ``state_dict`` holds exactly these keys.

Input convention (:class:`~fpsynth.models.config.LandmarkInput`), applied by
:func:`to_landmark_input` inside ``forward`` so callers pass fpsynth images (RGB in [-1, 1]):

- ``BGR_01`` (default; the paper's, i.e. what the network was trained on): 112x112 **BGR in
  [0, 1]**, the repository's demo (``cv2`` image / 255).
- ``RGB_PM1`` (the CCFExp authors' code): the generator's RGB [-1, 1] tensor unchanged; kept as a
  switch to reproduce their numbers (``ccfexp-authors`` profile).

Output: 136 values = 68 (x, y) pairs, normalised to [0, 1] of the 112x112 input (multiply by 112
for crop pixels), and the conv_6_sep map (B, 512, 7, 7).
"""

from __future__ import annotations

import torch
from torch import nn

from fpsynth.nets.config import LandmarkInput
from fpsynth.weights import WeightSpec

MOBILEFACENET_68 = WeightSpec(
    name="mobilefacenet-68",
    config_key="weights.mobilefacenet",
    files=("mobilefacenet_model_best.pth.tar",),
    expected_keys=("conv1.conv.weight", "conv_6_sep.conv.weight", "output_layer.linear.weight"),
    source="the MobileFaceNet (68 points, 112x112) checkpoint linked from the README of "
    "https://github.com/cunjian/pytorch_face_landmark",
)

NUM_LANDMARKS = 68


def to_landmark_input(x: torch.Tensor, convention: LandmarkInput = LandmarkInput.BGR_01) -> torch.Tensor:
    """fpsynth images (B, 3, H, W) RGB in [-1, 1] -> the detector's input.

    ``BGR_01`` (paper/training convention, default): BGR in [0, 1], ``(x.flip(1) + 1) / 2``.
    ``RGB_PM1`` (the CCFExp authors' code): ``x`` unchanged.
    """
    convention = LandmarkInput(convention)
    if convention is LandmarkInput.RGB_PM1:
        return x
    return (x.flip(1) + 1) / 2


class ConvBlock(nn.Module):
    """conv (no bias) -> BN -> PReLU, optionally without the PReLU (the repository's Linear_block)."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if act:
            self.prelu = nn.PReLU(cout)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.act else x


class DepthWise(nn.Module):
    """1x1 expand to ``groups`` -> 3x3 depth-wise (stride) -> 1x1 linear projection, optional residual."""

    def __init__(self, cin: int, cout: int, groups: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.conv = ConvBlock(cin, groups)
        self.conv_dw = ConvBlock(groups, groups, 3, stride, 1, groups=groups)
        self.project = ConvBlock(groups, cout, act=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.conv_dw(self.conv(x)))
        return x + h if self.residual else h


class Residual(nn.Module):
    def __init__(self, channels: int, num_blocks: int, groups: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            *[DepthWise(channels, channels, groups, 1, residual=True) for _ in range(num_blocks)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GDCHead(nn.Module):
    """Global depth-wise conv over the 7x7 map, then linear to the 136 coordinates."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.conv_6_dw = ConvBlock(512, 512, 7, groups=512, act=False)
        self.linear = nn.Linear(512, out_dim, bias=False)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(self.conv_6_dw(x).flatten(1)))


class MobileFaceNet(nn.Module):
    """fpsynth image (B, 3, 112, 112) RGB [-1, 1] -> landmarks (B, 68, 2) in [0, 1] and the (B, 512, 7, 7) map.

    ``input_convention``: what the network is fed (see :func:`to_landmark_input`); ``BGR_01`` is
    the training/paper convention and fpsynth's default, ``RGB_PM1`` the CCFExp authors' code.
    """

    def __init__(self, input_convention: LandmarkInput = LandmarkInput.BGR_01) -> None:
        super().__init__()
        self.input_convention = LandmarkInput(input_convention)
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)  # 56x56
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, 128, 2, residual=False)  # 28x28
        self.conv_3 = Residual(64, 4, 128)
        self.conv_34 = DepthWise(64, 128, 256, 2, residual=False)  # 14x14
        self.conv_4 = Residual(128, 6, 256)
        self.conv_45 = DepthWise(128, 128, 512, 2, residual=False)  # 7x7
        self.conv_5 = Residual(128, 2, 256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.output_layer = GDCHead(2 * NUM_LANDMARKS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv1(to_landmark_input(x, self.input_convention))
        for layer in (self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4, self.conv_45, self.conv_5):
            h = layer(h)
        fmap = self.conv_6_sep(h)  # (B, 512, 7, 7)
        landmarks = self.output_layer(fmap).view(-1, NUM_LANDMARKS, 2)  # (B, 68, 2), (x, y) in [0, 1]
        return landmarks, fmap

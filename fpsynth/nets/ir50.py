"""IR-50 face recognition network with the key layout of the public checkpoints.

Layout (checked against mk-minchul/AdaFace ``net.py`` and TreB1eN/InsightFace_Pytorch
``model.py``): ``input_layer`` (conv3x3 3->64, BN, PReLU), ``body.N`` (24 residual units in four
stages of 3/4/14/3, widths 64/128/256/512, each unit ``shortcut_layer`` + ``res_layer``, the first
unit of every stage strided by 2), ``output_layer`` (BN2d, Dropout, Flatten, Linear 512*7*7 ->
512, BN1d). The two checkpoint families differ in two places (``IRLayout``):

- AdaFace/TFace: ``res_layer`` = BN, conv, BN, PReLU, conv, BN; final BN1d without affine.
- InsightFace_Pytorch: ``res_layer`` = BN, conv, PReLU, conv, BN; final BN1d with affine.

AdaFace checkpoints are Lightning ``.ckpt`` files whose ``state_dict`` keys carry ``model.``
(the backbone) and ``head.`` (the margin head, ignored); ``fpsynth.weights`` strips the prefix.

Input normalisation. AdaFace (and DCFace, which uses it) feed BGR images scaled as (x/255 - 0.5) /
0.5, i.e. BGR in [-1, 1]. Our images are RGB in [-1, 1], so :func:`to_ir_input` only reverses the
channel order; ``IResNet.forward`` applies it, so callers pass fpsynth images as they are.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fpsynth.nets.config import IRConfig, IRLayout
from fpsynth.weights import WeightSpec

IR50_ID = WeightSpec(
    name="ir50-id",
    config_key="weights.ir50_id",
    files=("adaface_ir50_casia.ckpt", "adaface_ir50_webface4m.ckpt", "adaface_ir50_ms1mv2.ckpt"),
    expected_keys=("input_layer.0.weight", "body.0.res_layer.1.weight", "output_layer.3.weight"),
    source="the AdaFace IR-50 checkpoints of https://github.com/mk-minchul/AdaFace (README, "
    "'Pretrained Models'). The CCFExp authors' identity network (E_ID) and identity-loss network "
    "are the AdaFace IR-50 trained on CASIA-WebFace (adaface_ir50_casia.ckpt); only DCFace's "
    "trainable E_ID started from the WebFace4M one. An IR-50 in the TreB1eN/InsightFace_Pytorch "
    "layout also loads with train.model.identity_ir.layout = 'insightface'",
)

IR50_EXPRESSION = WeightSpec(
    name="ir50-expression",
    config_key="weights.ir50_expression",
    files=("IR-50_affectnet_deviation_Softmax.pth",),
    expected_keys=("input_layer.0.weight", "body.0.res_layer.1.weight", "output_layer.3.weight"),
    source="an IR-50 (same layout as ir50-id) fine-tuned for expression on AffectNet with the "
    "DLN deviation recipe, as the CCFExp authors did (their IR-50_affectnet_deviation_Softmax.pth)",
)


def to_ir_input(x: torch.Tensor) -> torch.Tensor:
    """fpsynth images (B, 3, H, W) RGB in [-1, 1] -> what AdaFace IR-50s expect: BGR in [-1, 1]."""
    return x.flip(1)


class BasicBlockIR(nn.Module):
    """One IR unit: ``res_layer(x) + shortcut_layer(x)``; the stride sits in the second conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, layout: IRLayout) -> None:
        super().__init__()
        if in_ch == out_ch:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)  # parameter-free subsampling
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        mid: list[nn.Module] = [nn.BatchNorm2d(out_ch)] if layout is IRLayout.ADAFACE else []
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            *mid,
            nn.PReLU(out_ch),
            nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


@dataclasses.dataclass
class IRFeatures:
    embedding: torch.Tensor  # (B, E) raw output of the final BN1d (not L2-normalised)
    feature_map: torch.Tensor  # (B, C_last, 7, 7) output of the last stage (IR-50: body[23])
    early_map: torch.Tensor | None = None  # (B, C_first, 56, 56) output of the first stage, on request
    # (B, C_last, 7, 7) output of the FIRST unit of the last stage (IR-50: body[21]): the map the
    # CCFExp/DCFace authors' E_ID turns into its 49 tokens (return_spatial [21]).
    mid_map: torch.Tensor | None = None


class IResNet(nn.Module):
    """IR ResNet at 112x112: fpsynth image -> :class:`IRFeatures` (embedding and 7x7 map)."""

    def __init__(self, cfg: IRConfig = IRConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        stem = cfg.stage_channels[0]  # the stem matches the first stage (64 in IR-50)
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
        units, in_ch = [], stem
        for n, out_ch in zip(cfg.stage_units, cfg.stage_channels):
            for i in range(n):
                units.append(BasicBlockIR(in_ch, out_ch, 2 if i == 0 else 1, cfg.layout))
                in_ch = out_ch
        self.body = nn.Sequential(*units)
        c = cfg.stage_channels[-1]
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(c * 7 * 7, cfg.embedding_dim),
            nn.BatchNorm1d(cfg.embedding_dim, affine=cfg.layout is IRLayout.INSIGHTFACE),
        )

    def forward(self, x: torch.Tensor, keep_early: bool = False) -> IRFeatures:
        """x (B, 3, 112, 112) RGB in [-1, 1] -> :class:`IRFeatures`.

        embedding (B, E) (raw BatchNorm1d output), feature_map (B, C, 7, 7) (last stage, what
        ``output_layer`` consumes), mid_map (B, C, 7, 7) (first unit of the last stage: IR-50's
        body[21], always computed, it is on the way). ``keep_early`` also returns the first
        stage's output (IR-50: (B, 64, 56, 56) after body[2]), the "early feature map" whose patch
        statistics are DCFace's style condition.
        """
        n_first = self.cfg.stage_units[0]
        n_mid = sum(self.cfg.stage_units[:-1]) + 1  # units up to and including the last stage's first
        early = self.body[:n_first](self.input_layer(to_ir_input(x)))
        mid = self.body[n_first:n_mid](early)
        fmap = self.body[n_mid:](mid)
        return IRFeatures(self.output_layer(fmap), fmap, early if keep_early else None, mid)

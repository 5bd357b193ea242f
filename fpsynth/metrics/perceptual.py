"""The perceptual loss (PL) of Table 1, per image, on the VGG16 of :mod:`fpsynth.nets.vgg`.

Perceptual loss (PL): the feature reconstruction loss of Johnson, Alahi & Fei-Fei (2016),
1/(C H W) ||phi_j(x) - phi_j(y)||_2^2 with phi_j the VGG16 activation at relu2_2 (the layer they
use for content), on ImageNet-standardised inputs, per image. Other taps or an L1 distance can be
chosen (:class:`fpsynth.metrics.config.PerceptualConfig`); several taps are summed.

The CCFExp authors' PL (:func:`perceptual_loss_authors`, the scale of the paper's Table 1) is
another quantity: ``F.mse_loss(vgg16.features(x), vgg16.features(y))`` of the WHOLE feature stack
(through the last max-pool: (N, 512, 3, 3) at 112x112) on the [-1, 1] images as they are, without
ImageNet standardisation (their evaluation script, ``test.py``).
"""

from __future__ import annotations

import torch

from fpsynth.metrics.config import Distance, PerceptualConfig
from fpsynth.nets.vgg import VGG16Features, imagenet_normalize


def perceptual_distance(
    vgg: VGG16Features, x: torch.Tensor, y: torch.Tensor, cfg: PerceptualConfig = PerceptualConfig()
) -> torch.Tensor:
    """Perceptual loss per image, (N, 3, H, W) x2 in [-1, 1] -> (N,); summed over ``cfg.taps``."""
    n = x.shape[0]
    feats = vgg(imagenet_normalize(torch.cat([x, y]).float()), cfg.taps)
    total = x.new_zeros(n, dtype=torch.float32)
    for tap in cfg.taps:
        diff = feats[tap][:n] - feats[tap][n:]
        per_image = diff.pow(2) if cfg.distance is Distance.MSE else diff.abs()
        total = total + per_image.flatten(1).mean(dim=1)
    return total


def perceptual_loss_authors(vgg: VGG16Features, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The CCFExp authors' PL per image: (N, 3, H, W) x2 in [-1, 1] -> (N,).

    Mean over (C, H, W) of the squared difference of the whole ``features`` output (``pool5``),
    the inputs fed unnormalised, as their script's ``F.mse_loss`` on one image at a time.
    """
    n = x.shape[0]
    feats = vgg(torch.cat([x, y]).float(), ("pool5",))["pool5"]  # (2N, 512, H/32, W/32)
    return (feats[:n] - feats[n:]).pow(2).flatten(1).mean(dim=1)

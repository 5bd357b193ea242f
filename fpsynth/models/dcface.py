"""The DCFace baseline's style encoder: patch statistics of the style image's early IR map.

DCFace (Kim et al., CVPR 2023) conditions on the identity tokens plus the style of a second image,
summarised as statistics of an early feature map of the frozen recognition network (the first
stage's output, 64 x 56 x 56 in IR-50). The frozen map is computed once per batch
(``CCFExp.style_features``); this encoder is trainable.

Operations, in the order of the authors' code (mk-minchul/dcface ``ExternalMappingV4Dropout``,
verified against ``shared/fixtures/reference`` dcface_reduced to float32 rounding):

1. resize: if the side H is not a multiple of k, nearest interpolation to H // k * k
   (56 -> 54 for k = 3, 55 for k = 5);
2. dropout (p = ``style_dropout``, 0.3 in DCFace) on that map, training mode only;
3. PReLU (one shared slope) -> 1x1 conv (with bias) to ``dim`` channels -> BatchNorm2d;
4. per channel, statistics over the whole map (1 value) and over each cell of the k x k grid
   (AvgPool2d with kernel and stride H // k): the mean m and a second statistic s;
5. per channel mix: ``w[c, 0] * m + w[c, 1] * s`` with the learnable ``stat_weight`` (dim, 2),
   initialised to 0.5;
6. tokens [global, k*k cells row-major] -> (B, 1 + k^2, dim), + the learnable position table
   ``pos_emb`` (1 + k^2, dim), then LayerNorm.

Paper vs code vs fpsynth: the paper states per-patch mean and standard deviation and is silent on
how 56 is split into k x k cells. The resize + AvgPool above is the authors' code and fpsynth's
default. The second statistic is the switch :class:`~fpsynth.models.config.PatchStats`: ``STD``
(the paper; fpsynth's default) = sqrt(max(E[x^2] - m^2, eps)); ``MEAN_MINUS_SQUARE`` (the authors'
code, a defect kept to reproduce them) = m - E[x^2]. The dropout is the authors' (the paper does
not mention it); fpsynth keeps it with the same p by default.

Loading the authors' weights: :data:`AUTHORS_KEYS` renames the keys under ``external_mapping.``
(:func:`from_authors_state_dict` applies it). The authors' ``external_mapping.cross_attn_adapter``
is not part of this encoder (fpsynth's one projection of the fused tokens lives outside it).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fpsynth.models.config import PatchStats
from fpsynth.models.tokens import sinusoidal_table

STD_EPS = 1e-6  # floor of the variance under the square root (PatchStats.STD)

# The authors' ExternalMappingV4Dropout key (after 'external_mapping.') -> PatchStatEncoder key.
AUTHORS_KEYS: dict[str, str] = {
    "relu_0.weight": "act.weight",
    "conv_0.weight": "conv.weight",
    "conv_0.bias": "conv.bias",
    "norm_0.weight": "norm.weight",
    "norm_0.bias": "norm.bias",
    "norm_0.running_mean": "norm.running_mean",
    "norm_0.running_var": "norm.running_var",
    "norm_0.num_batches_tracked": "norm.num_batches_tracked",
    "channel_weight_0.0": "stat_weight",
    "pos_emb_0.0": "pos_emb",
    "ln_0.weight": "ln.weight",
    "ln_0.bias": "ln.bias",
}
AUTHORS_PREFIX = "external_mapping."
AUTHORS_NOT_OURS = ("cross_attn_adapter.",)  # authors' keys under the prefix that live elsewhere in fpsynth


def from_authors_state_dict(state: Mapping[str, torch.Tensor], prefix: str = AUTHORS_PREFIX) -> dict[str, torch.Tensor]:
    """The authors' ``external_mapping.*`` tensors renamed for :class:`PatchStatEncoder`.

    Keys outside ``prefix`` and the ``cross_attn_adapter`` are ignored; any other unknown key
    under ``prefix`` is an error (a different ExternalMapping version).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        suffix = key[len(prefix) :]
        if suffix.startswith(AUTHORS_NOT_OURS):
            continue
        if suffix not in AUTHORS_KEYS:
            raise KeyError(f"{key}: not a key of the authors' ExternalMappingV4Dropout (known: {sorted(AUTHORS_KEYS)})")
        out[AUTHORS_KEYS[suffix]] = value
    return out


class PatchStatEncoder(nn.Module):
    """Early IR map (B, in_channels, H, W) -> style tokens (B, 1 + grid^2, dim).

    ``stats``: the second statistic (``STD``: paper, fpsynth default; ``MEAN_MINUS_SQUARE``: the
    authors' code). ``style_dropout``: dropout probability on the (resized) input map in training
    mode (the authors' 0.3); no dropout in eval mode.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        grid: int,
        stats: PatchStats = PatchStats.STD,
        style_dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.stats = PatchStats(stats)
        self.dropout = nn.Dropout(style_dropout)
        self.act = nn.PReLU()
        self.conv = nn.Conv2d(in_channels, dim, 1)
        self.norm = nn.BatchNorm2d(dim)
        self.stat_weight = nn.Parameter(torch.full((dim, 2), 0.5))  # per channel: weight of mean, of 2nd stat
        self.pos_emb = nn.Parameter(sinusoidal_table(1 + grid * grid, dim) - 0.5)
        self.ln = nn.LayerNorm(dim)

    def _second(self, mean: torch.Tensor, mean_sq: torch.Tensor) -> torch.Tensor:
        if self.stats is PatchStats.MEAN_MINUS_SQUARE:
            return mean - mean_sq
        return (mean_sq - mean * mean).clamp_min(STD_EPS).sqrt()

    def forward(self, early_map: torch.Tensor) -> torch.Tensor:
        """early_map (B, C, H, W) -> style tokens (B, 1 + k^2, dim)."""
        k = self.grid
        side = early_map.shape[-1] // k * k
        if early_map.shape[-2:] != (side, side):
            early_map = F.interpolate(early_map, size=(side, side), mode="nearest")  # 56 -> 54 (k=3), 55 (k=5)
        h = self.norm(self.conv(self.act(self.dropout(early_map))))  # (B, dim, side, side)
        sq = h * h
        tokens = []
        for cell in (side, side // k):  # the whole map (1 token), then k x k cells (row-major)
            mean = F.avg_pool2d(h, cell, cell).flatten(2)  # (B, dim, n)
            mean_sq = F.avg_pool2d(sq, cell, cell).flatten(2)
            second = self._second(mean, mean_sq)
            tokens.append(mean * self.stat_weight[None, :, :1] + second * self.stat_weight[None, :, 1:])
        x = torch.cat(tokens, dim=2).transpose(1, 2)  # (B, 1 + k^2, dim)
        return self.ln(x + self.pos_emb)

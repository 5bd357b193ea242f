"""The DCFace baseline's style encoder: patch statistics of the style image's early IR map.

DCFace (Kim et al., CVPR 2023) conditions on the identity tokens plus the style of a second image,
summarised as statistics of an early feature map of the frozen recognition network (the first
stage's output, 64 x 56 x 56 in IR-50). Here: PReLU, 1x1 conv to ``dim`` channels and BN, then
per-channel mean and standard deviation over the whole map (1 token) and over each cell of a
k x k grid (k^2 tokens; adaptive pooling, 56 is not a multiple of 3 or 5), mixed per channel by
learnable weights, plus a learnable position table and LayerNorm: (B, 1 + k^2, dim). The
frozen map is computed once per batch (``CCFExp.style_features``); this encoder is trainable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fpsynth.models.tokens import sinusoidal_table


class PatchStatEncoder(nn.Module):
    def __init__(self, in_channels: int, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.act = nn.PReLU()
        self.conv = nn.Conv2d(in_channels, dim, 1)
        self.norm = nn.BatchNorm2d(dim)
        self.stat_weight = nn.Parameter(torch.full((dim, 2), 0.5))  # per channel: weight of mean, of std
        self.pos_emb = nn.Parameter(sinusoidal_table(1 + grid * grid, dim) - 0.5)
        self.ln = nn.LayerNorm(dim)

    def forward(self, early_map: torch.Tensor) -> torch.Tensor:
        """early_map (B, C, H, W) -> style tokens (B, 1 + k^2, dim)."""
        h = self.norm(self.conv(self.act(early_map)))  # (B, dim, H, W)
        cells = []
        for size in (1, self.grid):
            mean = F.adaptive_avg_pool2d(h, size).flatten(2)  # (B, dim, size^2)
            sq = F.adaptive_avg_pool2d(h * h, size).flatten(2)
            std = (sq - mean * mean).clamp_min(1e-6).sqrt()
            cells.append(mean * self.stat_weight[None, :, :1] + std * self.stat_weight[None, :, 1:])
        tokens = torch.cat(cells, dim=2).transpose(1, 2)  # (B, 1 + k^2, dim)
        return self.ln(tokens + self.pos_emb)

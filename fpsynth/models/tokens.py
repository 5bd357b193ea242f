"""Small helpers shared by the condition encoders: feature maps to tokens, position tables."""

from __future__ import annotations

import math

import torch

from fpsynth.models.config import TokenLayout


def map_to_tokens(fmap: torch.Tensor, layout: TokenLayout = TokenLayout.TRANSPOSE) -> torch.Tensor:
    """(B, C, H, W) feature map -> (B, H*W, C) tokens.

    TRANSPOSE: token i is the C-vector at position i (row-major). VIEW: the authors' landmark
    tokens, the channel-major buffer reshaped (token i mixes C/(H*W) channels over all positions).
    """
    if layout is TokenLayout.VIEW:
        b, c, h, w = fmap.shape
        return fmap.reshape(b, h * w, c)
    return fmap.flatten(2).transpose(1, 2)


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine/cosine position table (Vaswani et al.), used to initialise learnable ones."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table

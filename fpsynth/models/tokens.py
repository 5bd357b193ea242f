"""Small helpers shared by the condition encoders: feature maps to tokens, position tables."""

from __future__ import annotations

import math

import torch


def map_to_tokens(fmap: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature map -> (B, H*W, C) tokens in row-major spatial order."""
    return fmap.flatten(2).transpose(1, 2)


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine/cosine position table (Vaswani et al.), used to initialise learnable ones."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table

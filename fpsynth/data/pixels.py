"""The one convention between stored pixels and network inputs: uint8 RGB <-> float RGB in [-1, 1].

Crops are stored as uint8 PNGs; every network (the U-Net, IR-50s, MobileFaceNet, metrics) sees
x / 127.5 - 1. The way back rounds to the nearest level after clamping to [-1, 1], so a crop
read and written again keeps its bytes.
"""

from __future__ import annotations

import numpy as np
import torch


def to_unit(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).movedim(-1, -3).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] on any device -> uint8 RGB (..., H, W, 3) on the CPU (converted
    before the copy, so a GPU batch travels as bytes)."""
    u8 = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return np.ascontiguousarray(u8.movedim(-3, -1).cpu().numpy())

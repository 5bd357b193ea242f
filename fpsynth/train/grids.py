"""Periodic sample grids: DDIM from the EMA U-Net on a fixed set of held-out pairs.

Each row is one pair: identity image | style image | sample with that identity and style. The
pairs come from the test split (subjects the model never trains on) when it has any, else from
the training split, chosen once per run with the pipeline seed; each row's noise has its own
fixed seed, so grids of successive steps differ only by the weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import torch

from fpsynth.data.codec import encode_png
from fpsynth.data.dataset import PairDataset, read_manifest
from fpsynth.data.pixels import to_uint8
from fpsynth.diffusion.config import SamplerConfig
from fpsynth.diffusion.samplers import item_generators, sample_conditioned
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import CCFExp
from fpsynth.seeds import derive, rng
from fpsynth.stage import atomic_write_bytes
from fpsynth.train.ema import EMA


@dataclasses.dataclass(frozen=True)
class HeldOut:
    x_id: torch.Tensor  # (n, 3, 112, 112) identity images
    x0: torch.Tensor  # (n, 3, 112, 112) style images
    split: str  # where they come from: "test", or "train" when the test split has no pairs


def held_out_pairs(prepare_dir: Path, count: int, seed: int) -> HeldOut:
    """Up to ``count`` fixed pairs for the sample grids, chosen with the pipeline seed."""
    splits = set(read_manifest(prepare_dir, "pairs")["split"])
    split = "test" if "test" in splits else "train"
    pairs = PairDataset(prepare_dir, split=split)
    pick = rng(seed, "train-grid-pick")
    picks = sorted(pick.choice(len(pairs), size=min(count, len(pairs)), replace=False).tolist())
    items = [pairs[i] for i in picks]
    return HeldOut(torch.stack([it["x_id"] for it in items]), torch.stack([it["x0"] for it in items]), split)


@torch.no_grad()
def sample_with_ema(
    model: CCFExp,
    ema: EMA,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    x_id: torch.Tensor,
    x0: torch.Tensor,
    seed: int,
    autocast: contextlib.AbstractContextManager,
) -> torch.Tensor:
    """Samples (n, 3, 112, 112) in [-1, 1] fp32 from the EMA U-Net, model in eval mode; train mode restored.

    ``autocast`` (the training's) is entered around each network call, not around the sampler's fp32 arithmetic.
    """
    device = next(model.unet.parameters()).device
    generators = item_generators([derive(seed, "train-grid-noise", i) for i in range(len(x0))])
    was_training = model.training
    model.eval()
    try:
        with ema.applied_to(model.unet):
            return sample_conditioned(model, x_id, x0, generators, schedule, cfg, device=device, amp=lambda: autocast)
    finally:
        model.train(was_training)


def sample_grid(
    model: CCFExp,
    ema: EMA,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    held: HeldOut,
    seed: int,
    autocast: contextlib.AbstractContextManager,
) -> np.ndarray:
    """(n*112, 3*112, 3) uint8 RGB: rows of identity | style | sample from the EMA U-Net."""
    samples = sample_with_ema(model, ema, schedule, cfg, held.x_id, held.x0, seed, autocast)
    rows = torch.cat([held.x_id.cpu(), held.x0.cpu(), samples.cpu()], dim=3)  # (n, 3, 112, 336)
    grid = torch.cat(list(rows), dim=1)  # (3, n*112, 336)
    return to_uint8(grid)


def write_png(path: Path, rgb: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(rgb))

"""A small Python API for notebooks and scripts: load a model, condition it, predict noise, sample.

    import fpsynth
    model = fpsynth.load_model("CCFExp.ckpt")                   # or an fpsynth checkpoint folder
    images = model.sample(id_images, style_images, seed=0)        # uint8 RGB (B, 112, 112, 3)

    cond = model.conditions(id_images, style_images)               # once per batch
    eps = model.eps(x_t, timesteps, cond)                          # (B, 3, 112, 112) float32

Images are aligned 112x112 crops (what ``fpsynth prepare`` writes), uint8 RGB as numpy arrays or
tensors of shape (B, 112, 112, 3). A published file is imported in memory with the authors'
profile; the sampler is the one the checkpoint carries (the authors': DDIM, 50 steps, eta 1).
Item i of a batch draws its noise from seed + i alone, so an image does not depend on its batch
(unless the checkpoint's sampler says ``noise = "per_batch"``, the authors' way).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpsynth.config import from_dict
from fpsynth.data.pixels import to_uint8, to_unit
from fpsynth.diffusion.config import SamplerConfig
from fpsynth.diffusion.samplers import item_generators, sample_conditioned
from fpsynth.models.ccfexp import CCFExp, Conditions

IMAGE_SHAPE = (112, 112, 3)


def _as_images(images: Any, device: torch.device, name: str) -> torch.Tensor:
    """uint8 RGB (B, 112, 112, 3) array or tensor -> (B, 3, 112, 112) float32 in [-1, 1] on ``device``."""
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or tuple(array.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name}: expected uint8 RGB images of shape (B, 112, 112, 3), got {tuple(array.shape)}")
    if array.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (0..255), got {array.dtype}")
    return to_unit(array).to(device)


@dataclasses.dataclass
class Model:
    """A CCFExp ready for inference (eval mode, EMA U-Net)."""

    net: CCFExp
    schedule: Any  # fpsynth.diffusion.schedule.NoiseSchedule
    sampler: SamplerConfig
    device: torch.device
    state: dict[str, Any]  # the checkpoint's state.json (profile, source file, configs)

    @property
    def profile(self) -> str:
        return self.net.cfg.profile

    @torch.no_grad()
    def conditions(self, id_images: Any, style_images: Any) -> Conditions:
        """Identity and style crops (B, 112, 112, 3) uint8 -> the U-Net's conditions for the batch."""
        x_id, x_style = self._pair(id_images, style_images)
        return self.net.conditions(x_id, self.net.style_features(x_style))

    def _pair(self, id_images: Any, style_images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Identity and style crops (B, 112, 112, 3) uint8 -> two (B, 3, 112, 112) [-1, 1] tensors on the device."""
        x_id = _as_images(id_images, self.device, "id_images")
        x_style = _as_images(style_images, self.device, "style_images")
        if x_id.shape[0] != x_style.shape[0]:
            raise ValueError(f"{x_id.shape[0]} identity images but {x_style.shape[0]} style images")
        return x_id, x_style

    @torch.no_grad()
    def eps(self, x_t: torch.Tensor, timesteps: Any, cond: Conditions) -> torch.Tensor:
        """x_t (B, 3, 112, 112) in image space, timesteps (B,) or one int -> eps (B, 3, 112, 112) float32."""
        x_t = torch.as_tensor(x_t, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(timesteps, dtype=torch.long, device=self.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(x_t.shape[0])
        return self.net(x_t, t, cond).float()

    @torch.no_grad()
    def sample(
        self, id_images: Any, style_images: Any, seed: int = 0, steps: int | None = None, eta: float | None = None
    ) -> np.ndarray:
        """Generated faces, uint8 RGB (B, 112, 112, 3): identity of ``id_images``, expression of ``style_images``."""
        x_id, x_style = self._pair(id_images, style_images)
        cfg = dataclasses.replace(
            self.sampler,
            steps=self.sampler.steps if steps is None else steps,
            eta=self.sampler.eta if eta is None else eta,
        )
        generators = item_generators([seed + i for i in range(x_id.shape[0])])
        return to_uint8(sample_conditioned(self.net, x_id, x_style, generators, self.schedule, cfg, device=self.device))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Model:
    """An fpsynth checkpoint (folder, or a workspace: its latest) or a published file (imported on the fly)."""
    from fpsynth.train.checkpoint import load_checkpoint

    device = torch.device(device)
    loaded = load_checkpoint(Path(path), ema=True, device=device)
    sampler = loaded.state.get("sampler_config")
    if sampler is None:  # a trained checkpoint: the sampler its run drew sample grids with
        sampler = loaded.state.get("config", {}).get("train", {}).get("sampler")
    sampler_cfg = from_dict(SamplerConfig, sampler, "checkpoint sampler") if sampler else SamplerConfig()
    return Model(loaded.model.eval(), loaded.schedule, sampler_cfg, device, loaded.state)

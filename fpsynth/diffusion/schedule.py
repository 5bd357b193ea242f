"""The noise schedule and its closed forms (DDPM, Ho et al. 2020; paper Eq. 1, 7).

Tables are computed in float64 and indexed by integer timesteps t in {0, ..., T-1}; values are
cast to the dtype of the tensor they scale. beta_t is linear from ``beta_start`` to ``beta_end``;
alpha_bar_t = prod_{s<=t} (1 - beta_s).
"""

from __future__ import annotations

import torch

from fpsynth.diffusion.config import DiffusionConfig


class NoiseSchedule:
    def __init__(self, cfg: DiffusionConfig = DiffusionConfig()) -> None:
        self.cfg = cfg
        self.num_timesteps = cfg.num_timesteps
        self.betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_timesteps, dtype=torch.float64)  # (T,)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,) alpha_bar_t
        self._on_device: dict[torch.device, torch.Tensor] = {}  # copies of alphas_cumprod (no copy per call)

    def alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar[t] shaped (B, 1, 1, 1) in ``like``'s dtype, to broadcast against it (B, C, H, W)."""
        table = self._on_device.get(t.device)
        if table is None:
            table = self._on_device[t.device] = self.alphas_cumprod.to(t.device)
        return table[t.long()].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def sample_timesteps(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """n timesteps uniform on {0, ..., T-1}, drawn from ``generator``, on ``device``."""
        t = torch.randint(0, self.num_timesteps, (n,), generator=generator, device=generator.device)
        return t.to(device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Forward diffusion: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
        ab = self.alpha_bar(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Eq. 7: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clipped to [-1, 1]."""
        ab = self.alpha_bar(t, x_t)
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if clip else x0

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Inverse of Eq. 7: the noise that takes x0 to x_t at step t."""
        ab = self.alpha_bar(t, x_t)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

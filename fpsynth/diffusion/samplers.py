"""Samplers: DDIM (written here) and DPM-Solver++ (diffusers), selected by ``SamplerConfig.kind``.

Both take an ``eps_fn(x_t, t) -> eps`` closure, so conditions are computed once per batch by the
caller and reused at every step:

    style = model.style_features(x_style)
    cond = model.conditions(x_id, style)
    images = sample(lambda x, t: model(x, t, cond), schedule, cfg, item_generators(seeds))

Determinism: every batch item has its own ``torch.Generator``; its initial noise and its DDIM
noise come from it alone, so an item's image does not depend on the batch it is sampled in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from fpsynth.diffusion.config import SamplerConfig, SamplerKind
from fpsynth.diffusion.schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B, C, H, W), t (B,)) -> eps


def item_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per batch item, seeded with that item's seed."""
    return [torch.Generator(device).manual_seed(int(s)) for s in seeds]


def _per_item_noise(generators: Sequence[torch.Generator], shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    """(B, *shape) standard normal, row i drawn from generators[i]."""
    rows = [torch.randn(shape, generator=g, device=g.device) for g in generators]
    return torch.stack(rows).to(device)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced training steps, highest first: T=1000, 50 steps -> 980, 960, ..., 20, 0."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in 1..{num_timesteps}, got {steps}")
    stride = num_timesteps // steps
    return [i * stride for i in reversed(range(steps))]


def ddim_sample(
    eps_fn: EpsFn, schedule: NoiseSchedule, cfg: SamplerConfig, x_T: torch.Tensor, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """DDIM (Song et al. 2021, Eq. 12 and 16) from x_T (B, C, H, W) down to x_0."""
    ab = schedule.alphas_cumprod  # float64 (T,)
    ts = ddim_timesteps(schedule.num_timesteps, cfg.steps)
    x = x_T
    for i, t in enumerate(ts):
        ab_t = float(ab[t])
        ab_prev = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0  # past the last step: alpha_bar = 1
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        # (1) predicted x0 (paper Eq. 7, DDIM Eq. 12 "predicted x_0"), clipped to the data range
        x0 = (x - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
        if cfg.clip_x0:
            x0 = x0.clamp(-1, 1)
            # (2) the noise consistent with the clipped x0, as ADM does, so both terms agree
            eps = (x - ab_t**0.5 * x0) / (1 - ab_t) ** 0.5
        # (3) sigma_t (DDIM Eq. 16): eta = 0 deterministic, eta = 1 the DDPM posterior variance
        sigma = cfg.eta * ((1 - ab_prev) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_prev) ** 0.5
        # (4) direction pointing to x_t (DDIM Eq. 12)
        direction = max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
        # (5) x_{t-1} = sqrt(ab_prev) x0 + direction + sigma z, z drawn per item
        x = ab_prev**0.5 * x0 + direction
        if sigma > 0:
            x = x + sigma * _per_item_noise(generators, tuple(x.shape[1:]), x.device).to(x.dtype)
    return x


def dpm_solver_pp_sample(eps_fn: EpsFn, schedule: NoiseSchedule, cfg: SamplerConfig, x_T: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++ (2nd order multistep) through diffusers, configured from our betas; deterministic."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=schedule.num_timesteps,
        trained_betas=schedule.betas.numpy(),
        algorithm_type="dpmsolver++",
        solver_order=2,
        prediction_type="epsilon",
        # Thresholding with sample_max_value = 1 is exactly a clip of the predicted x0 to [-1, 1].
        thresholding=cfg.clip_x0,
        sample_max_value=1.0,
    )
    scheduler.set_timesteps(cfg.steps, device=x_T.device)
    x = x_T
    for t in scheduler.timesteps:
        eps = eps_fn(x, t.expand(x.shape[0]).to(torch.long))
        x = scheduler.step(eps, t, x).prev_sample
    return x


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    generators: Sequence[torch.Generator],
    shape: tuple[int, ...] = (3, 112, 112),
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Images (len(generators), *shape) in [-1, 1] (clipped) from pure noise."""
    x_T = _per_item_noise(generators, shape, device)
    if cfg.kind is SamplerKind.DDIM:
        x = ddim_sample(eps_fn, schedule, cfg, x_T, generators)
    else:
        x = dpm_solver_pp_sample(eps_fn, schedule, cfg, x_T)
    return x.clamp(-1, 1)

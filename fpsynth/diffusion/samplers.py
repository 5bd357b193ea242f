"""Samplers: DDIM (written here) and DPM-Solver++ (diffusers), selected by ``SamplerConfig.kind``.

Both take an ``eps_fn(x_t, t) -> eps`` closure, so conditions are computed once per batch by the
caller and reused at every step:

    style = model.style_features(x_style)
    cond = model.conditions(x_id, style)
    images = sample(lambda x, t: model(x, t, cond), schedule, cfg, item_generators(seeds))

Determinism: every batch item has its own ``torch.Generator``; its initial noise and its DDIM
noise come from it alone, so an item's image does not depend on the batch it is sampled in.
``SamplerConfig.noise = per_batch`` reproduces the authors' generation instead: one generator
seeded with the first item's seed, every draw a (B, 3, H, W) tensor from it (torch.manual_seed(seed)
then torch.randn, as their DDIMPipeline does), so images depend on the batch composition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from fpsynth.diffusion.config import DirectionEps, NoiseDraw, SamplerConfig, SamplerKind
from fpsynth.diffusion.schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B, C, H, W), t (B,)) -> eps


def item_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per batch item, seeded with that item's seed."""
    return [torch.Generator(device).manual_seed(int(s)) for s in seeds]


class NoiseSource:
    """(B, *shape) standard normal draws: row i from generators[i], or all rows from generators[0]."""

    def __init__(self, generators: Sequence[torch.Generator], per_batch: bool = False) -> None:
        self.generators, self.per_batch = list(generators), per_batch

    def draw(self, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
        if self.per_batch:
            g = self.generators[0]
            return torch.randn((len(self.generators), *shape), generator=g, device=g.device).to(device)
        rows = [torch.randn(shape, generator=g, device=g.device) for g in self.generators]
        return torch.stack(rows).to(device)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced training steps, highest first: T=1000, 50 steps -> 980, 960, ..., 20, 0."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in 1..{num_timesteps}, got {steps}")
    stride = num_timesteps // steps
    return [i * stride for i in reversed(range(steps))]


@dataclasses.dataclass
class DDIMStep:
    prev_sample: torch.Tensor  # x_{t_prev} (B, C, H, W)
    pred_x0: torch.Tensor  # the (clipped) predicted x0 (B, C, H, W)


def ddim_step(
    x: torch.Tensor, eps: torch.Tensor, ab_t: float, ab_prev: float, cfg: SamplerConfig, z: torch.Tensor | None
) -> DDIMStep:
    """One DDIM update (Song et al. 2021, Eq. 12 and 16) from x_t with the network's ``eps``.

    ``ab_t``/``ab_prev`` are alpha_bar at t and at the next (lower) timestep, 1.0 past the last
    one; ``z`` (B, C, H, W) is the Gaussian draw, used when sigma_t > 0.
    """
    # (1) predicted x0 (paper Eq. 7, DDIM Eq. 12 "predicted x_0"), clipped to the data range
    x0 = (x - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
    if cfg.clip_x0:
        x0 = x0.clamp(-1, 1)
        if cfg.direction_eps is DirectionEps.CLIPPED:
            # (2) optionally the noise consistent with the clipped x0 (ADM's way); by default the
            # direction term keeps the network's eps, as DDIM and the authors' sampler do
            eps = (x - ab_t**0.5 * x0) / (1 - ab_t) ** 0.5
    # (3) sigma_t (DDIM Eq. 16): eta = 0 deterministic, eta = 1 the DDPM posterior variance
    sigma = cfg.eta * ((1 - ab_prev) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_prev) ** 0.5
    # (4) direction pointing to x_t (DDIM Eq. 12)
    direction = max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
    # (5) x_{t-1} = sqrt(ab_prev) x0 + direction + sigma z
    prev = ab_prev**0.5 * x0 + direction
    if sigma > 0:
        if z is None:
            raise ValueError("a DDIM step with eta > 0 needs its Gaussian draw z")
        prev = prev + sigma * z.to(prev.dtype)
    return DDIMStep(prev, x0)


def ddim_sample(
    eps_fn: EpsFn, schedule: NoiseSchedule, cfg: SamplerConfig, x_T: torch.Tensor,
    generators: Sequence[torch.Generator] | NoiseSource,
) -> torch.Tensor:
    """DDIM from x_T (B, C, H, W) down to x_0: :func:`ddim_step` at 980, 960, ..., 0 (T=1000, 50 steps)."""
    noise = generators if isinstance(generators, NoiseSource) else NoiseSource(generators)
    ab = schedule.alphas_cumprod  # float64 (T,)
    ts = ddim_timesteps(schedule.num_timesteps, cfg.steps)
    x = x_T
    for i, t in enumerate(ts):
        ab_t = float(ab[t])
        ab_prev = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0  # past the last step: alpha_bar = 1
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        z = noise.draw(tuple(x.shape[1:]), x.device) if cfg.eta > 0 and ab_prev < 1.0 else None
        x = ddim_step(x, eps, ab_t, ab_prev, cfg, z).prev_sample
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
    noise = NoiseSource(generators, per_batch=cfg.noise is NoiseDraw.PER_BATCH)
    x_T = noise.draw(shape, device)
    if cfg.kind is SamplerKind.DDIM:
        x = ddim_sample(eps_fn, schedule, cfg, x_T, noise)
    else:
        x = dpm_solver_pp_sample(eps_fn, schedule, cfg, x_T)
    return x.clamp(-1, 1)

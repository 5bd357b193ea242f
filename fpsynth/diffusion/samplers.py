"""Samplers as objects (the diffusers shape), registered by ``SamplerKind``, driven by one loop.

A sampler is told its number of steps (``set_timesteps``), then takes one ``step`` per timestep
from the network's eps and returns a :class:`StepOutput`. :func:`denoise` is the only loop, and
:func:`sample_conditioned` the only place that turns a conditioned model into images (generate,
the report's aFID, train's sample grids and ``fpsynth.load_model(...).sample`` all call it):

    images = sample_conditioned(model, x_id, x_style, item_generators(seeds), schedule, cfg)

Adding a sampler: a ``SamplerKind`` member (its config value) and a :class:`Sampler` subclass
decorated with ``@register(kind)`` (``uses_eta = True`` if ``SamplerConfig.eta`` applies to it).

Determinism: every batch item has its own ``torch.Generator``; its initial noise and its DDIM
noise come from it alone, so an item's image does not depend on the batch it is sampled in.
``SamplerConfig.noise = per_batch`` reproduces the authors' generation instead: one generator
seeded with the first item's seed, every draw a (B, 3, H, W) tensor from it (torch.manual_seed(seed)
then torch.randn, as their DDIMPipeline does), so images depend on the batch composition.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from fpsynth.diffusion.config import DirectionEps, NoiseDraw, SamplerConfig, SamplerKind
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.seeds import torch_generator

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B, C, H, W), t (B,)) -> eps
IMAGE_SHAPE = (3, 112, 112)


def item_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per batch item, seeded with that item's seed."""
    return [torch_generator(s, "item-noise", device=device) for s in seeds]


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


@dataclasses.dataclass
class StepOutput:
    prev_sample: torch.Tensor  # x_{t_prev} (B, C, H, W)
    pred_original_sample: torch.Tensor  # the (clipped) predicted x0 (B, C, H, W)

    @property
    def pred_x0(self) -> torch.Tensor:  # the paper's name, x0_hat
        return self.pred_original_sample


class Sampler(abc.ABC):
    """One reverse-diffusion rule over a noise schedule: ``set_timesteps(n)``, then ``step`` at each timestep."""

    uses_eta: ClassVar[bool] = False  # whether SamplerConfig.eta means anything to it (shown beside its name)

    def __init__(self, schedule: NoiseSchedule, cfg: SamplerConfig) -> None:
        self.schedule, self.cfg = schedule, cfg
        self.timesteps: list[int] = []  # training timesteps, highest first

    @abc.abstractmethod
    def set_timesteps(self, steps: int, device: torch.device | str = "cpu") -> None:
        """Choose ``steps`` timesteps for a loop on ``device``."""

    @abc.abstractmethod
    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource | None = None) -> StepOutput:
        """x_t (B, C, H, W) and the network's eps at it -> x at the next timestep; ``noise`` for stochastic rules."""


SAMPLERS: dict[SamplerKind, type[Sampler]] = {}
_S = TypeVar("_S", bound=type[Sampler])


def register(kind: SamplerKind) -> Callable[[_S], _S]:
    """Class decorator: the sampler that ``SamplerConfig(kind=kind)`` selects."""

    def add(cls: _S) -> _S:
        SAMPLERS[kind] = cls
        return cls

    return add


def sampler_class(kind: SamplerKind) -> type[Sampler]:
    return SAMPLERS[kind]


def make_sampler(schedule: NoiseSchedule, cfg: SamplerConfig) -> Sampler:
    """The registered sampler of ``cfg.kind``, configured by ``cfg`` (its timesteps not yet set)."""
    return sampler_class(cfg.kind)(schedule, cfg)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """Evenly spaced training steps, highest first: T=1000, 50 steps -> 980, 960, ..., 20, 0."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in 1..{num_timesteps}, got {steps}")
    stride = num_timesteps // steps
    return [i * stride for i in reversed(range(steps))]


def ddim_step(
    x: torch.Tensor, eps: torch.Tensor, ab_t: float, ab_prev: float, cfg: SamplerConfig, z: torch.Tensor | None
) -> StepOutput:
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
    return StepOutput(prev, x0)


@register(SamplerKind.DDIM)
class DDIM(Sampler):
    """DDIM written here (:func:`ddim_step`), eta configurable (1 = the authors' setting)."""

    uses_eta = True

    def __init__(self, schedule: NoiseSchedule, cfg: SamplerConfig) -> None:
        super().__init__(schedule, cfg)
        self._next: dict[int, int | None] = {}  # timestep -> the one after it (None after the last)

    def set_timesteps(self, steps: int, device: torch.device | str = "cpu") -> None:
        self.timesteps = ddim_timesteps(self.schedule.num_timesteps, steps)
        self._next = dict(zip(self.timesteps, [*self.timesteps[1:], None]))

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource | None = None) -> StepOutput:
        ab = self.schedule.alphas_cumprod  # float64 (T,)
        if t not in self._next:
            raise ValueError(f"timestep {t} is not one of this DDIM's {len(self.timesteps)} (call set_timesteps first)")
        after = self._next[t]
        ab_prev = float(ab[after]) if after is not None else 1.0  # past the last step: alpha_bar = 1
        drawn = noise is not None and self.cfg.eta > 0 and ab_prev < 1.0
        z = noise.draw(tuple(x.shape[1:]), x.device) if noise is not None and drawn else None
        return ddim_step(x, model_output, float(ab[t]), ab_prev, self.cfg, z)


@register(SamplerKind.DPM_SOLVER_PP)
class DPMSolverPP(Sampler):
    """DPM-Solver++ (2nd order multistep) through diffusers, configured from our betas; deterministic."""

    def __init__(self, schedule: NoiseSchedule, cfg: SamplerConfig) -> None:
        super().__init__(schedule, cfg)
        # from its module: diffusers' package __init__ reads to a type checker as its torch-less dummies
        from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

        self._scheduler = DPMSolverMultistepScheduler(
            num_train_timesteps=schedule.num_timesteps,
            trained_betas=schedule.betas.numpy(),
            algorithm_type="dpmsolver++",
            solver_order=2,
            prediction_type="epsilon",
            # Thresholding with sample_max_value = 1 is exactly a clip of the predicted x0 to [-1, 1].
            thresholding=cfg.clip_x0,
            sample_max_value=1.0,
        )

    def set_timesteps(self, steps: int, device: torch.device | str = "cpu") -> None:
        self._scheduler.set_timesteps(steps, device=device)
        self.timesteps = self._scheduler.timesteps.tolist()

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, noise: NoiseSource | None = None) -> StepOutput:
        prev = self._scheduler.step(model_output, t, x).prev_sample
        return StepOutput(prev, self._scheduler.model_outputs[-1])  # the solver's (thresholded) x0 prediction


def denoise(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    x_T: torch.Tensor,
    generators: Sequence[torch.Generator] | NoiseSource,
) -> torch.Tensor:
    """The sampling loop: x_T (B, C, H, W) down to x_0 (not clamped) with ``cfg``'s sampler, eps from ``eps_fn``."""
    noise = generators if isinstance(generators, NoiseSource) else NoiseSource(generators)
    sampler = make_sampler(schedule, cfg)
    sampler.set_timesteps(cfg.steps, device=x_T.device)
    x = x_T
    for t in sampler.timesteps:
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        x = sampler.step(eps, t, x, noise).prev_sample
    return x


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    generators: Sequence[torch.Generator],
    shape: tuple[int, ...] = IMAGE_SHAPE,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Images (len(generators), *shape) in [-1, 1] (clipped) from pure noise."""
    noise = NoiseSource(generators, per_batch=cfg.noise is NoiseDraw.PER_BATCH)
    x_T = noise.draw(shape, device)
    return denoise(eps_fn, schedule, cfg, x_T, noise).clamp(-1, 1)


class ConditionedModel(Protocol):
    """What :func:`sample_conditioned` needs of a model (``fpsynth.models.ccfexp.CCFExp``)."""

    def style_features(self, x0: torch.Tensor) -> Any: ...
    def conditions(self, x_id: torch.Tensor, style: Any) -> Any: ...
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor: ...


@torch.no_grad()
def sample_conditioned(
    model: ConditionedModel,
    x_id: torch.Tensor,
    x_style: torch.Tensor,
    generators: Sequence[torch.Generator],
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    *,
    device: torch.device | str = "cpu",
    network: Callable[..., torch.Tensor] | None = None,
    amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Conditioned sampling: x_id, x_style (B, 3, 112, 112) in [-1, 1] -> images (B, 3, 112, 112) in [-1, 1] fp32.

    The conditions are computed once per batch; at every step the denoiser (``network``, e.g. a
    compiled ``model``; default ``model``) runs under ``amp()`` on ``memory_format`` inputs and its
    eps is cast to fp32, so the sampler's own arithmetic is fp32 whatever the network's precision.
    """
    x_id = x_id.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    x_style = x_style.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    with amp():
        cond = model.conditions(x_id, model.style_features(x_style))
    denoiser = model if network is None else network

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with amp():
            eps = denoiser(x.contiguous(memory_format=memory_format), t, cond)
        return eps.float()

    return sample(eps_fn, schedule, cfg, generators, IMAGE_SHAPE, device)

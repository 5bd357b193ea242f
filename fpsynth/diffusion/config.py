"""Diffusion, loss and sampler settings (defaults: the paper and the authors' code, DESIGN.md).

These are meant to be fields of the stage configs that use them (``[train.diffusion]``,
``[train.loss]``, ``[generate.sampler]``); they are plain frozen dataclasses so checkpoints can
store them with ``fpsynth.config.to_dict``.
"""

from __future__ import annotations

import dataclasses
import enum


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Linear beta schedule, epsilon prediction."""

    num_timesteps: int = 1000  # T
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.num_timesteps < 1 or not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError("need num_timesteps >= 1 and 0 < beta_start <= beta_end < 1")


class SecondPassConditions(enum.Enum):
    """What the cycle's second pass conditions on and compares with (``fpsynth.diffusion.cycle``)."""

    FIRST_PASS = "first_pass"  # Algorithm 1: the first pass's conditions; L'_id against f(x_id), f(x0) (default)
    # The authors' code: style image := x0_hat (with gradient), its expression and landmark
    # conditions recomputed (identity image unchanged); L'_id against f(x_id) and f(x0_hat), L'_lm against x0.
    RECOMPUTE_FROM_X0_HAT = "recompute_from_x0_hat"


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Algorithm 1: L = L_first + sigma * L_second, each = MSE + lambda*L_id + gamma*scale*L_lm."""

    lambda_id: float = 0.05
    gamma_lm: float = 1.0
    landmark_scale: float = 10.0  # the authors multiply their landmark MSE by 10 (gamma stays 1)
    sigma: float = 0.3
    cycle: bool = True  # ablation "no cycle" (CCFExp^2): first pass only
    second_pass_conditions: SecondPassConditions = SecondPassConditions.FIRST_PASS


class SamplerKind(enum.Enum):
    DDIM = "ddim"  # written here, eta configurable (1 = the authors' setting)
    DPM_SOLVER_PP = "dpm-solver++"  # diffusers' DPMSolverMultistepScheduler, configured from our betas


class DirectionEps(enum.Enum):
    """The noise in DDIM's "direction pointing to x_t" term once the predicted x0 is clipped."""

    NETWORK = "network"  # the network's eps (DDIM Eq. 12; the authors: use_clipped_model_output=False)
    CLIPPED = "clipped"  # the eps implied by the clipped x0 (ADM's way; fpsynth before 0.2)


class NoiseDraw(enum.Enum):
    """Where the sampler's Gaussian draws come from."""

    PER_ITEM = "per_item"  # one generator per item: an item's image never depends on its batch (default)
    PER_BATCH = "per_batch"  # the authors': ONE generator seeded with the batch's first seed, (B, ...) per draw


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    kind: SamplerKind = SamplerKind.DDIM
    steps: int = 50
    eta: float = 1.0  # DDIM only: 0 deterministic, 1 DDPM-like (the authors' setting)
    clip_x0: bool = True  # clip the predicted x0 to [-1, 1] at every step
    direction_eps: DirectionEps = DirectionEps.NETWORK  # DDIM only
    noise: NoiseDraw = NoiseDraw.PER_ITEM

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")
        if self.eta < 0:
            raise ValueError(f"DDIM eta must be >= 0, got {self.eta}")

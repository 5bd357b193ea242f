"""Algorithm 1 of the paper: the cycle-diffusion training loss.

For one batch, with the SAME noise eps and timesteps t in both passes:

    1. x_t      = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps                      (forward diffusion)
    2. eps_hat  = eps_theta(x_t, t, c)                                     (first pass)
    3. x0_hat   = clip((x_t - sqrt(1 - ab_t) eps_hat) / sqrt(ab_t))        (Eq. 7)
    4. L_first  = MSE(eps, eps_hat) + lambda L_id(x0_hat) + gamma s L_lm(x0_hat)
    5. x_t'     = sqrt(ab_t) x0_hat + sqrt(1 - ab_t) eps                   (second diffusion)
    6. eps'     = eps_theta(x_t', t, c')                                   (second pass)
    7. x0_hat'  = clip((x_t - sqrt(1 - ab_t) eps') / sqrt(ab_t))           (the FIRST pass's x_t)
    8. L_second = MSE(eps, eps') + lambda L_id(x0_hat') + gamma s L_lm(x0_hat')
    9. L        = L_first + sigma L_second

L_id and L_lm compare with the ORIGINAL x0 (and x_id) through targets computed once per batch by
the frozen networks, and c' = c (Algorithm 1). x0_hat is not detached: the second pass's losses
also reach the first pass's prediction, as the computation graph of Algorithm 1 has it. With
``cycle`` off only L_first is computed (ablation CCFExp^2).

``second_pass_conditions = RECOMPUTE_FROM_X0_HAT`` is what the authors' code does instead (their
trainer sets the batch's style image to x0_hat before the second pass):

    6'. c'      = conditions(x_id, style = x0_hat)   expression and landmark features of x0_hat WITH
                                                     gradient (frozen weights); the identity image unchanged
    8'. L_id    = mean[ t/T (1 - cos(f(x0_hat'), f(x_id))) + (1 - t/T) (1 - cos(f(x0_hat'), f(x0_hat))) ]
                  f(x0_hat) with gradient; L_lm still against D_LM(x0) of the ORIGINAL x0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from fpsynth.diffusion.config import LossConfig, SecondPassConditions
from fpsynth.diffusion.losses import identity_loss, landmark_loss, mse_eps
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import LossTargets

Denoiser = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]  # (x_t, t, conditions) -> eps_hat
ImageNet = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) -> features / landmarks


@dataclasses.dataclass(frozen=True)
class CycleLosses:
    """Every term of Algorithm 1: ``total`` carries the graph; the rest are floats for logging."""

    total: torch.Tensor  # scalar L = L_first + sigma * L_second
    first: float  # L_first
    mse: float
    identity: float
    landmark: float | None  # None when there is no landmark loss
    second: float | None = None  # L_second; None with cycle off
    mse2: float | None = None
    identity2: float | None = None
    landmark2: float | None = None

    def as_dict(self) -> dict[str, float]:
        """Loss name -> value, terms that do not apply left out; 'loss' is the total."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "total"}
        return {"loss": float(self.total.detach()), **{k: v for k, v in values.items() if v is not None}}


@dataclasses.dataclass
class _Pass:
    total: torch.Tensor
    mse: torch.Tensor
    identity: torch.Tensor
    landmark: torch.Tensor | None


def _pass_losses(
    eps_hat: torch.Tensor,
    eps: torch.Tensor,
    x0_hat: torch.Tensor,
    t: torch.Tensor,
    targets: LossTargets,
    recognize: ImageNet,
    detect_landmarks: ImageNet | None,
    cfg: LossConfig,
    num_timesteps: int,
) -> _Pass:
    mse = mse_eps(eps_hat, eps)
    ident = identity_loss(recognize(x0_hat), targets.id_of_xid, targets.id_of_x0, t, num_timesteps)
    total = mse + cfg.lambda_id * ident
    lm = None
    if detect_landmarks is not None:
        if targets.landmarks_of_x0 is None:
            raise ValueError("a landmark loss needs targets.landmarks_of_x0")
        lm = landmark_loss(detect_landmarks(x0_hat), targets.landmarks_of_x0)
        total = total + cfg.gamma_lm * cfg.landmark_scale * lm
    return _Pass(total, mse, ident, lm)


def _value(x: torch.Tensor | None) -> float | None:
    return None if x is None else float(x.detach())


def cycle_losses(
    denoise: Denoiser,
    recognize: ImageNet,
    detect_landmarks: ImageNet | None,
    schedule: NoiseSchedule,
    cfg: LossConfig,
    x0: torch.Tensor,
    cond: Any,
    targets: LossTargets,
    t: torch.Tensor,
    eps: torch.Tensor,
    recondition: Callable[[torch.Tensor], Any] | None = None,
) -> CycleLosses:
    """Algorithm 1 for one batch.

    denoise: eps_theta(x_t, t, cond). recognize: the frozen identity network f. detect_landmarks:
    the frozen D_LM, or None for no landmark loss. x0 (B, 3, H, W) style images in [-1, 1];
    cond: the batch's conditions (opaque here); targets: f(x_id), f(x0), D_LM(x0); t (B,) int;
    eps (B, 3, H, W) the noise. recondition(x0_hat) -> conditions with x0_hat as the style image
    (gradients must reach x0_hat), needed only for ``SecondPassConditions.RECOMPUTE_FROM_X0_HAT``.
    """
    T = schedule.num_timesteps
    x_t = schedule.q_sample(x0, t, eps)  # step 1
    eps_hat = denoise(x_t, t, cond)  # step 2
    x0_hat = schedule.predict_x0(x_t, t, eps_hat)  # step 3
    first = _pass_losses(eps_hat, eps, x0_hat, t, targets, recognize, detect_landmarks, cfg, T)  # step 4
    if not cfg.cycle:
        return CycleLosses(
            first.total,
            float(first.total.detach()),
            float(first.mse.detach()),
            float(first.identity.detach()),
            _value(first.landmark),
        )

    x_t2 = schedule.q_sample(x0_hat, t, eps)  # step 5: same eps and t
    if cfg.second_pass_conditions is SecondPassConditions.FIRST_PASS:
        cond2, targets2 = cond, targets
    elif recondition is None:
        raise ValueError("second_pass_conditions = 'recompute_from_x0_hat' needs a recondition callable")
    else:  # the authors' code: x0_hat is the second pass's style image (steps 6' and 8' above)
        cond2 = recondition(x0_hat)
        targets2 = dataclasses.replace(targets, id_of_x0=recognize(x0_hat))  # (B, E) f(x0_hat), with gradient
    eps_hat2 = denoise(x_t2, t, cond2)  # step 6
    x0_hat2 = schedule.predict_x0(x_t, t, eps_hat2)  # step 7: restored from the FIRST pass's x_t
    second = _pass_losses(eps_hat2, eps, x0_hat2, t, targets2, recognize, detect_landmarks, cfg, T)  # step 8
    total = first.total + cfg.sigma * second.total  # step 9
    return CycleLosses(
        total,
        float(first.total.detach()),
        float(first.mse.detach()),
        float(first.identity.detach()),
        _value(first.landmark),
        float(second.total.detach()),
        float(second.mse.detach()),
        float(second.identity.detach()),
        _value(second.landmark),
    )

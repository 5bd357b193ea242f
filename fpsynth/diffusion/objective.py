"""The training objective of a CCFExp model as one module: frozen features, conditions, Algorithm 1.

``CycleObjective(model, schedule, loss_cfg)(x0, x_id, t, eps) -> CycleLosses``. Everything with
trainable parameters runs inside this one ``forward``, so the module can be wrapped in
DistributedDataParallel as it is (both U-Net passes belong to one forward and one backward).
"""

from __future__ import annotations

import torch
from torch import nn

from fpsynth.diffusion.config import LossConfig, SecondPassConditions
from fpsynth.diffusion.cycle import CycleLosses, cycle_losses
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import CCFExp, Conditions


class CycleObjective(nn.Module):
    def __init__(self, model: CCFExp, schedule: NoiseSchedule, cfg: LossConfig) -> None:
        super().__init__()
        self.model, self.schedule, self.cfg = model, schedule, cfg

    def forward(self, x0: torch.Tensor, x_id: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> CycleLosses:
        """x0 style images, x_id identity images (B, 3, 112, 112) in [-1, 1]; t (B,) int; eps like x0."""
        model = self.model
        frozen = model.frozen_features(x0, x_id)  # once per batch, reused by both passes
        cond = model.conditions(x_id, frozen.style)

        def recondition(x0_hat: torch.Tensor) -> Conditions:
            # the authors' second pass: x0_hat is the style image, gradients flow through the frozen networks
            return model.conditions(x_id, model.style_features_with_grad(x0_hat))

        recompute = self.cfg.second_pass_conditions is SecondPassConditions.RECOMPUTE_FROM_X0_HAT
        return cycle_losses(
            model,
            model.recognize,
            model.detect_landmarks if model.has_landmarks else None,
            self.schedule,
            self.cfg,
            x0,
            cond,
            frozen.targets,
            t,
            eps,
            recondition=recondition if recompute else None,
        )

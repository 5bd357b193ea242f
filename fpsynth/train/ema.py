"""Exponential moving average of the U-Net's weights (sampling uses the average, not the raw weights).

d(k) = min(1 - (1 + k)^-power, max_decay): d(0) = 0 copies the weights, and the average forgets
its start quickly at first (d(1) = 0.41, d(100) = 0.97) before settling at max_decay (0.9999, the
authors' setting, reached after about 2.2e5 updates). Update n (counting from 0, one per optimizer
step) is timed by ``EMAConfig.timing``:

- ``before_step`` (the authors' EMAModel in their training_step, default): taken before optimizer
  step n, on the weights that step starts from, with decay d(n - 1) (0 for n = 0 and 1). After N
  steps the average holds the weights of steps 0 .. N-1, not the newest.
- ``after_step``: taken after optimizer step n, with decay d(n).

The shadow weights are fp32 whatever the training precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from fpsynth.train.config import EMAConfig, EMATiming


def ema_decay(k: int, cfg: EMAConfig) -> float:
    """Decay of update ``k`` (0-based): d(k), or d(k - 1) on the authors' timing (0 for k <= 1)."""
    n = k - 1 if cfg.timing is EMATiming.BEFORE_STEP else k
    return min(1.0 - (1.0 + n) ** -cfg.power, cfg.max_decay) if n > 0 else 0.0


class EMA:
    """Shadow copy of ``module``'s state (parameters averaged, buffers copied)."""

    def __init__(self, module: nn.Module, cfg: EMAConfig) -> None:
        self.cfg = cfg
        self.updates = 0  # number of update() calls so far = k of the next update
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
        self._param_names = [n for n, _ in module.named_parameters()]

    @property
    def before_step(self) -> bool:
        """True when updates are taken before the optimizer step (the authors' timing)."""
        return self.cfg.timing is EMATiming.BEFORE_STEP

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """shadow <- d shadow + (1 - d) weights; once per optimizer step, before or after it (``before_step``)."""
        weight = 1.0 - ema_decay(self.updates, self.cfg)
        params = dict(module.named_parameters())
        shadow = [self.shadow[n] for n in self._param_names]
        torch._foreach_lerp_(shadow, [params[n].detach().float() for n in self._param_names], weight)
        for name, buf in module.named_buffers():
            self.shadow[name].copy_(buf)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        missing, unexpected = sorted(set(self.shadow) - set(state)), sorted(set(state) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA state does not fit the module: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)
        self.updates = updates

    @contextlib.contextmanager
    def applied_to(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``module`` (for sampling); restored on exit."""
        saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.shadow)
        try:
            yield module
        finally:
            module.load_state_dict(saved)

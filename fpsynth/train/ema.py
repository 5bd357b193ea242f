"""Exponential moving average of the U-Net's weights (sampling uses the average, not the raw weights).

Update k (counting from 0, one per optimizer step) uses decay d_k = min(1 - (1 + k)^-power,
max_decay): d_0 = 0 copies the weights, and the average forgets its random start quickly at first
(d_1 = 0.41, d_100 = 0.97) before settling at max_decay (0.9999, the authors' setting, reached
after about 2.2e5 updates). The shadow weights are fp32 whatever the training precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from fpsynth.train.config import EMAConfig


def ema_decay(k: int, cfg: EMAConfig) -> float:
    """Decay of update ``k`` (0-based)."""
    return min(1.0 - (1.0 + k) ** -cfg.power, cfg.max_decay)


class EMA:
    """Shadow copy of ``module``'s state (parameters averaged, buffers copied)."""

    def __init__(self, module: nn.Module, cfg: EMAConfig) -> None:
        self.cfg = cfg
        self.updates = 0  # number of update() calls so far = k of the next update
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
        self._param_names = [n for n, _ in module.named_parameters()]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """shadow <- d shadow + (1 - d) weights, after an optimizer step."""
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

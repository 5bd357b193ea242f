"""``[train]`` configuration."""

from __future__ import annotations

import dataclasses

from fpsynth.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()

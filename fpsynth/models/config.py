"""Model configuration (stored inside every checkpoint so loading never drifts)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    image_size: int = 112

"""``[generate]`` configuration."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    count: int = 1000

"""``[report]`` configuration."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    max_images: int = 10000

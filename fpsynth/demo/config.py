"""``[demo]`` configuration: the built-in synthetic dataset."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    subjects: int = 8

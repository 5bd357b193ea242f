"""``[prepare]`` configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    meei: Path | None = None  # MEEI-style tree of per-subject videos and photos
    aflfp: Path | None = None  # AFLFP-style images with 68-point .pts annotations
    images: Path | None = None  # plain folder of face photos
    scores: Path | None = None  # CSV: subject, eFACE[, House-Brackmann, Sunnybrook]

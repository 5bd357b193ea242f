"""``[demo]`` configuration: the built-in synthetic palsy dataset (rendered faces, never clinical).

A section of the pipeline config, so it sits below :mod:`fpsynth.pipeline` (which holds it) and
:mod:`fpsynth.demo` (which renders it and runs the pipeline on it); it imports nothing of fpsynth.
"""

from __future__ import annotations

import dataclasses
import enum


class Movement(str, enum.Enum):
    """The clinical movements a synthetic subject performs (eFACE / Sunnybrook voluntary set)."""

    BROW_RAISE = "brow_raise"
    EYE_CLOSE_GENTLE = "eye_close_gentle"
    EYE_CLOSE_TIGHT = "eye_close_tight"
    SMILE_CLOSED = "smile_closed"
    SMILE_OPEN = "smile_open"
    LIP_PUCKER = "lip_pucker"
    NOSE_WRINKLE = "nose_wrinkle"
    LOWER_LIP_DEPRESS = "lower_lip_depress"


@dataclasses.dataclass(frozen=True)
class PoseJitter:
    """Per-image global similarity transform, drawn uniformly in +-these bounds."""

    rotation_deg: float = 4.0
    scale: float = 0.05  # relative: 0.05 -> scale in [0.95, 1.05]
    shift: float = 0.03  # fraction of the image size, each axis


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    subjects: int = 12  # synthetic "patients" (training subjects), ids synthetic-001...
    movements: tuple[Movement, ...] = tuple(Movement)
    frames: int = 6  # frames per movement clip: neutral -> onset -> development -> peak -> dissipation
    image_size: int = 256  # square PNGs
    # Palsy severity (0 none .. 1 complete) of subject k is severities[k % len]; the default spans
    # all six eFACE categories (normal .. complete), see fpsynth.demo.scores.
    severities: tuple[float, ...] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.62, 0.8, 1.0)
    ids: int = 8  # extra neutral identities (not among the subjects) for `fpsynth generate --ids`
    pose: PoseJitter = PoseJitter()
    noise: float = 0.0  # std of per-pixel sensor noise in 8-bit levels (noise makes PNGs ~4x larger)

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError("subjects must be >= 1")
        if self.frames < 2:
            raise ValueError("frames must be >= 2 (a neutral and a peak frame at least)")
        if self.image_size < 64:
            raise ValueError("image_size must be >= 64 pixels")
        if not self.movements:
            raise ValueError("movements must name at least one movement")
        if len(set(self.movements)) != len(self.movements):
            raise ValueError("movements must not repeat")
        if not self.severities or any(not 0.0 <= s <= 1.0 for s in self.severities):
            raise ValueError("severities must be a non-empty list of numbers in [0, 1]")
        if self.ids < 0 or self.noise < 0:
            raise ValueError("ids and noise must be >= 0")

"""The ``[utility]`` section of a pipeline: tasks, graders, regimes, repeats and bootstrap."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path


class Grader(str, enum.Enum):
    GEOMETRY = "geometry"  # landmark asymmetry features + a scikit-learn model
    APPEARANCE = "appearance"  # a small CNN on the 112x112 crops


class GeometryModel(str, enum.Enum):
    LINEAR = "linear"  # logistic regression (classes) / ridge (ordinal, eFACE)
    BOOSTING = "boosting"  # gradient boosting classifier / regressor


@dataclasses.dataclass(frozen=True)
class GeometryConfig:
    model: GeometryModel = GeometryModel.LINEAR
    c: float = 1.0  # inverse L2 strength of the logistic regression (ridge alpha = 1 / c)
    trees: int = 100  # boosting only

    def __post_init__(self) -> None:
        if self.c <= 0 or self.trees < 1:
            raise ValueError("geometry.c must be > 0 and geometry.trees >= 1")


@dataclasses.dataclass(frozen=True)
class AppearanceConfig:
    epochs: int = 8  # fixed: no early stopping on the test subjects
    batch_size: int = 64
    lr: float = 1e-3
    width: int = 16  # channels of the first conv layer (x2, x4, x4 below)
    device: str = "cpu"  # "cuda" when asked

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.width < 1:
            raise ValueError("appearance.epochs, batch_size and width must be >= 1, lr > 0")


@dataclasses.dataclass(frozen=True)
class UtilityConfig:
    run: Path | None = None  # generated dataset folder (default WORKSPACE/generate)
    tasks: tuple[str, ...] = ("palsy", "severity", "eface", "side")  # each run where its labels exist
    graders: tuple[Grader, ...] = (Grader.GEOMETRY, Grader.APPEARANCE)
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # synthetic images per real training image
    synthetic_only: bool = True
    repeats: int = 3  # seeds per regime (model init, synthetic draw)
    bootstrap: int = 1000  # resamples of the TEST SUBJECTS for the confidence intervals
    confidence: float = 0.95
    max_synthetic: int = 0  # cap on the generated images read (0: all), a seeded subset
    batch_size: int = 256  # images per landmark / loading batch
    geometry: GeometryConfig = GeometryConfig()
    appearance: AppearanceConfig = AppearanceConfig()

    def __post_init__(self) -> None:
        from fpsynth.utility.tasks import TASKS

        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"tasks {unknown or '[]'} unknown; choose from {list(TASKS)}")
        if not self.graders or len(set(self.graders)) != len(self.graders):
            raise ValueError("graders must name at least one grader, without repeats")
        if any(r <= 0 for r in self.ratios):
            raise ValueError("ratios must be > 0")
        if self.repeats < 1 or self.bootstrap < 0 or self.max_synthetic < 0 or self.batch_size < 1:
            raise ValueError("repeats and batch_size must be >= 1, bootstrap and max_synthetic >= 0")
        if not 0.5 <= self.confidence < 1:
            raise ValueError("confidence must be in [0.5, 1)")

"""The ``[utility]`` section of a pipeline: tasks, graders, regimes, repeats and bootstrap."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

from fpsynth.nets.config import IRConfig


class Grader(str, enum.Enum):
    GEOMETRY = "geometry"  # landmark asymmetry features + a scikit-learn model
    APPEARANCE = "appearance"  # a small CNN on the 112x112 crops
    IR50 = "ir50"  # frozen IR-50 embeddings (weights.ir50_id) + a linear head


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


class AppearanceInput(str, enum.Enum):
    """What the CNN sees of an aligned crop x (H, W, 3); flip = the left-right mirror image."""

    MIRROR = "mirror"  # x - flip(x): the face's left-right asymmetry alone (what a one-sided palsy changes)
    RGB = "rgb"  # the crop as it is: identity, skin and background dominate a small training set
    BOTH = "both"  # the crop and its mirror difference, 6 channels


@dataclasses.dataclass(frozen=True)
class AppearanceConfig:
    epochs: int = 20  # passes over the training set: fixed, no early stopping on the test subjects
    max_steps: int = 500  # ... but never more optimizer steps than this (0: no cap); see README
    batch_size: int = 32
    lr: float = 1e-3
    width: int = 16  # channels of the first conv layer (x2, x4, x4 below)
    side: int = 56  # the crop is area-shrunk to side x side px first: a palsy's asymmetry is coarse, and
    #                 half the side is a quarter of the CNN's work (112 = the crop as it is)
    input: AppearanceInput = AppearanceInput.MIRROR
    device: str = "cpu"  # "cuda" when asked

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.width < 1 or self.max_steps < 0:
            raise ValueError("appearance.epochs and width must be >= 1, batch_size >= 2, lr > 0, max_steps >= 0")
        if not 16 <= self.side <= 112 or self.side % 2:
            raise ValueError(f"appearance.side must be an even number of pixels in 16-112, not {self.side}")


@dataclasses.dataclass(frozen=True)
class Ir50GraderConfig:
    """Frozen IR-50 features + a linear head (logistic regression / ridge), where weights.ir50_id is set."""

    network: IRConfig = IRConfig()  # the layout of the weights.ir50_id file (IR-50, AdaFace keys)
    mirror: bool = True  # features [e(x), e(x) - e(flip x)] (1024) instead of e(x) (512)
    c: float = 1.0  # inverse L2 strength of the head (ridge alpha = 1 / c)
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.c <= 0 or self.batch_size < 1:
            raise ValueError("ir50.c must be > 0 and ir50.batch_size >= 1")


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
    ir50: Ir50GraderConfig = Ir50GraderConfig()

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

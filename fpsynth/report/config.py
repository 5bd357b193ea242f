"""``[report]`` configuration: what the report evaluates, on how many images, and how it shows them.

Defaults are the paper's protocol (aFID over every test patient's frames, sampled with the
authors' DDIM setting: 50 steps, eta 1) and the metric library's standard settings
(:class:`fpsynth.metrics.config.MetricsConfig`). The caps (``max_images``, the aFID counts) are
what keeps tiny and demo runs cheap; every figure in the report states the n it was computed on.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

from fpsynth.diffusion.config import SamplerConfig
from fpsynth.metrics.config import MetricsConfig


class IdentityPool(enum.Enum):
    """Whose real images give the identities of aFID's first pass (paper 4.2: "other individuals")."""

    OTHER_SUBJECTS = "other-subjects"  # any other subject of the prepared data, train or test
    OTHER_TEST_SUBJECTS = "other-test-subjects"  # other patients of the evaluated split only


@dataclasses.dataclass(frozen=True)
class AFIDConfig:
    """Aligned FID (paper 4.2), computed when a trained checkpoint exists."""

    enabled: bool = True
    patients: int | None = None  # test patients evaluated (None: all of them)
    images_per_patient: int | None = None  # style frames per patient (None: all, as the paper)
    identity_pool: IdentityPool = IdentityPool.OTHER_SUBJECTS
    sampler: SamplerConfig = SamplerConfig()  # both transfer passes; the authors' DDIM 50 steps, eta 1
    batch_size: int = 16  # images per sampling batch

    def __post_init__(self) -> None:
        for name in ("patients", "images_per_patient"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"afid.{name} must be >= 1 (or unset for all)")
        if self.images_per_patient is not None and self.images_per_patient < 2:
            raise ValueError("afid.images_per_patient must be >= 2: a Frechet distance needs 2 images a side")
        if self.batch_size < 1:
            raise ValueError("afid.batch_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
    """The audit compares generated faces with the training subjects' frames."""

    enabled: bool = True
    # Training frames embedded per subject (None: all). A cap is faster but can miss a single
    # memorised frame: a subject's score is its best frame's.
    frames_per_subject: int | None = None
    max_listed: int = 50  # flagged images listed with thumbnails (all are in report.json)

    def __post_init__(self) -> None:
        if self.frames_per_subject is not None and self.frames_per_subject < 1:
            raise ValueError("privacy.frames_per_subject must be >= 1 (or unset for all)")


@dataclasses.dataclass(frozen=True)
class PageConfig:
    """The HTML page: grids like the paper's Fig. 1 and plots."""

    grid_identities: int = 6  # rows of the Fig. 1 grid (identities)
    grid_expressions: int = 8  # its columns (expressions)
    afid_examples: int = 6  # rows of the aFID cycle examples (real style | first pass | returned)
    histogram_bins: int = 30
    # Real patients' crops (style images, nearest training faces of flagged images) on the page.
    # Off: only generated images are shown, so the page can be shared like the dataset itself.
    show_real_faces: bool = True


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    run: Path | None = None  # generated dataset to evaluate (default: WORKSPACE/generate when present)
    checkpoint: Path | None = None  # trained model for aFID (default: the workspace's latest)
    split: str = "test"  # prepared frames used as the real reference (FID) and as aFID's patients
    max_images: int = 10000  # generated images evaluated (a seeded subset when there are more)
    batch_size: int = 32  # images read and compared per step (Inception: at most metrics.fid.batch_size at once)
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1"...
    metrics: MetricsConfig = MetricsConfig()
    afid: AFIDConfig = AFIDConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    page: PageConfig = PageConfig()

    def __post_init__(self) -> None:
        if self.max_images < 2:
            raise ValueError("max_images must be >= 2 (FID needs two images a side)")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

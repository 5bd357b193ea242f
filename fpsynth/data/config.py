"""``[prepare]`` configuration: sources, face backend, detection, quality gates, frame picking, splits.

Defaults follow the paper (32 frames per expression clip, 88/12 split by subject, 112x112 ArcFace
alignment) and DESIGN.md (dlib offline backend). Thresholds are in the units named beside them.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path

# Default MEEI pattern, applied to the path relative to --meei without its extension:
# <subject>/<expression>[_<side>], side in left/right/l/r (case-insensitive).
MEEI_PATTERN = r"^(?P<subject>[^/]+)/(?P<expression>[^/]+?)(?:[_-](?P<side>left|right|l|r))?$"


class Backend(str, enum.Enum):
    DLIB = "dlib"  # HOG detector + 68-point regression trees; offline, CPU (the default)
    INSIGHTFACE = "insightface"  # SCRFD + 1k3d68 (optional package, user-supplied model folder)
    FACE_ALIGNMENT = "face-alignment"  # S3FD + 2D-FAN-4 (optional package, torch hub checkpoints)


@dataclasses.dataclass(frozen=True)
class FaceConfig:
    """Which face backend finds faces and their 68 landmarks, and at what image size."""

    backend: Backend = Backend.DLIB
    # dlib: the HOG detector's window is 80 px; each upsample halves the smallest findable face.
    photo_upsample: int = 1
    video_upsample: int = 0
    # Images are shrunk so that their long side is at most this before detection (landmarks are
    # always fitted at full resolution). Video detection runs small and often; photos once.
    photo_max_side: int = 1280
    video_max_side: int = 360
    # Score below which a backend's candidate is not a face at all (dlib: SVM margin, where 0 is
    # dlib's own default threshold; insightface/face-alignment: a probability in [0, 1]).
    # None: the backend's default (dlib 0.0, insightface 0.5, face-alignment 0.5).
    min_score: float | None = None
    # insightface: models under <root>/models/<name>/ (det_*.onnx and 1k3d68.onnx).
    insightface_root: Path | None = None
    insightface_name: str = "buffalo_l"


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Gates every kept crop must pass; each failure becomes a rejects row naming the gate."""

    # A second face whose box side is at least this fraction of the largest face's makes the
    # image ambiguous ("two faces"); a clearly smaller background face is tolerated.
    second_face_ratio: float = 0.5
    min_interocular_px: float = 20.0  # eye-centre distance in the source image (template: 35.2)
    min_blur: float = 15.0  # variance of the Laplacian of the 112x112 grey crop
    max_abs_yaw_deg: float = 45.0  # landmark yaw proxy (nose tip vs. jaw line), degrees


@dataclasses.dataclass(frozen=True)
class PhaseQuota:
    """Frames kept per clip in each phase of the expression (the paper keeps 32 in all)."""

    neutral: int = 4
    onset: int = 6
    development: int = 6
    peak: int = 8
    dissipation: int = 8

    def __post_init__(self) -> None:
        counts = dataclasses.asdict(self)
        negative = [k for k, v in counts.items() if v < 0]
        if negative:
            raise ValueError(
                f"{', '.join(negative)}: frame counts must be >= 0, got {', '.join(str(counts[k]) for k in negative)}"
            )
        if self.total < 1:
            raise ValueError("the phase counts add up to 0: a clip would keep no frame")

    @property
    def total(self) -> int:
        return self.neutral + self.onset + self.development + self.peak + self.dissipation


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """Decoding and the motion-curve frame picker."""

    quota: PhaseQuota = PhaseQuota()
    # Frames analysed per second of video (landmarks, alignment, quality); the others are only
    # decoded. 15 keeps 45 candidates in a 3 s expression while halving the work on 30 fps video.
    # Clips too short for 2 x quota candidates at this rate are analysed frame by frame; None: all.
    analyse_fps: float | None = 15.0
    max_analysed_frames: int = 900  # longer clips are analysed more sparsely still
    # Run the detector on every n-th analysed frame; track landmarks between. 20 places the points
    # as close to a detection on every frame as 10 did (1.8% of the inter-ocular distance on average,
    # benchmarks/tracking_drift.py) for half the detections; 30 drifts (2.1-2.6%).
    detect_every: int = 20
    max_frames: int | None = None  # read only the first n frames of each clip (tests, quick looks)
    neutral_window: float = 0.1  # the neutral reference is the medoid of this leading share of the clip
    smooth: int = 5  # moving-average window (analysed frames) of the motion curve
    # Phases around the curve's maximum, as fractions of the peak motion: a frame is at rest
    # (neutral) below `onset_at`, in development from `development_at`, at the peak from `peak_at`.
    onset_at: float = 0.2
    development_at: float = 0.5
    peak_at: float = 0.85
    # Onset and dissipation end where the curve stops falling away from the peak by more than
    # this fraction of the peak motion (so a neighbouring expression is not taken for onset).
    rise_slack: float = 0.1
    # Motion is the mean landmark shift in inter-ocular distances. Landmark jitter of a still face
    # reaches about 0.03, so below this a frame is at rest, and a clip peaking below it is all neutral.
    min_motion: float = 0.03

    def __post_init__(self) -> None:
        if not 0 < self.onset_at < self.development_at < self.peak_at <= 1:
            raise ValueError("need 0 < onset_at < development_at < peak_at <= 1")
        if self.detect_every < 1 or self.max_analysed_frames < 2 or self.smooth < 1:
            raise ValueError("detect_every, smooth must be >= 1 and max_analysed_frames >= 2")
        if self.analyse_fps is not None and self.analyse_fps <= 0:
            raise ValueError("analyse_fps must be > 0 (or unset to analyse every frame)")


class MeeiLayout(str, enum.Enum):
    """How ``--meei DIR`` is read."""

    AUTO = "auto"  # the standard set when a video is named as a participant key (mildflaccid4) and
    # meei_pattern is the default; else clips
    CLIPS = "clips"  # <subject>/<expression>[_<side>].<ext>: one movement per file (meei_pattern)
    STANDARD_SET = "standard_set"  # the published set: one video per participant holding every movement


@dataclasses.dataclass(frozen=True)
class SourcesConfig:
    """How input files are found and named."""

    meei_pattern: str = MEEI_PATTERN  # regex with named groups subject, expression and optional side
    meei_layout: MeeiLayout = MeeiLayout.AUTO
    video_extensions: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
    image_extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

    def __post_init__(self) -> None:
        try:
            pattern = re.compile(self.meei_pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"meei_pattern {self.meei_pattern!r} is not a valid regular expression: {exc}") from None
        if "subject" not in pattern.groupindex:
            raise ValueError(f"meei_pattern {self.meei_pattern!r} has no named group 'subject' ((?P<subject>...))")
        bad = [e for e in (*self.video_extensions, *self.image_extensions) if not re.fullmatch(r"\.[a-z0-9]+", e)]
        if bad:
            raise ValueError(f"extensions must be lower-case and start with a dot ('.jpg'), got {bad}")


# The sequence of the MEEI Facial Palsy Photo and Video Standard Set as we read its protocol (check
# it against the PDF that comes with the set): the face at rest, then seven movements. The 8
# photos of a participant are matched to the same list.
STANDARD_MOVEMENTS = (
    "rest",
    "brow_elevation",
    "gentle_eye_closure",
    "full_eye_closure",
    "gentle_smile",
    "full_smile",
    "lip_pucker",
    "lower_lip_depression",
)


@dataclasses.dataclass(frozen=True)
class MovementsConfig:
    """Cutting one video of a whole sequence (the standard set's) into its movements.

    Motion here is regional: the largest of the mean shifts of the brows, the eyelids and the mouth
    (in inter-ocular distances, head pose removed) from the last rest pose, so that a movement of
    a few points (an eye closure) counts as much as a smile.
    """

    names: tuple[str, ...] = STANDARD_MOVEMENTS  # expected order; lower-case [a-z0-9_]
    rest: str = "rest"  # the entry that is the face at rest between movements (no movement of its own)
    active_at: float = 0.08  # regional motion above which a frame is moving (still faces reach ~0.05)
    # A movement ends only where motion has stayed below this for min_rest_s: the face back at its
    # rest pose, not hovering just under active_at (speech, a held half-expression). Two thresholds
    # (a Schmitt trigger) keep landmark noise from splitting or merging movements there;
    # rest_at = active_at is the single threshold of earlier versions.
    rest_at: float = 0.05
    min_rest_s: float = 1.0  # rest shorter than this inside a movement does not end it
    min_movement_s: float = 0.4  # shorter bursts (blinks, twitches) are not movements
    pad_s: float = 1.0  # rest taken on each side of a movement for its neutral frames (at most half a gap)
    # A jump of the regional shape between analysed frames at least this large, straight into a pose
    # then held for min_rest_s, is a cut (edited video, another take, another person): that pose
    # becomes the new rest instead of a movement.
    cut_at: float = 0.12

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names) or any(not re.fullmatch(r"[a-z0-9_]+", n) for n in self.names):
            raise ValueError("movements.names must be distinct lower-case [a-z0-9_] words")
        if self.active_at <= 0 or self.min_rest_s <= 0 or self.min_movement_s < 0 or self.pad_s < 0 or self.cut_at <= 0:
            raise ValueError("movements: active_at, min_rest_s and cut_at must be > 0; min_movement_s, pad_s >= 0")
        if not 0 < self.rest_at <= self.active_at:
            raise ValueError(f"movements.rest_at must be in (0, active_at = {self.active_at:g}], got {self.rest_at:g}")

    @property
    def expected(self) -> tuple[str, ...]:
        """The movements a video should show, in order (the list without its rest entry)."""
        return tuple(n for n in self.names if n != self.rest)


class Pairing(enum.Enum):
    """How each style frame gets its identity image (always of the same subject)."""

    OTHER_FRAME = "other_frame"  # the paper ("different images of the same patient"): random other frames
    # The authors' code: every image of a subject with ONE identity image, the subject's first
    # (their folder's first file; here the first by frame_id), itself included.
    AUTHORS = "authors"


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Subject-level train/test split and training pairs."""

    test_fraction: float = 0.12  # the paper: 88% of subjects train, 12% test
    pairs_per_frame: int = 1  # identity images drawn (same subject, other image) per style frame
    pairing: Pairing = Pairing.OTHER_FRAME  # "authors": one fixed identity image per subject (pairs_per_frame unused)

    def __post_init__(self) -> None:
        if not 0 <= self.test_fraction < 1:
            raise ValueError("test_fraction must be in [0, 1)")
        if self.pairs_per_frame < 1:
            raise ValueError("pairs_per_frame must be >= 1")


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    meei: Path | None = None  # MEEI: per-subject clips and photos, or the standard set as published (+ its XLSX)
    aflfp: Path | None = None  # AFLFP-style images with 68-point .pts annotations
    images: Path | None = None  # plain folder of face photos
    scores: Path | None = None  # CSV (or XLSX): subject, eFACE[, House-Brackmann, Sunnybrook]
    n_jobs: int = 2  # worker processes (joblib loky); 1 runs in-process
    png_compression: int = 3  # cv2 PNG level 0-9: 3 is fast and within ~10% of the smallest
    # Photos whose header states more pixels are an "image_too_large" row, never decoded (100 MP:
    # 300 MB as RGB, above the 24-61 MP of clinical cameras). Pillow, which reads the header,
    # refuses above 178,956,970 pixels whatever this says.
    max_image_pixels: int = 100_000_000
    faces: FaceConfig = FaceConfig()
    quality: QualityConfig = QualityConfig()
    video: VideoConfig = VideoConfig()
    movements: MovementsConfig = MovementsConfig()
    sources: SourcesConfig = SourcesConfig()
    split: SplitConfig = SplitConfig()

    def __post_init__(self) -> None:
        if self.n_jobs < 1:
            raise ValueError("n_jobs must be >= 1")
        if not 0 <= self.png_compression <= 9:
            raise ValueError("png_compression must be in 0 .. 9")
        if self.max_image_pixels < 1:
            raise ValueError("max_image_pixels must be >= 1")

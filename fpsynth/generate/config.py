"""``[generate]`` configuration: what to generate (plan), how to sample it, and on what hardware.

The CLI sets ``ids``, ``count``, ``checkpoint``, ``out`` and ``shard`` from its flags; everything
else comes from the pipeline file or ``--set generate.<key>=value``. The sampler defaults are the
authors' (DDIM, 50 steps, eta 1, EMA weights, DESIGN.md "Training"); the plan defaults sample the
test split's palsy frames with every (severity, expression) stratum weighted alike.

Validation raises ``ConfigError`` (a user error) also when the CLI sets a field, so that
``--count 0`` or ``--shard 4/4`` is a message, not a traceback.

Only ``plan``, ``sampler``, ``count``, ``ema`` and the pipeline seed decide the images; ``runtime``
(device, batch size, threads), ``shard`` and ``out`` decide where and how fast they are made.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path

from fpsynth.config import ConfigError
from fpsynth.data.scores import SEVERITY_ORDER
from fpsynth.device import Precision
from fpsynth.diffusion.config import SamplerConfig

GENERATE_PRECISIONS = (Precision.BF16, Precision.FP32)


class StyleSplit(str, enum.Enum):
    TEST = "test"  # the paper's held-out subjects (default: no training image is re-used as style)
    TRAIN = "train"
    ALL = "all"


class Overlap(str, enum.Enum):
    """Whether crop decoding and PNG writing run in threads beside the sampling."""

    AUTO = "auto"  # threads on CUDA, inline on CPU
    THREADS = "threads"  # loader, writer and finisher threads: the GPU samples while the CPU writes
    # In the sampling thread, between batches. On CPU torch's intra-op threads already fill every
    # core, and threads beside them cost more than they hide: measured on the 2-core development
    # machine (tiny model, 32 images, 10 steps), fpsynth / plain loop 0.81 with threads, 0.99 inline.
    INLINE = "inline"


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """Which style frames are used and how items are spread over the strata."""

    split: StyleSplit = StyleSplit.TEST
    phases: tuple[str, ...] = ()  # keep only frames of these phases (e.g. ["peak"]); empty: all
    # Weight of a stratum = severity weight x expression weight; a category not named weighs 1,
    # weight 0 leaves it out. Items are allocated to strata in proportion to their weights.
    severity_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    expression_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    shard_size: int = 1000  # images per folder shards/NNNNN/ and per metadata part

    def __post_init__(self) -> None:
        unknown = sorted(set(self.severity_weights) - set(SEVERITY_ORDER))
        if unknown:
            raise ConfigError(f"severity_weights: unknown categor(ies) {unknown}; valid: {', '.join(SEVERITY_ORDER)}")
        bad = {k: v for k, v in {**self.severity_weights, **self.expression_weights}.items() if v < 0}
        if bad:
            raise ConfigError(f"weights must be >= 0, got {bad}")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {self.shard_size}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Hardware settings; none of them changes an image on CPU (see README "Determinism")."""

    device: str = "auto"  # "auto" (cuda:LOCAL_RANK when CUDA is there, else cpu), "cpu", "cuda", "cuda:1"
    # Images per sampling batch: a number, or "auto" = as many as fit in ~70% of the free GPU memory
    # (measured with two probe batches), at most max_batch_size; on CPU "auto" is cpu_batch_size.
    batch_size: int | str = "auto"
    cpu_batch_size: int = 8
    max_batch_size: int = 512
    # bf16 autocast of the networks on CUDA (the sampler's arithmetic stays fp32), or fp32; on CUDA
    # only, a CPU always runs fp32 (fpsynth.device.Amp.resolve(..., on_cpu=False))
    precision: Precision = Precision.BF16
    channels_last: bool = True  # on CUDA only
    # CUDA only: torch.compile the denoiser (about 40 s once per process; 3.5x the eager U-Net
    # throughput measured on one H200). Off: eager, no compile step.
    compile: bool = True
    png_compression: int = 3  # cv2 PNG level 0-9 (lossless at every level)
    overlap: Overlap = Overlap.AUTO  # I/O in threads beside the sampling (CUDA) or inline (CPU)
    writer_threads: int = 2  # PNG encoding and hashing threads, when the I/O runs in threads

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, str) and self.batch_size != "auto":
            raise ConfigError(f'batch_size must be a positive integer or "auto", got {self.batch_size!r}')
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.cpu_batch_size < 1 or self.max_batch_size < 1 or self.writer_threads < 1:
            raise ConfigError("cpu_batch_size, max_batch_size and writer_threads must be >= 1")
        if not 0 <= self.png_compression <= 9:
            raise ConfigError(f"png_compression must be in 0..9, got {self.png_compression}")
        if self.precision not in GENERATE_PRECISIONS:  # the training-only settings (auto, fp16)
            valid = [p.value for p in GENERATE_PRECISIONS]
            raise ConfigError(f"precision: {self.precision.value!r} is not one of {valid}")


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """``--shard i/n``: this machine makes the shards s with s % n == i."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> ShardSpec:
        if text is None or text == "":
            return cls()
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if m is None or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
            raise ConfigError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))


LARGE_COUNT = 10_000_000  # 100x the paper-scale datasets fpsynth is made for
PNG_BYTES = 24_000  # a 112x112 RGB face PNG at compression 3 (measured: 24.1-24.5 kB in the demo)
PLAN_ROW_BYTES = 400  # one planned item in pandas before it is written (ids, paths, labels, seed)


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    ids: Path | None = None  # folder of identity face photos (--ids)
    count: int = 1000  # images in the whole dataset (all shards together)
    checkpoint: Path | None = None  # default: the workspace's latest complete checkpoint
    out: Path | None = None  # default: WORKSPACE/generate
    shard: str | None = None  # "i/n" (--shard); torchrun ranks split this machine's share further
    ema: bool = True  # sample with the EMA U-Net weights (the authors' setting)
    plan_only: bool = False  # write the plan (and identities) and stop, to inspect a run first
    sampler: SamplerConfig = SamplerConfig()
    plan: PlanConfig = PlanConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    # A count above LARGE_COUNT is refused with an estimate of its size unless this says yes.
    allow_large: bool = False

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"count must be >= 1, got {self.count}")
        if self.count > LARGE_COUNT and not self.allow_large:
            raise ConfigError(
                f"--count {self.count:,} is a large run: about {self.count * PNG_BYTES / 1e12:.1f} TB of images "
                f"({PNG_BYTES // 1000} kB each) and a plan of about {self.count * PLAN_ROW_BYTES / 1e9:.1f} GB held in "
                f"memory while it is written; if that is meant, add --set generate.allow_large=true"
            )
        ShardSpec.parse(self.shard)  # fail at load time, not after the model is on the GPU

    @property
    def shard_spec(self) -> ShardSpec:
        return ShardSpec.parse(self.shard)

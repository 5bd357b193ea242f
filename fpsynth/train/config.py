"""``[train]`` configuration: the model, the objective, and how the loop runs.

Defaults are the paper's run with the authors' settings (DESIGN.md, "Training"): AdamW at lr 1e-4,
batch 32 (over every process together), 10 epochs, no gradient clipping, EMA of the U-Net with
decay ``1 - (1 + k)^-0.75`` capped at 0.9999 on the authors' timing, seed from
``PipelineConfig.seed``. Sub-tables:
``[train.model]``, ``[train.diffusion]``, ``[train.loss]``, ``[train.sampler]`` (the periodic sample
grids), ``[train.optim]``, ``[train.ema]``, ``[train.data]``, ``[train.log]``, ``[train.checkpoint]``.

Only the fields in :data:`RUN_KEY_FIELDS` define a run: a checkpoint written under other values of
them cannot be resumed (the stage says so and asks for ``--force``). Everything else (duration,
logging, checkpoint interval, precision, device, workers, gradient accumulation) may change
between a run and its resumption, so that ``--set train.epochs=20`` continues a finished run.
"""

from __future__ import annotations

import dataclasses
import enum

from fpsynth.device import Precision
from fpsynth.diffusion.config import DiffusionConfig, LossConfig, SamplerConfig
from fpsynth.models.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW over ``CCFExp.trainable_parameters()`` only."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01  # torch's AdamW default; the paper gives the learning rate only
    # Max global L2 norm of the gradients; 0: no clipping, as the authors trained (neither their
    # train.sh nor the DCFace Lightning configuration theirs derives from sets gradient_clip_val),
    # and so the paper pipeline. A stability option for runs far from the paper's (the tiny and
    # demo runs, at up to a 20x learning rate, clip at 1.0).
    grad_clip: float = 0.0
    warmup_steps: int = 0  # linear warm-up from 0, then constant (the paper: constant)

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ValueError("need lr > 0, grad_clip >= 0 and warmup_steps >= 0")


class EMATiming(enum.Enum):
    """When the EMA of optimizer step n is taken, and which decay it uses (``fpsynth.train.ema``)."""

    # The authors' (their Lightning training_step calls EMAModel.step before the optimizer step):
    # update n averages in the weights step n STARTS from, with the decay of n - 1 (0 for n <= 1).
    # The paper says nothing of an EMA, so fpsynth follows their code (default).
    BEFORE_STEP = "before_step"
    # Update n after optimizer step n, with the decay of n: the average includes the newest weights
    # (one step fresher; the difference is a one-step lag, invisible after the first few hundred steps).
    AFTER_STEP = "after_step"


@dataclasses.dataclass(frozen=True)
class EMAConfig:
    """EMA of the U-Net: decay d(k) = min(1 - (1 + k)^-power, max_decay), timed by ``timing``."""

    power: float = 0.75
    max_decay: float = 0.9999
    timing: EMATiming = EMATiming.BEFORE_STEP

    def __post_init__(self) -> None:
        if self.power <= 0 or not 0 <= self.max_decay < 1:
            raise ValueError("need ema.power > 0 and 0 <= ema.max_decay < 1")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How pairs are batched. ``batch_size`` is the GLOBAL batch of one optimizer step.

    It is split evenly over the processes (torchrun) and, within a process, into ``grad_accum``
    micro-batches; the split never changes which pairs, timesteps and noise a step uses, only
    where they are computed. E_ID trains with BatchNorm, so a micro-batch needs >= 2 images.
    """

    batch_size: int = 32  # the authors: 32 over 2 GPUs
    grad_accum: int = 1  # micro-batches per process per step
    split: str = "train"  # which pairs of pairs.parquet train
    num_workers: int = 4  # DataLoader worker processes per training process (0: load in-process)

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.grad_accum < 1 or self.num_workers < 0:
            raise ValueError("need batch_size >= 2, grad_accum >= 1 and num_workers >= 0")


@dataclasses.dataclass(frozen=True)
class LogConfig:
    every: int = 50  # steps per row of train/log.csv and TensorBoard (means over those steps)
    tensorboard: bool = True  # event files in train/tensorboard/
    progress: bool = True  # rich progress bar on a terminal (plain lines otherwise)
    sample_every: int = 2000  # steps between sample grids (0: only at the end)
    sample_pairs: int = 8  # rows of a sample grid: fixed held-out pairs (test split if any)

    def __post_init__(self) -> None:
        if self.every < 1 or self.sample_every < 0 or self.sample_pairs < 0:
            raise ValueError("need log.every >= 1, sample_every >= 0, sample_pairs >= 0")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    every: int = 2000  # steps between checkpoints (one is always written at the end)
    keep_last: int = 3  # older checkpoints are deleted once a newer one is complete

    def __post_init__(self) -> None:
        if self.every < 1 or self.keep_last < 1:
            raise ValueError("need checkpoint.every >= 1 and keep_last >= 1")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    loss: LossConfig = LossConfig()
    sampler: SamplerConfig = SamplerConfig()  # for the periodic sample grids (DDIM 50, eta 1)
    optim: OptimConfig = OptimConfig()
    ema: EMAConfig = EMAConfig()
    data: DataConfig = DataConfig()
    epochs: int = 10  # duration in passes over the pairs (the paper: 10)
    max_steps: int | None = None  # duration in optimizer steps; overrides ``epochs`` when set
    precision: Precision = Precision.AUTO
    device: str = "auto"  # "auto": cuda (the local rank's GPU under torchrun) when present, else cpu
    log: LogConfig = LogConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    # Weights to start from (fpsynth.train.init): a published DCFace/CCFExp file or an fpsynth
    # checkpoint folder; "none" (or unset) trains from scratch. The paper pipeline sets DCFace 5x5.
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 0 or (self.max_steps is not None and self.max_steps < 0):
            raise ValueError("need epochs >= 0 and max_steps >= 0")


# Fields of TrainConfig (dotted below the section) that define a run; see the module docstring.
RUN_KEY_FIELDS = ("model", "diffusion", "loss", "optim", "ema", "data.batch_size", "data.split")

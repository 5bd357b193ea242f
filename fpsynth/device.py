"""Where a stage runs: this process's place in a torchrun launch, its device, and its precision.

One object per question, for train, generate and report alike:

- :class:`Launch`: torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), read here
  and nowhere else; a process started without torchrun is rank 0 of 1.
- :func:`resolve_device`: ``auto`` is this process's GPU when CUDA is usable, else the CPU;
  ``cuda`` without an index is ``cuda:LOCAL_RANK``, so that each torchrun process takes its own
  GPU; a GPU setting this machine cannot honour is a clear error here rather than a CUDA
  traceback later.
- :class:`Precision` (the config value, the same strings in every TOML) and :class:`Amp` (that
  setting resolved for a device: the autocast context, whether a GradScaler is needed, the name
  recorded beside the outputs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
from typing import TYPE_CHECKING

from fpsynth.errors import FpsynthError

if TYPE_CHECKING:  # torch is imported where a device is resolved, not with this module: the config
    import torch  # sections import Precision, and the CLI starts without torch (about 1.5 s)


class DeviceError(FpsynthError, RuntimeError):
    """A device setting this machine cannot honour."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None or value == "" else int(value)


@dataclasses.dataclass(frozen=True)
class Launch:
    """This process's place among the processes torchrun started (a plain run: rank 0 of 1)."""

    rank: int = 0  # RANK: 0 .. world_size - 1 over every machine
    world_size: int = 1  # WORLD_SIZE
    local_rank: int = 0  # LOCAL_RANK: the process's number on its machine (its GPU index)

    @classmethod
    def from_env(cls) -> Launch:
        """Read from torchrun's environment variables (absent or empty: the plain-run values)."""
        return cls(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that locks the stage folder and writes logs, records and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(setting: str, local_rank: int | None = None) -> torch.device:
    """``setting`` ("auto", "cpu", "cuda", "cuda:1" ...) -> the device; ``local_rank`` defaults to $LOCAL_RANK."""
    import torch

    if local_rank is None:
        local_rank = Launch.from_env().local_rank
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {setting!r} is set but this machine has no usable CUDA GPU; use 'cpu' or 'auto'")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise DeviceError(f"{device} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


class Precision(str, enum.Enum):
    """How the networks compute (``train.precision``, ``generate.runtime.precision``)."""

    AUTO = "auto"  # bf16 autocast on a GPU that has it (else fp16 + GradScaler); fp32 on CPU
    FP32 = "fp32"
    BF16 = "bf16"  # autocast, no loss scaling needed
    FP16 = "fp16"  # autocast with a GradScaler when training (the authors' setting)


# Precision -> the name of its autocast dtype in torch (None: plain fp32), and back to the short name.
_DTYPES = {Precision.FP32: None, Precision.BF16: "bfloat16", Precision.FP16: "float16"}
_NAMES = {None: "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclasses.dataclass(frozen=True)
class Amp:
    """A :class:`Precision` resolved for a device: autocast of ``dtype`` there, None = plain fp32."""

    device_type: str
    dtype: torch.dtype | None

    @classmethod
    def resolve(
        cls, precision: Precision, device: torch.device, *, on_cpu: bool = True, setting: str = "train.precision"
    ) -> Amp:
        """The autocast ``precision`` means on ``device``.

        ``on_cpu=False``: a CPU always computes in fp32 whatever the setting (generation: a CPU's
        bf16 is slower there and would change the images). ``setting`` names the config key in
        the error a CPU-only fp16 gets.
        """
        import torch

        cuda = device.type == "cuda"
        if not cuda and not on_cpu:
            return cls(device.type, None)
        if precision is Precision.AUTO:
            dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        elif precision is Precision.FP16 and not cuda:
            raise DeviceError(f"{setting} = 'fp16' needs a GPU; use 'auto' (fp32 on CPU) or 'bf16'")
        else:
            name = _DTYPES[precision]
            dtype = None if name is None else getattr(torch, name)
        return cls(device.type, dtype)

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling (bf16 has fp32's exponent range)."""
        return self.name == "fp16"

    def context(self) -> contextlib.AbstractContextManager:
        """The autocast block the networks run in (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        """The precision's name ("fp32", "bf16" or "fp16"), as the outputs' records give it."""
        return _NAMES[None if self.dtype is None else str(self.dtype).removeprefix("torch.")]

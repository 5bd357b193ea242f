"""Which device a stage runs on: one rule for train, generate and report.

``auto`` is this process's GPU when CUDA is usable, else the CPU; ``cuda`` without an index is
``cuda:LOCAL_RANK``, so that each torchrun process takes its own GPU; a GPU setting this machine
cannot honour is a clear error here rather than a CUDA traceback later.
"""

from __future__ import annotations

import os

import torch

from fpsynth.errors import FpsynthError


class DeviceError(FpsynthError, RuntimeError):
    """A device setting this machine cannot honour."""


def resolve_device(setting: str, local_rank: int | None = None) -> torch.device:
    """``setting`` ("auto", "cpu", "cuda", "cuda:1" ...) -> the device; ``local_rank`` defaults to $LOCAL_RANK."""
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK") or 0)
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

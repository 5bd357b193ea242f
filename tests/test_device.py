"""One launch/device object (fpsynth.device): torchrun's environment, the device rule, the precision."""

from __future__ import annotations

import contextlib

import pytest
import torch

from fpsynth.config import ConfigError, from_dict
from fpsynth.device import Amp, DeviceError, Launch, Precision, resolve_device
from fpsynth.generate.config import RuntimeConfig, ShardSpec
from fpsynth.generate.workers import Worker
from fpsynth.lock import LOCK_FILE, folder_lock
from fpsynth.train.config import TrainConfig
from fpsynth.train.distributed import DistContext, setup

CPU = torch.device("cpu")


@pytest.fixture
def torchrun(monkeypatch):
    """Set torchrun's variables as rank 3 of 4, the second process of its machine."""
    for name, value in (("RANK", "3"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)


def test_launch_from_torchrun_environment(torchrun):
    launch = Launch.from_env()
    assert launch == Launch(3, 4, 1) and not launch.is_main and launch.distributed
    assert Worker.from_env(ShardSpec(0, 2)) == Worker(ShardSpec(0, 2), 3, 4)
    assert not Worker.from_env(ShardSpec()).shows_progress


def test_plain_process_is_rank_zero_of_one(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "")  # empty counts as absent
    launch = Launch.from_env()
    assert launch == Launch() and launch.is_main and not launch.distributed
    ctx = setup("cpu")
    assert ctx == DistContext(0, 1, 0, CPU) and ctx.is_main and not ctx.distributed
    assert Worker.from_env(ShardSpec()).shows_progress


def test_only_rank_zero_takes_the_folder_lock(tmp_path, torchrun):
    with folder_lock(tmp_path / "stage"):
        pass
    assert not (tmp_path / "stage" / LOCK_FILE).exists()


def test_device_rule_on_cpu():
    assert resolve_device("cpu") == CPU
    if not torch.cuda.is_available():
        assert resolve_device("auto") == CPU
        with pytest.raises(DeviceError, match="no usable CUDA GPU"):
            resolve_device("cuda")


def test_precision_resolved_for_a_cpu():
    assert Amp.resolve(Precision.AUTO, CPU) == Amp("cpu", None)
    assert Amp.resolve(Precision.FP32, CPU).name == "fp32"
    bf16 = Amp.resolve(Precision.BF16, CPU)  # training honours bf16 on a CPU
    assert (bf16.dtype, bf16.name, bf16.needs_scaler) == (torch.bfloat16, "bf16", False)
    with bf16.context():
        assert torch.is_autocast_cpu_enabled()
    with pytest.raises(DeviceError, match="train.precision = 'fp16' needs a GPU"):
        Amp.resolve(Precision.FP16, CPU)
    # generation: a CPU computes in fp32 whatever the setting
    assert Amp.resolve(Precision.BF16, CPU, on_cpu=False) == Amp("cpu", None)
    assert isinstance(Amp("cpu", None).context(), contextlib.nullcontext)
    assert Amp("cuda", torch.float16).needs_scaler and Amp("cuda", torch.float16).name == "fp16"


def test_one_precision_enum_same_config_strings():
    assert from_dict(TrainConfig, {"precision": "fp16"}).precision is Precision.FP16
    assert from_dict(RuntimeConfig, {"precision": "fp32"}).precision is Precision.FP32
    assert RuntimeConfig().precision is Precision.BF16 and TrainConfig().precision is Precision.AUTO
    for training_only in ("auto", "fp16"):  # generate takes bf16 or fp32, as before
        with pytest.raises(ConfigError, match="not one of"):
            from_dict(RuntimeConfig, {"precision": training_only})


def test_the_cli_starts_without_importing_torch():
    """fpsynth.device is imported by the config sections (Precision) and the lock (Launch), so by
    every command at start-up: it must not pull torch in (about 1.5 s on a 2-core machine)."""
    import subprocess
    import sys

    code = "import sys, fpsynth.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

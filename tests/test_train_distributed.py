"""DistributedDataParallel with gloo on the CPU: 2 processes (torchrun) == 1 process on the same global batch.

The global batch of 4 is cut into 2 micro-batches of 2 either way: one per process (torchrun, 2
processes) or both in one process (train.data.grad_accum = 2). Pairs, timesteps and noise depend
on the step alone, so both runs compute the same gradients, summed in a different order: the
trained weights, the EMA and the logged losses agree to float tolerance. (E_ID's BatchNorm
running statistics are not compared: each process updates its own and DDP keeps rank 0's; they
play no part in training, which normalises with the micro-batch's own statistics.)
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fpsynth.pipeline import load_pipeline
from fpsynth.train.checkpoint import CHECKPOINTS
from fpsynth.train.run import run
from helpers.train import MICRO, flipped_workspace

REPO = Path(__file__).resolve().parent.parent
SETS = [
    *MICRO,
    "train.data.batch_size=4",
    "train.max_steps=3",
    "train.log.every=1",
    "train.log.sample_pairs=0",
    "train.log.tensorboard=false",
    "train.checkpoint.every=3",
    "train.device=cpu",
]


def _log(ws: Path) -> list[dict[str, str]]:
    with open(ws / "train" / "log.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_accumulating(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    for ws in (two, one):
        flipped_workspace(ws)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "fpsynth.cli",
        "train",
        "-w",
        str(two),
        "-c",
        "tiny",
        *[a for s in SETS for a in ("--set", s)],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) x 1 x 2" in proc.stderr

    run(load_pipeline("tiny", [*SETS, "train.data.grad_accum=2"]), one)

    a = two / "train" / CHECKPOINTS / "step-00000003"
    b = one / "train" / CHECKPOINTS / "step-00000003"
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    trained = [k for k in wa if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    for key in trained:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5, msg=key)
    ea, eb = load_file(str(a / "ema.safetensors")), load_file(str(b / "ema.safetensors"))
    for key in ea:
        torch.testing.assert_close(ea[key], eb[key], rtol=1e-4, atol=1e-5, msg=key)
    assert any(not torch.equal(wa[key], ea[key]) for key in ea)  # the U-Net trained (the EMA lags)
    for ra, rb in zip(_log(two), _log(one), strict=True):
        for col in ("loss", "mse", "identity", "second", "grad_norm"):
            assert float(ra[col]) == pytest.approx(float(rb[col]), rel=1e-4, abs=1e-6), col

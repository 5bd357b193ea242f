"""Shared pieces of the generate tests: a small prepared workspace, identities, a tiny model on disk.

The prepared workspace is synthetic (random smooth crops in a frames.parquet of the real schema):
the generate stage only reads crops and labels from it, and a random-init model makes noise of
any input alike. The tiny CCFExp is saved once as safetensors and loaded by :func:`tiny_loader`,
which has the signature of ``fpsynth.train.checkpoint.load_checkpoint``, so that separate
processes (the kill-and-resume test) sample with the very same weights.

The CLI tests (test_generate_ids and those that reuse its set-up) share :data:`SMALL` (the
``--set`` overrides of a small, fast generation), :func:`config` and :func:`copy` (real photos
from ../shared/fixtures into an ``--ids`` folder).

Also runnable: ``python tests/helpers/generate.py ROOT OUT COUNT`` runs one generation over
ROOT's workspace into OUT (the kill-and-resume test starts it as a subprocess and kills it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from fpsynth.data.manifests import FRAMES, to_table
from fpsynth.diffusion.config import SamplerConfig
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.generate.config import GenerateConfig, PlanConfig, RuntimeConfig
from fpsynth.generate.identities import Identities
from fpsynth.generate.plan import StylePool
from fpsynth.generate.run import produce
from fpsynth.models.ccfexp import build_model
from fpsynth.models.config import tiny_model_config
from fpsynth.pipeline import PipelineConfig, load_pipeline, with_section
from fpsynth.stage import atomic_write_parquet
from fpsynth.weights import WeightsConfig
from helpers.fixtures import fixture_path

RANDOM = WeightsConfig(random_init=("ir50-id", "ir50-expression", "mobilefacenet-68"))
SEVERITIES = ("normal", "mild", "moderate", "complete")
EXPRESSIONS = ("smile", "brow_raise", "eye_close")
SMALL = [
    "generate.sampler.steps=2",
    "generate.plan.shard_size=4",
    "generate.plan.split=test",
    "prepare.n_jobs=1",
    "generate.runtime.cpu_batch_size=4",
]


def smooth_image(rng: np.random.Generator) -> np.ndarray:
    """(112, 112, 3) uint8: blurred noise, so PNGs have realistic sizes."""
    return cv2.GaussianBlur((rng.random((112, 112, 3)) * 255).astype(np.uint8), (9, 9), 3)


def make_prepare(prepare_dir: Path, frames_per_stratum: int = 2, seed: int = 0) -> Path:
    """A prepare folder: 4 severities x 3 expressions x ``frames_per_stratum`` test frames (+ train ones)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, severity in enumerate(SEVERITIES):
        for expression in EXPRESSIONS:
            for j in range(frames_per_stratum + 1):
                subject = f"P{s + 1:04d}"
                frame_id = f"{subject}-{expression}-{j:05d}"
                path = f"crops/{subject}/{subject}-{expression}/{j:05d}.png"
                (prepare_dir / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(prepare_dir / path), smooth_image(rng))
                rows.append(
                    {
                        "frame_id": frame_id,
                        "path": path,
                        "subject": subject,
                        "dataset": "meei",
                        "kind": "video",
                        "clip": f"{subject}-{expression}",
                        "expression": expression,
                        "frame_index": j,
                        "phase": ("peak", "onset", "neutral")[j % 3],
                        "severity": severity,
                        "eface": (98.0, 85.0, 75.0, 40.0)[s],
                        "landmarks": np.zeros(136),
                        "bbox": np.zeros(4),
                        "affine": np.zeros(6),
                        "landmark_source": "detected",
                        "blur": 50.0,
                        "interocular": 40.0,
                        "yaw": 0.0,
                        "width": 112,
                        "height": 112,
                        # the last frame of each clip is a training frame: the default plan must not use it
                        "split": "train" if j == frames_per_stratum else "test",
                    }
                )
    atomic_write_parquet(prepare_dir / "frames.parquet", to_table(pd.DataFrame(rows), FRAMES))
    return prepare_dir


def make_identities(n: int = 3, seed: int = 1) -> Identities:
    rng = np.random.default_rng(seed)
    return Identities.from_crops([smooth_image(rng) for _ in range(n)], [f"person{i}.jpg" for i in range(n)])


def save_tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model, _ = build_model(tiny_model_config(), RANDOM)
    save_file(model.state_dict(), str(path))
    return path


def tiny_loader(path: Path, *, ema: bool = True, device: Any = "cpu") -> SimpleNamespace:
    """A stand-in for ``load_checkpoint``: the tiny model with the weights saved at ``path``."""
    model, _ = build_model(tiny_model_config(), RANDOM)
    model.load_state_dict(load_file(str(path)))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return SimpleNamespace(
        model=model.eval(), schedule=NoiseSchedule(), sha256=digest, state={"step": 42}, path=Path(path)
    )


def pipeline(
    count: int = 10, *, steps: int = 2, batch_size: int = 3, shard_size: int = 4, **changes: Any
) -> PipelineConfig:
    """A PipelineConfig whose generate section is small; ``changes`` replace GenerateConfig fields."""
    gen = GenerateConfig(
        count=count,
        sampler=SamplerConfig(steps=steps),
        plan=PlanConfig(shard_size=shard_size),
        runtime=RuntimeConfig(batch_size=batch_size, writer_threads=1),
    )
    return dataclasses.replace(PipelineConfig(), generate=dataclasses.replace(gen, **changes))


def generate(root: Path, out: Path, cfg: PipelineConfig, **kwargs: Any) -> dict:
    """One produce() run over ``root``'s prepare folder and tiny checkpoint (made by :func:`make_workspace`)."""
    pool = StylePool.from_manifest(root / "prepare", cfg.generate.plan)
    return produce(cfg, out, make_identities(), pool, root / "tiny.safetensors", tiny_loader, **kwargs)


def save_train_checkpoint(workspace: Path, cfg: PipelineConfig, step: int = 5) -> Path:
    """A real checkpoint of the train stage's format (tiny model, no training) in ``WORKSPACE/train``."""
    from fpsynth.train.checkpoint import CHECKPOINTS, CheckpointPayload, describe_run, save_checkpoint

    torch.manual_seed(0)
    model, records = build_model(cfg.train.model, cfg.weights)
    optimizer = torch.optim.AdamW(model.trainable_parameters())
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    payload = CheckpointPayload(
        model.state_dict(), dict(model.unet.state_dict()), optimizer.state_dict(), names, describe_run(cfg, records)
    )
    return save_checkpoint(workspace / "train" / CHECKPOINTS, step, payload, keep_last=1)


def make_workspace(root: Path) -> Path:
    make_prepare(root / "prepare")
    save_tiny_checkpoint(root / "tiny.safetensors")
    return root


def image_bytes(out: Path) -> dict[str, bytes]:
    """file name (relative to ``out``) -> bytes of every PNG below ``out``."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(Path(out).rglob("*.png"))}


def config(**generate: object) -> PipelineConfig:
    """The tiny pipeline, small sampling, and these generate fields (as the CLI flags set them)."""
    return with_section(load_pipeline("tiny", SMALL), "generate", **generate)


def copy(names: list[str], folder: Path) -> Path:
    """The real photos ``names`` of ../shared/fixtures/faces/photos copied into ``folder`` (an ``--ids`` folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(fixture_path("faces", "photos", name), folder / name)
    return folder


if __name__ == "__main__":
    root, out, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    generate(root, out, pipeline(count, steps=3, batch_size=1))

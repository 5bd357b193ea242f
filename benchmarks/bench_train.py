"""Training-loop benchmark: images/s of the real ``fpsynth train`` loop, plain vs cycle steps.

    python benchmarks/bench_train.py                          # CPU: tiny configuration, fp32
    python benchmarks/bench_train.py --configs tiny,paper     # add the paper configuration
    python benchmarks/bench_train.py --device cuda --configs paper --batch-paper 32   # GPU, bf16

``benchmarks/bench_model.py`` times a bare training step on synthetic tensors; this adds what the
real loop costs on top: reading and decoding the crops (DataLoader), the per-step noise, the
micro-batch split, gradient clipping, the EMA update, loss bookkeeping and the CSV log. For each
configuration the loop trains ``--warmup + --steps`` steps twice on a prepared workspace (real
face crops from ../shared/fixtures when present, else random images), once with the cycle off
("plain", ablation CCFExp^2) and once on ("cycle", Algorithm 1); the step time is the median of
the per-step log rows after the warm-up. Also reported: the FLOPs of one training step per image
(``bench_model.step_flops_per_image``: every network, forward and backward) and, on a GPU, the
achieved FLOP rate against ``--peak-tflops`` (790: the bf16 matrix rate measured on one H200).

Prints a Markdown table and writes the figures as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from fpsynth.data.manifests import FRAMES, PAIRS, to_table
from fpsynth.device import resolve_device
from fpsynth.models.ccfexp import build_model
from fpsynth.pipeline import load_pipeline
from fpsynth.train.distributed import DistContext
from fpsynth.train.loop import Amp, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import RANDOM_WEIGHTS, step_flops_per_image  # noqa: E402  (sibling script)

FIXTURE_FACES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "landmarks68"


def _crops(n: int) -> list[np.ndarray]:
    """n 112x112 RGB crops: the real annotated faces aligned (cycled), or random images without them."""
    names = ("breakingbad.jpg", "einstein.jpg", "lenna.png", "takeo.ppm")
    if all((FIXTURE_FACES / f).is_file() for f in names):
        from fpsynth.data.align import align
        from fpsynth.data.images import read_image
        from fpsynth.data.pts import read_pts

        faces = [
            align(read_image(FIXTURE_FACES / f), read_pts(FIXTURE_FACES / f"{Path(f).stem}.pts")).crop for f in names
        ]
        return [np.roll(faces[i % 4], i // 4, axis=1) for i in range(n)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(n)]


def make_workspace(root: Path, num_pairs: int) -> Path:
    """``root/prepare`` with ``num_pairs`` pairs over num_pairs // 2 subjects of 2 crops each."""
    prepare = root / "prepare"
    frames, pairs = [], []
    for i, crop in enumerate(_crops(num_pairs)):
        subject, frame_id = f"P{i // 2:04d}", f"F{i:05d}"
        path = f"crops/{subject}/{frame_id}.png"
        (prepare / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(prepare / path), np.ascontiguousarray(crop[:, :, ::-1]))
        frames.append(
            {
                "frame_id": frame_id,
                "path": path,
                "subject": subject,
                "dataset": "images",
                "kind": "photo",
                "clip": frame_id,
                "expression": "unknown",
                "frame_index": 0,
                "severity": "unknown",
                "landmarks": np.zeros(136, np.float32),
                "bbox": np.zeros(4, np.float32),
                "affine": np.zeros(6, np.float32),
                "split": "train",
                "blur": 100.0,
                "interocular": 40.0,
                "yaw": 0.0,
                "width": 112,
                "height": 112,
                "landmark_source": "annotation",
            }
        )
    for i, f in enumerate(frames):
        other = frames[i ^ 1]
        pairs.append(
            {
                "pair_id": f"{f['frame_id']}~0",
                "subject": f["subject"],
                "split": "train",
                "id_frame": other["frame_id"],
                "id_path": other["path"],
                "style_frame": f["frame_id"],
                "style_path": f["path"],
                "expression": "unknown",
                "severity": "unknown",
            }
        )
    pq.write_table(to_table(pd.DataFrame(frames), FRAMES), prepare / "frames.parquet")
    pq.write_table(to_table(pd.DataFrame(pairs), PAIRS), prepare / "pairs.parquet")
    return prepare


def time_loop(
    config: str, cycle: bool, batch: int, warmup: int, steps: int, workers: int, device: str, prepare: Path, out: Path
) -> dict:
    """Median seconds per step of the real loop after ``warmup`` steps (from its per-step log rows)."""
    cfg = load_pipeline(
        config,
        [
            f"train.loss.cycle={str(cycle).lower()}",
            f"train.data.batch_size={batch}",
            f"train.data.num_workers={workers}",
            f"train.max_steps={warmup + steps}",
            "train.log.every=1",
            "train.log.sample_pairs=0",
            "train.log.tensorboard=false",
            "train.log.progress=false",
            f"train.checkpoint.every={warmup + steps}",
            f"train.device={device}",
            'weights.random_init=["ir50-id", "ir50-expression", "mobilefacenet-68"]',
        ],
    )
    ctx = DistContext(device=resolve_device(device))
    start = time.perf_counter()
    train(cfg, out, prepare, ctx, resume=None)
    wall = time.perf_counter() - start
    with open(out / "log.csv") as fh:
        rates = [float(r["images_per_s"]) for r in csv.DictReader(fh)][warmup:]
    step_s = statistics.median(batch / r for r in rates)
    return {"step_s": step_s, "wall_s": wall, "precision": Amp.resolve(cfg.train.precision, ctx.device).name}


def bench_config(
    config: str, batch: int, warmup: int, steps: int, workers: int, device: str, peak_tflops: float, repeats: int
) -> dict:
    """Plain and cycle runs alternate ``repeats`` times (a shared machine's load falls on both alike);
    the figures are the medians over the repeats."""
    dev = resolve_device(device)
    result: dict = {"config": config, "batch": batch, "steps_timed": steps, "repeats": repeats}
    runs: dict[str, list[dict]] = {"plain": [], "cycle": []}
    with tempfile.TemporaryDirectory() as tmp:
        prepare = make_workspace(Path(tmp), num_pairs=max(2 * batch, 16))
        for i in range(repeats):
            for label, cycle in (("plain", False), ("cycle", True)):
                out = Path(tmp) / f"{label}-{i}"
                runs[label].append(time_loop(config, cycle, batch, warmup, steps, workers, device, prepare, out))
    for label, timings in runs.items():
        step_s = statistics.median(t["step_s"] for t in timings)
        result.update(
            {
                f"{label}_step_s": step_s,
                f"{label}_images_per_s": batch / step_s,
                f"{label}_precision": timings[0]["precision"],
            }
        )
    torch.manual_seed(0)
    model, _ = build_model(load_pipeline(config).train.model, RANDOM_WEIGHTS)
    model = model.to(dev).train()
    for label, cycle in (("plain", False), ("cycle", True)):
        gflops = step_flops_per_image(model, cycle, dev) / 1e9
        result[f"{label}_step_gflops_per_image"] = gflops
        result[f"{label}_achieved_tflops"] = gflops * result[f"{label}_images_per_s"] / 1e3
        if dev.type == "cuda":
            result[f"{label}_fraction_of_peak"] = result[f"{label}_achieved_tflops"] / peak_tflops
            # the floor: every FLOP at the peak rate
            result[f"{label}_floor_images_per_s"] = peak_tflops * 1e3 / gflops
    result["cycle_over_plain"] = result["cycle_step_s"] / result["plain_step_s"]
    return result


def markdown(results: list[dict], device: str) -> str:
    rows = [
        ("batch (global), timed steps x repeats", lambda r: f"{r['batch']}, {r['steps_timed']} x {r['repeats']}"),
        ("precision", lambda r: r["plain_precision"]),
        (f"plain step, real loop on {device} (s)", lambda r: f"{r['plain_step_s']:.3f}"),
        (f"cycle step, real loop on {device} (s)", lambda r: f"{r['cycle_step_s']:.3f}"),
        ("cycle / plain, time (target <= 2.1)", lambda r: f"{r['cycle_over_plain']:.2f}"),
        ("images/s, plain / cycle", lambda r: f"{r['plain_images_per_s']:.2f} / {r['cycle_images_per_s']:.2f}"),
        (
            "train step per image, plain / cycle (GFLOP)",
            lambda r: f"{r['plain_step_gflops_per_image']:.1f} / {r['cycle_step_gflops_per_image']:.1f}",
        ),
        (
            "achieved TFLOP/s, plain / cycle",
            lambda r: f"{r['plain_achieved_tflops']:.3f} / {r['cycle_achieved_tflops']:.3f}",
        ),
    ]
    if any("cycle_fraction_of_peak" in r for r in results):
        rows += [
            (
                "fraction of peak, plain / cycle",
                lambda r: f"{r['plain_fraction_of_peak']:.1%} / {r['cycle_fraction_of_peak']:.1%}",
            ),
            (
                "FLOP floor images/s, plain / cycle",
                lambda r: f"{r['plain_floor_images_per_s']:.0f} / {r['cycle_floor_images_per_s']:.0f}",
            ),
        ]
    lines = ["| figure | " + " | ".join(r["config"] for r in results) + " |", "|---|" + "---|" * len(results)]
    lines += ["| " + label + " | " + " | ".join(fmt(r) for r in results) + " |" for label, fmt in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--configs", default="tiny", help="comma-separated pipeline names (tiny, paper, ...)")
    parser.add_argument("--batch-tiny", type=int, default=4)
    parser.add_argument("--batch-paper", type=int, default=2, help="CPU default; the paper's is 32 (use on a GPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--repeats", type=int, default=1, help="alternating plain/cycle runs (medians)")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--json", type=Path, default=Path("workspace/benchmarks/bench_train.json"))
    args = parser.parse_args()

    device = str(resolve_device(args.device))
    results = [
        bench_config(
            name,
            args.batch_tiny if name == "tiny" else args.batch_paper,
            args.warmup,
            args.steps,
            args.workers,
            device,
            args.peak_tflops,
            args.repeats,
        )
        for name in args.configs.split(",")
    ]
    machine = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name(0)
    print(f"machine: {machine}\n")
    print(markdown(results, device))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

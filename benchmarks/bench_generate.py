"""Generation benchmark: fpsynth's images/s against a plain sampling loop, memory against --count, the compute floor.

    python benchmarks/bench_generate.py                       # CPU: tiny model (all parts)
    python benchmarks/bench_generate.py --device cuda         # GPU: paper model, bf16, batch "auto"
    python benchmarks/bench_generate.py --parts speed --count 64 --steps 10 --json out.json

Parts (``--parts``, comma-separated):

- ``speed``: the same random-init CCFExp, sampler, steps, batch size and device, two ways. The
  plain loop: conditions and the sampler (``fpsynth.diffusion.sample``) over tensors already on the
  device, images left there. fpsynth: ``generate.run.produce`` over a synthetic prepared workspace
  (planning, crop decoding, sampling, uint8 conversion, PNG encoding, sha256, shard parts, merge,
  dataset card), model loading excepted. The two alternate ``--repeats`` times (a shared machine's
  load falls on both alike); medians. ratio = fpsynth / plain images per second; the target is
  >= 0.95 (batching and writing cost at most 5%). On CUDA also the U-Net alone (its forward at the
  same batch, times the steps): what the sampler's own arithmetic and per-item noise cost.
- ``io``: fpsynth's own work without the sampling: ``produce`` with the Synthesizer's call
  replaced by an instant stand-in (seeded random images), at ``--io-counts`` (200 and 2000),
  batch ``--io-batch`` (500), I/O inline and in threads. A straight line through the two counts
  splits it into seconds per run (plan, merge, card) and milliseconds per image (crop decoding,
  PNG encoding, sha256, writes, parts): the share of the device's time per image that the
  writing must hide (threads, CUDA) or adds (inline, CPU).
- ``memory``: peak RSS (``resource.getrusage`` high-water mark, in a fresh subprocess each) of a
  whole run at ``--memory-counts`` (200 and 2000) with 1 sampling step and shards of 100.
- ``flops``: FLOPs of one image in the paper configuration, counted with
  ``torch.utils.flop_counter`` on the meta device (multiply-add = 2): the conditions once
  (three IR-50 passes, MobileFaceNet, fusion) plus ``--paper-steps`` (50) U-Net forwards; and the
  floor for 100,000 images at ``--peak-tflops`` (790, bf16 matrix rate measured on one H200).

Prints Markdown and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import torch
from bench_model import RANDOM_WEIGHTS, unet_forward_flops  # noqa: E402 (a sibling script: run this file as a script)
from torch.utils.flop_counter import FlopCounterMode

from fpsynth.data.manifests import FRAMES, to_table
from fpsynth.device import resolve_device
from fpsynth.diffusion.config import SamplerConfig
from fpsynth.diffusion.samplers import item_generators, sample
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.generate.config import GenerateConfig, PlanConfig, RuntimeConfig
from fpsynth.generate.identities import Identities
from fpsynth.generate.plan import StylePool
from fpsynth.generate.run import produce
from fpsynth.generate.synthesizer import Synthesizer
from fpsynth.models.ccfexp import CCFExp, build_model
from fpsynth.models.config import ModelConfig, tiny_model_config
from fpsynth.pipeline import PipelineConfig
from fpsynth.stage import atomic_write_parquet

CONFIGS = {"tiny": tiny_model_config, "paper": ModelConfig}
SEVERITIES = ("normal", "near-normal", "mild", "moderate", "severe", "complete")
EXPRESSIONS = ("smile", "brow_raise", "eye_close", "lip_pucker")


# --------------------------------------------------------------------------- inputs


def smooth_crop(rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur((rng.random((112, 112, 3)) * 255).astype(np.uint8), (9, 9), 3)


def synthetic_workspace(prepare_dir: Path, frames_per_stratum: int = 4) -> None:
    """A prepared folder of random smooth crops: 6 severities x 4 expressions, all in the test split."""
    rng = np.random.default_rng(0)
    rows = []
    for s, severity in enumerate(SEVERITIES):
        for expression in EXPRESSIONS:
            for j in range(frames_per_stratum):
                path = f"crops/P{s:04d}/{expression}/{j:05d}.png"
                (prepare_dir / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(prepare_dir / path), smooth_crop(rng))
                rows.append(
                    {
                        "frame_id": f"P{s:04d}-{expression}-{j:05d}",
                        "path": path,
                        "subject": f"P{s:04d}",
                        "expression": expression,
                        "phase": "peak",
                        "severity": severity,
                        "eface": 50.0 + 8 * s,
                        "landmarks": np.zeros(136),
                        "bbox": np.zeros(4),
                        "affine": np.zeros(6),
                        "split": "test",
                    }
                )
    atomic_write_parquet(prepare_dir / "frames.parquet", to_table(pd.DataFrame(rows), FRAMES))


def identities(n: int = 16) -> Identities:
    rng = np.random.default_rng(1)
    return Identities.from_crops([smooth_crop(rng) for _ in range(n)], [f"person{i}.jpg" for i in range(n)])


def build(config: str, device: torch.device) -> CCFExp:
    torch.manual_seed(0)
    model, _ = build_model(CONFIGS[config](), RANDOM_WEIGHTS)
    return model.to(device).eval()


def pipeline(count: int, steps: int, batch: int | str, shard_size: int, device: str) -> PipelineConfig:
    gen = GenerateConfig(
        count=count,
        sampler=SamplerConfig(steps=steps),
        plan=PlanConfig(shard_size=shard_size),
        runtime=RuntimeConfig(device=device, batch_size=batch),
    )
    return dataclasses.replace(PipelineConfig(), generate=gen)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- speed


def time_fpsynth(model: CCFExp, root: Path, cfg: PipelineConfig, run: int | str) -> float:
    """Seconds of one whole produce() into a fresh folder (the model is already built)."""
    pool = StylePool.from_manifest(root / "prepare", cfg.generate.plan)
    loaded = SimpleNamespace(model=model, schedule=NoiseSchedule(), sha256="benchmark", state={"step": 0})
    start = time.perf_counter()
    produce(cfg, root / f"out{run}", identities(), pool, None, lambda *a, **k: loaded)
    return time.perf_counter() - start


def time_plain(synth: Synthesizer, count: int, batch: int) -> float:
    """Seconds of conditions + sampler over ``count`` items on tensors already on the device.

    The same (on CUDA: compiled) denoiser as fpsynth's; every batch is a full one, as fpsynth pads.
    """
    model, network, device = synth.model, synth.network, synth.device
    g = torch.Generator().manual_seed(0)
    x_id, x_style = [
        (torch.rand(batch, 3, 112, 112, generator=g) * 2 - 1).to(device).contiguous(memory_format=synth.memory_format)
        for _ in range(2)
    ]
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=synth.autocast)
    _sync(device)
    start = time.perf_counter()
    for lo in range(0, count, batch):
        with torch.no_grad():
            with amp:
                cond = model.conditions(x_id, model.style_features(x_style))

            def eps_fn(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor = cond) -> torch.Tensor:
                with amp:
                    return network(x.contiguous(memory_format=synth.memory_format), t, cond).float()

            sample(eps_fn, synth.schedule, synth.sampler, item_generators(range(lo, lo + batch), device), device=device)
    _sync(device)
    return time.perf_counter() - start


def time_unet_only(synth: Synthesizer, count: int, batch: int) -> float:
    """Seconds of the denoiser's forwards alone: count/batch batches x steps, fixed inputs."""
    model, device, steps = synth.model, synth.device, synth.sampler.steps
    x = torch.randn(batch, 3, 112, 112, device=device).contiguous(memory_format=synth.memory_format)
    t = torch.full((batch,), 500, device=device, dtype=torch.long)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=synth.autocast):
        cond = model.conditions(x, model.style_features(x))
        _sync(device)
        start = time.perf_counter()
        for _ in range(-(-count // batch) * steps):
            synth.network(x, t, cond)
    _sync(device)
    return time.perf_counter() - start


def bench_speed(args: argparse.Namespace, device: torch.device) -> dict:
    model = build(args.config, device)
    runtime = RuntimeConfig(device=str(device), batch_size=args.batch)
    synth = Synthesizer(model, NoiseSchedule(), SamplerConfig(steps=args.steps), device, runtime)
    batch = synth.batch_size(divides=args.shard_size)
    cfg = pipeline(args.count, args.steps, batch, args.shard_size, str(device))
    times: dict[str, list[float]] = {"plain": [], "fpsynth": []}
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        root = Path(tmp)
        synthetic_workspace(root / "prepare")
        time_plain(synth, min(args.count, 2 * batch), batch)  # warm-up: compilation, kernels, allocator
        for r in range(args.repeats):
            times["plain"].append(time_plain(synth, args.count, batch))
            times["fpsynth"].append(time_fpsynth(model, root, cfg, r))
        unet = time_unet_only(synth, args.count, batch) if device.type == "cuda" else None
        hashes = [
            pd.read_parquet(root / f"out{r}" / "metadata.parquet")["image_sha256"].tolist() for r in range(args.repeats)
        ]
    result = {
        "config": args.config,
        "device": str(device),
        "precision": synth.precision,
        "compiled": synth.compiled,
        "count": args.count,
        "steps": args.steps,
        "batch": batch,
        "repeats": args.repeats,
        "plain_s": statistics.median(times["plain"]),
        "fpsynth_s": statistics.median(times["fpsynth"]),
        "all_times": times,
        "repeats_identical_bytes": all(h == hashes[0] for h in hashes),
    }
    result["plain_images_per_s"] = args.count / result["plain_s"]
    result["fpsynth_images_per_s"] = args.count / result["fpsynth_s"]
    result["ratio"] = result["fpsynth_images_per_s"] / result["plain_images_per_s"]
    if unet is not None:
        result["unet_only_images_per_s"] = args.count / unet
    return result


# --------------------------------------------------------------------------- fpsynth's own work


def bench_io(args: argparse.Namespace) -> list[dict]:
    """Seconds of produce() with an instant sampler, per overlap mode and count; fixed + per-image fit."""
    model = build("tiny", torch.device("cpu"))

    def instant(self: Synthesizer, x_id: torch.Tensor, x_style: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seeds[0]))
        return torch.rand(len(seeds), *x_id.shape[1:], generator=g) * 2 - 1

    real_call, Synthesizer.__call__ = Synthesizer.__call__, instant
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-generate-io-") as tmp:
            root = Path(tmp)
            synthetic_workspace(root / "prepare")
            for overlap in ("inline", "threads"):
                seconds = {}
                for count in args.io_counts:
                    cfg = pipeline(count, 1, args.io_batch, args.shard_size, "cpu")
                    runtime = RuntimeConfig(device="cpu", batch_size=args.io_batch, overlap=overlap)
                    cfg = dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, runtime=runtime))
                    seconds[count] = statistics.median(
                        time_fpsynth(model, root, cfg, f"io-{overlap}-{count}-{r}") for r in range(args.repeats)
                    )
                (lo, t_lo), (hi, t_hi) = min(seconds.items()), max(seconds.items())
                per_image = (t_hi - t_lo) / (hi - lo)
                results.append(
                    {
                        "overlap": overlap,
                        "seconds": seconds,
                        "ms_per_image": 1000 * per_image,
                        "fixed_s": t_lo - lo * per_image,
                    }
                )
    finally:
        Synthesizer.__call__ = real_call
    return results


# --------------------------------------------------------------------------- memory


def memory_child(count: int, config: str) -> None:
    """One whole run in this (fresh) process; prints its peak RSS in MiB as JSON."""
    device = torch.device("cpu")
    model = build(config, device)
    with tempfile.TemporaryDirectory(prefix="bench-generate-rss-") as tmp:
        root = Path(tmp)
        synthetic_workspace(root / "prepare")
        seconds = time_fpsynth(model, root, pipeline(count, 1, 16, 100, "cpu"), 0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"count": count, "peak_rss_mib": peak_mib, "seconds": seconds}))


def bench_memory(args: argparse.Namespace) -> list[dict]:
    results = []
    for count in args.memory_counts:
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            str(count),
            "--config",
            args.config,
            *(["--threads", str(args.threads)] if args.threads else []),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# --------------------------------------------------------------------------- FLOPs and the floor


def condition_flops(cfg: ModelConfig) -> int:
    """FLOPs of the conditions of one image (frozen features of the style image, trainable encoders)."""
    with torch.device("meta"):
        model = CCFExp(cfg).eval()
        x = torch.empty(1, 3, 112, 112)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.conditions(x, model.style_features(x))
    return counter.get_total_flops()


def bench_flops(args: argparse.Namespace) -> dict:
    cfg = ModelConfig()
    unet, cond = unet_forward_flops(cfg), condition_flops(cfg)
    per_image = cond + args.paper_steps * unet
    floor_s = per_image * 100_000 / (args.peak_tflops * 1e12)
    return {
        "unet_forward_gflops": unet / 1e9,
        "conditions_gflops": cond / 1e9,
        "steps": args.paper_steps,
        "gflops_per_image": per_image / 1e9,
        "peak_tflops": args.peak_tflops,
        "floor_s_100k": floor_s,
        "floor_images_per_s": 100_000 / floor_s,
    }


# --------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    lines = []
    if "speed" in result:
        s = result["speed"]
        compiled = ", compiled" if s["compiled"] else ""
        lines += [
            f"**speed** ({s['config']} model, {s['device']} {s['precision']}{compiled}, {s['count']} images, "
            f"{s['steps']} steps, batch {s['batch']}, median of {s['repeats']})",
            "",
            "| loop | images/s |",
            "|---|---|",
            f"| plain sampling loop | {s['plain_images_per_s']:.2f} |",
            f"| fpsynth generate (plan, load, sample, PNG, hash, shards, merge) | {s['fpsynth_images_per_s']:.2f} |",
        ]
        if "unet_only_images_per_s" in s:
            lines.append(f"| U-Net forwards alone | {s['unet_only_images_per_s']:.2f} |")
        lines += [
            f"| **ratio fpsynth / plain** (target >= 0.95) | **{s['ratio']:.3f}** |",
            "",
            f"fpsynth's {s['repeats']} runs wrote identical bytes: {s['repeats_identical_bytes']}",
            "",
        ]
    if "io" in result:
        lines += [
            "**fpsynth's own work** (sampling replaced by an instant stand-in; fit over --count "
            f"{', '.join(str(c) for c in result['io'][0]['seconds'])})",
            "",
            "| I/O | seconds per count | per image (ms) | per run (s) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['overlap']} | {', '.join(f'{s:.2f}' for s in r['seconds'].values())} | "
            f"{r['ms_per_image']:.2f} | {r['fixed_s']:.2f} |"
            for r in result["io"]
        ]
        lines.append("")
    if "memory" in result:
        lines += [
            "**peak RSS** (whole run, 1 step, shards of 100)",
            "",
            "| --count | peak RSS (MiB) | seconds |",
            "|---|---|---|",
        ]
        lines += [f"| {m['count']} | {m['peak_rss_mib']:.0f} | {m['seconds']:.1f} |" for m in result["memory"]]
        lines.append("")
    if "flops" in result:
        f = result["flops"]
        lines += [
            "**paper configuration, FLOPs and floor**",
            "",
            "| figure | value |",
            "|---|---|",
            f"| U-Net forward (GFLOP / image) | {f['unet_forward_gflops']:.1f} |",
            f"| conditions, once per image (GFLOP) | {f['conditions_gflops']:.1f} |",
            f"| one image, {f['steps']} steps (GFLOP) | {f['gflops_per_image']:.0f} |",
            f"| floor for 100,000 images at {f['peak_tflops']:.0f} TFLOP/s (s) | {f['floor_s_100k']:.0f} |",
            f"| floor rate (images/s) | {f['floor_images_per_s']:.0f} |",
        ]
        if "speed" in result and result["speed"]["config"] == "paper" and result["speed"]["steps"] == f["steps"]:
            s = result["speed"]
            lines.append(f"| measured fpsynth / floor | {s['fpsynth_images_per_s'] / f['floor_images_per_s']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--parts", default="speed,io,memory,flops")
    parser.add_argument("--config", default=None, help="tiny or paper (default: tiny on CPU, paper on CUDA)")
    parser.add_argument("--count", type=int, default=None, help="images per speed run (CPU 32, CUDA 2000)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps of the speed part (CPU 10, CUDA 50)")
    parser.add_argument("--batch", default=None, help='batch size or "auto" (CPU 8, CUDA auto)')
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--io-counts", type=lambda s: [int(v) for v in s.split(",")], default=[200, 2000])
    parser.add_argument("--io-batch", type=int, default=500)
    parser.add_argument("--memory-counts", type=lambda s: [int(v) for v in s.split(",")], default=[200, 2000])
    parser.add_argument("--paper-steps", type=int, default=50)
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=Path("workspace/benchmarks/bench_generate.json"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.config = args.config or ("paper" if cuda else "tiny")
    if args.memory_child is not None:
        memory_child(args.memory_child, args.config)
        return
    args.count = args.count or (2000 if cuda else 32)
    args.steps = args.steps or (50 if cuda else 10)
    batch = args.batch or ("auto" if cuda else "8")
    args.batch = batch if batch == "auto" else int(batch)

    parts = set(args.parts.split(","))
    result: dict = {
        "machine": {
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(device) if cuda else None,
        }
    }
    if "speed" in parts:
        result["speed"] = bench_speed(args, device)
    if "io" in parts:
        result["io"] = bench_io(args)
    if "memory" in parts:
        result["memory"] = bench_memory(args)
    if "flops" in parts:
        result["flops"] = bench_flops(args)
    print(f"machine: {result['machine']}\n")
    print(markdown(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

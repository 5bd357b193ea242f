"""Model benchmark: U-Net FLOPs, and the time of a plain and of a cycle training step.

    python benchmarks/bench_model.py                       # CPU: tiny and paper configurations
    python benchmarks/bench_model.py --device cuda         # GPU: bf16 autocast, paper configuration
    python benchmarks/bench_model.py --configs tiny --json out.json

Figures:
- FLOPs of one U-Net forward (batch 1, 147 condition tokens, f_ID added to the time embedding),
  counted with ``torch.utils.flop_counter.FlopCounterMode`` (multiply-add = 2 FLOPs) on the meta
  device, and the compute floor they imply for generating 100,000 images with 50 DDIM steps at
  ``--peak-tflops`` (790: the bf16 matrix rate measured on one H200, DESIGN.md).
- FLOPs of one whole training step per image (all networks, forward and backward), plain and cycle,
  counted the same way on a batch of 2.
- Wall time of a training step (frozen features, conditions, U-Net pass(es), losses, backward,
  AdamW step) with the cycle off ("plain") and on ("cycle"), median of ``--repeats`` after a
  warm-up round, the two kinds alternating, and the ratio cycle/plain (target <= 2.1). On CUDA the step runs under bf16
  autocast and its FLOP rate is compared with the peak.

Prints a Markdown table and writes the figures as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from fpsynth.diffusion.config import LossConfig
from fpsynth.diffusion.objective import CycleObjective
from fpsynth.diffusion.schedule import NoiseSchedule
from fpsynth.models.ccfexp import CCFExp, build_model
from fpsynth.models.config import ModelConfig, tiny_model_config
from fpsynth.models.unet import UNet
from fpsynth.weights import WeightsConfig

CONFIGS = {"tiny": tiny_model_config, "paper": ModelConfig}
RANDOM_WEIGHTS = WeightsConfig(random_init=("ir50-id", "ir50-expression", "mobilefacenet-68"))


def unet_forward_flops(cfg: ModelConfig) -> int:
    """FLOPs of one U-Net forward for one image with its condition tokens (meta device: no compute)."""
    with torch.device("meta"):
        unet = UNet(cfg.unet)
        args = (
            torch.empty(1, 3, 112, 112),
            torch.zeros(1, dtype=torch.long),
            torch.empty(1, 2 * cfg.unet.attention_width, 147),
            torch.empty(1, cfg.unet.time_embed_dim),
        )
    counter = FlopCounterMode(display=False)
    with counter:
        unet(*args)
    return counter.get_total_flops()


def _batch(n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 3, 112, 112, generator=g) * 2 - 1
    x_id = torch.rand(n, 3, 112, 112, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (n,), generator=g)
    eps = torch.randn(n, 3, 112, 112, generator=g)
    return tuple(v.to(device) for v in (x0, x_id, t, eps))


def _step(
    objective: CycleObjective, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...], autocast: bool
) -> None:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        losses = objective(*batch)
    losses.total.backward()
    optimizer.step()


def step_flops_per_image(model: CCFExp, cycle: bool, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward of everything) divided by the batch (2)."""
    objective = CycleObjective(model, NoiseSchedule(), LossConfig(cycle=cycle))
    counter = FlopCounterMode(display=False)
    with counter:
        objective(*_batch(2, device)).total.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def time_steps(model: CCFExp, batch_size: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of a full training step, plain and cycle.

    One warm-up step of each first; then the two kinds alternate, so that a change in the
    machine's load during the run (a shared CPU) falls on both alike.
    """
    objectives = {
        label: CycleObjective(model, NoiseSchedule(), LossConfig(cycle=cycle))
        for label, cycle in (("plain", False), ("cycle", True))
    }
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    batch = _batch(batch_size, device)
    autocast = device.type == "cuda"
    times: dict[str, list[float]] = {label: [] for label in objectives}
    for i in range(repeats + 1):
        for label, objective in objectives.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            _step(objective, optimizer, batch, autocast)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # round 0 warms up allocators, kernels and the optimizer state
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(ts) for label, ts in times.items()}


def bench_config(name: str, batch_size: int, repeats: int, device: torch.device, peak_tflops: float) -> dict:
    torch.manual_seed(0)
    cfg = CONFIGS[name]()
    model, _ = build_model(cfg, RANDOM_WEIGHTS)
    model = model.to(device).train()
    result: dict = {
        "config": name,
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_trainable": sum(p.numel() for p in model.trainable_parameters()),
        "unet_forward_gflops": unet_forward_flops(cfg) / 1e9,
        "batch": batch_size,
    }
    seconds_per_step = time_steps(model, batch_size, repeats, device)
    for label, cycle in (("plain", False), ("cycle", True)):
        result[f"{label}_step_gflops_per_image"] = step_flops_per_image(model, cycle, device) / 1e9
        seconds = seconds_per_step[label]
        result[f"{label}_step_s"] = seconds
        result[f"{label}_images_per_s"] = batch_size / seconds
        if device.type == "cuda":
            achieved = result[f"{label}_step_gflops_per_image"] * 1e9 * batch_size / seconds
            result[f"{label}_fraction_of_peak"] = achieved / (peak_tflops * 1e12)
    result["cycle_over_plain"] = result["cycle_step_s"] / result["plain_step_s"]
    result["cycle_over_plain_flops"] = result["cycle_step_gflops_per_image"] / result["plain_step_gflops_per_image"]
    # Generation floor: 100k images x 50 DDIM steps x one U-Net forward, at the peak rate.
    result["generation_floor_s_100k_50steps"] = (
        result["unet_forward_gflops"] * 1e9 * 50 * 100_000 / (peak_tflops * 1e12)
    )
    return result


def markdown(results: list[dict], device: str) -> str:
    rows = [
        (
            "parameters (total / trainable, M)",
            lambda r: f"{r['params_total'] / 1e6:.1f} / {r['params_trainable'] / 1e6:.1f}",
        ),
        ("U-Net forward, batch 1 (GFLOP)", lambda r: f"{r['unet_forward_gflops']:.2f}"),
        ("generation floor, 100k images x 50 steps (s)", lambda r: f"{r['generation_floor_s_100k_50steps']:.0f}"),
        (
            "train step per image, plain / cycle (GFLOP)",
            lambda r: f"{r['plain_step_gflops_per_image']:.1f} / {r['cycle_step_gflops_per_image']:.1f}",
        ),
        ("batch", lambda r: str(r["batch"])),
        (f"plain step on {device} (s)", lambda r: f"{r['plain_step_s']:.3f}"),
        (f"cycle step on {device} (s)", lambda r: f"{r['cycle_step_s']:.3f}"),
        ("cycle / plain, time (target <= 2.1)", lambda r: f"{r['cycle_over_plain']:.2f}"),
        ("cycle / plain, FLOPs", lambda r: f"{r['cycle_over_plain_flops']:.2f}"),
        ("images/s, plain / cycle", lambda r: f"{r['plain_images_per_s']:.2f} / {r['cycle_images_per_s']:.2f}"),
    ]
    if any("plain_fraction_of_peak" in r for r in results):
        rows.append(
            (
                "fraction of peak FLOP rate, plain / cycle",
                lambda r: f"{r['plain_fraction_of_peak']:.1%} / {r['cycle_fraction_of_peak']:.1%}",
            )
        )
    lines = ["| figure | " + " | ".join(r["config"] for r in results) + " |", "|---|" + "---|" * len(results)]
    lines += ["| " + label + " | " + " | ".join(fmt(r) for r in results) + " |" for label, fmt in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configs", default="tiny,paper", help="comma-separated: tiny, paper")
    parser.add_argument("--batch-tiny", type=int, default=4)
    parser.add_argument("--batch-paper", type=int, default=2, help="CPU default; use e.g. 16 on a GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 matrix rate of the GPU (H200: 790)")
    parser.add_argument("--json", type=Path, default=Path("workspace/benchmarks/bench_model.json"))
    args = parser.parse_args()

    device = torch.device(args.device)
    results = []
    for name in args.configs.split(","):
        batch = args.batch_tiny if name == "tiny" else args.batch_paper
        results.append(bench_config(name, batch, args.repeats, device, args.peak_tflops))
    machine = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    print(f"machine: {machine}\n")
    print(markdown(results, str(device)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

"""Report benchmark: time of `fpsynth report` for 10,000 generated images, split by metric.

    python benchmarks/bench_report.py                         # CPU: 200 images measured, extrapolated
    python benchmarks/bench_report.py --images 500 --device cuda --json out.json

What runs: the whole report stage (``fpsynth.report.run.run``) on a workspace prepared from the
fixtures' 5 people x 11 real face photos (`prepare --images`: 44 training frames, 11 test frames)
and a generated dataset of ``--images`` images in the generate stage's layout (each a blend of a
real identity crop and a real style crop; the metrics cost the same whatever the pixels). The
networks have the published shapes; with no weight files here Inception-v3 and VGG16 run from
seeded random weights (the compute is the same), the LPIPS v0.1 layers are the fixture file, and
identity and landmarks are dlib's models.

How 10,000 is reached: the stage records the seconds of each part (``report.json`` timings).
Parts done once per generated image (loading, PSNR/SSIM, LPIPS, PL, Inception features, dlib
identity and landmarks) are divided by the n measured and multiplied by 10,000; so are the
reference frames' Inception features (the reference is capped at ``max_images`` = 10,000 real
frames). Fixed costs are kept as measured: the Frechet distance (``scipy.linalg.sqrtm`` of a
2048 x 2048 product, once per FID), network loading and the page. The privacy audit depends on
the training set, not on the generated images: its embedding cost per training frame is given
and scaled to the paper's 80,288 training frames, and the nearest-subject search (10,000 x 80,288
distances) is timed directly on random embeddings. aFID depends on the model: the U-Net forward
of the paper configuration is timed and multiplied by 2 passes x 50 steps x the paper's 10,880
test images. Everything extrapolated is labelled so. Prints Markdown, writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from fpsynth.pipeline import load_pipeline, with_section

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
TARGET = 10_000  # generated images
PAPER_TRAIN_FRAMES, PAPER_TEST_FRAMES, PAPER_STEPS = 80_288, 10_880, 50
# Parts whose work grows with the number of generated (or reference) images.
PER_IMAGE = (
    "load_images",
    "psnr_ssim",
    "lpips",
    "perceptual",
    "fid_features",
    "identity",
    "landmarks",
    "reference_features",
)


def make_workspace(root: Path, n_images: int) -> Path:
    """Prepared real faces + ``n_images`` generated images in generate's output layout."""
    from fpsynth.data.prepare import run as prepare
    from fpsynth.generate.identities import Identities, write_identities

    ws = root / "ws"
    prepare(with_section(load_pipeline("tiny"), "prepare", images=FIXTURES / "faces" / "people", n_jobs=1), ws)
    frames = pd.read_parquet(ws / "prepare" / "frames.parquet").sort_values("frame_id").reset_index(drop=True)
    test = frames[frames["split"] == "test"]
    crops = [cv2.cvtColor(cv2.imread(str(ws / "prepare" / p)), cv2.COLOR_BGR2RGB) for p in test["path"].head(3)]
    ids = Identities.from_crops(crops, [f"person{i}.jpg" for i in range(len(crops))])
    out = ws / "generate"
    (out / "shards").mkdir(parents=True)
    write_identities(out, ids)
    rows = []
    for k in range(n_images):
        shard, ident = k // 1000, ids.table.iloc[k % len(ids)]
        style = frames.iloc[k % len(frames)]
        name = f"shards/{shard:05d}/{k:08d}.png"
        blend = cv2.addWeighted(
            cv2.cvtColor(crops[k % len(crops)], cv2.COLOR_RGB2BGR),
            0.6,
            cv2.imread(str(ws / "prepare" / style["path"])),
            0.4,
            0,
        )
        (out / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(out / name), blend)
        rows.append(
            {
                "item_id": f"{k:08d}",
                "file_name": name,
                "identity_id": ident["identity_id"],
                "style_frame": style["frame_id"],
                "style_subject": style["subject"],
                "severity": style["severity"],
                "eface": style["eface"],
                "expression": style["expression"],
                "phase": style["phase"],
                "sampler": "ddim",
                "steps": 50,
                "checkpoint": "0" * 64,
                "synthetic": True,
            }
        )
    pd.DataFrame(rows).to_parquet(out / "metadata.parquet")
    return ws


def bench_stage(ws: Path, args: argparse.Namespace) -> dict:
    from fpsynth.report.run import run

    lpips = FIXTURES / "weights" / "lpips-v0.1" / "vgg.pth"
    cfg = load_pipeline(
        "paper",
        [
            "weights.random_init=['inception-v3-fid', 'vgg16']",
            f"weights.lpips='{lpips}'",
            f"report.device='{args.device}'",
            f"report.batch_size={args.batch_size}",
        ],
    )
    t0 = time.perf_counter()
    run(cfg, ws, force=True)
    total = time.perf_counter() - t0
    report = json.loads((ws / "report" / "report.json").read_text())
    return {
        "total_s": total,
        "timings_s": report["timings_s"],
        "n_generated": report["sets"]["dataset"]["n"],
        "n_reference": report["reference"]["n"],
        "n_training": report["sets"]["dataset"]["privacy"]["training"]["frames"],
    }


def bench_privacy_search(n_generated: int, n_training: int, dims: int = 128) -> float:
    """Seconds of the nearest-training-subject search (dlib's 128-d Euclidean) at full size."""
    from fpsynth.metrics.identity import SimilarityKind, Verifier
    from fpsynth.metrics.privacy import privacy_audit

    rng = np.random.default_rng(0)
    generated = rng.normal(size=(n_generated, dims)).astype(np.float32)
    training = rng.normal(size=(n_training, dims)).astype(np.float32)
    subjects = [f"P{i % 276:04d}" for i in range(n_training)]  # the paper's 276 training subjects
    t0 = time.perf_counter()
    privacy_audit(Verifier(SimilarityKind.EUCLIDEAN, 0.6), generated, training, subjects)
    return time.perf_counter() - t0


def bench_paper_unet(device: torch.device, batch: int = 4, repeats: int = 2) -> float:
    """Seconds per image of one U-Net forward in the paper configuration (random weights)."""
    from fpsynth.models.config import UNetConfig
    from fpsynth.models.unet import UNet

    cfg = UNetConfig()
    net = UNet(cfg).to(device).eval()
    x = torch.randn(batch, 3, 112, 112, device=device)
    t = torch.full((batch,), 500, device=device, dtype=torch.long)
    tokens = torch.randn(batch, 2 * cfg.attention_width, 147, device=device)  # projected condition tokens
    emb = torch.randn(batch, cfg.time_embed_dim, device=device)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            net(x, t, tokens, emb)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return min(times[1:]) / batch


def extrapolate(stage: dict, privacy_search_s: float, unet_s: float) -> list[dict]:
    """Rows of the table: measured seconds, and the estimate for 10,000 generated images."""
    timings, n, n_ref, n_train = stage["timings_s"], stage["n_generated"], stage["n_reference"], stage["n_training"]
    rows = []
    for part, seconds in sorted(timings.items()):
        if part == "privacy":
            per = seconds / n_train
            rows.append(
                {
                    "part": "privacy: embed training frames",
                    "measured_s": seconds,
                    "on": f"{n_train} training frames",
                    "per_image_ms": 1e3 * per,
                    "estimate_s": per * PAPER_TRAIN_FRAMES,
                    "estimate_on": f"{PAPER_TRAIN_FRAMES:,} training frames (paper), linear",
                }
            )
        elif part in PER_IMAGE:
            count = n_ref if part == "reference_features" else n
            per = seconds / count
            rows.append(
                {
                    "part": part,
                    "measured_s": seconds,
                    "on": f"{count} images",
                    "per_image_ms": 1e3 * per,
                    "estimate_s": per * TARGET,
                    "estimate_on": f"{TARGET:,} images, linear",
                }
            )
        else:
            rows.append(
                {
                    "part": part,
                    "measured_s": seconds,
                    "on": "fixed",
                    "per_image_ms": None,
                    "estimate_s": seconds,
                    "estimate_on": "fixed (once per FID)" if part == "fid_distance" else "fixed",
                }
            )
    other = stage["total_s"] - sum(timings.values())
    rows.append(
        {
            "part": "other (network loading, tables, page, files)",
            "measured_s": other,
            "on": "fixed",
            "per_image_ms": None,
            "estimate_s": other,
            "estimate_on": "fixed (measured; the page grows little)",
        }
    )
    rows.append(
        {
            "part": "privacy: nearest-subject search",
            "measured_s": privacy_search_s,
            "on": f"{TARGET:,} x {PAPER_TRAIN_FRAMES:,} embeddings",
            "per_image_ms": None,
            "estimate_s": privacy_search_s,
            "estimate_on": "measured at full size",
        }
    )
    afid = unet_s * 2 * PAPER_STEPS * PAPER_TEST_FRAMES
    rows.append(
        {
            "part": "aFID transfers (paper model; not per generated image)",
            "measured_s": unet_s,
            "on": "1 U-Net forward per image",
            "per_image_ms": 1e3 * unet_s,
            "estimate_s": afid,
            "estimate_on": f"2 passes x {PAPER_STEPS} steps x {PAPER_TEST_FRAMES:,} test images, linear",
        }
    )
    return rows


def markdown(rows: list[dict], stage: dict, device: str) -> str:
    lines = [
        f"report on {stage['n_generated']} generated images ({device}); total {stage['total_s']:.1f} s",
        "",
        "| part | measured (s) | measured on | per image (ms) | estimate (s) | estimate for |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        per = "" if r["per_image_ms"] is None else f"{r['per_image_ms']:.2f}"
        lines.append(
            f"| {r['part']} | {r['measured_s']:.2f} | {r['on']} | {per} | {r['estimate_s']:.0f} | {r['estimate_on']} |"
        )
    per_dataset = sum(r["estimate_s"] for r in rows if not r["part"].startswith(("privacy", "aFID")))
    privacy = sum(r["estimate_s"] for r in rows if r["part"].startswith("privacy"))
    lines += [
        "",
        f"10,000 generated images, every metric but privacy and aFID: about {per_dataset / 60:.1f} min "
        f"(extrapolated); privacy audit against the paper's training set: about {privacy / 60:.1f} min more.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="generated images actually measured")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto ...")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        ws = make_workspace(Path(tmp), args.images)
        stage = bench_stage(ws, args)
    search = bench_privacy_search(TARGET, PAPER_TRAIN_FRAMES)
    unet = bench_paper_unet(device)
    rows = extrapolate(stage, search, unet)
    print(markdown(rows, stage, str(device)))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": platform.platform(),
                    "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads(),
                    "device": str(device),
                    "stage": stage,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

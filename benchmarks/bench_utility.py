"""Utility benchmark: time of `fpsynth utility` for 10,000 generated images, split by grader and by part.

    python benchmarks/bench_utility.py --json out.json                  # scale 0.1, 1 repeat, scaled up by rule
    python benchmarks/bench_utility.py --scale 1 --repeats 3 --json o   # the full size, all measured (hours on 2 cores)

What runs: the whole utility stage (``fpsynth.utility.run.run`` with the ``paper`` pipeline's
defaults: four tasks, geometry + appearance graders, regimes real / synthetic / real + synthetic
x0.5, 1, 2, 4, 1,000 subject resamples; ``--repeats`` seeds per regime, default 3 in the stage) on a
workspace written here. Its images come from the demo renderer (fpsynth.demo: faces of no real
person with an exact one-sided palsy; the stage's cost does not depend on the pixels): a prepared
real set of the paper's split, 80,288 training frames of 276 subjects and 10,880 test frames of 37
subjects (its section 4.3), and a generated set of 10,000 images in the generate stage's layout
(``metadata.parquet`` + PNG shards), each set ``--scale`` times its size (the subjects stay 276 / 37,
with fewer frames each).

How the full size is reached from a smaller measured run (every scaled figure is labelled): the
stage records the seconds of each part (``utility.json`` timings). Reading + landmarks, geometry
features and the bootstrap grow with the images (divided by the scale); the training parts and
the bootstrap grow with the repeats (times 3 / repeats); the geometry fits grow with the training
rows (divided by the scale); the CNN's optimizer steps do not grow (``appearance.max_steps`` caps
every run once a regime holds 20 x 500 x 32 / 20 = 800+ images), but its test predictions do:
their cost is timed on the full-size generated crops (``--direct``) and taken out before the
steps are scaled. ``--direct`` also measures reading + landmarks and geometry features of the
10,000 generated crops at full size, the check of the "divided by the scale" rule.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from fpsynth.demo.rendered import rendered_samples
from fpsynth.demo_config import Movement
from fpsynth.pipeline import load_pipeline

PAPER_TRAIN = (80_288, 276)  # frames, subjects (paper 4.3: 88% of the data, 276 individuals)
PAPER_TEST = (10_880, 37)  # 12%, 37 individuals
GENERATED = 10_000
REPORT_MIN = 76.7  # BENCHMARKS.md, "report: 10,000 generated images on CPU" (the --images 1000 check)
MOVEMENTS = tuple(Movement)
SEVERITIES = (0.0, 0.2, 0.35, 0.5, 0.62, 0.8, 0.9, 1.0)


def _render(n: int, subjects: int, prefix: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` rendered crops of ``subjects`` subjects (rows, (n, 112, 112, 3) uint8), rendered in chunks."""
    per_subject = -(-n // subjects)
    frames = max(2, -(-per_subject // len(MOVEMENTS)))  # per movement clip
    movements = MOVEMENTS[: -(-per_subject // frames)]  # render no more than is kept
    tables, images, done = [], [], 0
    for k in range(subjects):
        left = n - done
        if left <= 0:
            break
        s = rendered_samples(
            [SEVERITIES[k % len(SEVERITIES)]],
            seed=seed * 100_003 + k,
            prefix=f"{prefix}{k:04d}-",
            movements=movements,
            frames=frames,
        )
        keep = min(len(s), -(-left // (subjects - k)))  # spread over every subject
        table = s.table.iloc[:keep]
        if k % 2:  # one subject per call draws a left palsy: label every other subject right (timing only)
            table = table.assign(side=table["side"].where(table["side"].isna(), "right"))
        tables.append(table)
        images.append(s.images[:keep])
        done += keep
    return pd.concat(tables, ignore_index=True), np.concatenate(images)


def _write(folder: Path, names: list[str], images: np.ndarray) -> None:
    for name, img in zip(names, images):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img[:, :, ::-1])


def make_workspace(ws: Path, scale: float) -> dict:
    """prepare/ (train + test) and generate/ at ``scale`` of the full sizes; returns the counts."""
    n_train, n_test, n_gen = (max(1, round(scale * n)) for n in (PAPER_TRAIN[0], PAPER_TEST[0], GENERATED))
    train, train_img = _render(n_train, PAPER_TRAIN[1], "P", seed=1)
    test, test_img = _render(n_test, PAPER_TEST[1], "T", seed=2)
    real = pd.concat([train.assign(split="train"), test.assign(split="test")], ignore_index=True)
    paths = [f"crops/{s}/{i:06d}.png" for i, s in enumerate(real["subject"])]
    _write(ws / "prepare", paths, np.concatenate([train_img, test_img]))
    real.assign(path=paths).to_parquet(ws / "prepare" / "frames.parquet")
    gen, gen_img = _render(n_gen, 200, "G", seed=3)
    style = real[real["split"] == "train"].sample(len(gen), replace=True, random_state=0)  # styles of train frames
    names = [f"shards/{i // 1000:05d}/{i:08d}.png" for i in range(len(gen))]
    _write(ws / "generate", names, gen_img)
    gen.drop(columns=["subject", "frame_id"]).assign(
        item_id=[f"{i:08d}" for i in range(len(gen))],
        file_name=names,
        style_frame=style["frame_id"].to_numpy(),
        style_subject=style["subject"].to_numpy(),
        identity_source=[f"ids/id{i % 500:04d}.png" for i in range(len(gen))],
    ).to_parquet(ws / "generate" / "metadata.parquet")
    return {"scale": scale, "n_train": len(train), "n_test": len(test), "n_generated": len(gen)}


def bench_stage(ws: Path, repeats: int) -> dict:
    from fpsynth.utility.run import run

    t0 = time.perf_counter()
    run(load_pipeline("paper", [f"utility.repeats={repeats}"]), ws, force=True)
    total = time.perf_counter() - t0
    out = json.loads((ws / "utility" / "utility.json").read_text())
    runs = pd.read_parquet(ws / "utility" / "runs.parquet")
    return {"total_s": total, "timings_s": out["timings_s"], "runs": runs["grader"].value_counts().to_dict()}


def bench_direct_generated(root: Path) -> dict:
    """Reading + landmarks and geometry features of 10,000 generated crops, measured at full size."""
    from fpsynth.metrics.landmarks import dlib_crop_landmarker
    from fpsynth.utility.features import geometry_features
    from fpsynth.utility.run import _samples

    table, images = _render(GENERATED, 200, "G", seed=3)
    names = [f"g/{i:08d}.png" for i in range(len(table))]
    _write(root, names, images)
    landmarker = dlib_crop_landmarker(None)
    t0 = time.perf_counter()
    s = _samples(table, [root / n for n in names], landmarker, True, 256)
    t1 = time.perf_counter()
    geometry_features(s.landmarks)
    t2 = time.perf_counter()
    cnn_forward(s.images)
    return {
        "n": len(table),
        "read_landmarks_s": t1 - t0,
        "features_s": t2 - t1,
        "cnn_forward_s": time.perf_counter() - t2,
    }


def cnn_forward(images: np.ndarray) -> None:
    """The appearance grader's test predictions: the default CNN in eval mode over ``images``, 256 at a time."""
    from fpsynth.utility.config import AppearanceConfig
    from fpsynth.utility.graders import IN_CHANNELS, SmallCNN, cnn_input

    cfg = AppearanceConfig()
    net = SmallCNN(cfg.width, IN_CHANNELS[cfg.input]).eval()
    with torch.no_grad():
        for i in range(0, len(images), 256):
            net(cnn_input(images[i : i + 256], cfg.input, torch.device("cpu"), cfg.side))


def scale_up(point: dict, direct: dict | None, stage_repeats: int = 3) -> list[dict]:
    """Rows (part, measured seconds, full-size seconds, rule) from one measured run (module notes)."""
    t, sc, rep = point["stage"]["timings_s"], point["workspace"]["scale"], point["repeats"]
    r = stage_repeats / rep
    rows = []
    for part, sec in t.items():
        if part.startswith("read_landmarks") or part.startswith("features"):
            rows.append((part, sec, sec / sc, "x 1/scale (images)"))
        elif part == "appearance_training" and direct:
            # test predictions: per run one forward over the test rows; timed at full size on generated crops
            n_test_full = PAPER_TEST[0]
            fwd_full = direct["cnn_forward_s"] / direct["n"] * n_test_full  # one run's predictions at full size
            fwd_here = fwd_full * sc * point["stage"]["runs"]["appearance"]
            steps = max(sec - fwd_here, 0.0)
            rows.append(("appearance_training: optimizer steps", steps, steps * r, f"x {r:g} (repeats); steps capped"))
            rows.append(
                (
                    "appearance_training: test predictions",
                    fwd_here,
                    fwd_full * point["stage"]["runs"]["appearance"] * r,
                    f"timed at full size x runs x {r:g}",
                )
            )
        elif part.endswith("_training") or part.endswith("_bootstrap"):
            rows.append((part, sec, sec / sc * r, f"x 1/scale x {r:g} (rows, repeats)"))
        else:
            rows.append((part, sec, sec / sc, "x 1/scale"))
    other = point["stage"]["total_s"] - sum(t.values())
    rows.append(("other (reading tables, writing outputs)", other, other, "fixed"))
    return [{"part": a, "measured_s": b, "full_s": c, "rule": d} for a, b, c, d in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument(
        "--repeats", type=int, default=1, help="seeds per regime in the measured run (the stage's default: 3)"
    )
    ap.add_argument(
        "--no-direct", action="store_true", help="skip the full-size measurement of the generated-image parts"
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    load = [os.getloadavg()]
    direct = None
    if not args.no_direct:
        with tempfile.TemporaryDirectory() as tmp:
            direct = bench_direct_generated(Path(tmp))
        print(f"direct: {direct}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        counts = make_workspace(Path(tmp) / "ws", args.scale)
        build = time.perf_counter() - t0
        print(f"workspace {counts} in {build:.0f} s", flush=True)
        stage = bench_stage(Path(tmp) / "ws", args.repeats)
    load.append(os.getloadavg())
    point = {"workspace": counts, "repeats": args.repeats, "build_s": build, "stage": stage}
    print(json.dumps(point), flush=True)
    rows = scale_up(point, direct)
    total = sum(r["full_s"] for r in rows)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "load_average": load,
        "point": point,
        "direct_generated": direct,
        "rows": rows,
        "full_total_min": total / 60,
        "report_min": REPORT_MIN,
        "ratio_to_report": total / 60 / REPORT_MIN,
    }
    print(f"| part | measured (s), scale {args.scale:g}, {args.repeats} repeat(s) | full size, 3 repeats (s) | how |")
    print("|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['part']} | {r['measured_s']:.1f} | {r['full_s']:.0f} | {r['rule']} |")
    print(f"| **total** | {stage['total_s']:.1f} | **{total:.0f}** ({total / 60:.1f} min) | |")
    if direct:
        print(
            f"direct, {direct['n']:,} generated crops at full size: "
            f"reading + landmarks {direct['read_landmarks_s']:.1f} s, "
            f"geometry features {direct['features_s']:.2f} s, CNN forward {direct['cnn_forward_s']:.1f} s"
        )
    print(
        f"whole stage at full size: {total / 60:.1f} min; report {REPORT_MIN} min; ratio {total / 60 / REPORT_MIN:.2f}"
    )
    print(f"load average before / after: {load}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()

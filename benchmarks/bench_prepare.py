"""Prepare benchmark: frames/s of `fpsynth prepare` on videos against decode-only speed (the floor).

    python benchmarks/bench_prepare.py                          # the six real fixture videos, 1 and 2 workers
    python benchmarks/bench_prepare.py --videos DIR --n-jobs 4 --json out.json

Both figures come from the same run, on the same files, with the same number of worker
processes (joblib loky, one clip per job):

- decode floor: every frame decoded with OpenCV and converted to RGB (what prepare itself must
  do at the least), after one untimed pass that warms the page cache and starts the workers;
- prepare: the whole stage, end to end, in a fresh workspace (discovery, face detection and
  tracking, alignment, quality gates, the motion-curve pick of 32 frames per clip, crop writes,
  manifests); worker start-up and model loading included.

frames/s counts decoded input frames in both. The ratio prepare/decode says what share of the
decoding speed prepare keeps (1.0 would be "free"). Prints a Markdown table, writes JSON (--json).
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
from joblib import Parallel, delayed

from fpsynth.pipeline import load_pipeline, with_section

DEFAULT_VIDEOS = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "videos"
EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")


def decode_all(path: Path) -> int:
    """Frames of one video, decoded and converted to RGB like prepare does; returns the count."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n


def decode_floor(videos: list[Path], n_jobs: int) -> tuple[int, float]:
    run = Parallel(n_jobs=n_jobs, backend="loky") if n_jobs > 1 else None
    for _ in range(2):  # the first pass is the untimed warm-up
        t0 = time.perf_counter()
        counts = run(delayed(decode_all)(v) for v in videos) if run else [decode_all(v) for v in videos]
        seconds = time.perf_counter() - t0
    return sum(counts), seconds


def meei_tree(videos: list[Path], root: Path) -> Path:
    """One subject per video: ROOT/vNN/expression.<ext> (symbolic links)."""
    for n, video in enumerate(videos, start=1):
        (root / f"v{n:02d}").mkdir(parents=True)
        (root / f"v{n:02d}" / f"expression{video.suffix.lower()}").symlink_to(video.resolve())
    return root


def prepare_speed(videos: list[Path], n_jobs: int, config: str, work: Path) -> tuple[float, dict]:
    from fpsynth.data.prepare import run

    tree = meei_tree(videos, work / f"raw-{n_jobs}")
    cfg = load_pipeline(config, [f"prepare.n_jobs={n_jobs}"])
    cfg = with_section(cfg, "prepare", meei=tree)
    t0 = time.perf_counter()
    record = run(cfg, work / f"ws-{n_jobs}", force=True)
    return time.perf_counter() - t0, record["summary"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder of videos (default: the fixtures)")
    ap.add_argument("--n-jobs", default="1,2", help="comma-separated worker counts to measure")
    ap.add_argument("--config", default="paper", help="pipeline config whose [prepare] section is used")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    videos = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not videos:
        raise SystemExit(f"no videos in {args.videos}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        for n_jobs in (int(v) for v in args.n_jobs.split(",")):
            frames, decode_s = decode_floor(videos, n_jobs)
            prepare_s, summary = prepare_speed(videos, n_jobs, args.config, Path(tmp))
            rows.append({
                "n_jobs": n_jobs, "videos": len(videos), "frames": frames,
                "decode_s": round(decode_s, 3), "decode_fps": round(frames / decode_s, 1),
                "prepare_s": round(prepare_s, 3), "prepare_fps": round(frames / prepare_s, 1),
                "ratio": round(decode_s / prepare_s, 4), "crops": summary["frames"], "rejects": summary["rejects"],
            })
    machine = f"{platform.machine()}, {os.cpu_count()} CPU threads, {platform.python_implementation()} {platform.python_version()}, OpenCV {cv2.__version__}"
    print(f"\nprepare vs decode-only on {len(videos)} videos ({machine})\n")
    print("| workers | videos | frames | decode-only frames/s | prepare frames/s | prepare / decode speed | crops |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_jobs']} | {r['videos']} | {r['frames']} | {r['decode_fps']:.0f} | {r['prepare_fps']:.0f} "
              f"| {r['ratio']:.3f} ({1 / r['ratio']:.1f}x slower) | {r['crops']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "prepare", "machine": machine, "config": args.config,
                                         "videos": [v.name for v in videos], "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

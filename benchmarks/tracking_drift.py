"""How far tracked landmarks drift from a fresh detection, for each detector schedule.

    python benchmarks/tracking_drift.py                         # detect_every 10, 20, 30 on the standard-set videos
    python benchmarks/tracking_drift.py --every 5,10,20,40 --json out.json

Prepare runs the face detector on every ``prepare.video.detect_every``-th analysed frame and, in
between, refits the 68 landmarks in a box carried from the last frame's landmarks (data/clip.py).
Fewer detections cost less, but a carried box may drift from where the detector would put it,
and the points with it. The reference here is the detector on every analysed frame
(``detect_every = 1``: each frame's points fitted in that frame's own detector box). For each
schedule, on the two "participant" videos of ``bench_prepare.py --layout standard-set`` analysed as
prepare does (every 2nd frame of 30 fps video), it prints the mean distance of the 68 points from
the reference's, per frame, in inter-ocular distances (mean, 90th and 99th percentile over the
frames both analyses kept), the frames each kept and how many of them were detected.

Not a timing: a property of the tracker on real faces, behind the default of ``detect_every``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from bench_prepare import DEFAULT_VIDEOS, EXTENSIONS, standard_set

from fpsynth.data.clip import analyse
from fpsynth.data.jobs import Context
from fpsynth.data.movements import _interocular
from fpsynth.data.video import VideoDecoder
from fpsynth.pipeline import load_pipeline


def analysed(path: Path, ctx: Context, stride: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(frame index (N,), landmarks (N, 68, 2)) of the usable analysed frames, and how many of them
    took their points from a detection (the others were tracked, or still)."""
    a = analyse(VideoDecoder(path), ctx, lambda i: i % stride == 0)
    index = np.array([c.index for c in a.candidates])
    detected = sum(c.face.source == "detected" for c in a.candidates)
    return index, np.stack([c.face.landmarks for c in a.candidates]).astype(np.float64), detected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--config", default="paper")
    ap.add_argument("--every", default="10,20,30", help="detect_every values to compare with 1")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = load_pipeline(args.config)
    videos = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in EXTENSIONS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tracking-drift-") as tmp:
        for path in standard_set(videos, Path(tmp) / "set", 480):
            fps = VideoDecoder(path).info.fps
            vc = cfg.prepare.video
            stride = max(1, round(fps / vc.analyse_fps)) if vc.analyse_fps and fps > 0 else 1
            found = {}
            for every in [1] + [int(v) for v in args.every.split(",")]:
                pc = dataclasses.replace(cfg.prepare, video=dataclasses.replace(vc, detect_every=every))
                found[every] = analysed(path, Context(pc, Path(tmp) / "ws", cfg.weights.dlib_models), stride)
            ref_index, ref_lms, ref_runs = found.pop(1)
            print(f"{path.name}: detector on every analysed frame: {len(ref_index)} frames kept ({ref_runs} detected)")
            for every, (index, lms, runs) in found.items():
                common, a, b = np.intersect1d(ref_index, index, return_indices=True)
                err = np.linalg.norm(ref_lms[a] - lms[b], axis=-1).mean(1) / _interocular(ref_lms[a])
                row = {
                    "video": path.name,
                    "detect_every": every,
                    "frames": len(index),
                    "frames_in_both": len(common),
                    "detected": runs,
                    "mean": round(float(err.mean()), 4),
                    "p90": round(float(np.quantile(err, 0.9)), 4),
                    "p99": round(float(np.quantile(err, 0.99)), 4),
                }
                rows.append(row)
                print(
                    f"  detect_every {every}: {runs} frames detected, {len(index)} kept ({len(common)} in both); "
                    f"points from the detection's: mean {row['mean']:.4f}, p90 {row['p90']:.4f}, "
                    f"p99 {row['p99']:.4f} inter-ocular"
                )
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "tracking-drift", "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

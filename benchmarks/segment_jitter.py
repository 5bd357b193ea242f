"""How much landmark jitter moves the cutting of a whole-sequence video into movements.

    python benchmarks/segment_jitter.py                       # the bench_prepare standard-set videos
    python benchmarks/segment_jitter.py --sigmas 0.0025,0.005,0.01 --seeds 8 --json out.json

The two "participant" videos of ``bench_prepare.py --layout standard-set`` (the six fixture videos
joined, three clips each, 3 s of still frames between) are analysed once as prepare does (every 2nd
frame, dlib landmarks); then :func:`fpsynth.data.movements.segment` runs on those landmarks with
Gaussian jitter added: ``sigma`` x the median inter-ocular distance per point and per frame, plus as
much again as a shift of the whole face per frame (a detector box that moves). For each video and
sigma it prints how many movements each seed finds against the jitter-free count, and the largest
boundary shift among the seeds whose count agrees, and first the frames where the joined clips lie
(three per video; lp_d3, lp_d6 and lp_d9 pause inside, so "three" is not the only right count). A
segmentation robust to the landmark noise of a different detection schedule keeps the count
(BENCHMARKS.md, issue 12). Not a timing: a property of the segmentation on real faces.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from bench_prepare import DEFAULT_VIDEOS, EXTENSIONS, standard_set_truth

from fpsynth.data.clip import analyse
from fpsynth.data.jobs import Context
from fpsynth.data.movements import _interocular, segment
from fpsynth.data.video import VideoDecoder
from fpsynth.pipeline import load_pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--config", default="paper")
    ap.add_argument("--sigmas", default="0.0025,0.005,0.01", help="jitter, in inter-ocular distances")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = load_pipeline(args.config)
    pc, mc = cfg.prepare, cfg.prepare.movements
    videos = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in EXTENSIONS)
    results = []
    with tempfile.TemporaryDirectory(prefix="segment-jitter-") as tmp:
        ctx = Context(pc, Path(tmp) / "ws", cfg.weights.dlib_models)
        for path, clips in standard_set_truth(videos, Path(tmp) / "set", 480).items():
            decoder = VideoDecoder(path)
            fps = decoder.info.fps
            stride = max(1, round(fps / pc.video.analyse_fps)) if pc.video.analyse_fps and fps > 0 else 1
            a = analyse(decoder, ctx, lambda i, k=stride: i % k == 0)
            lms = np.stack([c.face.landmarks for c in a.candidates]).astype(np.float64)
            index = np.array([c.index for c in a.candidates])
            base = [(m.start, m.end) for m in segment(lms, index, fps, mc).movements]
            sd0 = float(np.median(_interocular(lms)))
            print(
                f"{path.name}: clips joined at frames {', '.join(f'{a}-{b}' for a, b in clips)}; movements found "
                f"without jitter at {', '.join(f'{a}-{b}' for a, b in base)} (some clips pause inside: no one "
                "right count)"
            )
            for sigma in (float(s) for s in args.sigmas.split(",")):
                counts, shifts = [], []
                for seed in range(args.seeds):
                    rng = np.random.default_rng(seed)
                    noisy = lms + rng.normal(0, sigma * sd0, lms.shape) + rng.normal(0, sigma * sd0, (len(lms), 1, 2))
                    found = [(m.start, m.end) for m in segment(noisy, index, fps, mc).movements]
                    counts.append(len(found))
                    if len(found) == len(base):
                        shifts.append(max(max(abs(s - s0), abs(e - e0)) for (s, e), (s0, e0) in zip(found, base)))
                row = {
                    "video": path.name,
                    "movements": len(base),
                    "clips": [list(c) for c in clips],
                    "found": [list(m) for m in base],
                    "sigma": sigma,
                    "counts": counts,
                    "same_count": sum(c == len(base) for c in counts),
                    "seeds": args.seeds,
                    "max_shift_frames": max(shifts) if shifts else None,
                }
                results.append(row)
                print(
                    f"{path.name}: {len(base)} movements; jitter {sigma:g} IOD: counts {counts}, "
                    f"{row['same_count']}/{args.seeds} keep the count, boundaries move up to "
                    f"{row['max_shift_frames']} frames among those"
                )
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "segment-jitter", "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

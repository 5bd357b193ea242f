"""Prepare benchmark: frames/s of `fpsynth prepare` on videos against decode-only speed (the floor).

    python benchmarks/bench_prepare.py                          # the six real fixture videos, 1 and 2 workers
    python benchmarks/bench_prepare.py --videos DIR --n-jobs 4 --json out.json
    python benchmarks/bench_prepare.py --layout standard-set    # the same six, as two whole-sequence videos
    python benchmarks/bench_prepare.py --layout standard-set --side 1080 --repeats 3
    python benchmarks/bench_prepare.py --layout standard-set --job-cpu --repeats 3   # CPU s per job

``--layout standard-set`` concatenates the videos (sorted) into two "participant" videos of the MEEI
standard set's layout, three clips each with 3 s of still frames before, between and after
(:func:`fpsynth.data.video.join_clips`), and prepares them as the set: each video cut into its
movements, 32 frames per movement plus a rest clip (0.5 s of black at each change of clip, as in
the ground-truth test: the clips are of different people). The decode floor is measured on the same
two concatenated files. ``--side`` sets their size (square; the fixtures are 480-512 px, a
clinic's HD recordings cost more to decode per frame while the face work stays the same).

``--repeats N`` alternates the two measurements N times and reports the medians (and the median
of the per-repeat ratios): other jobs may share the cores.

Both figures come from the same run, on the same files, with the same number of worker
processes (joblib loky, one clip per job):

- decode floor: every frame decoded with OpenCV and converted to RGB (what prepare itself must
  do at the least), after one untimed pass that warms the page cache and starts the workers;
- prepare: the whole stage, end to end, in a fresh workspace (discovery, face detection and
  tracking, alignment, quality gates, the motion-curve pick of 32 frames per clip, crop writes,
  manifests); worker start-up and model loading included.

frames/s counts decoded input frames in both. The ratio prepare/decode says what share of the
decoding speed prepare keeps (1.0 would be "free"). Prints a Markdown table, writes JSON (--json).

``--fit-bound`` also times, in the same run, decoding plus the 68-point landmark fits alone at
prepare's analysis rate (one fit per analysed frame, no detection, alignment, gates or crops):
decode-only / that is the highest ratio prepare could reach with this landmark model at this
analysis rate, whatever else it made free.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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


def _fits_only(path: Path, config: str, layout: str) -> int:
    """Decode every frame and fit the 68 landmarks on every analysed one (prepare's analysis rate),
    in a box found once: prepare's work with detection, tracking logic, alignment, gates,
    segmentation and crops all left out. Returns the frame count."""
    from fpsynth.data.clip import analysis_stride
    from fpsynth.data.faces import detect_faces, get_backend

    cfg = load_pipeline(config, [])
    vc, fc = cfg.prepare.video, cfg.prepare.faces
    backend = get_backend(fc, cfg.weights.dlib_models)  # cached per process: loaded in the warm-up pass
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = cap.get(cv2.CAP_PROP_FPS)
    if layout == "standard-set":  # a whole sequence: about analyse_fps a second (data/session.py)
        stride = max(1, round(fps / vc.analyse_fps)) if vc.analyse_fps and fps > 0 else 1
    else:  # a clip: capped analysed frames (data/clip.py)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        stride = analysis_stride(fps, min(count, vc.max_frames or count), vc)
    n, box = 0, None
    while True:
        if n % stride:
            if not cap.grab():
                break
        else:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if box is None:
                faces = detect_faces(backend, rgb, fc.video_max_side, fc.video_upsample)
                box = faces[0].bbox if faces else None
            if box is not None:
                backend.landmarks(rgb, box)
        n += 1
    cap.release()
    return n


def fit_bound(videos: list[Path], n_jobs: int, config: str, layout: str) -> tuple[int, float]:
    """Wall seconds of :func:`_fits_only` over ``videos`` with ``n_jobs`` workers (after a warm-up pass
    that loads the models): the least time prepare could take at its analysis rate with this
    landmark model, so decode_s / this is the highest ratio it could reach."""
    run = Parallel(n_jobs=n_jobs, backend="loky") if n_jobs > 1 else None
    for _ in range(2):
        t0 = time.perf_counter()
        counts = (
            run(delayed(_fits_only)(v, config, layout) for v in videos)
            if run
            else [_fits_only(v, config, layout) for v in videos]
        )
        seconds = time.perf_counter() - t0
    return sum(counts), seconds


def meei_tree(videos: list[Path], root: Path) -> Path:
    """One subject per video: ROOT/vNN/expression.<ext> (symbolic links)."""
    for n, video in enumerate(videos, start=1):
        (root / f"v{n:02d}").mkdir(parents=True)
        (root / f"v{n:02d}" / f"expression{video.suffix.lower()}").symlink_to(video.resolve())
    return root


def standard_set(videos: list[Path], root: Path, side: int) -> list[Path]:
    """Two participant videos, ROOT/flaccidN.mp4, each the concatenation of half of ``videos``."""
    return list(standard_set_truth(videos, root, side))


def standard_set_truth(videos: list[Path], root: Path, side: int) -> dict[Path, list[tuple[int, int]]]:
    """:func:`standard_set`'s videos, each with the (first, last) frames of the clips joined in it."""
    from fpsynth.data.video import join_clips

    root.mkdir(parents=True, exist_ok=True)
    halves = [videos[0::2], videos[1::2]]
    out = {}
    for n, half in enumerate(h for h in halves if h):
        path = root / f"flaccid{n + 1}.mp4"
        out[path] = join_clips([(v, 0, 10**9) for v in half], path, still_s=3.0, fps=30.0, side=side, blank_s=0.5)
    return out


def prepare_speed(videos: list[Path], n_jobs: int, config: str, work: Path, layout: str) -> tuple[float, dict]:
    from fpsynth.data.prepare import run

    if layout == "standard-set":  # the participant videos already lie alone in their folder
        tree = videos[0].parent
    else:  # made once, used by every repeat
        tree = work / f"raw-{n_jobs}"
        if not tree.exists():
            meei_tree(videos, tree)
    cfg = load_pipeline(config, [f"prepare.n_jobs={n_jobs}"])
    cfg = with_section(cfg, "prepare", meei=tree)
    t0 = time.perf_counter()
    record = run(cfg, work / f"ws-{n_jobs}", force=True)
    return time.perf_counter() - t0, record["summary"]


def job_cpu(videos: list[Path], config: str, work: Path, layout: str) -> list[dict]:
    """CPU seconds of each prepare job run in this process, the face models loaded beforehand:
    the work itself, robust to other jobs sharing the cores (wall time is not)."""
    from fpsynth.data.jobs import Context
    from fpsynth.data.meei import discover_meei
    from fpsynth.data.process import run_job
    from fpsynth.data.pseudonyms import pseudonymise

    cfg = load_pipeline(config, [])
    pc = cfg.prepare
    tree = videos[0].parent if layout == "standard-set" else meei_tree(videos, work / "raw-cpu")
    ps = pseudonymise(discover_meei(tree, pc.sources, pc.movements), cfg.seed)
    ctx = Context(pc, work / "ws-cpu", cfg.weights.dlib_models)
    ctx.backend()
    out = []
    for job in ps.jobs:
        t0 = time.process_time()
        result = run_job(job, ctx)
        out.append({"job": job.input, "cpu_s": round(time.process_time() - t0, 3), "crops": len(result.frames)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder of videos (default: the fixtures)")
    ap.add_argument("--n-jobs", default="1,2", help="comma-separated worker counts to measure")
    ap.add_argument("--config", default="paper", help="pipeline config whose [prepare] section is used")
    ap.add_argument(
        "--layout",
        choices=("clips", "standard-set"),
        default="clips",
        help="one clip per video (default) or the videos joined into two whole-sequence videos",
    )
    ap.add_argument("--side", type=int, default=480, help="standard-set layout: frame size of the joined videos")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two measurements this often; medians")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument(
        "--fit-bound",
        action="store_true",
        help="also time decoding + the 68-point fits alone at prepare's analysis rate (the most "
        "prepare could reach with everything else free), as a ratio to decode-only",
    )
    ap.add_argument(
        "--job-cpu",
        action="store_true",
        help="instead: CPU seconds of each job in this process (models loaded first), --repeats times",
    )
    args = ap.parse_args()

    videos = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not videos:
        raise SystemExit(f"no videos in {args.videos}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        if args.layout == "standard-set":
            videos = standard_set(videos, Path(tmp) / "set", args.side)
        if args.job_cpu:
            runs = [job_cpu(videos, args.config, Path(tmp) / f"cpu-{n}", args.layout) for n in range(args.repeats)]
            for jobs in runs:
                print(
                    " ".join(f"{j['job']} {j['cpu_s']:.2f} s ({j['crops']} crops)" for j in jobs),
                    f"| total {sum(j['cpu_s'] for j in jobs):.2f} CPU s",
                )
            totals = [sum(j["cpu_s"] for j in jobs) for jobs in runs]
            print(
                f"median total {statistics.median(totals):.2f} CPU s, longest job (median) "
                f"{statistics.median(max(j['cpu_s'] for j in jobs) for jobs in runs):.2f} CPU s"
            )
            if args.json:
                args.json.write_text(
                    json.dumps({"benchmark": "prepare-job-cpu", "layout": args.layout, "runs": runs}, indent=2) + "\n"
                )
            return
        for n_jobs in (int(v) for v in args.n_jobs.split(",")):
            decode, prepare, ratios, bounds = [], [], [], []
            for _ in range(args.repeats):
                frames, decode_s = decode_floor(videos, n_jobs)
                if args.fit_bound:
                    bounds.append(decode_s / fit_bound(videos, n_jobs, args.config, args.layout)[1])
                prepare_s, summary = prepare_speed(videos, n_jobs, args.config, Path(tmp), args.layout)
                decode.append(decode_s)
                prepare.append(prepare_s)
                ratios.append(decode_s / prepare_s)
            decode_s, prepare_s = statistics.median(decode), statistics.median(prepare)
            rows.append(
                {
                    "n_jobs": n_jobs,
                    "videos": len(videos),
                    "frames": frames,
                    "repeats": args.repeats,
                    "decode_s": round(decode_s, 3),
                    "decode_fps": round(frames / decode_s, 1),
                    "prepare_s": round(prepare_s, 3),
                    "prepare_fps": round(frames / prepare_s, 1),
                    "ratio": round(statistics.median(ratios), 4),
                    "ratios": [round(r, 4) for r in ratios],
                    "crops": summary["frames"],
                    "rejects": summary["rejects"],
                    "fit_bound": round(statistics.median(bounds), 4) if bounds else None,
                }
            )
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU threads, {platform.python_implementation()} "
        f"{platform.python_version()}, OpenCV {cv2.__version__}"
    )
    print(f"\nprepare vs decode-only on {len(videos)} videos, layout {args.layout} ({machine})\n")
    print("| workers | videos | frames | decode-only frames/s | prepare frames/s | prepare / decode speed | crops |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n_jobs']} | {r['videos']} | {r['frames']} | {r['decode_fps']:.0f} | {r['prepare_fps']:.0f} "
            f"| {r['ratio']:.3f} ({1 / r['ratio']:.1f}x slower) | {r['crops']} |"
        )
    if any(r["fit_bound"] for r in rows):
        print(
            "\ndecode + 68-point fits alone (no detection, alignment, gates, crops) / decode-only: "
            + ", ".join(f"{r['n_jobs']} workers {r['fit_bound']:.3f}" for r in rows if r["fit_bound"])
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "prepare",
                    "machine": machine,
                    "config": args.config,
                    "layout": args.layout,
                    "side": args.side if args.layout != "clips" else None,
                    "videos": [v.name for v in videos],
                    "results": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

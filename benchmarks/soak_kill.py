"""Kill-and-resume soak (issue 14): random SIGKILLs of prepare, train and generate, then the final
outputs compared with an uninterrupted run. Not a timed test.

    .venv/bin/python benchmarks/soak_kill.py                          # N=20 per stage, seed 0
    .venv/bin/python benchmarks/soak_kill.py --n 5 --stages prepare --json soak.json

For each stage a reference run goes through uninterrupted (its wall time T, and the moment its
stage record first appears, are measured). Then N trials, each in a fresh workspace holding the
reference's upstream outputs: start the stage's CLI, SIGKILL the main process (only it, as a
crash or the OOM killer would: the workers must die with it) at a seeded random moment, then run
the same command again until it exits 0. The moment is drawn in progress, not in seconds (a
shared machine's load makes times vary threefold): once k of the stage's resumable items are on
disk (k uniform in 0 .. items-1; prepare's stored jobs, train's checkpoints, generate's shards;
k = 0: once its record says running), plus a delay uniform in 0 .. the reference's mean time
between two items, so kills land between items and in the middle of one.
Per trial:

- items lost / duplicated / changed against the reference: prepare, by frame_id (the frames,
  pairs and rejects rows must be equal, and each crop's sha256); train, by logged step (the
  log.csv rows) plus the final checkpoint's step and the sha256 of its model and EMA weights
  (training is deterministic on CPU, resume included); generate, by item_id (metadata rows and
  each image's sha256);
- stray processes: descendants of the killed process still alive 5 s after the kill (then killed);
- temporaries left after the run completes (hidden ``.tmp`` files, ``.tmp-step-*`` folders).

A kill that came after the process had exited counts as "missed", not as survived, and another
trial is run in its place (up to 2N trials), so N kills land. The tiny
pipeline on the real fixtures (three people's photos from ../shared/fixtures) keeps a run short.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("FPSYNTH_FIXTURES", REPO.parent / "shared" / "fixtures"))
PEOPLE = ("John_Salley", "John_Savage", "John_Simm")
MICRO = [  # the tiny pipeline at half width (tests/test_train_data.py): seconds per run on 2 cores
    "train.model.unet.model_channels=16",
    "train.model.unet.norm_groups=8",
    "train.model.identity_ir.stage_channels=[8,16,32,64]",
    "train.model.identity_ir.embedding_dim=64",
    "train.model.expression_ir.stage_channels=[8,16,32,64]",
    "train.model.expression_ir.embedding_dim=64",
    "train.model.fusion.dim=64",
]
SETS = {
    "prepare": ["prepare.n_jobs=2"],
    "train": [
        *MICRO,
        "train.data.batch_size=2",
        "train.max_steps=4",
        "train.checkpoint.every=1",
        "train.log.every=1",
        "train.log.sample_every=0",
        "train.log.sample_pairs=0",
    ],
    "generate": [
        "generate.count=8",
        "generate.plan.shard_size=2",
        "generate.sampler.steps=2",
        "generate.runtime.cpu_batch_size=4",
        "generate.plan.split=train",
        "prepare.n_jobs=1",
    ],
}
UPSTREAM = {"prepare": [], "train": ["prepare"], "generate": ["prepare", "train"]}
# One BLAS/OpenMP thread per process: on a 2-core machine shared with other jobs, torch's default
# of one thread per core made a 16-step training run take 230 s instead of ~25 s. The same
# environment for the reference and every trial, so the comparison is unaffected.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def command(stage: str, ws: Path, inputs: Path) -> list[str]:
    args = [sys.executable, "-m", "fpsynth.cli", stage, "-c", "tiny", "-w", str(ws)]
    if stage == "prepare":
        args += ["--images", str(inputs / "images")]
    if stage == "generate":
        args += ["--ids", str(inputs / "ids")]
    return args + [a for s in SETS[stage] for a in ("--set", s)]


# --------------------------------------------------------------------------- what is compared


@dataclasses.dataclass
class Snapshot:
    items: dict[str, str]  # item -> content hash
    duplicated: int  # items present more than once (rows or files)
    extra: dict[str, Any]  # whole-run values that must be equal (manifests, final step, weights)


def snap_prepare(ws: Path) -> Snapshot:
    out = ws / "prepare"
    frames = pd.read_parquet(out / "frames.parquet")
    files = {p.relative_to(out).as_posix() for p in (out / "crops").rglob("*.png") if not p.name.startswith(".")}
    items = {
        fid: _sha256(out / path) if (out / path).is_file() else "missing"
        for fid, path in zip(frames["frame_id"], frames["path"])
    }
    dup = int(frames["frame_id"].duplicated().sum()) + len(files - set(frames["path"]))
    extra = {n: pd.read_parquet(out / f"{n}.parquet").to_json() for n in ("frames", "pairs", "rejects")}
    return Snapshot(items, dup, {k: hashlib.sha256(v.encode()).hexdigest() for k, v in extra.items()})


def snap_train(ws: Path) -> Snapshot:
    from fpsynth.train.checkpoint import latest_checkpoint

    log = pd.read_csv(ws / "train" / "log.csv")
    keep = [c for c in log.columns if c != "images_per_s"]  # the speed differs run to run; nothing else may
    items = {
        str(int(r["step"])): hashlib.sha256(json.dumps([str(r[c]) for c in keep]).encode()).hexdigest()
        for _, r in log.iterrows()
    }
    latest = latest_checkpoint(ws)
    state = json.loads((latest / "state.json").read_text())
    extra = {
        "step": state["step"],
        "model.safetensors": state["files"]["model.safetensors"],
        "ema.safetensors": state["files"]["ema.safetensors"],
    }
    return Snapshot(items, int(log["step"].duplicated().sum()), extra)


def snap_generate(ws: Path) -> Snapshot:
    out = ws / "generate"
    meta = pd.read_parquet(out / "metadata.parquet")
    items = {
        iid: (_sha256(out / f) if (out / f).is_file() else "missing") + f"/{digest}"
        for iid, f, digest in zip(meta["item_id"], meta["file_name"], meta["image_sha256"])
    }
    files = {p.relative_to(out).as_posix() for p in (out / "shards").rglob("*.png") if not p.name.startswith(".")}
    dup = int(meta["item_id"].duplicated().sum()) + len(files - set(meta["file_name"]))
    return Snapshot(items, dup, {"rows": hashlib.sha256(meta.to_json().encode()).hexdigest()})


SNAP: dict[str, Callable[[Path], Snapshot]] = {"prepare": snap_prepare, "train": snap_train, "generate": snap_generate}


def stored(stage: str, ws: Path) -> int:
    """How many of the stage's resumable items are on disk: prepare's stored jobs, train's
    checkpoints, generate's finished shards."""
    if stage == "prepare":
        return len([p for p in (ws / "prepare" / "parts" / "frames").glob("*/*.parquet") if not p.name.startswith(".")])
    if stage == "train":
        return len(list((ws / "train" / "checkpoints").glob("step-*")))
    return len(list((ws / "generate" / "shards").glob("*.parquet")))


UNIT = {"prepare": "jobs stored", "train": "checkpoints", "generate": "shards done"}


# --------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        found += kids
        frontier += kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def temporaries(ws: Path) -> list[str]:
    from fpsynth.lock import is_temporary

    return [p.relative_to(ws).as_posix() for p in ws.rglob(".*") if is_temporary(p)]


# --------------------------------------------------------------------------- runs


def run_to_end(args: list[str], log: Path, tries: int = 3) -> tuple[int, float]:
    """Run ``args`` until it exits 0 (at most ``tries`` times); returns (runs, seconds)."""
    t0 = time.perf_counter()
    for attempt in range(1, tries + 1):
        with open(log, "a") as fh:
            rc = subprocess.run(args, cwd=REPO, env=ENV, stdout=fh, stderr=subprocess.STDOUT, timeout=1200).returncode
        if rc == 0:
            return attempt, time.perf_counter() - t0
    raise RuntimeError(f"{' '.join(args)} failed {tries} times; see {log}")


def reference(stage: str, root: Path, ref_root: Path, inputs: Path) -> dict[str, Any]:
    ws = root / "reference"
    seed_workspace(stage, ref_root, ws)
    args = command(stage, ws, inputs)
    record = ws / stage / "stage.json"
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_record, n = None, 0
    while proc.poll() is None:
        if t_record is None and record.exists():
            t_record = time.perf_counter() - t0
        n = max(n, stored(stage, ws))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"reference {stage} failed: {' '.join(args)}")
    t_record = t_record or 0.0
    total = max(n, stored(stage, ws))
    return {
        "seconds": round(wall, 2),
        "record_at_s": round(t_record, 2),
        "stored": total,
        "gap_s": round((wall - t_record) / (total + 1), 2),
        "snapshot": SNAP[stage](ws),
    }


def seed_workspace(stage: str, ref_root: Path, ws: Path) -> None:
    for up in UPSTREAM[stage]:
        shutil.copytree(ref_root / up / "reference" / up, ws / up, symlinks=True)


def trial(
    stage: str, k: int, root: Path, ref_root: Path, inputs: Path, ref: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    ws = root / f"trial-{k:02d}"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    seed_workspace(stage, ref_root, ws)
    args = command(stage, ws, inputs)
    # the moment: once `target` items are stored (0: once the record says running), plus a delay
    # drawn over the reference's mean time between two items, so that kills land mid-item too
    target, delay = rng.randrange(ref["stored"]), rng.uniform(0.0, ref["gap_s"])
    log = ws / "soak.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    record = ws / stage / "stage.json"
    while proc.poll() is None and not (record.exists() and stored(stage, ws) >= target):
        time.sleep(0.005)
    deadline = time.perf_counter() + delay
    while proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.005)
    at = time.perf_counter() - t0
    missed = proc.poll() is not None
    kids: list[int] = []
    stray = 0
    state = "exited before the kill"
    if not missed:
        kids = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        state = f"{stored(stage, ws)} {UNIT[stage]}"
        end = time.time() + 5
        while time.time() < end and any(alive(p) for p in kids):
            time.sleep(0.1)
        survivors = [p for p in kids if alive(p)]
        stray = len(survivors)
        for p in survivors:  # leave the machine clean (only processes this trial started)
            os.kill(p, signal.SIGKILL)
    runs, seconds = run_to_end(args, log)
    snap = SNAP[stage](ws)
    ref_snap: Snapshot = ref["snapshot"]
    lost = sorted(set(ref_snap.items) - set(snap.items))
    changed = sorted(i for i in set(ref_snap.items) & set(snap.items) if ref_snap.items[i] != snap.items[i])
    added = sorted(set(snap.items) - set(ref_snap.items))
    result = {
        "trial": k,
        "target": target,
        "delay_s": round(delay, 2),
        "kill_at_s": round(at, 2),
        "missed": missed,
        "at_kill": state,
        "workers_at_kill": len(kids),
        "stray_processes": stray,
        "restarts": runs,
        "resume_s": round(seconds, 2),
        "lost": len(lost),
        "duplicated": snap.duplicated + len(added),
        "changed": len(changed),
        "whole_run_equal": snap.extra == ref_snap.extra,
        "temporaries": temporaries(ws),
    }
    result["survived"] = (
        not missed
        and not lost
        and not changed
        and result["duplicated"] == 0
        and result["whole_run_equal"]
        and stray == 0
        and not result["temporaries"]
    )
    if result["survived"]:  # keep a failed trial's workspace for a look
        shutil.rmtree(ws, ignore_errors=True)
    return result


def prepare_inputs(root: Path) -> Path:
    inputs = root / "inputs"
    if inputs.exists():
        return inputs
    for person in PEOPLE:
        (inputs / "images").mkdir(parents=True, exist_ok=True)
        (inputs / "images" / person).symlink_to(FIXTURES / "faces" / "people" / person, target_is_directory=True)
    (inputs / "ids").mkdir()
    for name in ("obama.jpg",):
        shutil.copy(FIXTURES / "faces" / "photos" / name, inputs / "ids" / name)
    return inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20, help="kills per stage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default="prepare,train,generate")
    ap.add_argument("--root", type=Path, default=Path("/tmp/fpsynth-soak"))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    shutil.rmtree(a.root, ignore_errors=True)
    inputs = prepare_inputs(a.root)
    rng = random.Random(a.seed)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": _dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "load_before": os.getloadavg(),
        "n": a.n,
        "seed": a.seed,
        "stages": {},
    }
    for stage in a.stages.split(","):
        root = a.root / stage
        ref = reference(stage, root, a.root, inputs)
        print(
            f"{stage}: reference {ref['seconds']} s (record at {ref['record_at_s']} s, {ref['stored']} "
            f"{UNIT[stage]}, {ref['gap_s']} s apart), {len(ref['snapshot'].items)} items compared",
            flush=True,
        )
        trials: list[dict[str, Any]] = []
        k = 0
        while sum(not t["missed"] for t in trials) < a.n and k < 2 * a.n:  # N kills that landed
            t = trial(stage, k, root, a.root, inputs, ref, rng)
            k += 1
            trials.append(t)
            print(
                f"  kill {t['trial']:2d} at {t['kill_at_s']:5.2f} s ({t['at_kill']}): survived={t['survived']} "
                f"lost={t['lost']} dup={t['duplicated']} changed={t['changed']} stray={t['stray_processes']} "
                f"temps={len(t['temporaries'])} restarts={t['restarts']}",
                flush=True,
            )
        kills = [t for t in trials if not t["missed"]]
        report["stages"][stage] = {
            "reference_s": ref["seconds"],
            "items": len(ref["snapshot"].items),
            "resumable": ref["stored"],
            "kills": len(kills),
            "missed": len(trials) - len(kills),
            "survived": sum(t["survived"] for t in kills),
            "items_lost": sum(t["lost"] for t in kills),
            "items_duplicated": sum(t["duplicated"] for t in kills),
            "items_changed": sum(t["changed"] for t in kills),
            "stray_processes": sum(t["stray_processes"] for t in kills),
            "temporaries_left": sum(len(t["temporaries"]) for t in kills),
            "trials": trials,
        }
    leftover = [p for p in descendants(os.getpid()) if alive(p)]
    report.update(
        {
            "load_after": os.getloadavg(),
            "seconds": round(time.perf_counter() - started, 1),
            "processes_left": len(leftover),
        }
    )
    print(
        "\n| stage | reference run | kills (missed) | survived | items lost | items duplicated | changed "
        "| stray processes | temporaries left |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for stage, s in report["stages"].items():
        print(
            f"| {stage} | {s['reference_s']} s, {s['items']} items | {s['kills']} ({s['missed']}) | "
            f"{s['survived']}/{s['kills']} | {s['items_lost']} | {s['items_duplicated']} | {s['items_changed']} | "
            f"{s['stray_processes']} | {s['temporaries_left']} |"
        )
    print(
        f"\n{report['seconds']} s in all; load average before {report['load_before']}, after "
        f"{report['load_after']}; processes left: {report['processes_left']}"
    )
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()

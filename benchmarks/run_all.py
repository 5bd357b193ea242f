"""Every benchmark, one after the other, with the settings BENCHMARKS.md quotes (``make bench``).

    python benchmarks/run_all.py                     # CPU figures of this machine (about 25 minutes on 2 cores)
    python benchmarks/run_all.py --only model,generate
    python benchmarks/run_all.py --device cuda       # the GPU figures (paper configuration, bf16)

Each script runs in its own process, in sequence (two at once would share the cores and spoil
both timings), writes its JSON to ``--out`` (default ``workspace/benchmarks``) and its Markdown
to ``NAME.md`` beside it. A script that fails is reported and the others still run; the exit
status is 1 when any failed. Copy the figures into BENCHMARKS.md with the date and the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> arguments on CPU / on CUDA (the commands BENCHMARKS.md gives)
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "prepare": ([], []),
    "model": (
        ["--configs", "tiny,paper", "--repeats", "3"],
        ["--device", "cuda", "--configs", "paper", "--batch-paper", "32"],
    ),
    "train": (
        ["--configs", "tiny,paper", "--repeats", "3"],
        ["--device", "cuda", "--configs", "paper", "--batch-paper", "32", "--workers", "8"],
    ),
    "generate": ([], ["--device", "cuda", "--parts", "speed,flops"]),
    "report": (["--images", "200"], ["--device", "cuda", "--images", "500"]),
    "import": ([], []),  # CPU-only work (read, map, write): the same command on both
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", type=Path, default=Path("workspace/benchmarks"))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(RUNS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        extra = RUNS[name][args.device == "cuda"]
        cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *extra, "--json", str(args.out / f"{name}.json")]
        print(f"$ {' '.join(cmd)}", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        (args.out / f"{name}.md").write_text(done.stdout)
        print(done.stdout, flush=True)
        if done.returncode != 0:
            failed.append(name)
            print(f"{name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}", file=sys.stderr, flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

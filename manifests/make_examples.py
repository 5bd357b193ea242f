"""Write the tiny example manifests in ``manifests/examples/`` from a real `fpsynth prepare` run.

    python manifests/make_examples.py            # needs ../shared/fixtures (real videos and photos)

It arranges two real clips, two photos (one with a face, one with several), a text file posing
as a video, an AFLFP-style annotated sequence and a scores table with one bad row into a
temporary raw tree, runs prepare on it, and keeps a few rows of each manifest: a frame of every
phase, a photo and annotated frames; some pairs; every rejects row; the private mapping of the
inputs kept (paths made relative to the raw tree). The crops themselves are not kept.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import pandas as pd

from fpsynth.data.config import PrepareConfig
from fpsynth.data.faces import detect_faces, get_backend
from fpsynth.data.manifests import FRAMES, PAIRS, REJECTS, to_table
from fpsynth.data.prepare import run
from fpsynth.data.pts import write_pts
from fpsynth.data.video import VideoDecoder
from fpsynth.pipeline import load_pipeline, with_section
from fpsynth.stage import atomic_write_parquet

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "shared" / "fixtures"


def raw_tree(root: Path) -> dict[str, Path]:
    meei = root / "meei"
    for subject, video in (("patient_A", "lp_d18"), ("patient_B", "lp_d20")):
        (meei / subject).mkdir(parents=True)
        (meei / subject / "smile_left.mp4").symlink_to(FIXTURES / "videos" / f"{video}.mp4")
    (meei / "patient_A" / "smile.jpg").symlink_to(FIXTURES / "faces" / "photos" / "obama.jpg")
    (meei / "patient_B" / "eye_closure.jpg").symlink_to(FIXTURES / "faces" / "photos" / "bald_guys.jpg")
    (meei / "patient_B" / "brow_raise.mp4").write_text("not a video\n")
    seq = root / "aflfp" / "subject_C" / "open_smile"
    seq.mkdir(parents=True)
    backend = get_backend(PrepareConfig().faces)
    wanted = {0: "000_neutral", 118: "001_onset", 124: "002", 140: "003_peak"}
    for index, rgb in VideoDecoder(FIXTURES / "videos" / "lp_d9.mp4").frames(lambda i: i in wanted, 141):
        cv2.imwrite(str(seq / f"{wanted[index]}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        write_pts(seq / f"{wanted[index]}.pts", detect_faces(backend, rgb, 640, 0)[0].landmarks)
    scores = root / "scores.csv"
    scores.write_text(
        "subject,eFACE,House-Brackmann,Sunnybrook\npatient_A,84,II,78\npatient_B,,,\nsubject_C,63,4,40\nghost,9x,,\n"
    )
    return {"meei": meei, "aflfp": root / "aflfp", "scores": scores}


def main() -> None:
    out = HERE / "examples"
    with tempfile.TemporaryDirectory(prefix="fpsynth-examples-") as tmp:
        root = Path(tmp)
        raw = raw_tree(root / "raw")
        cfg = with_section(load_pipeline("paper", ["prepare.n_jobs=1"]), "prepare", **raw)
        run(cfg, root / "ws")
        prep = root / "ws" / "prepare"
        frames = pd.read_parquet(prep / "frames.parquet")
        pairs = pd.read_parquet(prep / "pairs.parquet")
        rejects = pd.read_parquet(prep / "rejects.parquet")
        mapping = pd.read_parquet(prep / "private" / "mapping.parquet")

    video = frames[frames["kind"] == "video"]
    keep = pd.concat(
        [
            video.groupby("phase").head(1),
            frames[frames["kind"] == "photo"],
            frames[frames["kind"] == "sequence"].head(2),
        ]
    ).sort_index()
    pair_rows = pairs[pairs["style_frame"].isin(keep["frame_id"])].head(4)
    inputs = set(keep["clip"]) | set(rejects["input"])
    mapping = mapping[mapping["input"].isin(inputs)].copy()
    mapping["path"] = [Path(p).relative_to(root / "raw").as_posix() for p in mapping["path"]]

    shutil.rmtree(out, ignore_errors=True)
    atomic_write_parquet(out / "frames.parquet", to_table(keep, FRAMES))
    atomic_write_parquet(out / "pairs.parquet", to_table(pair_rows, PAIRS))
    atomic_write_parquet(out / "rejects.parquet", to_table(rejects, REJECTS))
    atomic_write_parquet(out / "private_mapping.parquet", mapping.reset_index(drop=True))
    for f in sorted(out.iterdir()):
        print(f"{f.relative_to(HERE.parent)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()

"""The utility stage on a hand-made workspace: rendered crops as prepared frames and as a generated set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fpsynth.demo.rendered import rendered_samples, with_split
from fpsynth.pipeline import load_pipeline
from fpsynth.stage import MissingInputError
from fpsynth.utility.run import run

pytestmark = pytest.mark.slow


def _write(folder: Path, rel: list[str], images: np.ndarray) -> None:
    for r, img in zip(rel, images):
        (folder / r).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / r), img[:, :, ::-1])


def make_workspace(ws: Path) -> None:
    real = with_split(rendered_samples([0.0, 0.5, 0.0, 0.8, 0.0, 1.0, 0.0, 0.35], seed=1, frames=2), ["r006", "r007"])
    t = real.table
    paths = [f"crops/{f.replace('/', '_')}.png" for f in t["frame_id"]]
    _write(ws / "prepare", paths, real.images)
    t.assign(path=paths).to_parquet(ws / "prepare" / "frames.parquet")
    gen = rendered_samples([0.0, 0.62, 0.0, 0.2], seed=2, prefix="g", frames=2)
    # style sources: training frames, plus two rows styled on a test frame (rule 3 drops them)
    train_frames = t.loc[t["split"] == "train", ["frame_id", "subject"]].to_numpy()
    style = [train_frames[i % len(train_frames)] for i in range(len(gen))]
    style[0] = style[1] = t.loc[t["split"] == "test", ["frame_id", "subject"]].to_numpy()[0]
    names = [f"shards/00000/{i:08d}.png" for i in range(len(gen))]
    _write(ws / "generate", names, gen.images)
    gen.table.assign(
        item_id=[f"{i:08d}" for i in range(len(gen))],
        file_name=names,
        style_frame=[s[0] for s in style],
        style_subject=[s[1] for s in style],
        identity_source=[f"ids/id{i}.png" for i in range(len(gen))],
    ).drop(columns=["subject", "frame_id"]).to_parquet(ws / "generate" / "metadata.parquet")


def test_stage_writes_utility_json_and_runs_and_skips(tmp_path):
    ws = tmp_path / "ws"
    cfg = load_pipeline("tiny", ["utility.graders=['geometry']", "utility.bootstrap=50"])
    with pytest.raises(MissingInputError, match="fpsynth prepare"):
        run(cfg, ws)
    make_workspace(ws)
    rec = run(cfg, ws)
    assert rec["status"] == "finished"
    out = json.loads((ws / "utility" / "utility.json").read_text())
    runs = pd.read_parquet(ws / "utility" / "runs.parquet")
    assert out["leaks"]["synthetic_excluded"] == {"style source is a test subject": 2}
    assert out["protocol"]["ci_over"] == "test subjects"
    palsy = out["tasks"]["palsy"]
    assert palsy["status"] == "ok" and set(palsy["graders"]["geometry"]) == {
        "real",
        "synthetic",
        "real+synthetic x1",
        "real+synthetic x4",
    }
    assert set(runs["regime"]) == {"real", "synthetic", "real+synthetic"}
    assert (runs.groupby(["task", "regime", "ratio"], dropna=False).size() == 2).all()  # two repeats each
    assert run(cfg, ws).get("skipped")  # nothing changed


def test_report_section_from_utility_json(tmp_path):
    from fpsynth.report import utility_section

    ws = tmp_path / "ws"
    make_workspace(ws)
    assert utility_section.read(ws) is None and utility_section.render(None) == ""
    run(load_pipeline("tiny", ["utility.graders=['geometry']", "utility.bootstrap=20"]), ws)
    html = utility_section.render(utility_section.read(ws))
    assert 'id="utility"' in html and "<table" in html and "<svg" in html
    assert "real only (baseline)" in html and "vs synthetic ratio" in html


def test_report_contents_list_names_the_utility_section_only_when_it_ran(tmp_path):
    from fpsynth.report import page, utility_section

    assert (utility_section.ANCHOR, utility_section.TITLE) not in page.contents({"utility": None})
    ws = tmp_path / "ws"
    make_workspace(ws)
    run(load_pipeline("tiny", ["utility.graders=['geometry']", "utility.bootstrap=0"]), ws)
    data = utility_section.read(ws)
    entries = page.contents({"utility": data})
    at = entries.index((utility_section.ANCHOR, utility_section.TITLE))
    assert entries[at - 1][0] == "privacy" and entries[at + 1][0] == "training"  # where the page draws it
    assert f'id="{utility_section.ANCHOR}"' in utility_section.render(data)  # the link lands on the section


IR_TINY = [
    "utility.ir50.network.stage_units=[1,1,1,1]",
    "utility.ir50.network.stage_channels=[16,32,64,128]",
    "utility.ir50.network.embedding_dim=128",
]


def test_stage_runs_the_ir50_grader_from_weights_and_refuses_without_them(tmp_path):
    import torch

    from fpsynth.errors import FpsynthError
    from fpsynth.nets.config import IRConfig
    from fpsynth.nets.ir50 import IResNet

    ws = tmp_path / "ws"
    make_workspace(ws)
    base = ["utility.graders=['geometry','ir50']", "utility.bootstrap=20", "utility.tasks=['palsy']", *IR_TINY]
    with pytest.raises(FpsynthError, match="weights.ir50_id"):  # tiny allows random IR-50s: not here
        run(load_pipeline("tiny", [*base, "weights.random_init=[]"]), ws)
    assert not (ws / "utility" / "utility.json").exists()
    torch.manual_seed(0)
    path = tmp_path / "ir.pth"
    torch.save(
        IResNet(IRConfig(stage_units=(1, 1, 1, 1), stage_channels=(16, 32, 64, 128), embedding_dim=128)).state_dict(),
        path,
    )
    rec = run(load_pipeline("tiny", [*base, f"weights.ir50_id={path}"]), ws)
    assert rec["status"] == "finished"
    out = json.loads((ws / "utility" / "utility.json").read_text())
    assert set(out["tasks"]["palsy"]["graders"]) == {"geometry", "ir50"}
    assert out["networks"][0]["path"] == str(path) and len(out["networks"][0]["sha256"]) == 64
    assert not out["networks"][0]["random_init"]
    assert {"read_landmarks_real", "read_landmarks_generated", "features_ir50", "ir50_training"} <= set(
        out["timings_s"]
    )

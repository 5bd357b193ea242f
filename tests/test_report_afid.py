"""aFID (paper 4.2) and the model side of the report, on the built-in synthetic demo data.

The demo workspace is made by the real demo writer and prepare stage (8 synthetic subjects, one of
them in the test split). The model is the tiny CCFExp with random weights, saved in the train
stage's checkpoint format; sampling uses 2 DDIM steps. aFID's wiring (which images are compared
with which) is checked with a small exact feature network standing in for Inception-v3, so the
expected distances can be recomputed independently; the real Inception path is exercised by
test_report_stage.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fpsynth.diffusion.config import SamplerConfig
from fpsynth.metrics.config import MetricsConfig
from fpsynth.metrics.fid import fid_of_features
from fpsynth.metrics.suite import Opened
from fpsynth.pipeline import load_pipeline, with_section
from fpsynth.report.afid import afid_of, plan_afid, run_transfers
from fpsynth.report.config import AFIDConfig, IdentityPool
from fpsynth.report.evaluate import Timings
from fpsynth.report.images import load_images
from fpsynth.report.networks import open_networks
from fpsynth.report.sources import Prepared
from fpsynth.stage import ItemStore
from helpers.generate import save_train_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

RANDOM = ["ir50-id", "ir50-expression", "mobilefacenet-68"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    from fpsynth.data.prepare import run as prepare
    from fpsynth.demo.dataset import write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    cfg = load_pipeline("tiny")
    data = write_demo_dataset(root / "data", cfg.demo, cfg.seed, workers=1)
    ws = root / "ws"
    prepare(with_section(cfg, "prepare", aflfp=data["aflfp"], scores=data["scores"], n_jobs=1), ws)
    return {"root": root, "ws": ws, "data": data, "prepared": Prepared.read(ws / "prepare")}


class ChannelStats(torch.nn.Module):
    """Exact 6-d features (per-channel mean and std) standing in for Inception-v3 in wiring tests."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1).double()


def _features(paths) -> np.ndarray:
    return ChannelStats()(load_images(list(paths))).numpy()


def _synth(seed: int = 0, steps: int = 2):
    from fpsynth.diffusion.schedule import NoiseSchedule
    from fpsynth.generate.synthesizer import Synthesizer
    from fpsynth.models.ccfexp import build_model
    from fpsynth.models.config import tiny_model_config
    from fpsynth.weights import WeightsConfig

    torch.manual_seed(seed)
    model, _ = build_model(tiny_model_config(), WeightsConfig(random_init=tuple(RANDOM)))
    return Synthesizer(model.eval(), NoiseSchedule(), SamplerConfig(steps=steps), torch.device("cpu"))


# --------------------------------------------------------------------------- the plan


def test_plan_pairs_each_style_frame_with_another_person_and_another_own_frame(demo):
    prepared = demo["prepared"]
    plan, skipped = plan_afid(prepared, AFIDConfig(images_per_patient=5), "test", seed=123)
    frames = prepared.by_id()
    (patient,) = prepared.split("test")["subject"].unique()
    assert skipped == [] and len(plan) == 5 and set(plan["patient"]) == {patient}
    assert (frames.loc[plan["style_frame"], "subject"].to_numpy() == patient).all()
    assert plan["style_frame"].is_unique and (plan["id_subject"] != patient).all()  # first pass: someone else
    assert (frames.loc[plan["back_frame"], "subject"].to_numpy() == patient).all()  # second pass: P again...
    assert (plan["back_frame"] != plan["style_frame"]).all()  # ...from a different real image
    assert plan["seed_first"].is_unique and not set(plan["seed_first"]) & set(plan["seed_back"])
    again, _ = plan_afid(prepared, AFIDConfig(images_per_patient=5), "test", seed=123)
    pd.testing.assert_frame_equal(plan, again)
    other, _ = plan_afid(prepared, AFIDConfig(images_per_patient=5), "test", seed=7)
    assert not other[["style_frame", "id_frame"]].equals(plan[["style_frame", "id_frame"]])
    full, _ = plan_afid(prepared, AFIDConfig(), "test", seed=123)  # default: every frame, as the paper
    assert len(full) == len(prepared.split("test"))


def test_plan_says_why_a_patient_cannot_be_evaluated(demo):
    prepared = demo["prepared"]
    plan, skipped = plan_afid(prepared, AFIDConfig(identity_pool=IdentityPool.OTHER_TEST_SUBJECTS), "test", 123)
    assert len(plan) == 0 and "no other individual" in skipped[0]["reason"]  # one test patient only
    plan, skipped = plan_afid(prepared, AFIDConfig(patients=3, images_per_patient=2), "train", 123)
    assert plan["patient"].nunique() == 3 and len(plan) == 6 and skipped == []


# --------------------------------------------------------------------------- the two passes


@pytest.mark.slow
def test_transfers_write_both_passes_and_resume_patient_by_patient(demo, tmp_path):
    plan, _ = plan_afid(demo["prepared"], AFIDConfig(patients=2, images_per_patient=2), "train", 123)
    synth, store = _synth(), ItemStore(tmp_path / "parts")
    timings = Timings()
    done = run_transfers(plan, synth, 3, tmp_path / "afid", store, timings)
    assert len(done) == 4 and timings["afid_sampling"] > 0
    files = {p: Path(p).read_bytes() for p in (*done["first_image"], *done["returned_image"])}
    assert len(files) == 8 and all(Path(p).parent.parent.parent == tmp_path / "afid" for p in files)
    first = load_images(done["first_image"].tolist())
    assert first.shape == (4, 3, 112, 112) and first.std() > 0.1  # random weights: noise, but images

    timings = Timings()
    again = run_transfers(plan, synth, 3, tmp_path / "afid", store, timings)  # everything done: nothing sampled
    pd.testing.assert_frame_equal(done, again)
    assert "afid_sampling" not in timings

    lost = done["returned_image"].iloc[-1]
    Path(lost).unlink()  # a patient whose images are not all there is redone, to the same bytes
    redone = run_transfers(plan, _synth(), 1, tmp_path / "afid", store, Timings())
    assert {p: Path(p).read_bytes() for p in (*redone["first_image"], *redone["returned_image"])} == files


def test_afid_compares_each_patients_returned_images_with_its_own_frames(demo, tmp_path):
    prepared = demo["prepared"]
    plan, _ = plan_afid(prepared, AFIDConfig(patients=2, images_per_patient=4), "train", 123)
    # "returned" images: the patient's own frames (a perfect round trip) for one patient, other
    # people's frames for the other; features are exact, so the distances can be recomputed.
    a, b = sorted(plan["patient"].unique())
    plan = plan.assign(returned_image=np.where(plan["patient"] == a, plan["style_image"], plan["id_image"]))
    nets = dataclasses.replace(
        open_networks(load_pipeline("tiny").weights, MetricsConfig(), torch.device("cpu"), 0),
        fid=Opened(ChannelStats(), ()),
    )
    result = afid_of(plan, nets, batch_size=3, eps=1e-6, timings=Timings())
    per = {p.patient: p for p in result.per_patient}
    assert per[a].value == pytest.approx(0.0, abs=1e-6) and per[a].n_real == per[a].n_returned == 4
    rows_b = plan[plan["patient"] == b]
    expected = fid_of_features(_features(rows_b["style_image"]), _features(rows_b["id_image"]))
    assert per[b].value == pytest.approx(expected.value, rel=1e-6) and per[b].value > 0.01
    pooled = fid_of_features(_features(plan["style_image"]), _features(plan["returned_image"]))
    assert result.pooled.value == pytest.approx(pooled.value, rel=1e-6)
    assert (result.pooled.n_a, result.pooled.n_b) == (8, 8)


class RedGreenLevels(torch.nn.Module):
    """2-d features standing in for Inception-v3: the mean R and G levels (0..255) of an image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return ((images + 1) * 127.5).mean(dim=(2, 3))[:, :2].double()


def test_afid_of_flat_colour_images_has_the_closed_form_value(tmp_path):
    """Patients whose frames are flat colours: features (R, G) with a diagonal covariance, so each
    FID is sum over R, G of (mean difference)^2 + (std difference)^2, written out below."""
    r_dev, g_dev = np.array([-1, 1, -1, 1]), np.array([-1, -1, 1, 1])  # uncorrelated over the 4 frames
    levels = {  # (R, G) of the 4 frames: real style frames, and the returned images of the round trip
        ("p1", "real"): (100 + 20 * r_dev, 100 + 10 * g_dev),
        ("p1", "returned"): (100 + 20 * r_dev, 100 + 10 * g_dev),  # a perfect round trip
        ("p2", "real"): (140 + 20 * r_dev, 100 + 10 * g_dev),
        ("p2", "returned"): (150 + 10 * r_dev, 100 + 10 * g_dev),  # R shifted by 10, half the spread
    }
    rows = []
    for (patient, kind), (red, green) in levels.items():
        for k, (r, g) in enumerate(zip(red, green)):
            path = tmp_path / f"{patient}-{kind}-{k}.png"
            cv2.imwrite(str(path), np.full((8, 8, 3), (30, g, r), np.uint8))  # OpenCV writes BGR
            rows.append({"patient": patient, "k": k, kind: str(path)})
    plan = (
        pd.DataFrame(rows)
        .groupby(["patient", "k"], as_index=False)
        .first()
        .rename(columns={"real": "style_image", "returned": "returned_image"})
    )
    nets = SimpleNamespace(fid=Opened(RedGreenLevels(), ()), device=torch.device("cpu"))
    result = afid_of(plan, nets, batch_size=3, eps=1e-6, timings=Timings())
    per = {p.patient: p.value for p in result.per_patient}
    std = lambda spread: spread * (4 / 3) ** 0.5  # noqa: E731  unbiased std of (-s, s, -s, s)
    assert per["p1"] == pytest.approx(0.0, abs=1e-6)
    assert per["p2"] == pytest.approx(10**2 + (std(20) - std(10)) ** 2, rel=1e-6)  # = 100 + 400/3
    # pooled: real R (80 120 80 120 120 160 120 160), returned R (80 120 80 120 140 160 140 160), G alike
    real_r = (6400 / 7) ** 0.5  # sum of squared deviations from 120 is 6400, n - 1 = 7
    back_r = (7000 / 7) ** 0.5  # from 125: 7000
    assert result.pooled.value == pytest.approx((125 - 120) ** 2 + (real_r - back_r) ** 2, rel=1e-6)
    assert (result.pooled.n_a, result.pooled.n_b) == (8, 8) and result.mean_per_patient == pytest.approx(per["p2"] / 2)


# --------------------------------------------------------------------------- the stage with a model


def _train_format_checkpoint(ws: Path, cfg) -> Path:
    """A checkpoint of the train stage's format (tiny model, no training), and a short log.csv."""
    from fpsynth.train.logs import COLUMNS

    path = save_train_checkpoint(ws, cfg, step=20)
    rows = [
        {c: 0.0 for c in COLUMNS} | {"step": s, "loss": 1.0 / s, "mse": 0.5 / s, "lr": 1e-4} for s in (5, 10, 15, 20)
    ]
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(ws / "train" / "log.csv", index=False)
    return path


@pytest.fixture(scope="module")
def with_model(demo):
    """The demo workspace + a train-format checkpoint + a real `fpsynth generate` run; report run."""
    from fpsynth.generate.run import run as generate
    from fpsynth.report.run import run as report

    ws = demo["root"] / "ws-model"
    shutil.copytree(demo["ws"] / "prepare", ws / "prepare")
    cfg = load_pipeline(
        "tiny",
        [
            "generate.count=6",
            "generate.sampler.steps=2",
            "generate.runtime.batch_size=6",
            "report.afid.images_per_patient=3",
            "report.afid.sampler.steps=2",
        ],
    )
    checkpoint = _train_format_checkpoint(ws, cfg)
    generate(with_section(cfg, "generate", ids=demo["data"]["ids"]), ws)
    record = report(cfg, ws)
    out = ws / "report"
    return {
        "ws": ws,
        "cfg": cfg,
        "checkpoint": checkpoint,
        "record": record,
        "report": json.loads((out / "report.json").read_text()),
        "html": (out / "report.html").read_text(),
    }


@pytest.mark.slow
def test_report_of_a_model_and_its_dataset(with_model):
    r = with_model["report"]
    assert set(r["sets"]) == {"dataset", "model"} and r["sets"]["model"]["n"] == 3 and r["sets"]["dataset"]["n"] == 6
    model = r["evaluated"]["model"]
    assert model["step"] == 20 and model["path"] == str(with_model["checkpoint"]) and model["variant"] == "ccfexp"
    assert model["switches"] == {"grid": None, "landmarks": True, "cross_fusion": True, "cycle": True}
    assert model["random_init"] == RANDOM
    assert r["evaluated"]["dataset"]["images_total"] == 6 and r["evaluated"]["dataset"]["ids_synthetic"] is True
    afid = r["afid"]  # no Inception file configured: aFID is missing, and says how to get it
    assert afid["status"] == "missing" and afid["config_key"] == "weights.inception"
    assert afid["sampler"]["steps"] == 2 and afid["skipped"] == []
    assert [row["set"] for row in r["table1"]] == ["dataset", "model"] and r["table1"][1]["afid"] is None
    assert r["table1"][1]["psnr"]["x_style"] is not None and r["table1"][1]["lpips"] is None
    for name in ("dataset", "model"):
        expr = r["sets"][name]["expression"]  # demo clips have neutral frames: the error exists
        assert expr["expression_error"]["n"] == r["sets"][name]["n"] and expr["expression_error"]["mean"] > 0
    assert "privacy" in r["sets"]["dataset"] and "privacy" not in r["sets"]["model"]
    assert r["training"]["rows"] == 4 and r["training"]["last"]["step"] == 20
    items = pd.read_parquet(with_model["ws"] / "report" / "items-model.parquet")
    assert (
        items["image"].map(lambda p: "/afid/first/" in p).all()
        and items["returned_image"].map(lambda p: Path(p).is_file()).all()
    )


@pytest.mark.slow
def test_model_page_shows_the_demo_banner_round_trips_and_training(with_model):
    html = with_model["html"]
    assert "SYNTHETIC DEMO DATA" in html and "RANDOM WEIGHTS" in html
    assert "Round-trip examples" in html and html.count('alt="first pass"') == 3
    assert "CCFExp: LM &#10003; CF &#10003; CD &#10003;" in html
    assert "total, first and second pass" in html and "missing: set <code>weights.inception</code>" in html


@pytest.mark.slow
def test_an_interrupted_report_resumes_its_transfers(with_model):
    from fpsynth.report.run import run as report

    ws = with_model["ws"]
    images = sorted((ws / "report" / "afid").rglob("*.png"))
    before = {p: p.read_bytes() for p in images}
    (ws / "report" / "stage.json").unlink()  # as if killed before the end
    images[0].unlink()
    record = report(with_model["cfg"], ws)
    assert record["status"] == "finished" and {p: p.read_bytes() for p in images} == before
    assert report(with_model["cfg"], ws).get("skipped") is True


@pytest.mark.slow
def test_cli_report_and_its_errors(with_model, tmp_path):
    from fpsynth.cli import app

    ws = with_model["ws"]

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["report", "-c", "tiny", *args])
        return result.exit_code, " ".join(result.output.split())  # rich wraps long lines

    code, out = cli(
        "-w",
        str(ws),
        "--set",
        "generate.count=6",
        "--set",
        "generate.sampler.steps=2",
        "--set",
        "generate.runtime.batch_size=6",
        "--set",
        "report.afid.images_per_patient=3",
        "--set",
        "report.afid.sampler.steps=2",
    )
    assert code == 0 and "nothing changed" in out
    code, out = cli("-w", str(ws), "--run", str(tmp_path))
    assert code == 2 and "no metadata.parquet" in out and "fpsynth generate" in out
    empty = tmp_path / "ws"
    code, out = cli("-w", str(empty))
    assert code == 2 and "fpsynth prepare" in out
    shutil.copytree(ws / "prepare", empty / "prepare")
    code, out = cli("-w", str(empty))
    assert code == 2 and "nothing to evaluate" in out and "fpsynth train" in out and "fpsynth generate" in out

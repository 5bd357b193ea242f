"""The report stage end to end on small real artifacts, and its page in headless Chromium.

Workspaces are prepared by the real prepare stage: from the fixtures' 5 people x 11 real face
photos (`--images`) and from the built-in synthetic demo data (`--aflfp`). The generated dataset
is written here in the generate stage's output layout (metadata.parquet, identities.parquet,
shards/NNNNN/<item>.png) with images made from known crops, so every figure can be checked:
blends of the identity and style crops, and two exact copies of training frames that the privacy
audit must flag. Networks without weights here run from seeded random weights where the config
allows it (Inception, VGG16); the LPIPS v0.1 layers are the real fixture file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fpsynth.pipeline import load_pipeline, with_section
from helpers.fixtures import fixture_path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SECTIONS = (
    "provenance",
    "table1",
    "missing",
    "afid",
    "grids",
    "breakdowns",
    "distributions",
    "identity",
    "expression",
    "privacy",
    "training",
    "networks",
)

pytestmark = pytest.mark.usefixtures("one_thread")


def write_generated(
    out: Path, prepare_dir: Path, identities: dict[str, bytes], styles: pd.DataFrame, copies: dict[int, str]
) -> pd.DataFrame:
    """A dataset in generate's layout; item k blends identity k % n (60%) with style row k (40%),
    or is an exact copy of the prepared crop ``copies[k]``."""
    out.mkdir(parents=True)
    ids = sorted(identities)
    pd.DataFrame(
        {"identity_id": ids, "subject": ids, "source": [f"{i}.jpg" for i in ids], "png": [identities[i] for i in ids]}
    ).to_parquet(out / "identities.parquet")
    rows = []
    for k, style in enumerate(styles.itertuples(index=False)):
        ident = ids[k % len(ids)]
        name = f"shards/00000/{k:08d}.png"
        id_bgr = cv2.imdecode(np.frombuffer(identities[ident], np.uint8), cv2.IMREAD_COLOR)
        style_bgr = cv2.imread(str(prepare_dir / style.path))
        image = (
            cv2.imread(str(prepare_dir / copies[k])) if k in copies else cv2.addWeighted(id_bgr, 0.6, style_bgr, 0.4, 0)
        )
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / name), image)
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()  # generate records it; the report checks it
        rows.append(
            {
                "item_id": f"{k:08d}",
                "item_index": k,
                "shard": 0,
                "file_name": name,
                "identity_id": ident,
                "identity_source": f"{ident}.jpg",
                "style_frame": style.frame_id,
                "style_subject": style.subject,
                "severity": style.severity,
                "eface": style.eface,
                "expression": style.expression,
                "phase": style.phase,
                "seed": k,
                "style_path": style.path,
                "sampler": "ddim",
                "steps": 50,
                "eta": 1.0,
                "checkpoint": "c" * 64,
                "checkpoint_step": 100,
                "device": "cpu",
                "precision": "fp32",
                "batch_size": 8,
                "image_sha256": digest,
                "synthetic": True,
            }
        )
    meta = pd.DataFrame(rows)
    meta.to_parquet(out / "metadata.parquet")
    return meta


def _prepare(workspace: Path, **sources) -> Path:
    from fpsynth.data.prepare import run

    cfg = with_section(load_pipeline("tiny"), "prepare", n_jobs=1, **sources)
    run(cfg, workspace)
    return workspace / "prepare"


# --------------------------------------------------------------------------- real faces, every network


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Prepared real faces + a 12-image generated dataset with 2 memorised training frames; report run."""
    from fpsynth.report.run import run

    ws = tmp_path_factory.mktemp("real") / "ws"
    prep = _prepare(ws, images=fixture_path("faces", "people"))
    frames = pd.read_parquet(prep / "frames.parquet").sort_values("frame_id").reset_index(drop=True)
    test, train = frames[frames["split"] == "test"], frames[frames["split"] == "train"]
    copies = {2: train.iloc[5]["path"], 7: train.iloc[30]["path"]}
    # Identities: three crops of the test person and one training patient's crop (a patient's photo
    # among the --ids faces), of another subject than the two memorised frames.
    patient = train[~train["subject"].isin(train.iloc[[5, 30]]["subject"])].iloc[0]
    identities = {row.frame_id: (prep / row.path).read_bytes() for row in (*test.head(3).itertuples(), patient)}
    styles = pd.concat([test.iloc[3:11], train.iloc[::11].head(4)]).reset_index(drop=True)  # 12 items
    meta = write_generated(ws / "generate", prep, identities, styles, copies)
    cfg = load_pipeline(
        "tiny",
        [
            "weights.random_init=['inception-v3-fid', 'vgg16']",
            f"weights.lpips='{fixture_path('weights', 'lpips-v0.1', 'vgg.pth')}'",
            "report.batch_size=8",
        ],
    )
    record = run(cfg, ws)
    out = ws / "report"
    return {
        "ws": ws,
        "cfg": cfg,
        "record": record,
        "frames": frames,
        "meta": meta,
        "copies": copies,
        "patient": patient,
        "report": json.loads((out / "report.json").read_text()),
        "html": (out / "report.html").read_text(),
        "items": pd.read_parquet(out / "items-dataset.parquet"),
    }


@pytest.mark.slow
def test_outputs_and_what_each_figure_was_computed_on(real):
    r = real["report"]
    assert real["record"]["status"] == "finished" and set(r["sets"]) == {"dataset"}
    ds = r["sets"]["dataset"]
    assert ds["n"] == 12 and r["evaluated"]["dataset"]["images_total"] == 12
    assert r["reference"] == {
        "split": "test",
        "n": 11,
        "subjects": 1,
        "what": "real prepared frames of the test split (FID reference)",
    }
    assert ds["fid"]["status"] == "ok" and (ds["fid"]["n_a"], ds["fid"]["n_b"]) == (12, 11)
    assert ds["fid"]["rank_deficient"] and ds["fid"]["value"] > 0
    for metric in ("psnr", "ssim", "lpips", "pl"):
        assert ds["pairwise"][metric]["x_id"]["n"] == 12 and ds["pairwise"][metric]["x_style"]["n"] == 12
    assert r["missing"] == [] and sorted(r["random_init"]) == ["inception-v3-fid", "vgg16"]
    lpips_files = [rec["path"] for rec in r["networks"]["lpips"]["records"]]
    assert str(fixture_path("weights", "lpips-v0.1", "vgg.pth")) in lpips_files
    assert r["afid"]["status"] == "not computed" and "fpsynth train" in r["afid"]["reason"]
    assert r["table1"][0]["set"] == "dataset" and r["table1"][0]["psnr"]["x_id"] == pytest.approx(
        ds["pairwise"]["psnr"]["x_id"]["mean"]
    )
    assert r["provenance"]["synthetic_demo"] is False and r["provenance"]["sources"][0]["kind"] == "images"
    assert all(v >= 0 for v in r["timings_s"].values()) and "fid_distance" in r["timings_s"]


@pytest.mark.slow
def test_pair_metrics_compare_with_the_right_reference(real):
    """PSNR of an item recomputed from the files: X_ID is the identity crop, X_Style the style crop."""
    items, ws = real["items"], real["ws"]
    row = items.iloc[0]
    gen = cv2.imread(row["image"]).astype(np.float64)
    for column, ref in (("psnr_x_id", row["id_image"]), ("psnr_x_style", row["style_image"])):
        mse = np.mean((gen - cv2.imread(ref).astype(np.float64)) ** 2)
        assert row[column] == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-5)  # float32 crops
    assert Path(row["id_image"]).parent == ws / "report" / "identities"
    # a blend of 60% identity is closer to X_ID than to X_Style, in every metric
    blends = items.drop(index=list(real["copies"]))
    assert (blends["psnr_x_id"] > blends["psnr_x_style"]).all()
    assert (blends["lpips_x_id"] < blends["lpips_x_style"]).all()


@pytest.mark.slow
def test_every_registered_pair_metric_is_evaluated_and_summarised(real):
    """The registry is the one list: each pair metric has its per-image columns and its report.json entry.
    MAE (registered as one spec and one function) recomputed from the files, in 8-bit levels."""
    from fpsynth.metrics.table1 import PAIR_METRICS

    items, pairwise = real["items"], real["report"]["sets"]["dataset"]["pairwise"]
    for name, metric in PAIR_METRICS.items():
        assert set(metric.columns) <= set(items.columns)
        assert pairwise[name]["unit"] == metric.unit and pairwise[name]["x_id"]["n"] == 12
    row = items.iloc[0]
    gen = cv2.imread(row["image"]).astype(np.float64)
    for column, ref in (("mae_x_id", row["id_image"]), ("mae_x_style", row["style_image"])):
        assert row[column] == pytest.approx(np.abs(gen - cv2.imread(ref).astype(np.float64)).mean(), abs=1e-4)
    blends = items.drop(index=list(real["copies"]))
    assert (blends["mae_x_id"] < blends["mae_x_style"]).all()  # 60% identity: closer to X_ID


@pytest.mark.slow
def test_identity_and_privacy_audit_on_real_faces(real):
    ds, items, frames = real["report"]["sets"]["dataset"], real["items"], real["frames"]
    ident = ds["identity"]
    assert ident["embedder"] == "dlib-resnet-v1" and ident["threshold"] == 0.6 and ident["n"] == 12
    blends = items.drop(index=list(real["copies"]))
    assert blends["identity_same"].all()  # 60% of the identity crop: the same person for dlib
    priv = ds["privacy"]
    assert priv["training"] == {"subjects": 4, "frames": 44, "frames_per_subject": None}
    flagged = {row["item"]: row for row in priv["flagged"]}
    for k, path in real["copies"].items():
        row = flagged[f"{k:08d}"]  # a memorised training frame is found, with its subject and frame
        source = frames[frames["path"] == path].iloc[0]
        assert row["subject"] == source["subject"] and row["training_path"] == path and row["score"] < 0.05
        assert row["identity_source_is_subject"] is False  # memorised, not asked for
    # The patient's crop as identity: its images are that patient, by design, and marked so.
    patient, by_item = real["patient"], items.set_index("item")
    from_patient = items.loc[items["identity"] == patient["frame_id"], "item"]
    for item in from_patient.drop(index=list(real["copies"]), errors="ignore"):
        assert flagged[item]["subject"] == patient["subject"] and flagged[item]["identity_source_is_subject"] is True
    # Blends of the test person's crops are no patient; a blend holding 40% of a training patient's
    # frame (items 8-11 take training styles) may be, and then it is that style subject.
    for item, row in flagged.items():
        if int(item) not in real["copies"] and item not in set(from_patient):
            assert int(item) >= 8 and row["subject"] == by_item.loc[item, "style_subject"]
    assert priv["n_flagged_identity_source_is_subject"] == sum(
        r["identity_source_is_subject"] for r in flagged.values()
    )
    assert priv["n_flagged"] == len(flagged) and priv["share_flagged"] == pytest.approx(len(flagged) / 12)


@pytest.mark.slow
def test_expression_without_rest_frames_is_counted_not_invented(real):
    expr = real["report"]["sets"]["dataset"]["expression"]
    assert expr["status"] == "ok" and expr["without_rest_frame"] == 12  # photos have no neutral clip frame
    assert expr["expression_error"]["n"] == 0 and expr["expression_error"]["mean"] is None
    assert expr["asymmetry_by_severity"][0]["severity"] == "unknown" and expr["asymmetry_by_severity"][0]["n"] == 12


@pytest.mark.slow
def test_page_has_every_section_and_embeds_everything(real):
    html = real["html"]
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in html
    sources = [s.split('"', 1)[0] for s in html.split('src="')[1:]]
    assert len(sources) >= 12 and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<script" not in html and "<link" not in html
    assert "RANDOM WEIGHTS" in html and "SYNTHETIC DEMO DATA" not in html
    assert html.count("<svg") >= 6  # distributions: 4 pair metrics, identity, privacy


# --------------------------------------------------------------------------- the page in a browser


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (pip) drives the headless Chromium test")
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Debian packages chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="fpsynth-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is named explicitly, so selenium never looks for (or downloads) one.
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts), profile


@pytest.mark.slow
def test_page_renders_in_headless_chromium(real, tmp_path):
    page = real["ws"] / "report" / "report.html"
    driver, profile = _chrome()
    try:
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        sections = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        svgs = driver.execute_script("return Array.from(document.querySelectorAll('svg')).map(s => s.getBBox().width)")
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1},
            },
        )
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    png = base64.b64decode(shot["data"])
    (tmp_path / "report.png").write_bytes(png)
    pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert errors == []
    assert len(images) == page.read_text().count("<img ") >= 12 and all(
        ok and w == 112 and h == 112 for ok, w, h in images
    )
    assert resources == []  # nothing fetched: no file, no network
    assert sections == list(SECTIONS) and all(w > 0 for w in svgs)
    assert pixels.shape[0] == height > 3000 and pixels.shape[1] == 1280
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # not blank: text, photos, plots


@pytest.mark.slow
def test_second_run_skips_and_force_redoes(real):
    from fpsynth.report.run import run

    assert run(real["cfg"], real["ws"]).get("skipped") is True
    before = (real["ws"] / "report" / "report.json").stat().st_mtime_ns
    cfg = load_pipeline("tiny", ["report.page.show_real_faces=false"])
    record = run(cfg, real["ws"])  # another config: not skipped; no Inception/VGG16 now
    report = json.loads((real["ws"] / "report" / "report.json").read_text())
    assert record["status"] == "finished" and (real["ws"] / "report" / "report.json").stat().st_mtime_ns != before
    assert [m["metric"] for m in report["missing"]] == ["fid", "lpips", "perceptual"]
    assert report["sets"]["dataset"]["fid"]["config_key"] == "weights.inception"
    html = (real["ws"] / "report" / "report.html").read_text()
    assert "<th>generated image</th>" in html and "<th>closest training frame</th>" not in html  # no patient faces
    assert "This page shows real face crops" not in html and "missing: set <code>weights.inception</code>" in html


def test_without_dlib_models_identity_expression_and_privacy_are_missing(tmp_path):
    from fpsynth.metrics.config import MetricsConfig
    from fpsynth.report.networks import open_networks
    from fpsynth.weights import WeightsConfig

    nets = open_networks(WeightsConfig(dlib_models=tmp_path), MetricsConfig(), torch.device("cpu"), 0)
    missing = {m["metric"]: m for m in nets.missing()}
    assert set(missing) == {"fid", "lpips", "perceptual", "identity", "landmarks"}
    assert missing["landmarks"]["files"] == ["shape_predictor_68_face_landmarks.dat"]
    assert missing["identity"]["config_key"] == missing["landmarks"]["config_key"] == "weights.dlib_models"
    assert missing["fid"]["files"] == ["pt_inception-2015-12-05-6726825d.pth", "inception-2015-12-05.pt"]
    assert missing["perceptual"]["files"] == ["vgg16-397923af.pth"] and missing["lpips"]["files"] == ["vgg.pth"]
    assert all(m["status"] == "missing" and m["config_key"] in m["message"] for m in missing.values())

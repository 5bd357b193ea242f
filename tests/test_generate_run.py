"""Generation end to end with a tiny random-init model on CPU: determinism, counts, shards, resume, guards."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fpsynth.diffusion.config import SamplerConfig, SamplerKind
from fpsynth.generate.config import Overlap, RuntimeConfig, ShardSpec
from fpsynth.generate.dataset import GeneratedDataset, read_metadata
from fpsynth.generate.plan import PLAN_FILE
from fpsynth.generate.run import OtherRunError
from fpsynth.generate.shards import InlineExecutor, part_path
from fpsynth.generate.synthesizer import Synthesizer, pad_batch
from fpsynth.generate.workers import Worker
from helpers.generate import generate, image_bytes, make_identities, make_workspace, pipeline, tiny_loader

HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a CPU shared with other jobs it is several times faster than two, and
    it changes no result (checked in test_same_item_same_bytes_in_other_batches_and_runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def reference(root) -> Path:
    """An uninterrupted run: 10 images, shards of 4 (the last one short), batches of 3."""
    out = root / "reference"
    result = generate(root, out, pipeline(10))
    assert result["status"] == "finished" and result["summary"]["images"] == 10
    return out


def test_counts_metadata_and_files_agree(reference):
    meta = read_metadata(reference)
    assert len(meta) == 10 and meta["item_id"].tolist() == [f"{k:08d}" for k in range(10)]
    pngs = sorted(
        p.relative_to(reference).as_posix() for p in reference.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    assert pngs == sorted(meta["file_name"])  # every image has a row, every row an image, nothing else
    for name, digest in zip(meta["file_name"], meta["image_sha256"]):
        assert hashlib.sha256((reference / name).read_bytes()).hexdigest() == digest
    assert meta["shard"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert meta["synthetic"].all() and set(meta["sampler"]) == {"ddim"} and set(meta["steps"]) == {2}
    assert set(meta["checkpoint_step"]) == {42} and set(meta["device"]) == {"cpu"}
    assert set(meta["precision"]) == {"fp32"}
    # an image-folder loader finds exactly one metadata file at the root, with file_name relative to it
    assert sorted(p.name for p in reference.glob("metadata.*")) == ["metadata.parquet"]
    plan = pd.read_parquet(reference / PLAN_FILE)
    pd.testing.assert_frame_equal(plan, meta[plan.columns.tolist()].astype(plan.dtypes.to_dict()))
    card = (reference / "README.md").read_text()
    assert "synthetic" in card and "| **all** |" in card and "steps = 2" in card
    assert '- "shards/*/*.png"\n    - "metadata.parquet"' in card  # the card's header tells image-folder loaders
    run = json.loads((reference / "run.json").read_text())
    assert run["count"] == 10 and run["checkpoint"]["step"] == 42


def test_images_are_real_images_with_labels(root, reference):
    ds = GeneratedDataset(reference, prepare_dir=root / "prepare", severities=["mild", "complete"])
    assert 0 < len(ds) < 10
    item = ds[0]
    assert item["image"].shape == item["identity"].shape == item["style"].shape == (3, 112, 112)
    assert item["severity"] in ("mild", "complete") and item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["image"].std() > 0.05  # not a blank image


@pytest.mark.slow
def test_same_item_same_bytes_in_other_batches_and_runs(root, reference, tmp_path):
    out = tmp_path / "other"
    # other batches (4 in one, others alone), and the I/O in threads (the reference ran it inline, the CPU default)
    threads = RuntimeConfig(batch_size=5, writer_threads=2, overlap=Overlap.THREADS)
    generate(root, out, pipeline(10, shard_size=4, runtime=threads))
    assert image_bytes(out) == image_bytes(reference)
    pd.testing.assert_frame_equal(
        read_metadata(out).drop(columns="batch_size"), read_metadata(reference).drop(columns="batch_size")
    )
    # and through the sampler directly: an item alone equals the same item inside a batch
    loaded = tiny_loader(root / "tiny.safetensors")
    synth = Synthesizer(loaded.model, loaded.schedule, SamplerConfig(steps=2), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x_id, x_style = torch.rand(5, 3, 112, 112, generator=g) * 2 - 1, torch.rand(5, 3, 112, 112, generator=g) * 2 - 1
    seeds = [11, 22, 33, 44, 55]
    together = synth(x_id, x_style, seeds)
    alone = synth(x_id[3:4], x_style[3:4], seeds[3:4])
    assert torch.equal(together[3], alone[0])
    padded = synth(*pad_batch(x_id[:2], x_style[:2], seeds[:2], 5))  # a short batch padded as when compiled
    assert torch.equal(padded[:2], together[:2]) and torch.equal(padded[4], padded[2])
    torch.set_num_threads(2)  # nor does the number of CPU threads change an image
    assert torch.equal(synth(x_id[1:4], x_style[1:4], seeds[1:4]), together[1:4])
    torch.set_num_threads(1)
    assert not torch.equal(together[2], together[3])


def test_shards_i_of_n_and_ranks_together_equal_the_unsharded_run(root, reference, tmp_path):
    out = tmp_path / "sharded"
    first = generate(root, out, pipeline(10, shard="1/2"), worker=Worker(ShardSpec(1, 2)))
    assert first["status"] == "partial" and first["pending_shards"] == 2
    assert not (out / "metadata.parquet").exists() and part_path(out, 1).exists() and not part_path(out, 0).exists()
    # machine 0/2 as a torchrun world of two: rank 1 takes shard 2, rank 0 shard 0 and merges
    assert generate(root, out, pipeline(10, shard="0/2"), worker=Worker(ShardSpec(0, 2), 1, 2))["status"] == "partial"
    last = generate(root, out, pipeline(10, shard="0/2"), worker=Worker(ShardSpec(0, 2), 0, 2))
    assert last["status"] == "finished"
    pd.testing.assert_frame_equal(read_metadata(out), read_metadata(reference))
    assert image_bytes(out) == image_bytes(reference)


def test_resume_keeps_verified_shards_and_redoes_broken_ones(root, reference, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(reference, out)
    kept = part_path(out, 0).stat().st_mtime_ns
    (out / "shards/00001/00000005.png").write_bytes(b"not the image")  # a corrupted image of a done shard
    part_path(out, 2).unlink()  # and a shard whose part never got written
    result = generate(root, out, pipeline(10))
    assert result["summary"]["images_made"] == 6  # shards 1 and 2 again, shard 0 kept as it was
    assert part_path(out, 0).stat().st_mtime_ns == kept
    assert image_bytes(out) == image_bytes(reference)
    pd.testing.assert_frame_equal(read_metadata(out), read_metadata(reference))


def test_an_output_folder_of_another_run_is_refused_unless_forced(root, reference, tmp_path):
    out = tmp_path / "guard"
    shutil.copytree(reference, out)
    with pytest.raises(OtherRunError, match="count"):
        generate(root, out, pipeline(6))
    assert read_metadata(out)["item_id"].size == 10  # untouched
    result = generate(root, out, pipeline(6), force=True)
    assert result["summary"]["images"] == 6 and len(read_metadata(out)) == 6
    assert not (out / "shards/00002").exists() and not part_path(out, 2).exists()  # beyond the new plan: gone
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == read_metadata(out)["file_name"].tolist()


def test_plan_only_writes_the_plan_and_identities_and_samples_nothing(root, tmp_path):
    out = tmp_path / "planned"
    result = generate(root, out, pipeline(9, plan_only=True))
    assert result["status"] == "planned" and result["shards"] == 3
    assert len(pd.read_parquet(out / PLAN_FILE)) == 9 and (out / "identities.parquet").exists()
    assert not (out / "shards").exists() and not (out / "metadata.parquet").exists()


@pytest.mark.slow
def test_kill_mid_shard_then_resume_equals_an_uninterrupted_run(root, tmp_path):
    """SIGKILL a generating process inside shard 1, resume, and compare with a run never interrupted."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cmd = [sys.executable, str(HERE / "helpers" / "generate.py"), str(root)]
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, str(whole), "8"], check=True, env=env, capture_output=True, timeout=300)
    proc = subprocess.Popen([*cmd, str(killed), "8"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not (part_path(killed, 0).exists() and list((killed / "shards" / "00001").glob("*.png"))):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert part_path(killed, 0).exists() and not part_path(killed, 1).exists()  # killed inside shard 1
    assert len(list((killed / "shards" / "00001").glob("*.png"))) < 4
    subprocess.run([*cmd, str(killed), "8"], check=True, env=env, capture_output=True, timeout=300)
    pd.testing.assert_frame_equal(read_metadata(killed), read_metadata(whole))
    assert image_bytes(killed) == image_bytes(whole)
    assert len(read_metadata(killed)) == 8 and read_metadata(killed)["item_id"].is_unique


@pytest.mark.slow
def test_dpm_solver_is_selectable_and_recorded(root, tmp_path):
    cfg = pipeline(4, sampler=SamplerConfig(kind=SamplerKind.DPM_SOLVER_PP, steps=3))
    assert generate(root, tmp_path / "dpm", cfg)["summary"]["images"] == 4
    meta = read_metadata(tmp_path / "dpm")
    assert set(meta["sampler"]) == {"dpm-solver++"} and set(meta["steps"]) == {3}
    assert meta["image_sha256"].is_unique and (tmp_path / "dpm" / meta["file_name"].iat[3]).is_file()


def test_cpu_runs_fp32_contiguous_and_auto_batch_is_the_cpu_default(root):
    loaded = tiny_loader(root / "tiny.safetensors")
    synth = Synthesizer(
        loaded.model,
        loaded.schedule,
        SamplerConfig(steps=1),
        torch.device("cpu"),
        RuntimeConfig(batch_size="auto", cpu_batch_size=6),
    )
    assert synth.precision == "fp32" and not synth.autocast and synth.batch_size() == 6
    assert not synth.background_io  # "auto" overlap: inline on CPU, where sampling fills every core
    threads = Synthesizer(
        loaded.model, loaded.schedule, SamplerConfig(steps=1), torch.device("cpu"), RuntimeConfig(overlap="threads")
    )
    assert threads.background_io
    failed = InlineExecutor().submit(lambda: 1 / 0)  # an inline error waits in its future, as a thread's would
    with pytest.raises(ZeroDivisionError):
        failed.result()
    assert make_identities(2).crop(1).shape == (3, 112, 112)

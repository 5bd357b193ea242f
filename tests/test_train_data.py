"""What each training step sees (pairs, timesteps, noise), and the prepare workspaces the train tests use.

``real_crops()`` aligns the four annotated real faces of ../shared/fixtures/landmarks68 with
fpsynth.data.align (no detector needed: the .pts files give the 68 points); ``write_prepare``
writes them as a ``WORKSPACE/prepare`` folder with the manifests' exact schemas. Other train
tests import both from here.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from helpers.fixtures import fixture_path
from fpsynth.data.align import align
from fpsynth.data.dataset import PairDataset
from fpsynth.data.images import read_image
from fpsynth.data.manifests import FRAMES, PAIRS, to_table
from fpsynth.data.pts import read_pts
from fpsynth.train.data import Batching, BatchingError, StepBatches, dropout_seeds, step_noise, steps_per_epoch

FACES = ("breakingbad.jpg", "einstein.jpg", "lenna.png", "takeo.ppm")
# --set overrides of the tiny pipeline at half width (U-Net base 16, IR widths 8..64): the loop
# tests train this for speed; what they check does not depend on the size.
MICRO = [  # the tiny pipeline at half width
    "train.model.unet.model_channels=16", "train.model.unet.norm_groups=8",
    "train.model.identity_ir.stage_channels=[8,16,32,64]", "train.model.identity_ir.embedding_dim=64",
    "train.model.expression_ir.stage_channels=[8,16,32,64]", "train.model.expression_ir.embedding_dim=64",
    "train.model.fusion.dim=64",
]


def real_crops() -> list[tuple[np.ndarray, np.ndarray]]:
    """Four real aligned faces: (crop (112, 112, 3) uint8 RGB, landmarks (68, 2) crop pixels)."""
    folder = fixture_path("landmarks68")
    out = []
    for name in FACES:
        aligned = align(read_image(folder / name), read_pts(folder / f"{Path(name).stem}.pts"))
        out.append((aligned.crop, aligned.landmarks))
    return out


def write_prepare(workspace: Path, frames: list[dict], pairs: list[tuple[str, str]]) -> Path:
    """A ``workspace/prepare`` folder: frames = dicts(frame_id, subject, split, crop, landmarks)."""
    root = workspace / "prepare"
    rows = []
    for f in frames:
        path = f"crops/{f['subject']}/{f['frame_id']}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.ascontiguousarray(f["crop"][:, :, ::-1]))
        rows.append({"frame_id": f["frame_id"], "path": path, "subject": f["subject"], "dataset": "images",
                     "kind": "photo", "clip": f["frame_id"], "expression": "unknown", "frame_index": 0,
                     "severity": "unknown", "landmarks": np.asarray(f["landmarks"], np.float32).reshape(-1),
                     "split": f["split"], "blur": 100.0, "interocular": 40.0, "yaw": 0.0, "width": 112,
                     "height": 112, "landmark_source": "annotation"})
    table = pd.DataFrame(rows)
    by_id = table.set_index("frame_id")
    pair_rows = [{"pair_id": f"{style}~{k}", "subject": by_id.loc[style, "subject"], "split": by_id.loc[style, "split"],
                  "id_frame": ident, "id_path": by_id.loc[ident, "path"], "style_frame": style,
                  "style_path": by_id.loc[style, "path"], "expression": "unknown", "severity": "unknown"}
                 for k, (ident, style) in enumerate(pairs)]
    pq.write_table(to_table(table, FRAMES), root / "frames.parquet")
    pq.write_table(to_table(pd.DataFrame(pair_rows), PAIRS), root / "pairs.parquet")
    return root


def flipped_workspace(workspace: Path, test_subjects: int = 1) -> Path:
    """4 real subjects x 2 frames (the crop and its mirror image), each frame paired with the other.

    The last ``test_subjects`` subjects form the test split (held-out pairs for the sample grids).
    """
    frames, pairs = [], []
    for s, (crop, lm) in enumerate(real_crops()):
        split = "test" if s >= 4 - test_subjects else "train"
        mirror_lm = lm.copy()
        mirror_lm[:, 0] = 111 - mirror_lm[:, 0]
        for k, (img, marks) in enumerate(((crop, lm), (crop[:, ::-1], mirror_lm))):
            frames.append({"frame_id": f"S{s}-{k}", "subject": f"S{s}", "split": split, "crop": img, "landmarks": marks})
        pairs += [(f"S{s}-1", f"S{s}-0"), (f"S{s}-0", f"S{s}-1")]
    return write_prepare(workspace, frames, pairs)


def test_workspace_reads_as_pair_dataset(tmp_path):
    prepare = flipped_workspace(tmp_path)
    train, test = PairDataset(prepare, "train"), PairDataset(prepare, "test")
    assert (len(train), len(test)) == (6, 2)
    item = train[0]
    assert item["x0"].shape == (3, 112, 112) and -1 <= item["x0"].min() < item["x0"].max() <= 1
    assert torch.equal(item["x_id"], item["x0"].flip(-1))  # the partner is the mirror image


def test_step_batches_cover_each_epoch_once_and_split_over_ranks():
    batching = Batching(batch_size=4, world_size=1, accum=1)
    sampler = StepBatches(10, batching, seed=123, start=0, stop=6, rank=0)
    assert sampler.per_epoch == 2  # 10 // 4: two pairs left over per epoch
    epochs = [sum((sampler.global_batch(s) for s in range(e * 2, e * 2 + 2)), []) for e in range(3)]
    for picked in epochs:
        assert len(set(picked)) == 8 and set(picked) <= set(range(10))
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    assert list(sampler) == [sampler.global_batch(s) for s in range(6)]
    # resuming at step 3 continues the same order
    assert list(StepBatches(10, batching, 123, 3, 6, 0)) == [sampler.global_batch(s) for s in range(3, 6)]
    # two ranks of one process each take the halves, in order
    two = Batching(batch_size=4, world_size=2, accum=1)
    halves = [list(StepBatches(10, two, 123, 0, 6, r)) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves)] == list(sampler)
    assert StepBatches(10, batching, 124, 0, 6, 0).global_batch(0) != sampler.global_batch(0) or \
        StepBatches(10, batching, 124, 0, 6, 0).global_batch(1) != sampler.global_batch(1)


def test_step_noise_is_a_function_of_seed_and_step():
    t, eps = step_noise(123, 5, 4, 1000)
    assert t.shape == (4,) and t.dtype == torch.long and 0 <= int(t.min()) and int(t.max()) < 1000
    assert eps.shape == (4, 3, 112, 112)
    t2, eps2 = step_noise(123, 5, 4, 1000)
    assert torch.equal(t, t2) and torch.equal(eps, eps2)
    assert not torch.equal(step_noise(123, 6, 4, 1000)[1], eps)
    assert not torch.equal(step_noise(124, 5, 4, 1000)[1], eps)
    many = torch.cat([step_noise(1, s, 32, 1000)[0] for s in range(50)]).double()
    assert 400 < many.mean() < 600  # uniform on {0..999}


def test_batching_rules():
    b = Batching(batch_size=32, world_size=2, accum=2)
    assert (b.micro, b.per_process, b.process_slice(1)) == (8, 16, slice(16, 32))
    assert Batching(batch_size=6, world_size=2, accum=1).micro == 3
    with pytest.raises(BatchingError, match="multiple of 2"):
        Batching(batch_size=5, world_size=2, accum=1)
    with pytest.raises(BatchingError, match="at least 2 images"):
        Batching(batch_size=4, world_size=1, accum=4)
    with pytest.raises(BatchingError, match="fewer than one batch"):
        steps_per_epoch(3, 4)


def test_dropout_seeds_follow_the_micro_batch_not_the_process():
    one = dropout_seeds(123, 7, Batching(8, world_size=1, accum=2), rank=0)
    two = [dropout_seeds(123, 7, Batching(8, world_size=2, accum=1), rank=r)[0] for r in (0, 1)]
    assert one == two and len(set(one)) == 2
    assert dropout_seeds(123, 8, Batching(8, 1, 2), 0) != one

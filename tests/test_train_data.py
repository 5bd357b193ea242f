"""What each training step sees (pairs, timesteps, noise).

The prepare workspace of real annotated faces is built by ``helpers.train`` (shared with the
other train tests).
"""

from __future__ import annotations

import pytest
import torch

from fpsynth.data.dataset import PairDataset
from fpsynth.train.data import Batching, BatchingError, StepBatches, dropout_seeds, step_noise, steps_per_epoch
from helpers.train import flipped_workspace


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
    assert StepBatches(10, batching, 124, 0, 6, 0).global_batch(0) != sampler.global_batch(0) or StepBatches(
        10, batching, 124, 0, 6, 0
    ).global_batch(1) != sampler.global_batch(1)


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

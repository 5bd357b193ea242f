"""What each step trains on: pairs, timesteps and noise as pure functions of (seed, step).

Step s of a run with N pairs and global batch B lies in epoch e = s // (N // B), position
p = s % (N // B); its pairs are slots [p B, (p + 1) B) of epoch e's permutation, a seeded shuffle
of the N pairs (the N mod B left over are skipped that epoch, so every step has B pairs). Its
timesteps t (B,) ~ Uniform{0..T-1} and noise eps (B, 3, H, W) ~ N(0, I) come from a generator
seeded by (seed, step), and the dropout masks of its micro-batch m (E_ID's IR-50 has dropout in
train mode) from a seed of (seed, step, m). Nothing is carried from step to step, so a resumed
run needs only the step number to continue the exact data order, noise and dropout, whatever
the number of processes.

A global batch is cut into ``world_size * grad_accum`` equal micro-batches, in order: process r
trains micro-batches r * grad_accum ... (r + 1) * grad_accum - 1. One process accumulating two
micro-batches therefore computes the same step as two processes with one each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fpsynth.data.dataset import PairDataset
from fpsynth.errors import FpsynthError
from fpsynth.seeds import derive, rng, torch_generator


class BatchingError(FpsynthError, ValueError):
    """A batch size that does not fit the data or the processes."""


@dataclasses.dataclass(frozen=True)
class Batching:
    """How a global batch is shared: ``micro`` images per micro-batch, ``accum`` of them per process."""

    batch_size: int  # global
    world_size: int
    accum: int

    def __post_init__(self) -> None:
        parts = self.world_size * self.accum
        if self.batch_size % parts or self.batch_size // parts < 2:
            raise BatchingError(
                f"train.data.batch_size = {self.batch_size} cannot be cut into {self.world_size} process(es) x "
                f"{self.accum} micro-batch(es) of equal size, at least 2 images each (E_ID's BatchNorm needs 2); "
                f"choose a batch size that is a multiple of {parts} and at least {2 * parts}, or lower "
                f"train.data.grad_accum"
            )

    @property
    def micro(self) -> int:
        return self.batch_size // (self.world_size * self.accum)

    @property
    def per_process(self) -> int:
        return self.micro * self.accum

    def process_slice(self, rank: int) -> slice:
        """This process's part of a global batch (its ``accum`` micro-batches, contiguous)."""
        return slice(rank * self.per_process, (rank + 1) * self.per_process)


def steps_per_epoch(num_pairs: int, batch_size: int) -> int:
    n = num_pairs // batch_size
    if n < 1:
        raise BatchingError(
            f"only {num_pairs} training pairs, fewer than one batch (train.data.batch_size = {batch_size}); "
            f"prepare more data or pass --set train.data.batch_size=N with N <= {num_pairs}"
        )
    return n


class StepBatches(Sampler[list[int]]):
    """Per step from ``start`` to ``stop``: the indices of this process's share of the global batch."""

    def __init__(self, num_pairs: int, batching: Batching, seed: int, start: int, stop: int, rank: int) -> None:
        self.num_pairs, self.batching, self.seed = num_pairs, batching, seed
        self.start, self.stop, self.rank = start, stop, rank
        self.per_epoch = steps_per_epoch(num_pairs, batching.batch_size)
        self._epoch, self._perm = -1, np.empty(0, np.int64)

    def epoch_permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            order = rng(self.seed, "train-order", epoch)
            self._epoch, self._perm = epoch, order.permutation(self.num_pairs)
        return self._perm

    def global_batch(self, step: int) -> list[int]:
        epoch, pos = divmod(step, self.per_epoch)
        size = self.batching.batch_size
        return self.epoch_permutation(epoch)[pos * size : (pos + 1) * size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield self.global_batch(step)[self.batching.process_slice(self.rank)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def dropout_seeds(seed: int, step: int, batching: Batching, rank: int) -> list[int]:
    """Seeds of the dropout masks of this process's micro-batches of ``step`` (global micro-batch index)."""
    first = rank * batching.accum
    return [derive(seed, "train-dropout", step, first + k) for k in range(batching.accum)]


def step_noise(
    seed: int, step: int, batch_size: int, num_timesteps: int, shape: tuple[int, ...] = (3, 112, 112)
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t (B,) int64, eps (B, *shape) float32) of a step's global batch, on the CPU.

    Drawn on the CPU whatever the device, so a run gives the same numbers on any machine; the
    cost (B x 37,632 normals) is small next to a step.
    """
    g = torch_generator(seed, "train-noise", step)
    t = torch.randint(0, num_timesteps, (batch_size,), generator=g)
    eps = torch.randn((batch_size, *shape), generator=g)
    return t, eps


class _Images(Dataset):
    """PairDataset items reduced to the two images the objective needs (no metadata to collate)."""

    def __init__(self, pairs: PairDataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.pairs[i]
        return item["x0"], item["x_id"]


def pair_loader(pairs: PairDataset, sampler: StepBatches, num_workers: int, pin_memory: bool, seed: int) -> DataLoader:
    """Batches (x0, x_id), each (b, 3, 112, 112), in the sampler's step order."""
    return DataLoader(
        _Images(pairs),
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # the loader draws its workers' base seed from this generator, not from the global RNG
        generator=torch_generator(seed, "train-loader"),
        prefetch_factor=4 if num_workers else None,
    )

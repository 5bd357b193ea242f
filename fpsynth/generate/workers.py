"""Who makes which shards: ``--shard i/n`` across machines, torchrun ranks within a machine.

Machine i of n takes the shards s with s % n == i; rank r of a torchrun world of w processes on
that machine takes every w-th of those, starting at the r-th. No process talks to another: each
writes only its own shards, and whoever finds every shard done merges (``fpsynth.generate.merge``).
"""

from __future__ import annotations

import dataclasses

from fpsynth.device import Launch
from fpsynth.generate.config import ShardSpec


@dataclasses.dataclass(frozen=True)
class Worker:
    shard: ShardSpec = ShardSpec()
    rank: int = 0  # torchrun RANK
    world: int = 1  # torchrun WORLD_SIZE

    @classmethod
    def from_env(cls, shard: ShardSpec) -> Worker:
        """This process's place: ``shard`` from --shard, rank and world from torchrun's environment."""
        launch = Launch.from_env()
        return cls(shard, launch.rank, launch.world_size)

    def shards(self, n_shards: int) -> list[int]:
        """The shard numbers (of 0..n_shards-1) this process makes, ascending."""
        machine = [s for s in range(n_shards) if s % self.shard.count == self.shard.index]
        return machine[self.rank :: self.world]

    @property
    def shows_progress(self) -> bool:
        """Only the first process of each machine draws a progress bar."""
        return Launch.from_env().local_rank == 0

    def describe(self) -> str:
        parts = [f"shard {self.shard.index}/{self.shard.count}"] if self.shard.count > 1 else []
        if self.world > 1:
            parts.append(f"rank {self.rank}/{self.world}")
        return ", ".join(parts) or "all shards"

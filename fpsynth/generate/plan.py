"""The sampling plan: which identity and which style frame every item gets, and its seed.

Item k (0 <= k < count) has the id ``f"{k:08d}"`` and lives in shard ``k // shard_size``. The
rows are a pure function of (the seed, the identities, the style pool, the plan settings, count),
made in item order by a sequential dealer whose state is a few integers per stratum: a shard's rows
cost O(shard size) memory whatever ``count`` is (and O(k) time to reach item k, about 1 s per
million items, paid once per process because shards are made in ascending order).

Stratification. The style pool is split into strata (severity category x expression). Stratum s
gets weight w_s = severity_weight x expression_weight and an exact quota n_s of the ``count`` items
by largest remainders of count x w_s / sum(w), so the quotas sum to ``count`` exactly. Items are
dealt to strata in the order of the Sainte-Lague (Webster) divisor method: item k goes to the
stratum with the largest n_s / (2 c_s + 1), c_s its items so far, ties to the earlier stratum. The
method is house-monotone, so every prefix of the items (every shard, every partial run) is itself
within about one item per stratum of the stratified proportions, and the totals are exactly n_s.

Pairs. The r-th item of stratum s (with F_s frames and I identities, L = lcm(F_s, I)) gets frame
``fperm_s[r mod F_s]`` and identity ``iperm_s[(r + r // L) mod I]``, with seeded per-stratum
permutations: frames and identities are used evenly inside every stratum, and no (frame, identity)
pair repeats before all F_s x I pairs have been used.

Seeds. Item seed = the first 63 bits of sha256("fpsynth-generate:<run seed>:<item id>"): it depends
on the run seed and the item id only, not on the plan, the batch or the shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fpsynth.data.dataset import EmptySelectionError, read_manifest
from fpsynth.data.scores import severity_rank
from fpsynth.generate.config import PlanConfig, StyleSplit
from fpsynth.generate.identities import Identities
from fpsynth.seeds import derive, rng
from fpsynth.stage import atomic_path

PLAN_FILE = "plan.parquet"
PLAN_KEY = b"fpsynth.plan_key"

PLAN = pa.schema(
    [
        ("item_id", pa.string()),
        ("item_index", pa.int64()),
        ("shard", pa.int32()),
        ("file_name", pa.string()),
        ("identity_id", pa.string()),
        ("identity_source", pa.string()),
        ("style_frame", pa.string()),
        ("style_subject", pa.string()),
        ("style_path", pa.string()),
        ("severity", pa.string()),
        ("eface", pa.float32()),
        ("expression", pa.string()),
        ("phase", pa.string()),
        ("seed", pa.int64()),
    ]
)
_STYLE_COLUMNS = ["frame_id", "subject", "path", "severity", "eface", "expression", "phase", "split"]


def item_id(k: int) -> str:
    return f"{k:08d}"


def shard_dir_name(shard: int) -> str:
    return f"{shard:05d}"


def item_seed(run_seed: int, item: str) -> int:
    """63-bit seed of one item, from (run seed, item id) only."""
    return derive(run_seed, "generate-item", item)


@dataclasses.dataclass(frozen=True)
class StylePool:
    """The style frames a run may use: prepared palsy crops (rows of frames.parquet), sorted by frame id."""

    frames: pd.DataFrame  # _STYLE_COLUMNS
    prepare_dir: Path  # style_path values are relative to it

    @classmethod
    def from_manifest(cls, prepare_dir: Path, plan: PlanConfig) -> StylePool:
        frames = read_manifest(prepare_dir, "frames")
        chosen = frames if plan.split is StyleSplit.ALL else frames[frames["split"] == plan.split.value]
        if plan.phases:
            chosen = chosen[chosen["phase"].isin(list(plan.phases))]
        if not len(chosen):
            phases = f" and phases {list(plan.phases)}" if plan.phases else ""
            raise EmptySelectionError(
                f"no prepared frames in split '{plan.split.value}'{phases} ({len(frames)} frames in all); "
                "choose another generate.plan.split / generate.plan.phases, or prepare more subjects"
            )
        chosen = chosen[_STYLE_COLUMNS].sort_values("frame_id").reset_index(drop=True)
        return cls(chosen, Path(prepare_dir))

    def key(self) -> str:
        """Fingerprint of the pool's rows (the crops themselves are prepare's outputs)."""
        payload = self.frames.astype(str).to_csv(index=False)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Stratum:
    severity: str
    expression: str
    frames: list[int]  # rows of the pool's frames, in the seeded order they are used (fperm_s)
    identities: list[int]  # rows of the identities table, in the seeded order they are used (iperm_s)
    weight: float
    quota: int = 0

    def pair(self, r: int) -> tuple[int, int]:
        """(frame row, identity row) of the stratum's r-th item."""
        n_f, n_i = len(self.frames), len(self.identities)
        cycle = math.lcm(n_f, n_i)
        return self.frames[r % n_f], self.identities[(r + r // cycle) % n_i]


def _strata(pool: StylePool, cfg: PlanConfig, seed: int, n_identities: int) -> list[Stratum]:
    frames = pool.frames
    expressions = sorted(set(frames["expression"]))
    unknown = sorted(set(cfg.expression_weights) - set(expressions))
    if unknown:
        raise EmptySelectionError(
            f"generate.plan.expression_weights names expression(s) {unknown} that no style frame has; "
            f"the pool's expressions: {', '.join(expressions)}"
        )
    strata = []
    groups = frames.groupby(["severity", "expression"], sort=False).indices
    for i, (sev, expr) in enumerate(sorted(groups, key=lambda g: (severity_rank(g[0]), g[1]))):
        weight = cfg.severity_weights.get(sev, 1.0) * cfg.expression_weights.get(expr, 1.0)
        rows = np.sort(groups[(sev, expr)])
        frames = rows[rng(seed, "generate-frames", i).permutation(len(rows))].tolist()
        identities = rng(seed, "generate-identities", i).permutation(n_identities).tolist()
        strata.append(Stratum(sev, expr, frames, identities, weight))
    strata = [s for s in strata if s.weight > 0]
    if not strata:
        raise EmptySelectionError(
            "every (severity, expression) stratum has weight 0 in generate.plan; nothing to sample"
        )
    return strata


def allocate(weights: list[float], count: int) -> list[int]:
    """Largest-remainder quotas of ``count`` in proportion to ``weights`` (ties: earlier stratum first)."""
    total = sum(weights)
    exact = [count * w / total for w in weights]
    quotas = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: count - sum(quotas)]:
        quotas[i] += 1
    return quotas


class Dealer:
    """Sainte-Lague dealing of items to strata with exact quotas; state: items so far per stratum."""

    def __init__(self, quotas: list[int]) -> None:
        self.quotas = quotas
        self.position = 0
        self.taken = [0] * len(quotas)
        self._heap = [(-float(q), s) for s, q in enumerate(quotas) if q > 0]  # (-priority, stratum)
        heapq.heapify(self._heap)

    def deal(self) -> tuple[int, int]:
        """(stratum, rank r inside it) of the next item."""
        _, s = heapq.heappop(self._heap)
        r = self.taken[s]
        self.taken[s] += 1
        if self.taken[s] < self.quotas[s]:  # a stratum at its quota never outranks one below it
            heapq.heappush(self._heap, (-self.quotas[s] / (2 * self.taken[s] + 1), s))
        self.position += 1
        return s, r


class Plan:
    """The whole run's items, computed shard by shard."""

    def __init__(self, count: int, cfg: PlanConfig, seed: int, identities: Identities, pool: StylePool) -> None:
        self.count, self.cfg, self.seed = count, cfg, seed
        self.identities, self.pool = identities, pool
        strata = _strata(pool, cfg, seed, len(identities))
        quotas = allocate([s.weight for s in strata], count)
        self.strata = [dataclasses.replace(s, quota=q) for s, q in zip(strata, quotas)]
        self._dealer = Dealer(quotas)
        # plain lists: indexing them per item is ~100x faster than DataFrame.iloc
        self._frame_columns = {c: pool.frames[c].tolist() for c in pool.frames.columns}
        self._identity_columns = {c: identities.table[c].tolist() for c in ("identity_id", "source")}

    @property
    def shard_size(self) -> int:
        return self.cfg.shard_size

    @property
    def n_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.count, (shard + 1) * self.shard_size))

    def key(self) -> str:
        """Fingerprint of everything the plan's rows depend on."""
        payload = json.dumps(
            {
                "count": self.count,
                "seed": self.seed,
                "shard_size": self.shard_size,
                "weights": [[s.severity, s.expression, s.weight] for s in self.strata],
                "phases": list(self.cfg.phases),
                "split": self.cfg.split.value,
                "identities": self.identities.key,
                "pool": self.pool.key(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def shard_rows(self, shard: int) -> pd.DataFrame:
        """The PLAN rows of one shard, in item order (fastest when shards are asked for in ascending order)."""
        items = self.shard_range(shard)
        if self._dealer.position > items.start:
            self._dealer = Dealer(self._dealer.quotas)
        while self._dealer.position < items.start:
            self._dealer.deal()
        frames, ids = self._frame_columns, self._identity_columns
        out: dict[str, list] = {name: [] for name in PLAN.names}
        for k in items:
            s, r = self._dealer.deal()
            f, i = self.strata[s].pair(r)
            iid = item_id(k)
            values = {
                "item_id": iid,
                "item_index": k,
                "shard": shard,
                "file_name": f"shards/{shard_dir_name(shard)}/{iid}.png",
                "identity_id": ids["identity_id"][i],
                "identity_source": ids["source"][i],
                "style_frame": frames["frame_id"][f],
                "style_subject": frames["subject"][f],
                "style_path": frames["path"][f],
                "severity": frames["severity"][f],
                "eface": frames["eface"][f],
                "expression": frames["expression"][f],
                "phase": frames["phase"][f],
                "seed": item_seed(self.seed, iid),
            }
            for name, value in values.items():
                out[name].append(value)
        return pd.DataFrame(out, columns=PLAN.names)


def plan_table(rows: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(rows, schema=PLAN, preserve_index=False)


def write_plan(out_dir: Path, plan: Plan) -> Path:
    """Write ``plan.parquet`` (one row group per shard, streamed) unless it already holds this plan."""
    path = Path(out_dir) / PLAN_FILE
    key = plan.key()
    if read_plan_key(path) == key:
        return path
    schema = PLAN.with_metadata({PLAN_KEY: key.encode()})
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for shard in range(plan.n_shards):
            writer.write_table(plan_table(plan.shard_rows(shard)).replace_schema_metadata(schema.metadata))
    return path


def read_plan_key(path: Path) -> str | None:
    if not Path(path).is_file():
        return None
    return (pq.read_schema(path).metadata or {}).get(PLAN_KEY, b"").decode() or None

"""The sets a grader is trained on, and the arrays the benchmark works over.

Regimes, each tested on the same real test rows:

- ``real``: the real train split (the baseline);
- ``synthetic``: every usable generated image, no real image;
- ``real+synthetic`` at ratio r: the real train split plus round(r x its size) generated images,
  a seeded draw without replacement (all of them when the pool is smaller; the count used is
  recorded with every run).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from fpsynth.utility.config import UtilityConfig


@dataclasses.dataclass
class Samples:
    """Rows of a set with their landmarks and (when a CNN needs them) crops, aligned by row.

    ``table``: real rows carry ``subject``, ``split``, ``frame_id``; generated rows carry
    ``style_subject``, ``style_frame`` (and ``identity_source``); both carry the label columns
    ``severity``, ``eface`` and optionally ``side``.
    """

    table: pd.DataFrame
    landmarks: np.ndarray  # (N, 68, 2) float32, crop pixels
    images: np.ndarray | None = None  # (N, 112, 112, 3) uint8 RGB

    def __post_init__(self) -> None:
        self.table = self.table.reset_index(drop=True)
        self.landmarks = np.asarray(self.landmarks, np.float32).reshape(-1, 68, 2)
        if len(self.landmarks) != len(self.table) or (self.images is not None and len(self.images) != len(self.table)):
            raise ValueError(
                f"{len(self.table)} rows, {len(self.landmarks)} landmark sets, "
                f"{None if self.images is None else len(self.images)} images: they must match"
            )

    def __len__(self) -> int:
        return len(self.table)

    def take(self, rows: np.ndarray) -> Samples:
        rows = np.asarray(rows, dtype=np.int64)
        return Samples(self.table.iloc[rows], self.landmarks[rows], None if self.images is None else self.images[rows])


@dataclasses.dataclass(frozen=True)
class Regime:
    name: str  # "real", "synthetic", "real+synthetic"
    ratio: float | None  # generated images per real training image (None: not a mix)

    @property
    def label(self) -> str:
        return self.name if self.ratio is None else f"{self.name} x{self.ratio:g}"

    @property
    def uses_real(self) -> bool:
        return self.name != "synthetic"


REAL = Regime("real", None)


class Rows:
    """Chosen rows of several arrays, indexed as one (N, ...) array without copying them all.

    ``Rows((a, rows_a), (b, rows_b))[idx]`` gathers only the batch ``idx``: a regime's training
    crops (real + generated, 90,000 x 37 KB at the paper's size) are never stacked in memory.
    """

    def __init__(self, *parts: tuple[np.ndarray, np.ndarray]) -> None:
        self.parts = [(a, np.asarray(r, np.int64)) for a, r in parts]
        self.ends = np.cumsum([len(r) for _, r in self.parts])

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, np.int64)
        which = np.searchsorted(self.ends, idx, side="right")  # (B,) the part of each row
        starts = np.r_[0, self.ends[:-1]]
        first = self.parts[0][0]
        out = np.empty((len(idx), *first.shape[1:]), first.dtype)
        for k, (a, r) in enumerate(self.parts):
            hit = which == k
            if hit.any():
                out[hit] = a[r[idx[hit] - starts[k]]]
        return out


def regimes(cfg: UtilityConfig) -> list[Regime]:
    out = [REAL]
    if cfg.synthetic_only:
        out.append(Regime("synthetic", None))
    return out + [Regime("real+synthetic", float(r)) for r in cfg.ratios]


def synthetic_draw(regime: Regime, n_real: int, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows of the generated pool a regime trains on (sorted)."""
    if regime.name == "real":
        return np.zeros(0, np.int64)
    if regime.ratio is None:
        return np.sort(pool)
    n = min(len(pool), int(round(regime.ratio * n_real)))
    return np.sort(rng.choice(pool, size=n, replace=False)) if n else np.zeros(0, np.int64)

"""One streaming pass of every per-image metric over an evaluation set.

An evaluation set is a table with one row per generated image and the absolute paths of its
three images: ``image`` (generated), ``id_image`` (X_ID, the identity source) and ``style_image``
(X_Style, the palsy frame), plus ``rest_image`` (the style clip's rest frame, or None) and labels
(``severity``, ``expression``, ...). The generated dataset and aFID's first-pass images are both
such sets.

Per row it adds (only for metrics whose network is present; absent columns mean "missing"):
``<metric>_x_id`` and ``<metric>_x_style`` for every pair metric of the registry
``fpsynth.metrics.table1.PAIR_METRICS`` (Table 1's in both conventions, and any other),
``identity_score``/``identity_same`` (vs X_ID), ``expression_error`` (IOD units) and the
asymmetry indices ``asym_<index>_gen``/``_style``/``_err``. Inception features of the generated
images are accumulated for FID, and their identity embeddings kept for the privacy audit.

Images stream in batches of ``batch_size``; identity sources, style and rest frames are usually
shared by many rows, so their embeddings and landmarks are computed once per distinct file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from fpsynth.metrics.config import MetricsConfig
from fpsynth.metrics.expression import Asymmetry, asymmetry, expression_error
from fpsynth.metrics.fid import FeatureStats, extract_features
from fpsynth.metrics.identity import Embedder, identity_similarity
from fpsynth.metrics.table1 import PAIR_METRICS, REFERENCES, pair_column
from fpsynth.report.images import batched, load_images
from fpsynth.report.networks import Networks


class Timings(dict):
    """Seconds spent per named part of the work (summed over calls)."""

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start


@dataclasses.dataclass
class SetResult:
    items: pd.DataFrame  # the input rows plus one column per per-image figure
    stats: FeatureStats | None  # Inception statistics of the generated images (None: FID missing)
    embeddings: np.ndarray | None  # (N, D) identity embeddings of the generated images


@torch.inference_mode()
def evaluate_set(
    items: pd.DataFrame, nets: Networks, cfg: MetricsConfig, batch_size: int, timings: Timings
) -> SetResult:
    """Every per-image metric of ``items`` (see the module notes)."""
    items = items.reset_index(drop=True)
    n = len(items)
    out: dict[str, np.ndarray] = {}
    stats: FeatureStats | None = None
    embeddings: list[np.ndarray] = []
    gen_landmarks: list[np.ndarray] = []
    for sl in batched(n, batch_size):
        with timings("load_images"):
            gen = load_images(items["image"][sl]).to(nets.device)
            refs = {ref: load_images(items[col][sl]).to(nets.device) for ref, col in REFERENCES.items()}
        for ref, x in refs.items():
            for metric, values in _pair_values(gen, x, nets, cfg, timings).items():
                _put(out, pair_column(metric, ref), sl, n, values)
        if nets.available("fid"):
            with timings("fid_features"):
                stats = extract_features(nets.net("fid"), gen.split(cfg.fid.batch_size), stats)
        if nets.available("identity"):
            with timings("identity"):
                embeddings.append(nets.net("identity").embed(gen))
        if nets.available("landmarks"):
            with timings("landmarks"):
                gen_landmarks.append(nets.net("landmarks")(gen))
    table = items.assign(**out)
    emb = np.concatenate(embeddings) if embeddings else None
    if emb is not None:
        with timings("identity"):
            table = _identity(table, emb, nets, batch_size)
    if gen_landmarks:
        with timings("landmarks"):
            table = _expression(table, np.concatenate(gen_landmarks), nets, batch_size)
    return SetResult(table, stats, emb)


def _pair_values(
    gen: torch.Tensor, x: torch.Tensor, nets: Networks, cfg: MetricsConfig, timings: Timings
) -> dict[str, torch.Tensor]:
    """Every registered pair metric (``PAIR_METRICS``) whose network is present: name -> (B,).

    gen, x: (B, 3, H, W) in [-1, 1].
    """
    values = {}
    for metric in PAIR_METRICS.values():
        if metric.network is not None and not nets.available(metric.network):
            continue
        net = nets.net(metric.network) if metric.network is not None else None
        with timings(metric.timing):
            values[metric.name] = metric.compute(gen, x, net, cfg)
    return values


def _put(out: dict[str, np.ndarray], name: str, sl: slice, n: int, values: torch.Tensor) -> None:
    column = out.setdefault(name, np.full(n, np.nan))
    column[sl] = values.detach().double().cpu().numpy()


def per_file(paths: Sequence[str], fn, batch_size: int) -> dict[str, np.ndarray]:
    """``fn`` (images (B, 3, H, W) -> (B, ...) array) once per distinct path; path -> result row."""
    unique = sorted({p for p in paths if isinstance(p, str)})
    results: dict[str, np.ndarray] = {}
    for sl in batched(len(unique), batch_size):
        chunk = unique[sl]
        values = fn(load_images(chunk))
        results.update(zip(chunk, values))
    return results


def _identity(table: pd.DataFrame, emb_gen: np.ndarray, nets: Networks, batch_size: int) -> pd.DataFrame:
    embedder: Embedder = nets.net("identity")
    sources = per_file(table["id_image"].tolist(), embedder.embed, batch_size)
    emb_src = np.stack([sources[p] for p in table["id_image"]])
    result = identity_similarity(embedder, emb_gen, emb_src)
    return table.assign(identity_score=result.scores.astype(np.float64), identity_same=result.same)


def _expression(table: pd.DataFrame, lm_gen: np.ndarray, nets: Networks, batch_size: int) -> pd.DataFrame:
    """Expression-transfer error (rows with a rest frame) and asymmetry of generated vs style."""
    paths = table["id_image"].tolist() + table["style_image"].tolist() + table["rest_image"].tolist()
    lms = per_file(paths, nets.net("landmarks"), batch_size)
    lm_id = np.stack([lms[p] for p in table["id_image"]])
    lm_style = np.stack([lms[p] for p in table["style_image"]])
    has_rest = table["rest_image"].map(lambda p: isinstance(p, str)).to_numpy()
    error = np.full(len(table), np.nan)
    if has_rest.any():
        lm_rest = np.stack([lms[p] for p in table.loc[has_rest, "rest_image"]])
        error[has_rest] = expression_error(lm_gen[has_rest], lm_id[has_rest], lm_style[has_rest], lm_rest)
    gen, style = asymmetry(lm_gen), asymmetry(lm_style)
    columns = {"expression_error": error}
    for name in Asymmetry.NAMES:
        g, s = getattr(gen, name), getattr(style, name)
        columns.update({f"asym_{name}_gen": g, f"asym_{name}_style": s, f"asym_{name}_err": np.abs(g - s)})
    return table.assign(**columns)

"""Per-image figures -> the summaries of report.json: distributions, Table 1, breakdowns.

Every summary carries its n (finite values only; NaN rows are counted apart), so each figure on
the page can say what it was computed on. The figures are the types of ``fpsynth.report.figures``
(a set's: :class:`~fpsynth.report.figures.SetSummary`), plain dicts only in report.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fpsynth.metrics.config import Table1Convention
from fpsynth.metrics.expression import Asymmetry
from fpsynth.metrics.fid import FIDResult
from fpsynth.metrics.table1 import PAIR_METRICS, REFERENCES, table1_metrics
from fpsynth.nets.loading import MissingNetwork
from fpsynth.report.figures import (
    ExpressionSummary,
    FIDSummary,
    IdentitySummary,
    NotComputed,
    PairSummary,
    Row,
    SetSummary,
)
from fpsynth.report.networks import Networks
from fpsynth.report.sources import severity_sort_key

EXPRESSION_UNIT = "inter-ocular distances (IOD)"
ASYMMETRY_UNIT = "IOD (mouth, brow); eye-aspect-ratio difference (eye)"


def set_summary(
    items: pd.DataFrame,
    nets: Networks,
    fid_result: FIDResult | None,
    reference: str,
    convention: Table1Convention,
    privacy: dict[str, Any] | None = None,
) -> SetSummary:
    """Every figure of one evaluated set from its per-image table (``evaluate_set``'s items)."""
    shown = list(table1_metrics(convention).values())
    return SetSummary(
        n=int(len(items)),
        fid=fid_summary(fid_result, nets, reference),
        pairwise=pair_metrics(items, nets),
        identity=identity_summary(items, nets),
        expression=expression_summary(items, nets),
        by_severity=breakdown(items, "severity", shown),
        by_expression=breakdown(items, "expression", shown),
        privacy=privacy,
    )


def describe(values: Any) -> dict[str, Any]:
    """n, mean, std, median, 5th/95th percentile of the finite values (n_nan: the rest)."""
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    if not len(finite):
        return {"n": 0, "n_nan": int(len(x)), "mean": None, "std": None, "median": None, "p05": None, "p95": None}
    return {
        "n": int(len(finite)),
        "n_nan": int(len(x) - len(finite)),
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
        "median": float(np.median(finite)),
        "p05": float(np.percentile(finite, 5)),
        "p95": float(np.percentile(finite, 95)),
    }


def pair_metrics(items: pd.DataFrame, nets: Networks) -> dict[str, PairSummary | MissingNetwork]:
    """Every registered pair metric (Table 1's in both conventions): its summary, or its missing network."""
    out: dict[str, PairSummary | MissingNetwork] = {}
    for name, metric in PAIR_METRICS.items():
        network = nets.get(metric.network) if metric.network is not None else None
        if isinstance(network, MissingNetwork):
            out[name] = network
            continue
        out[name] = PairSummary(
            {ref: describe(items[column]) for ref, column in zip(REFERENCES, metric.columns)},
            metric.unit,
            metric.definition,
        )
    return out


def identity_summary(items: pd.DataFrame, nets: Networks) -> IdentitySummary | MissingNetwork:
    if isinstance(nets.identity, MissingNetwork):
        return nets.identity
    verifier = nets.identity.net.verifier
    same = items["identity_same"].to_numpy(bool)
    return IdentitySummary(
        embedder=nets.identity.net.name,
        score=verifier.kind.value,
        threshold=verifier.threshold,
        rule="same person when distance < threshold"
        if verifier.kind.value == "euclidean"
        else "same person when cosine similarity >= threshold",
        distribution=describe(items["identity_score"]),
        verification_rate=float(same.mean()) if len(same) else None,
        n=int(len(same)),
    )


def expression_summary(items: pd.DataFrame, nets: Networks) -> ExpressionSummary | MissingNetwork:
    if isinstance(nets.landmarks, MissingNetwork):
        return nets.landmarks
    rows: list[Row] = []
    for severity, group in _groups(items, "severity"):
        row: Row = {"severity": severity, "n": int(len(group))}
        for name in Asymmetry.NAMES:
            # Magnitudes: the affected side differs between patients, so signed means would cancel.
            row[f"{name}_style"] = _mean(np.abs(group[f"asym_{name}_style"]))
            row[f"{name}_gen"] = _mean(np.abs(group[f"asym_{name}_gen"]))
            row[f"{name}_err"] = _mean(group[f"asym_{name}_err"])
        rows.append(row)
    correlation = {name: _corr(items[f"asym_{name}_gen"], items[f"asym_{name}_style"]) for name in Asymmetry.NAMES}
    return ExpressionSummary(
        expression_error=describe(items["expression_error"]),
        without_rest_frame=int(items["rest_image"].isna().sum()),
        unit=EXPRESSION_UNIT,
        asymmetry_unit=ASYMMETRY_UNIT,
        asymmetry_by_severity=rows,
        asymmetry_correlation=correlation,
    )


def breakdown(items: pd.DataFrame, by: str, pair: Sequence[str] | None = None) -> list[Row]:
    """Mean of every per-image figure per value of ``by`` (severity in clinical order, or expression);
    of the pair metrics only those named in ``pair`` (default: all)."""
    columns = [c for c in metric_columns(items, pair) if not c.startswith("asym_")]
    rows = []
    for value, group in _groups(items, by):
        row: Row = {by: value, "n": int(len(group))}
        for c in columns:
            row[c] = _mean(group[c].astype(np.float64))
        rows.append(row)
    return rows


def metric_columns(items: pd.DataFrame, pair: Sequence[str] | None = None) -> list[str]:
    pair_columns = {c for m in (PAIR_METRICS if pair is None else pair) for c in PAIR_METRICS[m].columns}
    prefixes = ("identity_", "expression_error", "asym_", "privacy_score", "privacy_flagged")
    return [c for c in items.columns if c in pair_columns or c.startswith(prefixes)]


def fid_summary(result: FIDResult | None, nets: Networks, reference: str) -> FIDSummary | NotComputed | MissingNetwork:
    if isinstance(nets.fid, MissingNetwork):
        return nets.fid
    if result is None:
        return NotComputed("fewer than 2 images on a side")
    return FIDSummary(result, reference)


def table1_row(
    set_name: str,
    evaluation: dict[str, Any],
    afid: dict[str, Any] | None,
    convention: Table1Convention = Table1Convention.AUTHORS,
) -> dict[str, Any]:
    """One row of the paper's Table 1: aFID, then PSNR/SSIM/LPIPS/PL against X_ID and X_Style (means),
    each column filled by the pair metric of ``convention`` (``fpsynth.metrics.table1``)."""
    row: dict[str, Any] = {
        "set": set_name,
        "n": evaluation["n"],
        "convention": Table1Convention(convention).value,
        "afid": None,
    }
    if afid is not None and afid.get("status") == "ok":
        row["afid"] = afid["pooled"]["value"]
    for column, metric in table1_metrics(convention).items():
        block = evaluation["pairwise"][metric]
        row[column] = {ref: block[ref]["mean"] for ref in REFERENCES} if "x_id" in block else None
    return row


def _groups(items: pd.DataFrame, by: str):
    values = items[by].fillna("unknown").astype(str)
    order = sorted(values.unique(), key=lambda v: (severity_sort_key(pd.Series([v]))[0], v) if by == "severity" else v)
    for value in order:
        yield value, items[values == value]


def _mean(values: Any) -> float | None:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _corr(a: Any, b: Any) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])

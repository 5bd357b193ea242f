"""Metrics of a grader on the test rows, with bootstrap confidence intervals over TEST SUBJECTS.

Plain numpy (the bootstrap calls them thousands of times; scikit-learn's checks cost more than the
arithmetic). A metric that is undefined on the rows at hand (AUROC with one class, sensitivity
without positives) is NaN, never a made-up number.

- binary (palsy vs normal, side): macro-F1, balanced accuracy, AUROC, sensitivity, specificity,
  from P(1) with the threshold 0.5;
- ordinal (severity, categories 0..5): quadratic-weighted kappa and MAE in categories of the
  rounded prediction, macro-F1 and balanced accuracy over the categories present;
- regression (eFACE): MAE.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fpsynth.data.scores import GRADED
from fpsynth.utility.tasks import Kind

METRICS = {
    Kind.BINARY: ("macro_f1", "balanced_accuracy", "auroc", "sensitivity", "specificity"),
    Kind.ORDINAL: ("qwk", "mae_categories", "macro_f1", "balanced_accuracy"),
    Kind.REGRESSION: ("mae",),
}
HIGHER_IS_BETTER = {
    "macro_f1": True,
    "balanced_accuracy": True,
    "auroc": True,
    "sensitivity": True,
    "specificity": True,
    "qwk": True,
    "mae_categories": False,
    "mae": False,
}
_K = len(GRADED)


def _class_scores(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    """(macro-F1, balanced accuracy) over the classes present in ``y``."""
    f1s, recalls = [], []
    for c in classes:
        tp = np.sum((pred == c) & (y == c))
        fn = np.sum((pred != c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        recalls.append(tp / (tp + fn))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)), float(np.mean(recalls))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties halved); NaN with a single class."""
    pos, neg = score[y == 1], score[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    ranks[order] = _average_ranks(allv)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _average_ranks(sorted_values: np.ndarray) -> np.ndarray:
    """1-based ranks of already sorted values, ties sharing their mean rank."""
    n = len(sorted_values)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    _, start, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for s, c in zip(start, counts):
        if c > 1:
            ranks[s : s + c] = s + (c + 1) / 2
    return ranks


def qwk(y: np.ndarray, pred: np.ndarray, k: int = _K) -> float:
    """Quadratic-weighted Cohen's kappa of integer labels 0..k-1 (NaN when undefined)."""
    conf = np.zeros((k, k))
    np.add.at(conf, (y.astype(int), pred.astype(int)), 1)
    n = conf.sum()
    w = (np.subtract.outer(np.arange(k), np.arange(k)) ** 2) / (k - 1) ** 2
    expected = np.outer(conf.sum(1), conf.sum(0)) / n
    denom = (w * expected).sum()
    return float(1 - (w * conf).sum() / denom) if denom > 0 else float("nan")


def task_metrics(kind: Kind, y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Every metric of ``kind`` on labels ``y`` (N,) and grader outputs ``score`` (N,)."""
    y, score = np.asarray(y, np.float64), np.asarray(score, np.float64)
    if kind is Kind.REGRESSION:
        return {"mae": float(np.mean(np.abs(score - y)))}
    if kind is Kind.BINARY:
        pred = (score >= 0.5).astype(np.float64)
        f1, bacc = _class_scores(y, pred, np.unique(y))
        pos, neg = y == 1, y == 0
        return {
            "macro_f1": f1,
            "balanced_accuracy": bacc,
            "auroc": auroc(y, score),
            "sensitivity": float(pred[pos].mean()) if pos.any() else float("nan"),
            "specificity": float(1 - pred[neg].mean()) if neg.any() else float("nan"),
        }
    pred = np.clip(np.rint(score), 0, _K - 1)
    f1, bacc = _class_scores(y, pred, np.unique(y))
    return {
        "qwk": qwk(y, pred),
        "mae_categories": float(np.mean(np.abs(pred - y))),
        "macro_f1": f1,
        "balanced_accuracy": bacc,
    }


def subject_bootstrap(
    subjects: np.ndarray, fn: Callable[[np.ndarray], dict[str, float]], n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``n`` values of each metric of ``fn(rows)`` over resamples of the SUBJECTS (with replacement):
    each resample draws as many subjects as there are, and takes all rows of every subject drawn."""
    uniq, inverse = np.unique(subjects, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == i) for i in range(len(uniq))]
    out: dict[str, list[float]] = {}
    for _ in range(n):
        pick = rng.integers(0, len(uniq), len(uniq))
        rows = np.concatenate([rows_of[i] for i in pick])
        for k, v in fn(rows).items():
            out.setdefault(k, []).append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Percentile interval of the finite bootstrap values (None, None when there are fewer than 2)."""
    v = values[np.isfinite(values)]
    if len(v) < 2:
        return None, None
    a = (1 - confidence) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))

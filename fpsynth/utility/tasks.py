"""The grading tasks and their labels, from a table with ``severity``, ``eface`` and ``side`` columns.

Each task runs only where its labels exist: rows without the label are left out of that task,
and a task whose training or test rows do not hold two classes (or any value) is skipped with the
reason. ``side`` is the affected side, taken from a ``side`` column where one says ``left`` or
``right``, on palsy rows only.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
import pandas as pd

from fpsynth.data.scores import GRADED


class Kind(str, enum.Enum):
    BINARY = "binary"  # label 0/1, the grader returns P(1)
    ORDINAL = "ordinal"  # label 0..5, the grader returns a real number (rounded for the category)
    REGRESSION = "regression"  # real label, real prediction


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    kind: Kind
    what: str
    metric: str  # the headline metric (plotted against the synthetic ratio)


TASKS = {
    "palsy": Task(
        "palsy", Kind.BINARY, "palsy (any category above normal) vs normal, from severity", "balanced_accuracy"
    ),
    "severity": Task("severity", Kind.ORDINAL, "severity category " + " < ".join(GRADED), "qwk"),
    "eface": Task("eface", Kind.REGRESSION, "eFACE score (0-100) where known", "mae"),
    "side": Task(
        "side", Kind.BINARY, "affected side (1 = left) of palsy rows where the side is known", "balanced_accuracy"
    ),
}


def labels(table: pd.DataFrame, task: Task) -> np.ndarray:
    """(N,) float labels of ``table``'s rows for ``task``; NaN where the row has none."""
    sev = (
        table["severity"].astype("string").fillna("unknown").to_numpy()
        if "severity" in table
        else np.full(len(table), "unknown")
    )
    rank = np.array([GRADED.index(s) if s in GRADED else -1 for s in sev], np.float64)  # ordinal 0..5
    rank[rank < 0] = np.nan
    if task.name == "palsy":
        return np.where(np.isnan(rank), np.nan, (rank > 0).astype(np.float64))
    if task.name == "severity":
        return rank
    if task.name == "eface":
        return (
            pd.to_numeric(table["eface"], errors="coerce").to_numpy(np.float64)
            if "eface" in table
            else np.full(len(table), np.nan)
        )
    side = (
        table["side"].astype("string").fillna("").str.lower().to_numpy() if "side" in table else np.full(len(table), "")
    )
    out = np.where(side == "left", 1.0, np.where(side == "right", 0.0, np.nan))
    return np.where(rank > 0, out, np.nan)  # a normal face has no affected side


def unusable(task: Task, y_train: np.ndarray, y_test: np.ndarray) -> str | None:
    """Why ``task`` cannot be evaluated on these labels (None when it can)."""
    train, test = y_train[np.isfinite(y_train)], y_test[np.isfinite(y_test)]
    if not len(test):
        return "no test row has this label"
    if not len(train):
        return "no real training row has this label"
    if task.kind is not Kind.REGRESSION and len(np.unique(train)) < 2:
        return "the real training rows hold a single class"
    return None

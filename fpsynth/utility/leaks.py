"""The leak rules of the utility benchmark, enforced here and nowhere else.

1. Test rows are REAL frames of the test split only; no generated image is ever tested on.
2. A subject of the test split never contributes a training row: the real training rows are the
   train split minus any test subject (checked, :class:`LeakError` if the two overlap).
3. A generated image is left out of every training regime when its style source is a test
   subject or a test frame (its palsy expression was copied from a test patient), or when its
   identity source names a test subject (a test patient's face as identity: a file stem or folder
   equal to the pseudonym, as ``fpsynth demo --videos`` writes them).
4. Confidence intervals resample test SUBJECTS, never images (:mod:`fpsynth.utility.metrics`).

Every regime's training set is checked against rule 2 and 3 before a grader sees it.
"""

from __future__ import annotations

from pathlib import PurePath

import numpy as np
import pandas as pd

from fpsynth.errors import FpsynthError

RULES = (
    "test rows are real frames of the test split; generated images are never tested on",
    "no training row (real or generated) comes from a test subject",
    "generated images whose style source is a test subject or a test frame are excluded from training",
    "generated images whose identity source names a test subject are excluded from training",
    "confidence intervals resample test subjects, not images",
)


class LeakError(FpsynthError, AssertionError):
    """A training set holds data of a test subject (a bug, or a hand-made table that mixes them)."""


def _identity_names(source: object) -> set[str]:
    if source is None or (isinstance(source, float) and np.isnan(source)):
        return set()
    p = PurePath(str(source))
    return {p.stem, *p.parts}


def synthetic_exclusions(synthetic: pd.DataFrame, test_subjects: set[str], test_frames: set[str]) -> pd.Series:
    """Per generated row, the reason it is excluded from training ("" when it may be used)."""
    reasons = pd.Series([""] * len(synthetic), index=synthetic.index, dtype=object)
    if "identity_source" in synthetic:
        hit = synthetic["identity_source"].map(lambda s: bool(_identity_names(s) & test_subjects))
        reasons[hit.to_numpy()] = "identity source is a test subject"
    if "style_frame" in synthetic:
        reasons[synthetic["style_frame"].isin(test_frames).to_numpy()] = "style source is a test frame"
    reasons[synthetic["style_subject"].isin(test_subjects).to_numpy()] = "style source is a test subject"
    return reasons


def check_training_set(real_subjects: np.ndarray, synthetic: pd.DataFrame, test_subjects: set[str]) -> None:
    """Raise :class:`LeakError` when a training set touches a test subject (rules 2 and 3)."""
    bad = sorted(set(map(str, real_subjects)) & test_subjects)
    if bad:
        raise LeakError(f"real training rows of test subject(s) {bad[:3]}: the train and test splits overlap")
    if len(synthetic):
        left = synthetic_exclusions(synthetic, test_subjects, set())
        if (left != "").any():
            raise LeakError(
                f"{int((left != '').sum())} generated training image(s) come from a test subject "
                f"({left[left != ''].iloc[0]})"
            )

"""Clinical-style grades of a synthetic palsy severity (labels for rendered data, not measurements).

Severity s in [0, 1] (0 none, 1 complete) maps linearly to an eFACE-like total,
eFACE = round(98 - 56 s), so that the paper's categories fall at these severities:

    normal 96-100        s < 0.045
    near-normal 91-95    0.045 <= s < 0.134
    mild 80-90           0.134 <= s < 0.33
    moderate 70-79       0.33 <= s < 0.51
    severe 60-69         0.51 <= s < 0.69
    complete < 60        s >= 0.69

House-Brackmann (I-VI, stored as 1-6) and the Sunnybrook composite (0-100, higher is better) are
derived from the same s with plausible thresholds, so the three scores agree on the ordering.
"""

from __future__ import annotations

import dataclasses

from fpsynth.data.scores import severity_from_eface

# Upper severity bound of House-Brackmann grades I..V; anything above is VI (total paralysis).
_HB_BOUNDS = (0.05, 0.25, 0.45, 0.65, 0.9)


@dataclasses.dataclass(frozen=True)
class Grades:
    eface: int
    category: str
    house_brackmann: int  # 1 (I, normal) .. 6 (VI, total paralysis)
    sunnybrook: int  # composite 0..100


def eface_category(eface: float) -> str:
    """The paper's category of an eFACE total (the bands of :mod:`fpsynth.data.scores`)."""
    return severity_from_eface(eface).value


def grade(severity: float) -> Grades:
    """The three grades of a palsy of ``severity`` (0 none .. 1 complete)."""
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    eface = int(round(98 - 56 * severity))
    hb = 1 + sum(severity >= b for b in _HB_BOUNDS)
    return Grades(eface, eface_category(eface), hb, int(round(100 - 90 * severity)))

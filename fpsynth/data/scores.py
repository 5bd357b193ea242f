"""The clinical scores table (CSV) and the paper's severity categories.

Columns are matched case-insensitively, ignoring spaces, dashes and underscores: a subject column
(``subject``, ``subject_id``, ``id``, ``patient``...), ``eFACE`` (anything starting with "eface"),
and optionally ``House-Brackmann`` (grade 1-6 or I-VI), ``Sunnybrook`` (0-100) and ``dataset``
(to tell apart equal subject ids of different sources). A header row is required. A row that is
missing or malformed becomes a problem (a rejects row), never an exception; a subject without a
usable eFACE gets severity "unknown".
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import math
import re
from pathlib import Path

from fpsynth.errors import FpsynthError


class ScoresError(FpsynthError, ValueError):
    """The scores file as a whole cannot be used (missing, unreadable, no header)."""


class Severity(str, enum.Enum):
    NORMAL = "normal"  # eFACE 96-100
    NEAR_NORMAL = "near-normal"  # 91-95
    MILD = "mild"  # 80-90
    MODERATE = "moderate"  # 70-79
    SEVERE = "severe"  # 60-69
    COMPLETE = "complete"  # below 60 (complete flaccid or non-flaccid palsy)
    UNKNOWN = "unknown"  # no usable eFACE


# Lower bounds; integer scores fall in the paper's bands, fractional ones (95.5) in the band
# whose lower bound they reach.
_BANDS = ((96.0, Severity.NORMAL), (91.0, Severity.NEAR_NORMAL), (80.0, Severity.MILD),
          (70.0, Severity.MODERATE), (60.0, Severity.SEVERE))


def severity_from_eface(eface: float | None) -> Severity:
    if eface is None or not math.isfinite(eface):
        return Severity.UNKNOWN
    for lower, severity in _BANDS:
        if eface >= lower:
            return severity
    return Severity.COMPLETE


@dataclasses.dataclass(frozen=True)
class Score:
    eface: float | None = None
    house_brackmann: int | None = None
    sunnybrook: float | None = None

    @property
    def severity(self) -> Severity:
        return severity_from_eface(self.eface)


@dataclasses.dataclass(frozen=True)
class Problem:
    line: int  # 1-based line of the CSV
    subject: str | None  # original id when the row names one (private: mapped before writing)
    dataset: str | None
    detail: str


@dataclasses.dataclass
class ScoreTable:
    scores: dict[tuple[str | None, str], Score]  # (dataset or None, original subject id) -> score
    problems: list[Problem]

    def lookup(self, dataset: str, subject: str) -> Score | None:
        return self.scores.get((dataset, subject)) or self.scores.get((None, subject))


_ALIASES = {
    "subject": ("subject", "subjectid", "subj", "id", "patient", "patientid", "participant", "participantid"),
    "house_brackmann": ("housebrackmann", "housebrackmanngrade", "hb", "hbgrade"),
    "sunnybrook": ("sunnybrook", "sunnybrookscore", "sunnybrookcomposite", "sb", "sbscore"),
    "dataset": ("dataset", "source"),
}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _column_map(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        key = _norm(name)
        if key.startswith("eface"):
            found.setdefault("eface", i)
        for field, aliases in _ALIASES.items():
            if key in aliases:
                found.setdefault(field, i)
    return found


def read_scores(path: Path) -> ScoreTable:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScoresError(f"scores CSV {path} does not exist (check --scores)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoresError(f"scores CSV {path} cannot be read as UTF-8 text: {exc}") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(text.splitlines(), dialect))
    first = next((i for i, r in enumerate(rows) if any(c.strip() for c in r)), None)
    if first is None:
        raise ScoresError(f"scores CSV {path} is empty; it needs a header row with subject and eFACE columns")
    cols = _column_map(rows[first])
    if "subject" not in cols or "eface" not in cols:
        raise ScoresError(
            f"scores CSV {path}: the first row must be a header naming a subject column and an eFACE "
            f"column (found: {', '.join(c.strip() for c in rows[first])})"
        )
    table = ScoreTable({}, [])
    for i, row in enumerate(rows[first + 1 :], start=first + 2):
        if any(c.strip() for c in row):
            _read_row(row, i, cols, table)
    return table


def _cell(row: list[str], cols: dict[str, int], field: str) -> str:
    i = cols.get(field)
    return row[i].strip() if i is not None and i < len(row) else ""


def _read_row(row: list[str], line: int, cols: dict[str, int], table: ScoreTable) -> None:
    subject, dataset = _cell(row, cols, "subject"), _cell(row, cols, "dataset") or None
    problems: list[str] = []
    if not subject:
        table.problems.append(Problem(line, None, dataset, "row without a subject id"))
        return
    eface = _number(_cell(row, cols, "eface"), "eFACE", 0, 100, problems, required=True)
    hb = _grade(_cell(row, cols, "house_brackmann"), problems)
    sunnybrook = _number(_cell(row, cols, "sunnybrook"), "Sunnybrook", 0, 100, problems)
    for detail in problems:
        table.problems.append(Problem(line, subject, dataset, detail))
    score, key = Score(eface, hb, sunnybrook), (dataset, subject)
    if key in table.scores and table.scores[key] != score:
        table.problems.append(Problem(line, subject, dataset, "subject listed again with other scores; the first row is used"))
        return
    table.scores[key] = score


def _number(text: str, name: str, lo: float, hi: float, problems: list[str], required: bool = False) -> float | None:
    if not text:
        if required:
            problems.append(f"{name} missing: severity 'unknown'")
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        problems.append(f"{name} {text!r} is not a number")
        return None
    if not (math.isfinite(value) and lo <= value <= hi):
        problems.append(f"{name} {text!r} outside {lo:g}-{hi:g}")
        return None
    return value


def _grade(text: str, problems: list[str]) -> int | None:
    if not text:
        return None
    key = re.sub(r"^(grade|hb)\s*", "", text.strip().lower())
    value = _ROMAN.get(key)
    if value is None and key.isdigit():
        value = int(key)
    if value is None or not 1 <= value <= 6:
        problems.append(f"House-Brackmann {text!r} is not a grade 1-6 (or I-VI)")
        return None
    return value

"""The clinical scores table (CSV, or a spreadsheet: :mod:`fpsynth.data.grades`) and the paper's
severity categories: their one definition (:class:`Severity`, its order, the eFACE bands), which
prepare, generate's plan and card, the report, the utility tasks and the demo all read.

Columns are matched case-insensitively, ignoring spaces, dashes and underscores: a subject column
(``subject``, ``subject_id``, ``id``, ``patient``, ``participant``...), ``eFACE`` (a name holding
"eface"; of several, the total/composite one), and optionally ``House-Brackmann`` (grade 1-6 or
I-VI), ``Sunnybrook`` (0-100; of several, the composite) and ``dataset`` (to tell apart equal
subject ids of different sources). A header row is required. A row that is missing or malformed
becomes a problem (a rejects row), never an exception; a subject without a usable eFACE gets
severity "unknown". Subjects are looked up as written, then with case, spaces and punctuation
ignored (``Mild Flaccid 4`` finds ``mildflaccid4``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Sequence

from fpsynth.errors import FpsynthError


class ScoresError(FpsynthError, ValueError):
    """The scores file as a whole cannot be used (missing, unreadable, no header)."""


class Severity(str, enum.Enum):
    """The paper's eFACE categories, in clinical order (mildest first), then "unknown"."""

    NORMAL = "normal"  # eFACE 96-100
    NEAR_NORMAL = "near-normal"  # 91-95
    MILD = "mild"  # 80-90
    MODERATE = "moderate"  # 70-79
    SEVERE = "severe"  # 60-69
    COMPLETE = "complete"  # below 60 (complete flaccid or non-flaccid palsy)
    UNKNOWN = "unknown"  # no usable eFACE


# (category, lowest eFACE in it), mildest first; below the last bound: complete. Integer scores
# fall in the paper's bands, fractional ones (95.5) in the band whose lower bound they reach.
EFACE_BANDS: tuple[tuple[Severity, float], ...] = (
    (Severity.NORMAL, 96.0),
    (Severity.NEAR_NORMAL, 91.0),
    (Severity.MILD, 80.0),
    (Severity.MODERATE, 70.0),
    (Severity.SEVERE, 60.0),
)
SEVERITY_ORDER = tuple(s.value for s in Severity)  # normal ... complete, unknown: how tables sort
GRADED = tuple(s.value for s in Severity if s is not Severity.UNKNOWN)  # normal ... complete: the ordinal scale 0..5


def severity_from_eface(eface: float | None) -> Severity:
    if eface is None or not math.isfinite(eface):
        return Severity.UNKNOWN
    for severity, lower in EFACE_BANDS:
        if eface >= lower:
            return severity
    return Severity.COMPLETE


def severity_rank(value: str) -> int:
    """Position of a severity value in :data:`SEVERITY_ORDER`; any other text sorts after all of them."""
    return SEVERITY_ORDER.index(value) if value in SEVERITY_ORDER else len(SEVERITY_ORDER)


def eface_bands_text(below: str = "< ") -> str:
    """The bands as prose, "normal 96-100, near-normal 91-95, ..., complete < 60" (``below`` goes
    before the last bound: "&lt;" in HTML)."""
    uppers = [100] + [int(lower) - 1 for _, lower in EFACE_BANDS[:-1]]
    bands = [f"{s.value} {int(lower)}-{upper}" for (s, lower), upper in zip(EFACE_BANDS, uppers)]
    return ", ".join([*bands, f"{Severity.COMPLETE.value} {below}{int(EFACE_BANDS[-1][1])}"])


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
    line: int  # 1-based line of the CSV (row of the spreadsheet)
    subject: str | None  # original id when the row names one (private: mapped before writing)
    dataset: str | None
    detail: str
    source: str = "scores"  # which table: "scores" (--scores) or "grades" (the standard set's XLSX)
    unit: str = "line"  # "line" (CSV) or "row" (spreadsheet)

    @property
    def input(self) -> str:
        """The rejects row's ``input``: ``scores:line 8``, ``grades:row 12``."""
        return f"{self.source}:{self.unit} {self.line}"


@dataclasses.dataclass
class ScoreTable:
    scores: dict[tuple[str | None, str], Score]  # (dataset or None, original subject id) -> score
    problems: list[Problem]
    lines: dict[tuple[str | None, str], int] = dataclasses.field(default_factory=dict)  # key -> its line/row
    source: str = "scores"
    unit: str = "line"

    def lookup(self, dataset: str, subject: str) -> Score | None:
        hit = self.scores.get((dataset, subject)) or self.scores.get((None, subject))
        if hit is None:
            key = self.find(dataset, subject)
            hit = self.scores[key] if key is not None else None
        return hit

    def find(self, dataset: str | None, subject: str) -> tuple[str | None, str] | None:
        """The table's key for ``subject``, matched with case, spaces and punctuation ignored."""
        want = norm(subject)
        for key in self.scores:
            if norm(key[1]) == want and (key[0] is None or dataset is None or key[0] == dataset):
                return key
        return None


_ALIASES = {
    "subject": (
        "subject",
        "subjectid",
        "subj",
        "id",
        "patient",
        "patientid",
        "participant",
        "participantid",
        "participantkey",
        "patientkey",
        "key",
        "name",
        "filename",
        "video",
        "case",
        "caseid",
    ),
    "dataset": ("dataset", "source"),
}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}


def norm(name: str) -> str:
    """Lower-case letters and digits only: how column names and subject ids are compared."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _pick(field: str, cols: list[int], names: list[str]) -> int | None:
    """Of several columns naming ``field``, the summary one (total, composite), else the only one."""
    for test in (
        lambda n: any(w in n for w in ("total", "composite", "overall")),
        lambda n: n in (field, field + "score"),
    ):
        hits = [i for i, n in zip(cols, names) if test(n)]
        if hits:
            return hits[0]
    return cols[0] if len(cols) == 1 else None


def column_map(header: list[str]) -> dict[str, int]:
    """Field -> column index for the columns a header names (absent fields are left out).

    eFACE and Sunnybrook tables often carry sub-scores (static, dynamic, synkinesis; resting,
    voluntary) beside the summary: the column named total/composite wins, else the only one;
    ``<field>_choices`` lists the candidates when none can be chosen.
    """
    found: dict[str, int] = {}
    multi: dict[str, list[int]] = {"eface": [], "sunnybrook": [], "house_brackmann": []}
    for i, name in enumerate(header):
        key = norm(name)
        if "eface" in key:
            multi["eface"].append(i)
        if "sunnybrook" in key or key in ("sb", "sbscore"):
            multi["sunnybrook"].append(i)
        if "housebrackmann" in key or key in ("hb", "hbgrade"):
            multi["house_brackmann"].append(i)
        for field in ("subject", "dataset"):
            if key in _ALIASES[field]:
                found.setdefault(field, i)
    for field, cols in multi.items():
        best = _pick(field.replace("_", ""), cols, [norm(header[i]) for i in cols]) if cols else None
        if best is not None:
            found[field] = best
        elif cols:
            found[f"{field}_choices"] = -1
    return found


def header_text(header: Sequence[object]) -> str:
    """The non-empty cells of a header row, quoted, for error messages."""
    return ", ".join(repr(str(c).strip()) for c in header if c is not None and str(c).strip()) or "(none)"


def check_columns(cols: dict[str, int], header: Sequence[object], what: str) -> None:
    """:class:`ScoresError` naming the columns found when the subject or eFACE column is missing."""
    if "eface_choices" in cols:
        raise ScoresError(
            f"{what}: several eFACE columns and none is the total or composite; rename the "
            f"one to use 'eFACE total' (columns found: {header_text(header)})"
        )
    missing = [name for field, name in (("subject", "subject/participant"), ("eface", "eFACE")) if field not in cols]
    if missing:
        raise ScoresError(
            f"{what}: no {' and no '.join(missing)} column in the header (columns found: {header_text(header)})"
        )


def table_from_rows(
    rows: list[list[str]], first_line: int, cols: dict[str, int], source: str = "scores", unit: str = "line"
) -> ScoreTable:
    """A :class:`ScoreTable` from the text cells of the rows under a header (blank rows skipped)."""
    table = ScoreTable({}, [], source=source, unit=unit)
    for i, row in enumerate(rows, start=first_line):
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
        table.problems.append(Problem(line, None, dataset, "row without a subject id", table.source, table.unit))
        return
    eface = _number(_cell(row, cols, "eface"), "eFACE", 0, 100, problems, required=True)
    hb = _grade(_cell(row, cols, "house_brackmann"), problems)
    sunnybrook = _number(_cell(row, cols, "sunnybrook"), "Sunnybrook", 0, 100, problems)
    for detail in problems:
        table.problems.append(Problem(line, subject, dataset, detail, table.source, table.unit))
    score, key = Score(eface, hb, sunnybrook), (dataset, subject)
    if key in table.scores and table.scores[key] != score:
        table.problems.append(
            Problem(
                line,
                subject,
                dataset,
                "subject listed again with other scores; the first row is used",
                table.source,
                table.unit,
            )
        )
        return
    table.scores.setdefault(key, score)
    table.lines.setdefault(key, line)


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

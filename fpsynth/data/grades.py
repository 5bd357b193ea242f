"""Clinical grades from a spreadsheet (the standard set's XLSX), and how they join the scores CSV.

The MEEI standard set ships one XLSX sheet of grades (eFACE, House-Brackmann, Sunnybrook) keyed
by participant. It is read with openpyxl (values, not formulas: the values Excel stored). The
header is the first row, among the first :data:`HEADER_ROWS` of the first sheet that has one,
naming a participant column and an eFACE column (:func:`~fpsynth.data.scores.column_map`: case
and spacing ignored, the total/composite column of several); title rows above it are skipped.
Without one, the error lists the columns of every sheet. Rows become problems (rejects rows
``grades:row N``), never exceptions, exactly as CSV lines do.

Both tables may be given (``--scores`` CSV and the XLSX beside the videos): :func:`merge` takes
the XLSX's value where both have one and says so in a row per participant.
"""

from __future__ import annotations

import csv
import datetime
import zipfile
from pathlib import Path

from fpsynth.data.scores import Problem, Score, ScoresError, ScoreTable, check_columns, column_map, table_from_rows

HEADER_ROWS = 20  # rows searched for the header (title and note rows may sit above it)
SHEET_SUFFIXES = (".xlsx", ".xlsm")


def read_sheet(path: Path, source: str = "grades") -> ScoreTable:
    """The grades of an .xlsx file as a :class:`ScoreTable` (problems at ``<source>:row N``)."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    path = Path(path)
    what = f"grades spreadsheet {path}"
    if not path.is_file():
        raise ScoresError(f"{what} does not exist")
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, InvalidFileException) as exc:
        raise ScoresError(f"{what} cannot be read as an Excel .xlsx workbook: {exc}") from None
    try:
        headers = []
        for sheet in book.worksheets:
            rows = [[_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            for i, row in enumerate(rows[:HEADER_ROWS]):
                cols = column_map(row)
                if "subject" in cols and ("eface" in cols or "eface_choices" in cols):
                    check_columns(cols, row, f"{what}, sheet {sheet.title!r}")
                    return table_from_rows(rows[i + 1 :], i + 2, cols, source=source, unit="row")
            first = next((r for r in rows[:HEADER_ROWS] if any(c for c in r)), [])
            headers.append(f"sheet {sheet.title!r}: {', '.join(repr(c) for c in first if c) or '(empty)'}")
    finally:
        book.close()
    raise ScoresError(
        f"{what}: no sheet has a header row naming a participant column and an eFACE column "
        f"(first rows: {'; '.join(headers) or 'no sheets'})"
    )


def _text(value: object) -> str:
    """A cell as the text a CSV would hold: whole numbers without '.0', empty for None."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value).strip()


def merge(grades: ScoreTable, scores: ScoreTable) -> tuple[ScoreTable, list[Problem]]:
    """One table from the XLSX (``grades``) and the CSV (``scores``): the XLSX's value wins where
    both have one, field by field. Returns the table and a note per subject found in both with
    a value in each (``score_in_both_tables`` rows)."""
    out = ScoreTable(dict(scores.scores), scores.problems + grades.problems, dict(scores.lines))
    notes = []
    for key, g in grades.scores.items():
        other = scores.find(key[0], key[1]) if key not in scores.scores else key
        if other is None:
            out.scores[key] = g
            continue
        c = out.scores.pop(other)
        out.lines.pop(other, None)
        merged, said = {}, []
        for field, name in (("eface", "eFACE"), ("house_brackmann", "House-Brackmann"), ("sunnybrook", "Sunnybrook")):
            gv, cv = getattr(g, field), getattr(c, field)
            merged[field] = gv if gv is not None else cv
            if gv is not None and cv is not None:
                said.append(f"{name} {_fmt(gv)} (XLSX) {'=' if gv == cv else 'over'} {_fmt(cv)} (CSV)")
        out.scores[key] = Score(**merged)
        if said:
            line = grades.lines.get(key, 0)
            notes.append(
                Problem(
                    line,
                    key[1],
                    key[0],
                    "in both tables: " + "; ".join(said) + "; the XLSX values are used",
                    grades.source,
                    grades.unit,
                )
            )
    out.lines.update(grades.lines)
    return out, notes


def _fmt(v: float | int) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def read_scores(path: Path) -> ScoreTable:
    """The ``--scores`` table: a CSV, or a spreadsheet (.xlsx) read as :func:`read_sheet`."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return read_sheet(path, source="scores")
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
    cols = column_map(rows[first])
    check_columns(cols, rows[first], f"scores CSV {path}: the first row must be a header")
    return table_from_rows(rows[first + 1 :], first + 2, cols)

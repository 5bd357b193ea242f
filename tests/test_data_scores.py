"""The scores CSV: column spellings, severity bands, missing and malformed rows."""

from __future__ import annotations

import pytest

from fpsynth.data.grades import read_scores
from fpsynth.data.scores import (
    GRADED,
    SEVERITY_ORDER,
    ScoresError,
    Severity,
    eface_bands_text,
    severity_from_eface,
    severity_rank,
)


@pytest.mark.parametrize(
    "eface, severity",
    [
        (100, "normal"),
        (96, "normal"),
        (95.9, "near-normal"),
        (95, "near-normal"),
        (91, "near-normal"),
        (90, "mild"),
        (80, "mild"),
        (79, "moderate"),
        (70, "moderate"),
        (69, "severe"),
        (60, "severe"),
        (59.9, "complete"),
        (0, "complete"),
        (None, "unknown"),
        (float("nan"), "unknown"),
    ],
)
def test_severity_bands_of_the_paper(eface, severity):
    assert severity_from_eface(eface) is Severity(severity)


def test_one_order_and_one_text_of_the_bands():
    assert GRADED == ("normal", "near-normal", "mild", "moderate", "severe", "complete")
    assert SEVERITY_ORDER == (*GRADED, "unknown")
    assert sorted(["unknown", "x", "severe", "normal", "mild"], key=severity_rank) == [
        "normal",
        "mild",
        "severe",
        "unknown",
        "x",
    ]
    assert eface_bands_text() == (
        "normal 96-100, near-normal 91-95, mild 80-90, moderate 70-79, severe 60-69, complete < 60"
    )
    assert eface_bands_text("&lt;").endswith("severe 60-69, complete &lt;60")


def test_columns_in_any_common_spelling(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("Patient ID;eFACE Total;House-Brackmann;Sunnybrook Score\nA01;92;III;71\nB02;55,5;grade 6;12\n")
    table = read_scores(path)
    assert not table.problems
    a, b = table.lookup("meei", "A01"), table.lookup("meei", "B02")
    assert (a.eface, a.house_brackmann, a.sunnybrook, a.severity) == (92.0, 3, 71.0, Severity.NEAR_NORMAL)
    assert (b.eface, b.house_brackmann, b.severity) == (55.5, 6, Severity.COMPLETE)


def test_missing_and_malformed_rows_become_problems_not_errors(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        "subject,eface,house_brackmann\n"
        "s1,88,2\n"  # fine
        ",75,3\n"  # no subject
        "s2,,\n"  # eFACE missing
        "s3,abc,1\n"  # not a number
        "s4,140,1\n"  # out of range
        "s5,70,IX\n"  # bad grade, eFACE still used
        "s6\n"  # short row
        "\n"  # blank line: ignored
        "s1,60,2\n"  # s1 again with other scores
    )
    table = read_scores(path)
    lines = {p.line: p.detail for p in table.problems}
    assert set(lines) == {3, 4, 5, 6, 7, 8, 10}
    assert "without a subject" in lines[3] and "missing" in lines[4] and "not a number" in lines[5]
    assert "outside" in lines[6] and "House-Brackmann" in lines[7] and "missing" in lines[8]
    assert "listed again" in lines[10]
    assert table.lookup("x", "s1").eface == 88.0  # the first row wins
    assert table.lookup("x", "s5").severity is Severity.MODERATE
    assert table.lookup("x", "s2").severity is Severity.UNKNOWN
    assert table.lookup("x", "nobody") is None


def test_dataset_column_separates_equal_ids(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("subject,dataset,eface\n01,meei,99\n01,aflfp,65\n")
    table = read_scores(path)
    assert table.lookup("meei", "01").severity is Severity.NORMAL
    assert table.lookup("aflfp", "01").severity is Severity.SEVERE


@pytest.mark.parametrize(
    "text", ["s1,88\ns2,70\n", "", "name,score\nx,1\n"], ids=["no-header", "empty", "wrong-header"]
)
def test_header_required(tmp_path, text):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(ScoresError, match="header|empty"):
        read_scores(path)


def test_missing_file(tmp_path):
    with pytest.raises(ScoresError, match="does not exist"):
        read_scores(tmp_path / "nope.csv")

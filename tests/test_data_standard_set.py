"""The MEEI standard set as published: participant keys, discovery of videos and photos, the
grades XLSX (made here with openpyxl) and how it joins the scores CSV."""

from __future__ import annotations

import pytest

from fpsynth.data.config import MeeiLayout, MovementsConfig, SourcesConfig
from fpsynth.data.grades import merge, read_scores, read_sheet
from fpsynth.data.meei import discover_meei
from fpsynth.data.reasons import Reason
from fpsynth.data.scores import ScoresError, Severity
from fpsynth.data.sources import Kind
from fpsynth.data.standard_set import is_standard_set, looks_like_key, parse_key


@pytest.mark.parametrize(
    "key, palsy_type, category",
    [
        ("mildflaccid4", "flaccid", "mild"),
        ("nearnormalflaccid3", "flaccid", "near-normal"),
        ("NearNormal_Flaccid_3", "flaccid", "near-normal"),
        ("synkinetic_complete5", "synkinetic", "complete"),
        ("severeflaccid4", "flaccid", "severe"),
        ("moderatesynkinetic2", "synkinetic", "moderate"),
        ("Complete Flaccid 1", "flaccid", "complete"),
        ("severe_nonflaccid1", "synkinetic", "severe"),  # the paper's other word for synkinetic
        ("synkinesis_mild2", "synkinetic", "mild"),
        ("flaccid7", "flaccid", None),  # no severity word: none is guessed
        ("normal3", "normal", "normal"),
        ("Normal_10", "normal", "normal"),
        ("nearnormal2", "unknown", "near-normal"),  # a severity without a type: the type stays unknown
        ("pat01", "unknown", None),
        ("John_Salley", "unknown", None),
    ],
)
def test_participant_keys(key, palsy_type, category):
    info = parse_key(key)
    assert (info.palsy_type, info.category) == (palsy_type, category)


def test_what_looks_like_a_key():
    assert looks_like_key("mildflaccid4") and looks_like_key("synkinetic_complete5") and looks_like_key("normal2")
    assert not looks_like_key("normal") and not looks_like_key("smile") and not looks_like_key("pat01")


def touch(root, *paths):
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"x")


MOVES = MovementsConfig(names=("rest", "smile", "eyes_shut"))


def _by_file(root, found):
    return {f.files[0].relative_to(root).as_posix(): f for f in found}


def test_flat_download_side_by_side(tmp_path):
    """Videos, photos, the XLSX and the PDF in one folder, as the download comes."""
    touch(
        tmp_path,
        "mildflaccid4.mp4",
        "mildflaccid4_1.jpg",
        "mildflaccid4_3.jpg",
        "mildflaccid4_2.jpg",
        "synkinetic_complete5.mp4",
        "synkinetic_complete5_1.jpg",
        "synkinetic_complete5_2.jpg",
        "mildflaccid12.mp4",
        "grades.xlsx",
        "protocol.pdf",
    )
    found = _by_file(tmp_path, discover_meei(tmp_path, SourcesConfig(), MOVES))
    assert "grades.xlsx" not in found  # read by prepare as the grades table, not an input
    assert found["protocol.pdf"].reason is Reason.UNSUPPORTED
    video = found["mildflaccid4.mp4"]
    assert (video.kind, video.subject, video.segment) == (Kind.VIDEO, "mildflaccid4", True)
    assert found["mildflaccid12.mp4"].subject == "mildflaccid12"  # not a photo of mildflaccid1
    # three numbered photos and three names in the list: matched in numeric order
    assert [found[f"mildflaccid4_{k}.jpg"].expression for k in (1, 2, 3)] == ["rest", "smile", "eyes_shut"]
    assert {found[f"mildflaccid4_{k}.jpg"].subject for k in (1, 2, 3)} == {"mildflaccid4"}
    # two photos for three names: numbered, not named, and a row says so (on the first only)
    one, two = found["synkinetic_complete5_1.jpg"], found["synkinetic_complete5_2.jpg"]
    assert (one.subject, one.expression, two.expression) == ("synkinetic_complete5", "photo_01", "photo_02")
    assert one.note[0] == Reason.MOVEMENT_COUNT.value and "found 2" in one.note[1] and two.note is None


def test_folder_per_participant_and_named_photos(tmp_path):
    touch(
        tmp_path,
        "Flaccid/SevereFlaccid4/SevereFlaccid4.mp4",
        "Flaccid/SevereFlaccid4/SevereFlaccid4_Smile.jpg",
        "Normals/normal2/video.mov",
        "Normals/normal2/1.png",
        "Normals/normal2/2.png",
        "Normals/normal2/3.png",
    )
    found = _by_file(tmp_path, discover_meei(tmp_path, SourcesConfig(), MOVES))  # auto: SevereFlaccid4.mp4 says it
    assert found["Flaccid/SevereFlaccid4/SevereFlaccid4.mp4"].subject == "SevereFlaccid4"
    assert found["Flaccid/SevereFlaccid4/SevereFlaccid4_Smile.jpg"].expression == "smile"  # the name says it
    assert found["Normals/normal2/video.mov"].subject == "normal2"  # a generic file name: the folder is the key
    assert [found[f"Normals/normal2/{k}.png"].expression for k in (1, 2, 3)] == ["rest", "smile", "eyes_shut"]


def test_layout_choice(tmp_path):
    touch(tmp_path, "Pat01/smile.mp4", "flaccid3/smile.mp4")  # subject folders named like keys: still clips
    assert not is_standard_set(tmp_path, sorted(tmp_path.rglob("*.mp4")), SourcesConfig())
    assert not any(f.segment for f in discover_meei(tmp_path, SourcesConfig()))
    (tmp_path / "flaccid3" / "smile.mp4").unlink()
    (f,) = discover_meei(tmp_path, SourcesConfig(meei_layout=MeeiLayout.STANDARD_SET))
    assert (f.subject, f.segment) == ("smile", True)  # forced: every video is a participant's
    touch(tmp_path, "flaccid3.mp4")
    assert is_standard_set(tmp_path, sorted(tmp_path.rglob("*.mp4")), SourcesConfig())
    clips = SourcesConfig(meei_layout=MeeiLayout.CLIPS)
    assert not any(f.segment for f in discover_meei(tmp_path, clips))


# --------------------------------------------------------------------------- the grades XLSX


def write_xlsx(path, rows, title_rows=(), sheets=()):
    from openpyxl import Workbook

    book = Workbook()
    for name, extra in sheets:  # other sheets first, e.g. notes
        ws = book.create_sheet(name, 0)
        for r in extra:
            ws.append(r)
    ws = book.worksheets[-1]
    ws.title = "grades"
    for r in [*title_rows, *rows]:
        ws.append(r)
    book.save(path)


def test_xlsx_columns_by_name_title_rows_and_problems(tmp_path):
    """A title row above the header, columns named differently (spacing, case, sub-scores), a row
    with a missing eFACE, a malformed grade; a participant with no row stays absent."""
    path = tmp_path / "grades.xlsx"
    write_xlsx(
        path,
        [
            [
                "Participant Key",
                "eFACE Static",
                "eFACE Dynamic",
                "eFACE  TOTAL",
                "House Brackmann",
                "Sunnybrook Composite",
            ],
            ["mildflaccid4", 70.0, 60.0, 84.5, "II", 71],
            ["synkinetic_complete5", 20, 30, 41, 6, 12.0],
            ["severeflaccid4", 50, 60, None, "III", None],  # eFACE total missing
            ["normal2", 100, 100, 99, "grade 9", 100],  # a bad grade, eFACE still used
            [None, None, None, None, None, None],  # a blank row: ignored
        ],
        title_rows=[["MEEI standard set: clinical grades"], []],
        sheets=[("notes", [["this sheet has no table"]])],
    )
    table = read_sheet(path)
    assert table.lookup("meei", "mildflaccid4").eface == 84.5  # the total, not a sub-score
    assert table.lookup("meei", "MildFlaccid4").severity is Severity.MILD  # keys compared without case
    s = table.lookup("meei", "synkinetic_complete5")
    assert (s.eface, s.house_brackmann, s.sunnybrook, s.severity) == (41.0, 6, 12.0, Severity.COMPLETE)
    assert table.lookup("meei", "severeflaccid4").severity is Severity.UNKNOWN
    assert table.lookup("meei", "normal2").severity is Severity.NORMAL
    assert table.lookup("meei", "moderateflaccid1") is None  # absent participant: unknown, never guessed
    problems = {p.input: p.detail for p in table.problems}
    assert set(problems) == {"grades:row 6", "grades:row 7"}  # spreadsheet rows, 1-based, title rows counted
    assert "eFACE missing" in problems["grades:row 6"] and "House-Brackmann" in problems["grades:row 7"]


def test_xlsx_without_an_eface_column_lists_the_columns(tmp_path):
    path = tmp_path / "grades.xlsx"
    write_xlsx(path, [["Patient", "HB grade", "Sunnybrook"], ["mildflaccid4", 2, 80]])
    with pytest.raises(ScoresError, match=r"eFACE.*'Patient', 'HB grade', 'Sunnybrook'"):
        read_sheet(path)
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(ScoresError, match="cannot be read"):
        read_sheet(tmp_path / "bad.xlsx")


def test_xlsx_with_two_eface_subscores_and_no_total_is_an_error(tmp_path):
    path = tmp_path / "grades.xlsx"
    write_xlsx(path, [["Participant", "eFACE static", "eFACE dynamic"], ["mildflaccid4", 2, 80]])
    with pytest.raises(ScoresError, match="several eFACE columns"):
        read_sheet(path)


def test_scores_option_reads_an_xlsx_too(tmp_path):
    path = tmp_path / "s.xlsx"
    write_xlsx(path, [["subject", "eface"], ["a1", 95]])
    table = read_scores(path)
    assert table.lookup("x", "a1").severity is Severity.NEAR_NORMAL and table.source == "scores"


def test_csv_and_xlsx_together_the_xlsx_wins_and_says_so(tmp_path):
    csv = tmp_path / "scores.csv"
    csv.write_text("subject,eface,house_brackmann,sunnybrook\nmildflaccid4,88,2,\nnormal2,97,,90\nonlycsv1,75,,\n")
    xlsx = tmp_path / "grades.xlsx"
    write_xlsx(xlsx, [["Participant", "eFACE", "HB"], ["Mild Flaccid 4", 84, 2], ["normal2", None, 1]])
    table, notes = merge(read_sheet(xlsx), read_scores(csv))
    mild = table.lookup("meei", "mildflaccid4")
    assert (mild.eface, mild.house_brackmann) == (84.0, 2)  # the XLSX's eFACE; HB equal in both
    normal = table.lookup("meei", "normal2")
    assert (normal.eface, normal.house_brackmann, normal.sunnybrook) == (97.0, 1, 90.0)  # field by field
    assert table.lookup("meei", "onlycsv1").eface == 75.0
    (note,) = [n for n in notes if n.subject == "Mild Flaccid 4"]
    assert note.input == "grades:row 2" and "eFACE 84 (XLSX) over 88 (CSV)" in note.detail
    assert "House-Brackmann 2 (XLSX) = 2 (CSV)" in note.detail
    assert [n.subject for n in notes] == ["Mild Flaccid 4"]  # normal2: no field given in both
    assert any("eFACE missing" in p.detail for p in table.problems)  # the XLSX's own problem is kept

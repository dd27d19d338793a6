"""Reading CSV at the edge: what a broken file says, and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import ExtractError
from adapters.csvread import MAX_FIELD, read_rows


def rows(path: Path, text: str) -> list[tuple[int, dict[str, str], list[str]]]:
    path.write_text(text, encoding="utf-8")
    return [(r.line, r.fields, [i.reason for i in r.issues]) for r in read_rows(path, "utf-8")]


def test_a_long_field_is_read_and_a_longer_one_names_its_line(tmp_path: Path) -> None:
    """Free text past Python's 131,072 characters is read; past MAX_FIELD the file is refused
    with its name and line, not a traceback from the middle of an ingest."""
    path = tmp_path / "t.csv"
    (only,) = rows(path, "id,note\n1," + "x" * 200_000 + "\n")
    assert len(only[1]["note"]) == 200_000
    with pytest.raises(ExtractError, match=r"t\.csv, line 3: field larger than field limit"):
        rows(path, "id,note\n1,ok\n2," + "x" * (MAX_FIELD + 1) + "\n")


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    """Which of two NHSNumber columns is the number? Neither is guessed."""
    with pytest.raises(ExtractError, match=r"t\.csv: column NHSNumber appears more than once"):
        rows(tmp_path / "t.csv", "RowIdentifier,NHSNumber,NHSNumber\n1,9990000018,9990000026\n")


def test_an_unbalanced_quote_says_which_lines_it_swallowed(tmp_path: Path) -> None:
    found = rows(tmp_path / "t.csv", 'id,a,b\n1,x,y\n2,"open,y\n3,x,y\n4,x,y"\n5,x,y\n')
    assert [line for line, _, _ in found] == [2, 3, 6]
    assert found[1][2] == [
        "a quoted field opened on line 3 runs to line 5: an unbalanced quote? Those lines are "
        "held in this record"
    ]


def test_a_quoted_newline_in_a_complete_row_is_fine(tmp_path: Path) -> None:
    assert rows(tmp_path / "t.csv", 'id,a\n1,"two\nlines"\n2,x\n') == [
        (2, {"id": "1", "a": "two\nlines"}, []),
        (4, {"id": "2", "a": "x"}, []),
    ]


def test_a_quote_left_open_to_the_end_of_the_file_is_held_naming_its_lines(
    tmp_path: Path,
) -> None:
    """A quote opened in a row's last column keeps the header's number of fields while it
    swallows every later row, so without this the rows after it vanish and the run succeeds."""
    found = rows(tmp_path / "t.csv", 'id,a,b\n1,x,y\n2,x,"y\n3,x,y\n4,x,y\n')
    assert [line for line, _, _ in found] == [2, 3]
    assert found[1][2] == [
        "a quoted field opened on line 3 is still open at the end of the file (line 5): an "
        "unbalanced quote? Those lines are held in this record"
    ]


def test_a_quote_closed_by_a_stray_one_further_down_is_held(tmp_path: Path) -> None:
    """Closed again by a stray quote in the same column, an open quote keeps the header's number
    of fields, and the whole rows it swallowed would vanish."""
    found = rows(tmp_path / "t.csv", 'id,a,b\n1,"x,y\n2,x,y\n3,x",y\n4,x,y\n')
    assert [line for line, _, _ in found] == [2, 5]
    assert found[0][2] == [
        "a quoted field opened on line 2 runs to line 4: an unbalanced quote? Those lines are "
        "held in this record"
    ]


def test_free_text_over_several_lines_is_fine(tmp_path: Path) -> None:
    """A note whose lines do not read as rows is one field, as written."""
    note = "Seen at home.\nBP fine, pulse fine.\nReview in a week."
    found = rows(tmp_path / "t.csv", f'id,a,b\n1,"{note}",y\n')
    assert found == [(2, {"id": "1", "a": note, "b": "y"}, [])]


def test_an_open_quote_closed_by_the_next_rows_opening_quote_is_held(tmp_path: Path) -> None:
    """Read leniently, the two lines make one record of the header's width, and the second row
    vanishes into the first one's text with nothing held or noted."""
    found = rows(tmp_path / "t.csv", 'id,a,b\n1,"open,y\n2,"x",y\n3,x,y\n')
    assert [line for line, _, _ in found] == [2, 4]
    assert found[0][2] == [
        "a quoted field opened on line 2 runs to line 3: an unbalanced quote? Those lines are "
        "held in this record"
    ]


def test_a_quote_quirk_within_one_line_does_not_stop_the_file(tmp_path: Path) -> None:
    """Only a record spanning lines is read strictly: a one-line quirk must not refuse a file."""
    found = rows(tmp_path / "t.csv", 'id,a,b\n1,"abc"def,y\n2,x,y\n')
    assert found == [
        (2, {"id": "1", "a": "abcdef", "b": "y"}, []),
        (3, {"id": "2", "a": "x", "b": "y"}, []),
    ]


def test_a_note_line_with_the_headers_number_of_commas_is_fine(tmp_path: Path) -> None:
    """A care-plan line listing visits is not a row of the file: its first value is not shaped
    like a row id, and a valid note must not be held as an unbalanced quote."""
    note = "Care plan:\nVisits: am, lunch, tea\nKey safe code with daughter"
    assert rows(tmp_path / "t.csv", f'id,a,b\n55,"{note}",y\n') == [
        (2, {"id": "55", "a": note, "b": "y"}, [])
    ]


def test_swallowed_rows_with_guid_ids_are_held(tmp_path: Path) -> None:
    """EMIS rows are keyed by GUIDs: a stray quote closing an open one swallows them as well."""
    ids = [f"{{3F2504E0-4F89-11D3-9A0C-0305E82C330{i}}}" for i in range(1, 5)]
    text = f'id,a,b\n{ids[0]},"x,y\n{ids[1]},x,y\n{ids[2]},x",y\n{ids[3]},x,y\n'
    found = rows(tmp_path / "t.csv", text)
    assert [line for line, _, _ in found] == [2, 5]
    assert found[0][2] == [
        "a quoted field opened on line 2 runs to line 4: an unbalanced quote? Those lines are "
        "held in this record"
    ]


def test_windows_1252_text_that_also_reads_as_utf8_is_read_as_windows_1252(
    tmp_path: Path,
) -> None:
    """'ZOË’S' in Windows-1252 (bytes CB 92) is valid UTF-8 for 'ZO˒S': read as UTF-8, the name
    would be changed silently, though no text re-saved from Windows-1252 holds a '˒'."""
    path = tmp_path / "SRSpecialNotes.csv"
    path.write_bytes("RowIdentifier,Note\r\n1,Ask for ZOË’S mother\r\n".encode("cp1252"))
    notes: list[str] = []
    [row] = read_rows(path, "cp1252", notes=notes)
    assert row.fields["Note"] == "Ask for ZOË’S mother"
    assert notes == []

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
    found = rows(tmp_path / "t.csv", 'id,a,b\n1,x,y\n2,"open,y\n3,x,y\n4,x,y\n')
    assert [line for line, _, _ in found] == [2, 3]
    assert found[1][2] == [
        "a quoted field opened on line 3 runs to line 5: an unbalanced quote? Those lines are "
        "held in this record"
    ]


def test_a_quoted_newline_in_a_complete_row_is_fine(tmp_path: Path) -> None:
    assert rows(tmp_path / "t.csv", 'id,a\n1,"two\nlines"\n2,x\n') == [
        (2, {"id": "1", "a": "two\nlines"}, []),
        (4, {"id": "2", "a": "x"}, []),
    ]

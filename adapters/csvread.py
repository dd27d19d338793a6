"""Reading CSV extracts at the edge: encodings, BOMs, truncated rows and missing columns.

Rows are streamed one at a time. A file-level fault (a required column missing, a column named
twice, text the CSV reader cannot split, such as a field over ``MAX_FIELD`` characters) raises
:class:`~adapters.base.ExtractError` naming the file, and the line or column; a row-level fault
(too few fields, an undecodable byte, a quote left open across lines, or to the end of the file)
is attached to the row so it lands in quarantine with its line. A record spanning several lines
is read again strictly (a closing quote must end its field): an open quote closed by the next
row's opening quote otherwise keeps the header's number of fields, and that row vanishes into
the text. The file as a whole is read leniently, so a quirk like ``"abc"def`` on one line does
not stop it.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from adapters.base import ExtractError, Issue

_BOM = b"\xef\xbb\xbf"
#: The longest field read (Python's default is 131,072 characters): free text, such as a care
#: plan, can be long, and a longer one is a broken file, refused with its line.
MAX_FIELD = 16 * 1024 * 1024
csv.field_size_limit(MAX_FIELD)
#: What ``errors="surrogateescape"`` leaves for a byte the encoding cannot decode.
_SURROGATE = re.compile("[\udc80-\udcff]")
_GUID = re.compile(r"\{?[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}?")


@dataclass(frozen=True)
class Row:
    line: int
    fields: dict[str, str]
    issues: tuple[Issue, ...]
    #: A quoted field in it took in lines that are not its own (an unbalanced quote): the rows
    #: on those lines are inside its text, not read.
    swallowed: bool = False


def _encoding(path: Path, default: str) -> str:
    """A UTF-8 BOM wins over the style's default encoding: some exports add one. So does UTF-8
    without one in a file the style writes in another encoding (re-saved on its way): every
    UTF-8 byte pair is valid Windows-1252 too, so 'Renée' would read as 'RenÃ©e' without a single
    error. Windows-1252 text can read as UTF-8 too ('ZOË’S' as 'ZO˒S'), but then it holds
    characters Windows-1252 has not, which text re-saved from it never does."""
    with path.open("rb") as fh:
        if fh.read(3) == _BOM:
            return "utf-8-sig"
        if codecs.lookup(default).name == "utf-8":
            return default
        fh.seek(0)
        return "utf-8" if _resaved_as_utf8(fh, default) else default


def _resaved_as_utf8(fh: BinaryIO, default: str) -> bool:
    """Whether the bytes are valid UTF-8 with at least one character outside ASCII, and every
    character they read as is one the default encoding has."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    beyond = False
    try:
        while chunk := fh.read(1 << 20):
            beyond = beyond or not chunk.isascii()
            decoder.decode(chunk).encode(default)
        decoder.decode(b"", final=True)
    except (UnicodeDecodeError, UnicodeEncodeError):
        return False
    return beyond


def _lines(fh: Iterable[str], ended: list[bool], raw: list[str]) -> Iterator[str]:
    """The file's lines, kept in ``raw`` until the record they make is taken, and marking when
    they run out: the CSV reader hands back a record after that only when the record ended
    inside a quoted field."""
    for text in fh:
        raw.append(text)
        yield text
    ended.append(True)


def _strict(raw: list[str]) -> bool:
    """Whether a record's lines read the same with every closing quote ending its field. An
    open quote closed by the next row's opening quote is followed by that row's text, not a
    delimiter: read leniently, the two rows make one of the header's width."""
    try:
        return len(list(csv.reader(raw, strict=True))) == 1
    except csv.Error:
        return False


def _id_shape(value: str) -> str:
    """A first value's shape: digits, letters and GUIDs as one mark each, punctuation as is."""
    value = _GUID.sub("#", value.strip())
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "9", value))


def _swallowed_rows(values: list[str], width: int) -> bool:
    """A field holding whole lines that read as rows of the file: a quote left open, closed
    again by a stray quote in the same column further down (strict reading passes that). A
    line of a note can hold the header's number of commas, so it must also start with a value
    shaped like the record's own first one (its row id), or any value when the record has none:
    a note is held only when unsure."""
    shape = _id_shape(values[0]) if values[0].strip() else None
    for value in values:
        for text in value.splitlines()[1:-1]:
            inner = next(csv.reader([text]), [])
            if len(inner) == width and inner[0].strip() and shape in (None, _id_shape(inner[0])):
                return True
    return False


def _rows(reader: Iterator[list[str]], path: Path) -> Iterator[list[str]]:
    """The reader's rows; what it cannot split stops the file, naming where."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = getattr(reader, "line_num", 0)
            raise ExtractError(f"{path.name}, line {line}: {exc}") from None


def read_rows(
    path: Path,
    encoding: str,
    required: Iterable[str] = (),
    notes: list[str] | None = None,
    used: Iterable[str] | None = None,
) -> Iterator[Row]:
    """Yield each data row with its first line number; check required columns first."""
    enc = _encoding(path, encoding)
    if notes is not None and enc != encoding and enc == "utf-8":
        notes.append(
            f"{path.name}: read as UTF-8, not {encoding}: it has no BOM, but every byte "
            "outside ASCII in it is UTF-8"
        )
    with path.open(encoding=enc, errors="surrogateescape", newline="") as fh:
        ended: list[bool] = []
        raw: list[str] = []
        reader = csv.reader(_lines(fh, ended, raw))
        names = [_decoded(n.strip(), enc) for n in next(reader, [])]
        missing = [c for c in required if c not in names]
        if missing:
            raise ExtractError(f"{path.name}: missing required column {', '.join(missing)}")
        twice = sorted({n for n in names if n and names.count(n) > 1})
        if twice:
            raise ExtractError(f"{path.name}: column {', '.join(twice)} appears more than once")
        if notes is not None and used is not None:
            extra = sorted(set(names) - set(used))
            if extra:
                notes.append(f"{path.name}: extra columns ignored: {', '.join(extra)}")
        line = 2
        raw.clear()
        for values in _rows(reader, path):
            start, line = line, reader.line_num + 1
            swallowed = bool(ended) or (
                line - start > 1
                and (
                    len(values) != len(names)
                    or not _strict(raw)
                    or _swallowed_rows(values, len(names))
                )
            )
            raw.clear()
            if not values:
                continue
            issues: list[Issue] = []
            if ended:
                issues.append(
                    Issue(
                        None,
                        f"a quoted field opened on line {start} is still open at the end of the "
                        f"file (line {line - 1}): an unbalanced quote? Those lines are held in "
                        "this record",
                    )
                )
            elif swallowed:
                issues.append(
                    Issue(
                        None,
                        f"a quoted field opened on line {start} runs to line {line - 1}: an "
                        "unbalanced quote? Those lines are held in this record",
                    )
                )
            elif len(values) < len(names):
                issues.append(
                    Issue(
                        names[len(values)],
                        f"row has {len(values)} of {len(names)} fields (truncated?)",
                    )
                )
            elif len(values) > len(names):
                issues.append(Issue(None, f"row has {len(values)} fields, header has {len(names)}"))
            fields = dict(zip(names, values, strict=False))
            for name, value in fields.items():
                if not value.isascii() and _SURROGATE.search(value):
                    issues.append(Issue(name, f"bytes that are not valid {enc}"))
                    fields[name] = _decoded(value, enc)
            yield Row(start, fields, tuple(issues), swallowed)


def _decoded(text: str, encoding: str) -> str:
    """``text`` with each byte the encoding could not decode as U+FFFD, as it is shown and
    stored (a lone surrogate cannot be written to the store)."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode(encoding, "replace")

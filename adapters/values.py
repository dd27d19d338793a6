"""Parsing of source values at the edge: NHS numbers, dates in each source's format, booleans.

Each parser is pure and raises :class:`ValueProblem` with a reason a person can act on; the
mapper turns that into an :class:`~adapters.base.Issue` naming the field.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_TPP_DATE = re.compile(r"^(\d{1,2}) ([A-Za-z]{3}) (\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_ISO_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


class ValueProblem(ValueError):
    """A source value that cannot be taken as it stands."""


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit for nine digits, or None when no valid number has them."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number_valid(value: str) -> bool:
    """Ten ASCII digits passing modulus 11 (``isdigit`` alone takes '٩', which no search finds)
    and not a placeholder."""
    return (
        len(value) == 10
        and value.isascii()
        and value.isdigit()
        and not _placeholder(value)
        and nhs_check_digit(value[:9]) == int(value[9])
    )


def _placeholder(digits: str) -> bool:
    """One digit ten times (0000000000, 9999999999): what systems write for "not known".

    Each passes modulus 11, so without this check an unknown number would be shared by everyone
    who has none, and link them.
    """
    return len(set(digits)) == 1


def nhs_number(raw: str) -> str:
    """Normalise (spaces and dashes allowed, as people type them) and check modulus 11."""
    digits = re.sub(r"[\s-]", "", raw)
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        raise ValueProblem(f"NHS number {raw!r} is not 10 digits")
    if _placeholder(digits):
        raise ValueProblem(f"NHS number {raw!r} is a placeholder, not a number")
    if not nhs_number_valid(digits):
        raise ValueProblem(f"NHS number {raw!r} fails the modulus-11 check")
    return digits


def _month(name: str) -> int:
    try:
        return _MONTHS[name.lower()]
    except KeyError:
        raise ValueProblem(f"unknown month {name!r}") from None


def _date(y: int, m: int, d: int, raw: str) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise ValueProblem(f"{raw!r} is not a real date") from None


def tpp_date(raw: str) -> str:
    """``dd MMM yyyy`` (SystmOne) → FHIR date; a time after it (``dd MMM yyyy HH:mm[:ss]``,
    which SystmOne may write in any date column) is dropped: the day is the UK day written."""
    m = _TPP_DATE.match(raw.strip())
    if not m:
        raise ValueProblem(f"{raw!r} is not a date in the form 'dd MMM yyyy'")
    return _date(int(m.group(3)), _month(m.group(2)), int(m.group(1)), raw).isoformat()


def tpp_datetime(raw: str) -> str:
    """``dd MMM yyyy[ HH:mm[:ss]]``, UK local time → FHIR dateTime in UTC; a date stays a date."""
    m = _TPP_DATE.match(raw.strip())
    if not m:
        raise ValueProblem(f"{raw!r} is not a date in the form 'dd MMM yyyy HH:mm:ss'")
    day = _date(int(m.group(3)), _month(m.group(2)), int(m.group(1)), raw)
    if not m.group(4):
        return day.isoformat()
    hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueProblem(f"{raw!r} is not a real time")
    return uk_local_to_utc(datetime(day.year, day.month, day.day, hour, minute, second))


def tpp_instant(raw: str) -> str | None:
    """``dd MMM yyyy HH:mm[:ss]`` for an element R4 types ``instant`` (``Observation.issued``):
    a date with no time names no instant, so it gives nothing rather than a value R4 refuses
    (the whole coded event was quarantined for it)."""
    written = tpp_datetime(raw)
    return written if "T" in written else None


def uk_clock_change(local: datetime) -> str | None:
    """Why a UK wall-clock time names no single instant, or None: the spring change skips an
    hour, and the autumn one passes an hour twice."""
    aware = local.replace(tzinfo=UK)
    if aware.astimezone(UTC).astimezone(UK).replace(tzinfo=None) != local:
        return "did not happen in UK time (the clocks went forward)"
    if aware.utcoffset() != aware.replace(fold=1).utcoffset():
        return "happened twice in UK time (the clocks went back); the first, in BST, is taken"
    return None


def uk_local_to_utc(local: datetime) -> str:
    """A naive UK wall-clock time → ISO dateTime in UTC with offset (BST and GMT handled).

    A time the clocks skipped is refused, as no one recorded it; in the hour passed twice the
    first is taken (an hour's doubt once a year, where refusing would hold the record back
    with no way to say which was meant)."""
    change = uk_clock_change(local)
    if change and change.startswith("did not"):
        raise ValueProblem(f"{local.isoformat(sep=' ')} {change}")
    return local.replace(tzinfo=UK).astimezone(UTC).isoformat()


def iso_date(raw: str, precision: str = "YMD") -> str:
    """``yyyy-MM-dd`` → FHIR date, cut to the source's precision (``Y``, ``YM``, ``YMD``)."""
    text = raw.strip()
    m = _ISO_PARTIAL.match(text[:10])
    if not m or (len(text) > 10 and text[10] not in " T"):
        raise ValueProblem(f"{raw!r} is not a date in the form 'yyyy-MM-dd'")
    y, mo, d = m.group(1), m.group(2), m.group(3)
    if d:
        _date(int(y), int(mo), int(d), raw)
    elif mo and not 1 <= int(mo) <= 12:
        raise ValueProblem(f"{raw!r} is not a real month")
    precision = precision.strip().upper() or "YMD"
    if precision not in ("Y", "YM", "YMD", "YMDT"):
        raise ValueProblem(f"unknown date precision {precision!r}")
    parts = [p for p in (y, mo, d) if p]
    return "-".join(parts[: len(precision.rstrip("T"))])


def boolean(raw: str) -> bool:
    """Booleans as the sources write them: True/False, Y/N, 1/0, yes/no."""
    text = raw.strip().lower()
    if text in ("true", "y", "yes", "1", "t"):
        return True
    if text in ("false", "n", "no", "0", "f", ""):
        return False
    raise ValueProblem(f"{raw!r} is not a yes/no value")


#: The largest number a JSON reader holds (a double): a larger one is stored exactly but no
#: reader (the record pages', most clients') could read the resource back.
_DOUBLE = Decimal(sys.float_info.max)


#: A number as sources write one: ASCII digits, an optional sign, fraction and exponent. Python's
#: ``Decimal`` would also read ``1_5`` (as 15), other scripts' digits and ``Infinity``.
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def decimal(raw: str) -> Decimal:
    if not _NUMBER.fullmatch(raw.strip()):
        raise ValueProblem(f"{raw!r} is not a number")
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueProblem(f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueProblem(f"{raw!r} is not a finite number")
    if value.copy_abs() > _DOUBLE:
        raise ValueProblem(f"{raw!r} is too large a number for a FHIR client to read")
    return value


#: What a JSON writer (``orjson``) holds as an integer: a whole number past it is kept as a
#: decimal, written as it reads.
INT64 = range(-(2**63), 2**63)
#: FHIR's ``integer`` is a signed 32-bit number.
_INTEGER = range(-(2**31), 2**31)


def integer(raw: str) -> int:
    """A whole number FHIR's ``integer`` holds; ``28.5`` or ``3e9`` is refused, not cut."""
    value = decimal(raw)
    if value.adjusted() > 9 or value != value.to_integral_value() or int(value) not in _INTEGER:
        raise ValueProblem(f"{raw!r} is not a whole number FHIR can hold")
    return int(value)

"""Pulling council records from a paginated JSON REST API with httpx.

What scr expects of a council API (the same records as the CSV extract, as JSON):

    GET {base}/people?page=N               -> {"items": [person, ...], "next_page": N+1 | null}
    GET {base}/people/{id}/events?page=N   -> {"items": [event, ...], "next_page": ... | null}

Pages start at 1 and ``page`` is sent on every request; ``next_page`` must move forward (a
server that repeats a page would otherwise loop for ever). A person object has the
``persons.csv`` columns as keys and an event the ``events.csv`` columns; an event may leave out
``person_id``, which is then the person's. Values are strings, numbers, booleans or null and are
turned into the text a CSV cell would hold (null → ``""``, true → ``"true"``), so the records
are the very ones the CSV reader yields (tables ``persons`` and ``events``, file = the page URL,
line = the item's position on the page) and the same table maps apply.

Every request carries ``Authorization: Bearer <token>``. A 429 or 5xx answer, or a connection
failure, is retried up to ``max_retries`` times with exponential backoff (``Retry-After`` is
honoured, up to :data:`MAX_RETRY_AFTER` seconds); any other non-success answer stops the pull
with :class:`CouncilApiError`, since retrying a refusal cannot help.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from adapters.base import ExtractError, Issue, SourceRecord, SourceRef
from adapters.council.read import STYLE, member_extras, person_extras
from adapters.extract import map_columns, unkeyed_row_id
from adapters.mapper import load_table_map

#: Longest wait scr accepts from a ``Retry-After`` header, so one answer cannot stall an ingest.
MAX_RETRY_AFTER = 60.0
TIMEOUT = 30.0

Sleep = Callable[[float], None]


class CouncilApiError(ExtractError):
    """The council API refused or kept failing; the message names the request, never the token."""


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP date), if it said."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC with no zone given
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Getter:
    """GET with bounded retries; holds what every request of one pull shares."""

    def __init__(
        self, client: httpx.Client, token: str, max_retries: int, backoff: float, sleep: Sleep
    ) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep

    def json(self, url: str) -> Any:
        attempt = 0
        while True:
            try:
                response = self.client.get(url, headers=self.headers)
            except httpx.TransportError as exc:
                self._wait_or_fail(attempt, self.backoff * 2**attempt, f"GET {url}: {exc!r}", exc)
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return self._body(url, response)
                asked = _retry_after(response) if status == 429 else None
                wait = self.backoff * 2**attempt if asked is None else min(asked, MAX_RETRY_AFTER)
                self._wait_or_fail(attempt, wait, f"GET {url}: HTTP {status}")
            attempt += 1

    def _wait_or_fail(
        self, attempt: int, wait: float, problem: str, cause: Exception | None = None
    ) -> None:
        if attempt >= self.max_retries:
            raise CouncilApiError(f"{problem} after {attempt + 1} attempts") from cause
        self.sleep(wait)

    @staticmethod
    def _body(url: str, response: httpx.Response) -> Any:
        if not response.is_success:
            hint = " (check the council API token)" if response.status_code in (401, 403) else ""
            raise CouncilApiError(
                f"GET {url}: HTTP {response.status_code} {response.reason_phrase}{hint}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise CouncilApiError(f"GET {url}: the answer is not JSON") from exc


def _pages(getter: _Getter, url: str) -> Iterator[tuple[str, list[Any]]]:
    """Each page's URL and items, following ``next_page`` until it is null."""
    page = 1
    while True:
        page_url = f"{url}?page={page}"
        body = getter.json(page_url)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise CouncilApiError(f"GET {page_url}: expected an object with an 'items' list")
        yield page_url, body["items"]
        following = body.get("next_page")
        if following is None:
            return
        if not isinstance(following, int) or isinstance(following, bool) or following <= page:
            raise CouncilApiError(f"GET {page_url}: next_page {following!r} does not move forward")
        page = following


def _cell(value: Any) -> str | None:
    """The text a CSV cell would hold for a JSON value; None for a value no cell can hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


class _Table:
    """One table's record building: required fields, row id, extra-field notes."""

    def __init__(self, org: str, table: str, where: str, notes: list[str]) -> None:
        table_map = load_table_map(STYLE, table)
        self.org = org
        self.table = table
        self.row_id = table_map["row_id"]
        self.required = [self.row_id, *table_map.get("required_columns", [])]
        self.used = map_columns(table_map)
        self.where = where
        self.notes = notes
        self.noted: set[str] = set()

    def record(
        self, item: Any, file: str, line: int, known: Mapping[str, str], extras: Mapping[str, str]
    ) -> SourceRecord:
        """Build one record; ``known`` fields (an event's person) fill gaps and must agree."""
        issues: list[Issue] = []
        fields: dict[str, Any] = dict(known)
        if isinstance(item, dict):
            for key, value in item.items():
                cell = _cell(value)
                if cell is None:
                    issues.append(Issue(str(key), "expected text, a number, true/false or null"))
                    cell = ""
                fields[str(key)] = cell
            self._note_extra(fields)
        else:
            issues.append(Issue(None, "item is not a JSON object"))
        for key, value in known.items():
            given = str(fields.get(key, "")).strip()
            if given and given != value:
                issues.append(Issue(key, f"is {given!r} but the item was listed under {value!r}"))
            fields[key] = given or value
        issues += [Issue(k, "required field is missing") for k in self.required if k not in fields]
        row_id = fields.get(self.row_id, "").strip()
        if not row_id:
            row_id = unkeyed_row_id(f"{file}#{line}", fields)
            if not any(i.field == self.row_id for i in issues):
                issues.append(Issue(self.row_id, "row identifier is missing"))
        fields.update(extras)  # even on a record with problems: quarantine keeps it whole
        ref = SourceRef(STYLE, self.org, self.table, row_id)
        return SourceRecord(ref, file, line, fields, tuple(issues))

    def _note_extra(self, fields: Mapping[str, str]) -> None:
        extra = sorted(set(fields) - self.used - self.noted)
        if extra:
            self.noted.update(extra)
            self.notes.append(f"{self.where}: extra fields ignored: {', '.join(extra)}")


def _restricted(person: SourceRecord) -> str:
    """The person's ``restricted`` value for their events; one that could not be read counts as
    restricted (fail closed): the events of a person with other problems are still pulled, and
    wait in quarantine until the person is taken in."""
    if any(i.field == "restricted" for i in person.read_issues):
        return "true"
    return str(person.fields.get("restricted", ""))


def pull(
    base_url: str,
    token: str,
    *,
    org: str,
    client: httpx.Client | None = None,
    max_retries: int = 5,
    backoff: float = 0.5,
    sleep: Sleep = time.sleep,
    notes: list[str] | None = None,
) -> Iterator[SourceRecord]:
    """Yield each person and then that person's events, as the CSV reader would."""
    base = base_url.rstrip("/")
    notes = notes if notes is not None else []
    own = client is None
    http = client if client is not None else httpx.Client(timeout=TIMEOUT)
    getter = _Getter(http, token, max_retries, backoff, sleep)
    today = date.today().isoformat()
    persons = _Table(org, "persons", f"{base}/people", notes)
    events = _Table(org, "events", f"{base}/people/{{id}}/events", notes)
    try:
        for page_url, items in _pages(getter, f"{base}/people"):
            for line, item in enumerate(items, start=1):
                person = persons.record(item, page_url, line, {}, person_extras(org))
                yield person
                pid = str(person.fields.get("person_id", "")).strip()
                if not pid:
                    notes.append(f"{page_url} item {line}: no person_id, so no events were pulled")
                    continue
                restricted = _restricted(person)
                events_url = f"{base}/people/{quote(pid, safe='')}/events"
                for event_url, event_items in _pages(getter, events_url):
                    for n, event in enumerate(event_items, start=1):
                        member = member_extras(org, restricted, event, today)
                        yield events.record(event, event_url, n, {"person_id": pid}, member)
    finally:
        if own:
            http.close()

"""Sessions signed out, until their tokens expire.

The pages' session is the bearer token itself, in a cookie: dropping the cookie at sign-out
leaves the token valid until it expires, so a copy taken before (a shared workstation, a
cookie lifted from a backup) would still sign in, or read the API as a bearer. What is kept is
a digest of the token's verified claims (``TokenUser.session``: every encoding of one token
is one session), until the token expires; the pages, the sign-in form and the API refuse it.

Each worker remembers what it has looked up for ``RECHECK`` seconds, so the API's reads cost
no query per request: a sign-out in this worker is seen at once, one in another worker within
that time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Engine, Table, delete, insert, select

from engine.models import SignedOut

T = cast(Table, SignedOut.__table__)
#: How long a worker trusts what it looked up about a session.
RECHECK = 5.0
#: Sessions remembered per worker (least recently looked up go first).
_REMEMBER = 10_000


class SignOuts:
    """The sign-outs, as one worker sees them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._seen: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def sign_out(self, session: str, until: datetime) -> None:
        """Refuse ``session`` until ``until`` (its token's expiry); forget those past theirs."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(T).where(T.c.until < now))
            if conn.execute(select(T.c.session).where(T.c.session == session)).first() is None:
                conn.execute(insert(T).values(session=session, until=until))
        self._remember(session, True)

    def cached(self, session: str) -> bool | None:
        """Whether ``session`` is signed out, if this worker looked in the last ``RECHECK``
        seconds (``None``: ask :meth:`signed_out`, which queries)."""
        with self._lock:
            seen = self._seen.get(session)
        if seen is None or time.monotonic() - seen[0] >= RECHECK:
            return None
        return seen[1]

    def signed_out(self, session: str) -> bool:
        known = self.cached(session)
        if known is not None:
            return known
        with self.engine.connect() as conn:
            row = conn.execute(select(T.c.until).where(T.c.session == session)).first()
        out = row is not None and row.until > datetime.now(UTC)
        self._remember(session, out)
        return out

    def _remember(self, session: str, out: bool) -> None:
        """A sign-out stands: a look-up that began before it and ends after cannot undo it."""
        with self._lock:
            was = self._seen.pop(session, None)
            self._seen[session] = (time.monotonic(), out or (was is not None and was[1]))
            if len(self._seen) > _REMEMBER:
                del self._seen[next(iter(self._seen))]

"""Session tokens signed out of the pages.

The pages' session is the bearer token itself, in a cookie: dropping the cookie at sign-out
leaves the token valid until it expires, so a copy taken before (a shared machine, a cookie
lifted from a backup) would still sign in. Its hash is kept until then, and the pages and the
sign-in form refuse it. The API's bearer tokens are the identity provider's to revoke (their
short expiry bounds a stolen one); checking this on every API read is left out on purpose.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Engine, Table, delete, insert, select

from engine.models import SignedOut

T = cast(Table, SignedOut.__table__)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def sign_out(engine: Engine, token: str, until: datetime) -> None:
    """Refuse ``token`` to the pages until ``until`` (its expiry); forget tokens past theirs."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(delete(T).where(T.c.until < now))
        digest = _hash(token)
        if conn.execute(select(T.c.token_hash).where(T.c.token_hash == digest)).first() is None:
            conn.execute(insert(T).values(token_hash=digest, until=until))


def signed_out(engine: Engine, token: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(select(T.c.until).where(T.c.token_hash == _hash(token))).first()
    return row is not None and row.until > datetime.now(UTC)

"""Alembic environment: the URL comes from the caller (``scr db upgrade`` or the tests)."""

from __future__ import annotations

from alembic import context

from audit import tables as _audit_tables  # noqa: F401  (its tables on Base)
from engine import access as _access  # noqa: F401  (its tables on Base)
from engine import directory as _directory  # noqa: F401  (its table on Base)
from engine.db import make_engine
from engine.identity import tables as _identity_tables  # noqa: F401  (its tables on Base)
from engine.models import Base
from engine.transfer import tables as _transfer_tables  # noqa: F401  (its tables on Base)

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("sqlalchemy.url is not set: run migrations through engine.migrate")

connection = config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()

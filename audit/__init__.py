"""The tamper-evident audit trail of every access (issue 5).

Use: one :class:`Writer` per process; for every access decision build the entry with
:func:`entry_for` and pass what may leave through :func:`disclose`, which appends first and
fails closed. :func:`verify` walks the chain, :mod:`audit.checkpoint` signs and checks
checkpoints, :mod:`audit.export` writes BALP AuditEvents and CSV. See docs/audit.md.
"""

from __future__ import annotations

from audit.access import Appender, disclose
from audit.chain import GENESIS, Problem, Sealed, seal
from audit.entry import AuditEntry, RequestContext, entry_for
from audit.verify import Report, verify
from audit.writer import (
    AuditUnavailable,
    Writer,
    append,
    append_batch,
    append_within,
    commit_with,
)

__all__ = [
    "GENESIS",
    "Appender",
    "AuditEntry",
    "AuditUnavailable",
    "Problem",
    "Report",
    "RequestContext",
    "Sealed",
    "Writer",
    "append",
    "append_batch",
    "append_within",
    "commit_with",
    "disclose",
    "entry_for",
    "seal",
    "verify",
]

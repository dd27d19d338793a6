"""The tamper-evident audit trail of every access (issue 5)."""

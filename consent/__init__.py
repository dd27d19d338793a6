"""Consent and access policy: the single decision point in front of every read (issue 4)."""

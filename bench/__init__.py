"""Benchmarks: ``python -m bench <scenario>``; each prints its figures as one JSON line last."""

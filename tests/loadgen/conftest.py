"""Fixtures of the loadgen tests: a real reference service and a store (tests/loadrun.py)."""

from tests.loadrun import reference_service, store  # noqa: F401

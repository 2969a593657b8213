"""Fixtures of the runs tests: a real reference service and a store (tests/loadrun.py)."""

from tests.loadrun import reference_service, store  # noqa: F401

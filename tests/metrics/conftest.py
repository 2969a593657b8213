"""Fixtures shared with the load tests (a real reference service)."""

from tests.loadrun import reference_service, store  # noqa: F401

"""Fixtures shared with the load tests (a real reference service)."""

from tests.load.conftest import reference_service, store  # noqa: F401

"""Errors the service answers with 503 + ``Retry-After`` instead of a traceback."""

from __future__ import annotations

import math


class Unavailable(Exception):
    """A dependency (database, model backends) cannot serve now; retry after ``retry_after`` s."""

    status_code = 503

    def __init__(self, detail: str, retry_after: float = 1.0):
        self.detail = detail
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(detail)

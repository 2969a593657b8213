"""A store wrapper for live runs: the first store failure is remembered, later writes are skipped.

The load goes on and the raw files keep every measurement; ``capkit load RUN_DIR`` puts them
into the store once it is back. Reads are passed through unchanged.
"""

from __future__ import annotations

from capkit.errors import StoreError


def is_live_write(name: str) -> bool:
    """The writes a live run makes (every ``add_*`` and ``upsert_*``, and ``finish_run``): guarded."""
    return name.startswith(("add_", "upsert_")) or name == "finish_run"


class GuardedStore:
    def __init__(self, store):
        self._store = store
        self.failure: StoreError | None = None

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not is_live_write(name):
            return attr

        def guarded(*args, **kwargs):
            if self.failure is not None:
                return 0
            try:
                return attr(*args, **kwargs)
            except StoreError as exc:
                self.failure = exc
                return 0

        return guarded

"""The results store (SQL): runs, steps, request stats, resource samples, events."""

from capkit.store.store import Store, make_store_engine, open_store

__all__ = ["Store", "make_store_engine", "open_store"]

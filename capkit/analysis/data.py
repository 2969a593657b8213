"""Loading a stored run into DataFrames (the analysis reads the store, never writes it)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from capkit.errors import ConfigError
from capkit.store import Store, open_store


@dataclass
class RunData:
    """Everything stored about one run."""

    run: dict
    steps: pd.DataFrame
    requests: pd.DataFrame
    samples: pd.DataFrame

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def warmup_s(self) -> float:
        return float(self.run["spec"]["plan"].get("warmup_s", 0.0))


def resolve_url(url: str) -> str:
    """``env:NAME`` reads the URL from environment variable NAME (keeps secrets out of notebooks)."""
    if url.startswith("env:"):
        name = url[4:]
        if not os.environ.get(name):
            raise ConfigError(f"store URL is {url!r} but environment variable {name} is not set")
        return os.environ[name]
    return url


def load_run(store: Store | str, run_id: str | None = None) -> RunData:
    """Load ``run_id`` (the latest run when None) from a store or a store URL.

    Raises :class:`~capkit.errors.RunNotFoundError` for an unknown id.
    """
    if isinstance(store, str):
        store = open_store(resolve_url(store), create=False)
    if run_id is None:
        run_id = store.latest_run_id() or "<latest>"
    run = store.get_run(run_id)
    return RunData(run=run, steps=store.steps(run_id), requests=store.request_stats(run_id),
                   samples=store.samples(run_id))

"""Reading a stored run into DataFrames (the analysis reads the store, never writes it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from capkit.analysis.data.steps import with_settling
from capkit.errors import CapkitError, ConfigError
from capkit.schemas import RunMeta
from capkit.store import Store, open_store

# the store a report kernel reads (set by `capkit report`; the tests hand the fixture store in here)
REPORT_STORE_ENV = "CAPKIT_REPORT_STORE_URL"


@dataclass
class RunData:
    """Everything stored about one run: its metadata and its steps, request rows and samples; the
    LLM records (``llm``) and latencies from the intended start (``corrected``) when measured."""

    meta: RunMeta
    steps: pd.DataFrame
    requests: pd.DataFrame
    samples: pd.DataFrame
    events: pd.DataFrame | None = None

    @property
    def search(self) -> dict | None:
        """What the capacity search did (stop reason, brackets), when this run was a search."""
        import json

        if self.events is None or self.events.empty:
            return None
        rows = self.events[self.events["kind"] == "search"]
        return json.loads(rows["detail"].iloc[-1]) if len(rows) else None
    llm: pd.DataFrame = field(default_factory=pd.DataFrame)
    corrected: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def run_id(self) -> str:
        return self.meta.run_id

    @property
    def warmup_s(self) -> float:
        return float(self.meta.spec.plan.warmup_s)


def resolve_url(url: str | None) -> str:
    """The store URL to read.

    ``env:NAME`` reads it from environment variable NAME (keeps secrets out of notebooks). None
    means the project's own store: ``CAPKIT_REPORT_STORE_URL``, else ``CAPKIT_STORE_URL``, else
    ``runs/capkit.sqlite`` of the project a notebook is opened in (its folder or a parent's), so
    an analyst who opens a notebook sees their own latest run.
    """
    if url is None:
        for name in (REPORT_STORE_ENV, "CAPKIT_STORE_URL"):
            if os.environ.get(name):
                return os.environ[name]
        return _project_store()
    if url.startswith("env:"):
        name = url[4:]
        if not os.environ.get(name):
            raise ConfigError(f"store URL is {url!r} but environment variable {name} is not set")
        return os.environ[name]
    return url


def _project_store() -> str:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "runs" / "capkit.sqlite").exists() or (folder / "pyproject.toml").exists():
            return f"sqlite:///{folder / 'runs' / 'capkit.sqlite'}"
    return "sqlite:///runs/capkit.sqlite"


def read_run(store: Store | str | None = None, run_id: str | None = None, *, before: str | None = None) -> RunData:
    """Read ``run_id`` from a store or a store URL (see :func:`resolve_url`).

    Parameters
    ----------
    store : Store, str or None
        An open store, a URL, or None for the project's own store.
    run_id : str, optional
        The run; None for the latest run (the latest before ``before``, when given).
    before : str, optional
        With ``run_id=None``: the run stored just before this one (a comparison's baseline).

    Raises
    ------
    RunNotFoundError
        For an unknown id.
    """
    if not isinstance(store, Store):
        store = open_store(resolve_url(store), create=False)
    if run_id is None:
        run_id = store.latest_run_id(before=before)
        if run_id is None:
            raise CapkitError("the results store holds no " + ("earlier run" if before else "runs yet")
                              + "; run `capkit plan` first")
    meta = store.get_run(run_id)
    requests = store.request_stats(run_id)
    # every reader of the steps counts a step from the same second: after a heavier step's backlog
    steps = with_settling(store.steps(run_id), requests, float(meta.spec.plan.warmup_s))
    return RunData(meta=meta, steps=steps, requests=requests,
                   samples=store.samples(run_id), events=store.events(run_id), llm=store.llm_stats(run_id),
                   corrected=store.request_corrected(run_id))

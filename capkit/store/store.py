"""The only code that writes the results store; readers return DataFrames."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from sqlalchemy import create_engine, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from capkit.errors import RunNotFoundError, StoreError, redact_url
from capkit.schemas import RunMeta, RunStatus
from capkit.store import tables as t

if TYPE_CHECKING:
    import pandas as pd  # imported where frames are read: opening a store stays light


# several runs may write one store at once: a write that meets a lock (SQLite "database is
# locked", PostgreSQL deadlock or serialization failure) is retried after these pauses (×1–2,
# jittered), ~13 s in all, on top of SQLite's own busy timeout
RETRY_PAUSES_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
SQLITE_BUSY_TIMEOUT_S = 30.0
_TRANSIENT = ("database is locked", "database table is locked", "database is busy", "deadlock detected",
              "could not serialize access")


def _transient(exc: SQLAlchemyError) -> bool:
    """A lock held by another writer: worth another try."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(part in text for part in _TRANSIENT)


def _pause(attempt: int) -> None:
    time.sleep(RETRY_PAUSES_S[attempt] * (1 + random.random()))


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_store_engine(url: str) -> Engine:
    """Create an engine for ``url`` (creating a SQLite file's folder); no tables touched."""
    safe = redact_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(safe, "not a database URL (example: sqlite:///runs/capkit.sqlite)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(safe, f"cannot create folder {folder}: {exc.strerror}") from None
    try:
        # pysqlite's timeout is SQLite's busy timeout: a writer waits for another's lock
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S} if parsed.get_backend_name() == "sqlite" else {}
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise StoreError(safe, str(exc).splitlines()[0]) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """A results store at one SQLAlchemy URL. Create with :func:`open_store`."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = redact_url(url)

    # -- writing -------------------------------------------------------------------------
    def _write(self, work):
        """``work(connection)`` in one transaction (every write goes through here: the live-run
        guard relies on its :class:`StoreError`), retried while another writer holds a lock
        (:data:`RETRY_PAUSES_S`); any other failure, or a lock that outlasts the retries, is a
        :class:`StoreError`."""
        for attempt in range(len(RETRY_PAUSES_S) + 1):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if attempt == len(RETRY_PAUSES_S) or not _transient(exc):
                    raise StoreError(self.url, str(exc.orig).splitlines()[0] if exc.orig
                                     else "operational error") from None
                _pause(attempt)

    def _exec(self, stmt, rows=None):
        return self._write(lambda conn: conn.execute(stmt, rows) if rows is not None else conn.execute(stmt))

    def create_run(self, *, run_id: str, target: str, scenario: str, spec: dict, machine: dict,
                   git_sha: str | None = None, created_at: float | None = None) -> None:
        try:
            self._exec(insert(t.runs).values(
                run_id=run_id, created_at=created_at or time.time(), status=RunStatus.RUNNING, target=target,
                scenario=scenario, git_sha=git_sha, spec=json.dumps(spec, default=str),
                machine=json.dumps(machine, default=str)))
        except IntegrityError:
            raise StoreError(self.url, f"run {run_id} is already in it; start the run again for a new id") from None

    def finish_run(self, run_id: str, status: str, reason: str | None = None, ended_at: float | None = None) -> None:
        self._exec(update(t.runs).where(t.runs.c.run_id == run_id).values(
            status=status, reason=reason, ended_at=ended_at or time.time()))

    def upsert_step(self, run_id: str, step: int, *, users: int, planned_s: float, started_at: float,
                    ended_at: float | None, complete: bool, rate: float | None = None) -> None:
        def work(conn):
            found = conn.execute(select(t.steps.c.step).where(
                (t.steps.c.run_id == run_id) & (t.steps.c.step == step))).first()
            values = dict(users=users, rate=rate, planned_s=planned_s, started_at=started_at,
                          ended_at=ended_at, complete=int(complete))
            if found:
                conn.execute(update(t.steps).where(
                    (t.steps.c.run_id == run_id) & (t.steps.c.step == step)).values(**values))
            else:
                conn.execute(insert(t.steps).values(run_id=run_id, step=step, **values))

        self._write(work)

    def add_request_stats(self, run_id: str, rows: Iterable[dict]) -> int:
        rows = [dict(r, run_id=run_id) for r in rows]
        if rows:
            self._exec(insert(t.request_stats), rows)
        return len(rows)

    def add_llm_stats(self, run_id: str, rows: Iterable[dict]) -> int:
        """Store per-second LLM records (:mod:`capkit.records.llm`) with their step and users."""
        rows = [dict(r, run_id=run_id) for r in rows]
        if rows:
            self._exec(insert(t.llm_stats), rows)
        return len(rows)

    def add_request_corrected(self, run_id: str, rows: Iterable[dict]) -> int:
        """Store per-second latencies from the intended start (arrival-rate steps)."""
        rows = [dict(r, run_id=run_id) for r in rows]
        if rows:
            self._exec(insert(t.request_corrected), rows)
        return len(rows)

    def add_samples(self, run_id: str, rows: Iterable[dict]) -> int:
        rows = [dict(r, run_id=run_id) for r in rows]
        if rows:
            self._exec(insert(t.resource_samples), rows)
        return len(rows)

    def add_event(self, run_id: str, kind: str, detail: str | None = None, ts: float | None = None) -> None:
        self._exec(insert(t.events).values(run_id=run_id, ts=ts or time.time(), kind=kind, detail=detail))

    def delete_run(self, run_id: str) -> None:
        def work(conn):
            for table in (t.events, t.resource_samples, t.request_stats, t.llm_stats, t.request_corrected,
                          t.steps, t.runs):
                conn.execute(table.delete().where(table.c.run_id == run_id))

        self._write(work)

    # -- reading -------------------------------------------------------------------------
    def _frame(self, stmt) -> pd.DataFrame:
        import pandas as pd

        return self._read(lambda conn: pd.read_sql(stmt, conn))

    def _read(self, read):
        """``read(connection)``, with a store that cannot be read reported as :class:`StoreError`."""
        try:
            with self.engine.connect() as conn:
                return read(conn)
        except OperationalError as exc:
            raise StoreError(self.url, str(exc.orig).splitlines()[0] if exc.orig else "operational error") from None

    def list_runs(self) -> pd.DataFrame:
        return self._frame(select(t.runs).order_by(t.runs.c.created_at.desc()))

    def get_run(self, run_id: str) -> RunMeta:
        """The run's metadata; without pandas, which `capkit report` would otherwise import just
        to check the run exists (~0.5 s)."""
        def read(conn):
            found = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
            if found is None:  # name the latest runs instead
                raise RunNotFoundError(run_id, list(conn.execute(
                    select(t.runs.c.run_id).order_by(t.runs.c.created_at.desc()).limit(3)).scalars()))
            return found

        return RunMeta.from_row(dict(self._read(read)))

    def latest_run_id(self, *, before: str | None = None) -> str | None:
        """The newest run's id (the newest one older than run ``before``, when given), or None."""
        stmt = select(t.runs.c.run_id).order_by(t.runs.c.created_at.desc(), t.runs.c.run_id.desc()).limit(1)
        if before is not None:
            created = select(t.runs.c.created_at).where(t.runs.c.run_id == before).scalar_subquery()
            stmt = stmt.where(t.runs.c.created_at < created)
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def steps(self, run_id: str) -> pd.DataFrame:
        return self._frame(select(t.steps).where(t.steps.c.run_id == run_id).order_by(t.steps.c.step))

    def request_stats(self, run_id: str) -> pd.DataFrame:
        return self._frame(select(t.request_stats).where(t.request_stats.c.run_id == run_id)
                           .order_by(t.request_stats.c.ts))

    def llm_stats(self, run_id: str) -> pd.DataFrame:
        """The run's LLM records; empty for runs without token timing (and stores made before the table)."""
        return self._optional(t.llm_stats, run_id)

    def request_corrected(self, run_id: str) -> pd.DataFrame:
        """Latencies from the intended start; empty without arrival-rate steps."""
        return self._optional(t.request_corrected, run_id)

    def _optional(self, table, run_id: str) -> pd.DataFrame:
        import pandas as pd

        # a store opened read-only (create=False) may predate the table: nothing measured, no error
        if not self._read(lambda conn: inspect(conn).has_table(table.name)):
            return pd.DataFrame(columns=[c.name for c in table.columns])
        return self._frame(select(table).where(table.c.run_id == run_id).order_by(table.c.ts))

    def samples(self, run_id: str) -> pd.DataFrame:
        return self._frame(select(t.resource_samples).where(t.resource_samples.c.run_id == run_id)
                           .order_by(t.resource_samples.c.ts))

    def events(self, run_id: str) -> pd.DataFrame:
        return self._frame(select(t.events).where(t.events.c.run_id == run_id).order_by(t.events.c.ts))

    def count(self, table: str, run_id: str) -> int:
        tab = t.metadata.tables[table]
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(tab).where(tab.c.run_id == run_id)).scalar()


def open_store(url: str, *, create: bool = True) -> Store:
    """Open (and by default create) the results store at ``url``.

    Raises :class:`StoreError` with one line when the URL is malformed, the server does not
    answer, or the schema is of another version.
    """
    safe = redact_url(url)
    if not create:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(safe, "not a database URL (example: sqlite:///runs/capkit.sqlite)") from None
        db = parsed.database
        if parsed.get_backend_name() == "sqlite" and db and db != ":memory:" and not Path(db).exists():
            raise StoreError(safe, "no such file yet; run `capkit plan` or `capkit run` first")
    engine = make_store_engine(url)
    for attempt in range(len(RETRY_PAUSES_S) + 1):
        try:
            _open_schema(engine, safe, create)
            break
        except (OperationalError, IntegrityError, ProgrammingError) as exc:
            # two runs creating one new store at once: the loser finds the tables half-made
            # (SQLite: locked / "already exists"; PostgreSQL: a duplicate type or key) and tries again
            if attempt == len(RETRY_PAUSES_S) or not (_transient(exc) or "already exists" in str(exc.orig)
                                                       or isinstance(exc, IntegrityError)):
                engine.dispose()
                if isinstance(exc, OperationalError):
                    msg = str(exc.orig).strip().splitlines()[0] if exc.orig else "cannot connect"
                    raise StoreError(safe, msg) from None
                raise StoreError(safe, str(exc).splitlines()[0]) from None
            _pause(attempt)
        except StoreError:
            engine.dispose()
            raise
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(safe, str(exc).splitlines()[0]) from None
    return Store(engine, url)


def _add_columns(conn) -> None:
    """Columns added to a table since a store was made (``tables.ADDED_COLUMNS``), added to it: nullable,
    so the rows it holds read as not measured there."""
    inspector = inspect(conn)
    for table, names in t.ADDED_COLUMNS.items():
        if not inspector.has_table(table):
            continue
        have = {c["name"] for c in inspector.get_columns(table)}
        for name in names:
            if name not in have:
                col = t.metadata.tables[table].c[name]
                kind = col.type.compile(dialect=conn.dialect)
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


def _open_schema(engine: Engine, safe: str, create: bool) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # one creator at a time (released at commit)
            conn.execute(text("SELECT pg_advisory_xact_lock(4242019)"))
        if create:
            t.metadata.create_all(conn)
            t.runs_created.create(conn, checkfirst=True)  # stores made before the index was added
        elif not inspect(conn).has_table(t.schema_version.name):
            raise StoreError(safe, "it holds no capkit results yet; run `capkit plan` or `capkit run` first")
        _add_columns(conn)
        version = conn.execute(select(t.schema_version.c.version)).scalar()
        if version is None:
            conn.execute(insert(t.schema_version).values(version=t.SCHEMA_VERSION))
        elif version != t.SCHEMA_VERSION:
            raise StoreError(safe, f"schema version {version}, this capkit reads {t.SCHEMA_VERSION}")

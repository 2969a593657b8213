"""PostgreSQL as the service's database: connections by state and the CPU of its backends."""

from __future__ import annotations

import time

import psutil

from capkit.errors import ConfigError, redact_url

STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call",
          "disabled")
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


def _metric(state: str) -> str:
    return "pg_" + state.replace(" (aborted)", "_aborted").replace(" ", "_")


class PostgresCollector:
    """``pg_stat_activity`` for one database, plus the CPU of its backend processes.

    Each sample gives ``pg_connections`` (client backends of the database, this collector's
    own excluded), one ``pg_<state>`` count per state (``pg_active``, ``pg_idle``,
    ``pg_idle_in_transaction`` …) and, when the server runs on this machine and its processes
    can be read, ``pg_backend_cpu_cores`` (the seed's "DB CPU": cores used by those backends
    since the previous sample).

    Parameters
    ----------
    url:
        The service's database URL (``postgresql+psycopg://…``); the collector opens one
        connection of its own to it.
    """

    source = "postgres"

    def __init__(self, url: str):
        import psycopg
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.safe_url = redact_url(url)
        self.database = parsed.database
        self._local = (parsed.host or "") in LOCAL_HOSTS
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot monitor PostgreSQL at {self.safe_url}: {reason}") from None
        self._cpu_prev: dict[int, float] = {}
        self._t_prev: float | None = None

    def sample(self) -> dict[str, float]:
        try:
            rows = self._conn.execute(
                "SELECT pid, coalesce(state, 'unknown') FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                (self.database,)).fetchall()
        except Exception:  # noqa: BLE001 - a missed sample must not end the run
            return {}
        out = {"pg_connections": float(len(rows)), **{_metric(s): 0.0 for s in STATES}}
        for _pid, state in rows:
            out[_metric(state)] = out.get(_metric(state), 0.0) + 1
        if self._local:
            cpu = self._backend_cpu([pid for pid, _ in rows])
            if cpu is not None:
                out["pg_backend_cpu_cores"] = cpu
        return out

    def _backend_cpu(self, pids: list[int]) -> float | None:
        now = time.monotonic()
        cpu_now: dict[int, float] = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                cpu_now[pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        prev_t, prev = self._t_prev, self._cpu_prev
        self._cpu_prev, self._t_prev = cpu_now, now
        if pids and not cpu_now:
            return None  # the server's processes are not visible here (container, other user)
        if prev_t is None or now <= prev_t:
            return None
        # a backend born since the last sample contributes only what it used since then (≈ its total)
        used = sum(max(cpu - prev.get(pid, 0.0), 0.0) for pid, cpu in cpu_now.items())
        return used / (now - prev_t)

    def close(self) -> None:
        self._conn.close()

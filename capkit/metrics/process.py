"""Resource samples of a process tree with psutil: CPU cores, RSS, threads, fds, DB connections."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

from capkit.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class DbTarget:
    """How to count a service's open database connections: a SQLite file or a TCP port."""

    kind: str  # "file" | "tcp"
    path: str = ""
    port: int = 0

    @classmethod
    def from_url(cls, url: str | None) -> "DbTarget | None":
        if not url:
            return None
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            return cls(kind="file", path=os.path.realpath(path)) if path and path != ":memory:" else None
        parts = urlsplit(url)
        default = {"postgresql": 5432, "mysql": 3306}.get(parts.scheme.split("+")[0], 0)
        return cls(kind="tcp", port=parts.port or default)


class ProcessTreeSampler:
    """Samples a process and its descendants; CPU is averaged between two calls.

    Parameters
    ----------
    pid:
        Root of the tree (e.g. the uvicorn master).
    db:
        Where the service's database connections go, or None to not count them.
    """

    def __init__(self, pid: int, db: DbTarget | None = None):
        try:
            self.root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ConfigError(f"no process with PID {pid}; pass the PID of the running service (--pid)") from None
        self.db = db
        self._cpu_prev: dict[int, float] = {}
        self._demand_prev: dict[int, float] = {}
        self._t_prev: float | None = None
        self._procs: dict[int, psutil.Process] = {pid: self.root}

    def _tree(self) -> list[psutil.Process]:
        pids = tree_pids(self.root.pid)
        if pids is None:  # no children files in this kernel: psutil reads every process's stat
            try:
                return [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return []
        procs = []
        for pid in pids:
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue
            procs.append(proc)
        self._procs = {proc.pid: proc for proc in procs}  # kept: a Process reads its start time once
        return procs

    def alive(self) -> bool:
        return self.root.is_running() and self.root.status() != psutil.STATUS_ZOMBIE

    def sample(self) -> dict[str, float]:
        """One sample: ``cpu_cores`` (since the previous call), ``cpu_max_process`` (the busiest
        process's cores), ``cpu_demand_max_process`` (the most any process ran + waited for a
        core, Linux), ``rss_mib``, ``threads``, ``fds``, ``db_connections``. Empty when the
        process is gone."""
        now = time.monotonic()
        cpu_now: dict[int, float] = {}
        demand_now: dict[int, float] = {}
        rss = threads = fds = conns = 0
        procs = self._tree()
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu_now[proc.pid] = times.user + times.system
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    fds += proc.num_fds()
                    conns += self._db_connections(proc)
                demand = _run_and_wait_s(proc.pid)
                if demand is not None:
                    demand_now[proc.pid] = demand
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if not cpu_now:
            return {}
        out = {"rss_mib": rss / MIB, "threads": float(threads), "fds": float(fds)}
        if self.db is not None:
            out["db_connections"] = float(conns)
        if self._t_prev is not None and now > self._t_prev:
            # a process born since the last sample contributes all its CPU time so far
            per_process = [max(cpu - self._cpu_prev.get(pid, 0.0), 0.0) for pid, cpu in cpu_now.items()]
            out["cpu_cores"] = sum(per_process) / (now - self._t_prev)
            # the busiest single process: a Locust process saturates at one core, however many run
            out["cpu_max_process"] = max(per_process) / (now - self._t_prev)
            if demand_now:
                wanted = [max(d - self._demand_prev.get(pid, d), 0.0) for pid, d in demand_now.items()]
                out["cpu_demand_max_process"] = max(wanted) / (now - self._t_prev)
        self._cpu_prev, self._t_prev = cpu_now, now
        self._demand_prev = demand_now
        return out

    def _db_connections(self, proc: psutil.Process) -> int:
        if self.db is None:
            return 0
        if self.db.kind == "file":
            return sum(1 for f in proc.open_files() if f.path == self.db.path)
        return sum(1 for c in proc.net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == self.db.port and c.status == psutil.CONN_ESTABLISHED)


def child_pids(pid: int, proc: str = "/proc") -> list[int] | None:
    """Direct children of ``pid``, from ``/proc/<pid>/task/<tid>/children`` (Linux ≥ 3.5): one small
    read per thread of the tree, where psutil's ``children()`` reads the stat file of every process
    on the machine (≈ 85 % of a sample's CPU with ~90 processes). ``[]`` when ``pid`` is gone;
    None when the kernel has no such files (then use psutil)."""
    task = f"{proc}/{pid}/task"
    try:
        tids = os.listdir(task)
    except OSError:
        return []
    if not os.path.exists(f"{task}/{pid}/children"):
        return None if os.path.exists(f"{task}/{pid}") else []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"{task}/{tid}/children", "rb") as fh:
                out.extend(int(child) for child in fh.read().split())
        except OSError:  # the thread ended meanwhile
            continue
    return out


def tree_pids(root: int, proc: str = "/proc") -> list[int] | None:
    """``root`` and all its descendants (see :func:`child_pids`), or None where the kernel cannot tell."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        children = child_pids(pid, proc)
        if children is None:
            return None
        out.append(pid)
        todo.extend(children)
    return out


def _run_and_wait_s(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` ran plus waited for a CPU (Linux ``schedstat``).

    Its rate is the CPU a process *wanted*: a saturated process is near 1 even on a machine
    whose cores are shared, where its CPU alone stays lower."""
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            run_ns, wait_ns, _ = fh.read().split()
    except (OSError, ValueError):
        return None
    return (int(run_ns) + int(wait_ns)) / 1e9

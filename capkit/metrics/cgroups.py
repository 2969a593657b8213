"""Pod-like limits through cgroups (v1 or v2): a CFS quota and a memory limit for a process tree,
and what they did to it — throttled periods, throttled time, memory charged, OOM kills.

A Kubernetes pod's ``resources.limits`` are exactly these two knobs: ``cpu: 500m`` is a CFS quota
of 50 ms per 100 ms period, ``memory: 512Mi`` a memory limit whose breach OOM-kills the container.
A quota throttles a process that is busy for a burst even when its average CPU is low, which is
why throttling is sampled as a resource of its own.

Each :class:`Cgroup` is capkit's own, created under the caller's cgroup (v1: per controller, so
that whatever accounts for the caller still accounts for the child) or under the v2 hierarchy's
root, and removed by :meth:`Cgroup.remove` once its processes are gone.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from capkit.errors import ConfigError

MIB = 1024 * 1024
CFS_PERIOD_US = 100_000
MIN_CPU_CORES = 0.01  # a quota of 1 ms per 100 ms period: the kernel's minimum
ROOT = "/sys/fs/cgroup"


class CgroupError(ConfigError):
    """Cgroups are absent or not writable here, so a limit cannot be enforced."""


def own_cgroup_path(controller: str, proc_self: str = "/proc/self/cgroup") -> str:
    """The caller's cgroup path for a v1 ``controller`` ("" for v2's unified line)."""
    try:
        lines = Path(proc_self).read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return "/"


def cgroup_version(root: str = ROOT) -> int | None:
    """2 for a unified hierarchy at ``root``, 1 for v1 ``cpu`` and ``memory`` mounts, None otherwise."""
    base = Path(root)
    if (base / "cgroup.controllers").exists():
        return 2
    if (base / "cpu" / "cpu.cfs_quota_us").exists() and (base / "memory" / "memory.limit_in_bytes").exists():
        return 1
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read(path: Path) -> str:
    with open(path) as fh:
        return fh.read()


def _fields(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


@dataclass
class Cgroup:
    """One cgroup of capkit's own with a CPU quota and/or a memory limit.

    Parameters
    ----------
    name : str
        A unique name (``capkit-<run>-r1``); the directory created under each controller.
    cpu_cores, memory_mib : float or None
        The limits; None leaves that controller unlimited (its statistics are still read).
    root : str
        Where the cgroup filesystem is mounted.
    """

    name: str
    cpu_cores: float | None = None
    memory_mib: float | None = None
    root: str = ROOT
    version: int = 0
    paths: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str, *, cpu_cores: float | None = None, memory_mib: float | None = None,
               root: str = ROOT) -> "Cgroup":
        """Create the cgroup and set its limits; :class:`CgroupError` (one line) when this machine
        cannot, with nothing left behind."""
        version = cgroup_version(root)
        if version is None:
            raise CgroupError(f"no cgroup v1 cpu and memory controllers or v2 hierarchy at {root}: "
                              f"--cpu-limit and --memory-limit-mib cannot be enforced here")
        if version == 1:
            paths = {c: Path(root) / c / own_cgroup_path(c).lstrip("/") / name for c in ("cpu", "memory")}
        else:
            paths = {"": Path(root) / name}
        group = cls(name=name, cpu_cores=cpu_cores, memory_mib=memory_mib, root=root, version=version, paths=paths)
        made: dict[str, Path] = {}
        try:
            if version == 2:
                _write(Path(root) / "cgroup.subtree_control", "+cpu +memory")
            for controller, path in paths.items():
                path.mkdir()
                made[controller] = path
            group._limit()
        except OSError as exc:
            group.paths = made  # remove what this call made, nothing else
            group.remove()
            raise CgroupError(f"cgroups at {root} are not writable here ({exc.strerror or exc}): --cpu-limit and "
                              f"--memory-limit-mib need root or a delegated cgroup") from None
        return group

    def _limit(self) -> None:
        if self.version == 1:
            cpu, mem = self.paths["cpu"], self.paths["memory"]
            if self.cpu_cores is not None:
                _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(cpu / "cpu.cfs_quota_us", str(round(self.cpu_cores * CFS_PERIOD_US)))
            if self.memory_mib is not None:
                limit = str(int(self.memory_mib * MIB))
                _write(mem / "memory.limit_in_bytes", limit)
                if (mem / "memory.memsw.limit_in_bytes").exists():  # no swapping past the limit
                    _write(mem / "memory.memsw.limit_in_bytes", limit)
        else:
            path = self.paths[""]
            if self.cpu_cores is not None:
                _write(path / "cpu.max", f"{round(self.cpu_cores * CFS_PERIOD_US)} {CFS_PERIOD_US}")
            if self.memory_mib is not None:
                _write(path / "memory.max", str(int(self.memory_mib * MIB)))
                if (path / "memory.swap.max").exists():
                    _write(path / "memory.swap.max", "0")

    @property
    def procs_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths.values()]

    def enter(self) -> None:
        """Move the calling process into the cgroup (a ``preexec_fn``: its children follow)."""
        for procs in self.procs_files:
            _write(Path(procs), str(os.getpid()))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in _read(Path(self.procs_files[0])).split()]
        except OSError:
            return []

    def stats(self) -> dict[str, float]:
        """Cumulative counters: ``nr_periods``, ``nr_throttled``, ``throttled_s``, ``oom_kills``,
        ``memory_bytes``; {} once the cgroup is gone."""
        try:
            if self.version == 1:
                cpu = _fields(_read(self.paths["cpu"] / "cpu.stat"))
                oom = _fields(_read(self.paths["memory"] / "memory.oom_control"))
                usage = float(_read(self.paths["memory"] / "memory.usage_in_bytes"))
                throttled_s = cpu.get("throttled_time", 0) / 1e9
            else:
                path = self.paths[""]
                cpu = _fields(_read(path / "cpu.stat"))
                oom = _fields(_read(path / "memory.events"))
                usage = float(_read(path / "memory.current"))
                throttled_s = cpu.get("throttled_usec", 0) / 1e6
        except (OSError, ValueError):
            return {}
        return {"nr_periods": float(cpu.get("nr_periods", 0)), "nr_throttled": float(cpu.get("nr_throttled", 0)),
                "throttled_s": throttled_s, "oom_kills": float(oom.get("oom_kill", 0)), "memory_bytes": usage}

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the cgroup's directories (waits for exiting processes; kills none)."""
        end = time.monotonic() + timeout
        for path in self.paths.values():
            while path.exists():
                try:
                    path.rmdir()
                except OSError:
                    if time.monotonic() > end:
                        break
                    time.sleep(0.05)


class CgroupCollector:
    """Samples one :class:`Cgroup`: what its limits did to the process tree inside.

    Each sample gives ``cgroup_memory_mib`` (memory charged: RSS plus page cache), ``oom_kills``
    (since the collector was made) and, from the second sample on, ``cpu_throttled_share``
    (throttled periods over periods with runnable work) and ``cpu_throttled_s_per_s`` (seconds
    the tree was held back per second). The limits ride along as ``cpu_quota_cores`` and
    ``memory_limit_mib``.
    """

    source = "service"

    def __init__(self, group: Cgroup, source: str = "service"):
        self.group = group
        self.source = source
        self._first = group.stats()
        self._prev: tuple[float, dict] | None = None

    def oom_kills(self) -> int:
        now = self.group.stats()
        return int(now.get("oom_kills", 0) - self._first.get("oom_kills", 0)) if now else 0

    def sample(self) -> dict[str, float]:
        stats = self.group.stats()
        if not stats:
            return {}
        t = time.monotonic()
        out = {"cgroup_memory_mib": stats["memory_bytes"] / MIB,
               "oom_kills": stats["oom_kills"] - self._first.get("oom_kills", 0.0)}
        if self.group.cpu_cores is not None:
            out["cpu_quota_cores"] = self.group.cpu_cores
        if self.group.memory_mib is not None:
            out["memory_limit_mib"] = self.group.memory_mib
        if self._prev is not None and t > self._prev[0]:
            prev = self._prev[1]
            periods = stats["nr_periods"] - prev["nr_periods"]
            throttled = stats["nr_throttled"] - prev["nr_throttled"]
            out["cpu_throttled_periods"] = max(throttled, 0.0)
            out["cpu_throttled_share"] = throttled / periods if periods > 0 else 0.0
            out["cpu_throttled_s_per_s"] = max(stats["throttled_s"] - prev["throttled_s"], 0.0) / (t - self._prev[0])
        self._prev = (t, stats)
        return out

    def close(self) -> None:
        pass


__all__ = ["Cgroup", "CgroupCollector", "CgroupError", "cgroup_version", "CFS_PERIOD_US", "MIN_CPU_CORES"]

"""Pod-like limits through real cgroups: a quota throttles a busy loop, a memory limit OOM-kills a hog."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from capkit.metrics.cgroups import Cgroup, CgroupCollector, CgroupError, own_cgroup_path
from tests.fleetparts import require_cgroups


@pytest.fixture
def group():
    require_cgroups()
    made = []

    def _make(**limits):
        made.append(Cgroup.create(f"capkit-test-{len(made)}-{time.monotonic_ns()}", **limits))
        return made[-1]

    yield _make
    for g in made:
        g.remove()


def _child(code: str, group: Cgroup) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], preexec_fn=group.enter)


def test_a_busy_loop_over_its_quota_is_throttled(group):
    g = group(cpu_cores=0.2)
    collector = CgroupCollector(g)
    proc = _child("while True: pass", g)
    try:
        assert g.pids() == [proc.pid]
        collector.sample()
        time.sleep(1.5)
        values = collector.sample()
    finally:
        proc.kill()
        proc.wait(5)
    # 15 periods of 100 ms: a loop that wants a whole core gets 20 ms of each and waits out the rest
    assert values["cpu_quota_cores"] == 0.2
    assert values["cpu_throttled_periods"] >= 8, values
    assert values["cpu_throttled_share"] > 0.6, values
    assert values["cpu_throttled_s_per_s"] > 0.3, values


def test_a_memory_hog_over_64_mib_is_oom_killed_and_counted(group):
    g = group(memory_mib=64)
    collector = CgroupCollector(g)
    proc = _child("x = []\nwhile True: x.append(bytearray(4 << 20))", g)
    assert proc.wait(30) == -9  # SIGKILL from the kernel's OOM killer, not an exception of its own
    assert collector.oom_kills() == 1
    assert collector.sample()["oom_kills"] == 1.0


def test_removed_cgroup_leaves_nothing(group):
    g = group(cpu_cores=0.5, memory_mib=128)
    assert all(p.exists() for p in g.paths.values())
    g.remove()
    assert not any(p.exists() for p in g.paths.values())
    assert CgroupCollector(g).sample() == {}


def test_no_cgroup_filesystem_is_one_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="cannot be enforced here"):
        Cgroup.create("capkit-test-none", cpu_cores=0.5, root=str(tmp_path))


def test_unwritable_cgroups_are_one_clear_error_and_leave_nothing(tmp_path):
    # a v1 layout whose directories cannot be made (a file stands where the cgroup would go)
    for controller, probe in (("cpu", "cpu.cfs_quota_us"), ("memory", "memory.limit_in_bytes")):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / probe).write_text("-1\n")
    in_the_way = tmp_path / "memory" / own_cgroup_path("memory").lstrip("/") / "capkit-test-ro"
    in_the_way.parent.mkdir(parents=True, exist_ok=True)
    in_the_way.write_text("in the way")
    with pytest.raises(CgroupError, match="not writable"):
        Cgroup.create("capkit-test-ro", memory_mib=64, root=str(tmp_path))
    assert not (tmp_path / "cpu" / "capkit-test-ro").exists()

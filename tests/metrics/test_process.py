"""The process-tree sampler on real processes: who is in the tree, and the CPU they used."""

import subprocess
import sys
import time

import psutil
import pytest

from capkit.metrics.process import ProcessTreeSampler, child_pids, tree_pids

# a parent with a child started from its main thread and one from another thread; the first child
# has a child of its own; then everyone sleeps until killed
TREE = """
import subprocess, sys, threading, time
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
nested = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(60)",
          *sleeper]
kids = [subprocess.Popen(nested)]
t = threading.Thread(target=lambda: kids.append(subprocess.Popen(sleeper)))
t.start(); t.join()
print("ready", flush=True)
time.sleep(60)
"""

BURN = "import time\nwhile time.process_time() < 0.5: pass\ntime.sleep(60)"


@pytest.fixture
def tree():
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        root = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        while len(root.children(recursive=True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the grandchild starts on its own
        yield proc.pid
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()


def test_the_tree_is_every_descendant_psutil_finds(tree):
    root = psutil.Process(tree)
    expected = {tree, *(p.pid for p in root.children(recursive=True))}
    assert len(expected) == 4
    assert set(tree_pids(tree)) == expected
    sample = ProcessTreeSampler(tree).sample()
    assert sample["threads"] >= 4 and sample["rss_mib"] > 4 * 5  # four Python processes


def test_cpu_of_a_child_is_counted():
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {BURN!r}]); "
                               "time.sleep(60)"])
    try:
        sampler = ProcessTreeSampler(parent.pid)
        sampler.sample()
        t0 = time.monotonic()
        deadline = t0 + 60
        while time.monotonic() < deadline:
            kids = psutil.Process(parent.pid).children()
            if kids and sum(kids[0].cpu_times()[:2]) >= 0.45:  # user + system; /proc counts in ticks
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child did not burn its CPU within 60 s")
        sample = sampler.sample()
        used = sample["cpu_cores"] * (time.monotonic() - t0)
        assert used >= 0.45  # the child's 0.5 CPU-seconds (and the parent's start-up) were seen
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_without_children_files_the_sampler_knows_to_ask_psutil(tmp_path):
    (tmp_path / "7" / "task" / "7").mkdir(parents=True)  # a kernel without /proc/<pid>/task/<tid>/children
    assert child_pids(7, str(tmp_path)) is None and tree_pids(7, str(tmp_path)) is None
    assert child_pids(8, str(tmp_path)) == []  # a process that is gone has no children
    (tmp_path / "7" / "task" / "7" / "children").write_text("9 10 ")
    (tmp_path / "7" / "task" / "11").mkdir()
    (tmp_path / "7" / "task" / "11" / "children").write_text("12")
    assert sorted(child_pids(7, str(tmp_path))) == [9, 10, 12]
    assert sorted(tree_pids(7, str(tmp_path))) == [7, 9, 10, 12]

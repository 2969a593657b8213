"""capkit as an installed tool: the sdist and wheel `python -m build` makes of this checkout, the wheel
installed into a fresh venv outside it, a smoke plan and its report in an empty folder, the notebooks
handed out and executed there, and a missing notebook or kernel as one line.

Real build, real venv, real pip (from the indexes pip is configured with), real papermill and
nbconvert. It costs a few minutes (build, ~150 packages installed, a smoke run): see the module's
measured time in docs/packaging.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, assert_one_line_error

pytestmark = pytest.mark.timeout(1800)

# left out of the copy: what is not in a clean clone (what builds, runs, tests and benchmarks make in it)
LEFT_OUT = {"": {".git", ".venv", "build", "dist", "runs", "capkit.egg-info"}, "tests": {"fixtures"},
            "benchmarks": {"work", "partial"}}
LEFT_OUT_ANYWHERE = {"__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}


def _not_in_a_clone(folder: str, names: list[str]) -> set[str]:
    where = Path(folder).relative_to(ROOT).as_posix()
    where = "" if where == "." else where
    left = LEFT_OUT.get(where, set()) | LEFT_OUT_ANYWHERE
    if where == "reports":
        left |= {n for n in names if n != "README.md"}
    return {n for n in names if n in left}


def _env(**extra) -> dict[str, str]:
    """The environment of someone who installed capkit: none of this session's CAPKIT_* settings (the
    fixture store above all), no checkout on the path, no virtualenv activated."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CAPKIT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


def _run(args, *, cwd: Path, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env or _env(), capture_output=True, text=True,
                          timeout=timeout)


def _end_leftovers(work: Path) -> list[str]:
    """End, by PID, every process still running from ``work`` (the venv's Python and what it started)."""
    mine = [p for p in psutil.process_iter(["cmdline"]) if str(work) in " ".join(p.info["cmdline"] or [])]
    for proc in mine:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(mine, timeout=10)
    return [" ".join(p.info["cmdline"])[:200] for p in mine]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(work folder, dist folder, the venv's bin folder) with the wheel installed, or the build's failure."""
    work = tmp_path_factory.mktemp("install")
    source, dist, venv = work / "source", work / "dist", work / "venv"
    shutil.copytree(ROOT, source, ignore=_not_in_a_clone)
    # `python -m build`: the sdist, then the wheel from the sdist, as a release is made
    built = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, source], cwd=work, timeout=600,
                 env=os.environ.copy())
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    _run([sys.executable, "-m", "venv", venv], cwd=work, timeout=120).check_returncode()
    wheel = next(dist.glob("capkit-*.whl"))
    # --no-compile: byte-compiling ~150 packages is most of the install's CPU and says nothing about
    # capkit's wheel (the modules a run imports compile on first import)
    pip = _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile", wheel], cwd=work,
               timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    try:
        yield work, dist, venv / "bin"
    finally:
        leftovers = _end_leftovers(work)
        assert leftovers == [], leftovers


@pytest.fixture(scope="module")
def planned(installed):
    """`capkit plan` of a short fixed grid (the smoke profile's idle step and two of its loads, shorter)
    in an empty folder (`site`): (site, the finished process, leftovers)."""
    work, _, bin_ = installed
    site = work / "site"
    site.mkdir()
    proc = _run([bin_ / "capkit", "plan", "--stages", "0x4,4x8,8x8"], cwd=site, timeout=600)
    return site, proc, _end_leftovers(work)


def test_the_wheel_and_the_sdist_carry_the_notebooks_and_the_metadata(installed):
    _, dist, _ = installed
    ours = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    wheel = zipfile.ZipFile(next(dist.glob("capkit-*.whl")))
    names = wheel.namelist()
    assert sorted(Path(n).name for n in names if n.startswith("capkit/_notebooks/")) == ours
    assert not [n for n in names if n.startswith(("notebooks/", "tests/"))]
    assert "capkit/analysis/answer/weekday.csv" in names  # `capkit scale`'s bundled day
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "capkit").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))  # namespace packages (capkit/runs) included
    for name in ours:  # the same bytes as the checkout's: one source
        assert wheel.read(f"capkit/_notebooks/{name}") == (ROOT / "notebooks" / name).read_bytes()
    meta = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for field in ("Name: capkit", "Requires-Python: >=3.11", "Classifier: Programming Language :: Python :: 3.11",
                  "Provides-Extra: dev", "Requires-Dist: papermill"):
        assert field in meta, field
    entry = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "capkit = capkit.cli:run" in entry
    with tarfile.open(next(dist.glob("capkit-*.tar.gz"))) as sdist:
        assert {Path(n).name for n in sdist.getnames() if "/notebooks/" in n} >= set(ours)


def test_the_installed_capkit_is_the_wheel_and_knows_its_version(installed):
    work, _, bin_ = installed
    where = _run([bin_ / "python", "-c", "import capkit; print(capkit.__file__)"], cwd=work, timeout=60)
    assert where.stdout.strip().startswith(str(work / "venv")), where.stdout
    version = _run([bin_ / "capkit", "--version"], cwd=work, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "capkit, version 0.1.0", version


def test_a_smoke_plan_in_an_empty_folder_writes_runs_and_report_there(planned):
    site, proc, leftovers = planned
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (site / "runs" / "capkit.sqlite").is_file()
    run_id = next(p.name for p in (site / "runs").iterdir() if p.is_dir())
    index = site / "reports" / run_id / "index.html"
    assert index.is_file() and "Baseline Metrics" in index.read_text()
    assert proc.stdout.strip().endswith(f"report: reports/{run_id}/index.html") or str(index) in proc.stdout
    assert {p.name for p in site.iterdir()} == {"runs", "reports"}  # nothing else lands in the folder
    assert leftovers == []


def test_notebooks_are_handed_out_and_run_against_the_folders_store(installed, planned):
    work, _, bin_ = installed
    site, proc, _ = planned
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = _run([bin_ / "capkit", "notebooks", "nbs"], cwd=site, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ipykernel install --user --name capkit" in out.stdout
    copies = sorted(p.name for p in (site / "nbs").glob("*.ipynb"))
    assert copies == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    # the analyst's way: nbconvert in the notebook's folder; its defaults find ../runs/capkit.sqlite
    executed = _run([bin_ / "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "executed",
                     "overview.ipynb"], cwd=site / "nbs", timeout=600)
    assert executed.returncode == 0, executed.stderr[-3000:]
    nb = json.loads((site / "nbs" / "executed.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o["output_type"] == "error"]
    run_id = next(p.name for p in (site / "runs").iterdir() if p.is_dir())
    assert run_id in json.dumps(outputs)  # it analysed the run of this folder's store
    again = _run([bin_ / "capkit", "notebooks", "nbs"], cwd=site, timeout=60)
    assert_one_line_error(again, "already holds", "--force")
    assert _end_leftovers(work) == []


def test_register_kernel_names_it_in_the_copies(installed, planned):
    work, _, bin_ = installed
    site, _, _ = planned
    data = work / "jupyter-data"  # the user's Jupyter folder, kept out of this machine's home
    out = _run([bin_ / "capkit", "notebooks", "nbs-kernel", "--register-kernel"], cwd=site, timeout=60,
               env=_env(JUPYTER_DATA_DIR=str(data)))
    assert out.returncode == 0, out.stderr
    spec = json.loads((data / "kernels" / "capkit" / "kernel.json").read_text())
    assert spec["argv"][0] == str(bin_ / "python") and spec["display_name"] == "Python (capkit)"
    nb = json.loads((site / "nbs-kernel" / "overview.ipynb").read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "capkit"


def test_a_missing_notebook_or_kernel_is_one_line_and_exit_2(installed, planned):
    """Last: it damages the installation on purpose."""
    work, _, bin_ = installed
    site, _, _ = planned
    shipped = next((work / "venv" / "lib").glob("python3*/site-packages/capkit/_notebooks"))
    (shipped / "overview.ipynb").rename(shipped / "overview.moved")
    try:
        report = _run([bin_ / "capkit", "report"], cwd=site, timeout=300)
        assert report.returncode == 2
        assert_one_line_error(report, "overview.ipynb", "missing", "reinstall")
        plan = _run([bin_ / "capkit", "plan", "--profile", "smoke"], cwd=site, timeout=120)
        assert plan.returncode == 2  # before any load: no new run
        assert_one_line_error(plan, "overview.ipynb")
    finally:
        (shipped / "overview.moved").rename(shipped / "overview.ipynb")
    runs = sorted(p.name for p in (site / "runs").iterdir() if p.is_dir())
    gone = _run([bin_ / "python", "-m", "pip", "uninstall", "--yes", "--quiet", "ipykernel"], cwd=work, timeout=120)
    assert gone.returncode == 0, gone.stderr
    for args in (["report"], ["plan", "--profile", "smoke"]):
        proc = _run([bin_ / "capkit", *args], cwd=site, timeout=300)
        assert proc.returncode == 2
        assert_one_line_error(proc, "Jupyter kernel", "pip install ipykernel")
    assert sorted(p.name for p in (site / "runs").iterdir() if p.is_dir()) == runs
    assert _end_leftovers(work) == []

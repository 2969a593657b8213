"""Every command block of README.md and docs/*.md marked runnable runs, for real, and exits 0.

Marking a block: its fence's info string is ``bash runnable`` (GitHub still highlights it as bash)::

    ```bash runnable
    capkit usl tests/analysis/data/codahale_example.csv
    ```

Mark only blocks that run on one machine in seconds (this whole file stays under ~4 minutes):
no ``make plan``/``make test``, no other machines, no placeholder hosts or files.

How a block runs, each in a workspace of its own under ``tmp_path``:

- the working folder is the workspace; ``CAPKIT_STORE_URL`` is ``<workspace>/runs/capkit.sqlite``,
  a copy of the fixture store (runs ``fixture-run`` and ``fixture-run-b``, see
  tests/fixture_store.py), ``CAPKIT_RUNS_DIR`` ``<workspace>/runs``, ``CAPKIT_REPORTS_DIR``
  ``<workspace>/reports``; the caller's other ``CAPKIT_*`` variables are dropped;
- ``capkit`` is this checkout's ``python -m capkit`` (a bash function, with ``PYTHONPATH`` the
  checkout, so a CLI subprocess runs this code and not another install's);
- a line ``[VAR=value …] capkit serve … &`` is started by this test, not by bash: the reference
  service in its own process group, its database seeded small (:data:`SERVICE_ENV`), waited for
  until ``/healthz`` answers, stopped by its PID when the block ends; the rest of the block then
  runs as one ``bash -euo pipefail`` script, which must exit 0;
- a run the block stored must be complete and have served every request (no failures, no 429s):
  a run on 401s or 429s also exits 0;
- before that, :data:`SUBSTITUTIONS` rewrite the block: the documented port becomes a free one,
  stage plans become tiny, placeholders become the fixture store's runs. Every rule must be used
  by some block (a rule nothing needs is deleted, not kept "just in case").
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from capkit.runs.processes import free_port, spawn, wait_healthy
from tests.fixture_store import FIXTURE_RUN, FIXTURE_RUN_B, FIXTURE_STORE, ROOT, build_fixture_store

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = "bash runnable"
BLOCK_TIMEOUT_S = 150

# (pattern, replacement, why): applied in this order to every marked block; {port} is the free
# port of the block's service, {root} this checkout
SUBSTITUTIONS = [
    (r"127\.0\.0\.1:8000\b", "127.0.0.1:{port}",
     "the documented address of `capkit serve`: the free port the block's service listens on"),
    (r"\bcapkit serve\b", "capkit serve --port {port}",
     "the same port, given to `capkit serve` (8000 is its default)"),
    (r"--stages \S+", "--stages 2x4,4x4",
     "a tiny stage plan: 8 s of load instead of minutes"),
    (r"\bBASELINE_RUN_ID\b|\bOTHER_RUN\b", "fixture-run-b",
     "the placeholder of a second run (a baseline, a run to compare with): the fixture store's other run"),
    (r"\bRUN_ID\b", "fixture-run",
     "the placeholder of a run: the fixture store's first run"),
    (r"(?<![\w/.$])(tests|notebooks)/", r"{root}/\1/",
     "files the checkout ships, read from it (the block runs in its workspace)"),
    (r"(?<![\w/])\.venv/bin/papermill\b", '"$DOCS_PYTHON" -m papermill',
     "the venv's tools: the ones of the interpreter running this test"),
    (r"-p bootstrap \d+", "-p bootstrap 50",
     "an expensive setting shrunk, as the notebooks' own defaults are"),
]

# the reference service a block starts: seeded small, so that it is up in a second or two
SERVICE_ENV = {"CAPKIT_SEED_USERS": "20", "CAPKIT_SEED_CONVERSATIONS": "40", "CAPKIT_SEED_TEST_ACCOUNTS": "5"}

SERVE = re.compile(r"^(?:\w+=\S*\s+)*capkit serve\b.*&\s*(?:#.*)?$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def marked_blocks(paths=DOCS) -> list[Block]:
    """Every fenced block whose info string is ``bash runnable``, in document order."""
    out = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            fence = re.match(r"^(```+)\s*(.*)$", lines[i])
            if not fence:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1)))
            if fence.group(2).strip() == MARK:
                out.append(Block(path, i + 1, "\n".join(lines[i + 1:end])))
            i = end + 1
    return out


def substitute(text: str, *, port: int) -> tuple[str, set[int]]:
    """The block with :data:`SUBSTITUTIONS` applied, and the indexes of the rules that matched."""
    used = set()
    for k, (pattern, replacement, _why) in enumerate(SUBSTITUTIONS):
        text, n = re.subn(pattern, replacement.format(port=port, root=ROOT), text)
        if n:
            used.add(k)
    return text, used


def commands(text: str) -> list[str]:
    """The block's commands: continuation lines joined, blank lines and whole-line comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        out.append(current.strip())
        current = ""
    return out


def _workspace(tmp_path: Path) -> dict[str, str]:
    """The block's environment; its store is a copy of the fixture store."""
    (tmp_path / "runs").mkdir()
    if not FIXTURE_STORE.exists():  # the plugin builds it once per session; not under `-p no:…`
        build_fixture_store()
    src, dst = sqlite3.connect(FIXTURE_STORE), sqlite3.connect(tmp_path / "runs" / "capkit.sqlite")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPKIT_")}
    env.update(PYTHONPATH=str(ROOT), DOCS_PYTHON=sys.executable,
               CAPKIT_STORE_URL=f"sqlite:///{tmp_path / 'runs' / 'capkit.sqlite'}",
               CAPKIT_RUNS_DIR=str(tmp_path / "runs"), CAPKIT_REPORTS_DIR=str(tmp_path / "reports"))
    return env


def _start_service(line: str, *, port: int, env: dict, log: Path):
    """Start a block's ``capkit serve … &`` line (this checkout's capkit) and wait until it answers."""
    words = shlex.split(line, comments=True)
    if words[-1:] == ["&"]:
        words.pop()
    assignments = {}
    while words and re.match(r"^\w+=", words[0]):
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    assert words[:2] == ["capkit", "serve"], line
    proc = spawn([sys.executable, "-m", "capkit", *words[1:]], log_path=log,
                 env={**env, **SERVICE_ENV, **assignments})
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60, alive=lambda: proc.poll() is None)
    except BaseException:
        _stop(proc)
        raise AssertionError(f"`{line}` did not start: {log.read_text(errors='replace')[-1500:]}") from None
    return proc


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the service's process group, by its PID; SIGKILL what is left after 10 s."""
    from capkit.runs.processes import ManagedProcess

    ManagedProcess(popen=proc, log_path=Path(os.devnull)).stop()


BLOCKS = marked_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_marked_block_runs(block: Block, tmp_path: Path):
    port = free_port()
    text, _used = substitute(block.text, port=port)
    cmds = commands(text)
    serve = [c for c in cmds if SERVE.match(c)]
    script = "\n".join(c for c in cmds if not SERVE.match(c))
    env = _workspace(tmp_path)
    services = []
    started = time.monotonic()
    try:
        for k, line in enumerate(serve):
            services.append(_start_service(line, port=port, env=env, log=tmp_path / f"serve{k}.log"))
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c",
                               'capkit() { "$DOCS_PYTHON" -m capkit "$@"; }\n' + script],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    finally:
        for svc in services:
            _stop(svc)
    print(f"\n{block.name}: {time.monotonic() - started:.1f} s\n{text}\n--- stdout\n{proc.stdout[-3000:]}")
    logs = "".join((tmp_path / f"serve{k}.log").read_text(errors="replace")[-1500:] for k in range(len(serve)))
    assert proc.returncode == 0, (f"{block.name} failed (exit {proc.returncode}):\n{text}\n--- stderr\n"
                                  f"{proc.stderr[-3000:]}\n--- service log\n{logs}")
    assert all(svc.poll() is not None for svc in services)  # nothing left running
    for run_id, status, count, failures, limited in _new_runs(tmp_path / "runs" / "capkit.sqlite"):
        # a documented run that completes on 401s or 429s would pass on its exit code alone
        assert status == "complete" and count > 0 and failures == 0 and limited == 0, \
            f"{block.name}: run {run_id} is {status}: {count} requests, {failures} failed, {limited} rate-limited"


def _new_runs(store: Path) -> list[tuple]:
    """The runs a block stored (not the fixture store's): id, status, requests, failures, 429s."""
    with sqlite3.connect(store) as conn:
        return conn.execute(
            "SELECT r.run_id, r.status, COALESCE(SUM(q.count), 0), COALESCE(SUM(q.failures), 0), "
            "COALESCE(SUM(q.rate_limited), 0) FROM runs r LEFT JOIN request_stats q ON q.run_id = r.run_id "
            "WHERE r.run_id NOT IN (?, ?) GROUP BY r.run_id, r.status", (FIXTURE_RUN, FIXTURE_RUN_B)).fetchall()


def test_every_substitution_is_used_and_the_documented_runs_are_marked():
    used = set()
    for block in BLOCKS:
        assert commands(block.text), f"{block.name} is marked runnable but holds no command"
        used |= substitute(block.text, port=1)[1]
    unused = [SUBSTITUTIONS[k][0] for k in range(len(SUBSTITUTIONS)) if k not in used]
    assert not unused, f"substitutions no marked block needs: {unused}"
    llm = [b for b in BLOCKS if b.path.name == "llm.md" and "--scenario openai-chat" in b.text]
    assert llm and all("capkit serve" in b.text for b in llm)  # the /v1 example runs against `capkit serve`
    assert len(BLOCKS) >= 5


def test_cli_md_documents_every_option():
    import click

    from capkit.cli import cli

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
            return
        assert f"`capkit {' '.join(path)}" in doc, f"docs/cli.md does not name `capkit {' '.join(path)}`"
        for param in cmd.params:
            for opt in (o for o in param.opts + param.secondary_opts if o.startswith("--")):
                if opt != "--help" and not re.search(f"`{re.escape(opt)}(?![\\w-])", doc):
                    missing.append(f"capkit {' '.join(path)} {opt}")

    walk(cli, [])
    assert not missing, f"options docs/cli.md does not name: {missing}"

"""The project's own files: dependency lists agree, make help, no locust outside Locust, clean notebooks."""

import ast
import json
import re
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT


def _name(spec: str) -> str:
    return re.split(r"[\[<>=!~ ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _conda_names() -> dict[str, str]:
    """ops/sync-environment-yml.py's CONDA_NAMES (read, not imported: the script writes when run)."""
    tree = ast.parse((ROOT / "ops" / "sync-environment-yml.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "CONDA_NAMES" for t in node.targets))


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    renamed = _conda_names()
    wanted = {renamed.get(n, n) for n in (_name(s) for s in project["dependencies"]
                                          + project["optional-dependencies"]["dev"])}
    text = (ROOT / "environment.yml").read_text()
    deps = text.split("dependencies:", 1)[1].split("  - pip:", 1)[0]
    conda = {_name(line[4:]) for line in deps.splitlines() if line.startswith("  - ")} - {"python", "pip"}
    assert conda == wanted
    assert "-e .[dev]" in (ROOT / "environment.yml").read_text()


def test_make_help_lists_the_targets():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("plan", "test", "lab", "report", "bench"):
        assert re.search(rf"make {target}\s+\S", out), out


@pytest.mark.parametrize("module", ["capkit.cli", "capkit.runs.orchestrator", "capkit.runs.reference",
                                    "capkit.analysis", "capkit.report.publish", "capkit.runs.locust",
                                    "capkit.service.app"])
def test_nothing_outside_the_load_processes_imports_locust(module):
    code = f"import sys, {module}; sys.exit(1 if 'locust' in sys.modules or 'gevent' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_importing_capkit_has_no_side_effects(tmp_path):
    code = ("import os, capkit, capkit.config, capkit.store, capkit.analysis, capkit.service.app; "
            "print(sorted(os.listdir('.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_clean_with_one_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code)
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1
    for cell in code:
        src = "".join(cell["source"])
        assert not re.search(r"^\s*(def|class) ", src, re.M), f"logic belongs in capkit: {src[:60]}"


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()

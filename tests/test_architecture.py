"""The layout keeps its promises (docs/architecture.md): dependencies point one way, no module
imports another's private names, only settings, contracts and errors sit at the top level."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "capkit"

# package -> the capkit packages it may import (docs/architecture.md, "Packages")
ALLOWED = {
    "config": {"errors"},
    "schemas": {"errors"},
    "errors": set(),
    "records": {"schemas", "errors"},
    "service": {"config", "schemas", "errors"},
    "loadgen": {"schemas", "records"},
    "metrics": {"schemas", "errors"},
    "store": {"schemas", "errors"},
    "runs": {"config", "schemas", "errors", "records", "loadgen", "metrics", "store", "service"},
    "analysis": {"schemas", "errors", "records", "store"},
    "synthetic": {"schemas", "records", "runs", "store"},
    "report": {"config", "errors", "schemas"},
    "cli": None,  # everything
}
# the one place a lower package reaches up, by design: runs checks a port with the service's helper,
# synthetic writes through the real ingest path
NARROW = {("runs", "service"): {"capkit.service.server"}, ("synthetic", "runs"): {"capkit.runs.ingest"}}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        if top in ("__init__", "__main__"):
            continue
        yield path, top


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_only_settings_contracts_and_errors_at_the_top_level():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "config.py", "errors.py", "schemas.py"]


@pytest.mark.parametrize("path, top", list(_modules()), ids=lambda v: str(v.relative_to(PACKAGE))
                         if isinstance(v, Path) else v)
def test_dependencies_point_one_way(path, top):
    allowed = ALLOWED[top]
    if allowed is None:
        return
    for module, _ in _imports(path):
        parts = module.split(".")
        if parts[0] != "capkit" or len(parts) < 2:
            continue
        other = parts[1]
        if other == top:
            continue
        assert other in allowed, f"{path.relative_to(ROOT)} imports {module}: {top} may not import {other}"
        narrow = NARROW.get((top, other))
        if narrow is not None:
            assert any(module == m or module.startswith(m + ".") for m in narrow), (
                f"{path.relative_to(ROOT)} imports {module}: only {sorted(narrow)} of {other} is allowed")


def test_no_module_imports_another_modules_private_names():
    offences = []
    for path, _ in _modules():
        for module, names in _imports(path):
            if module.startswith("capkit"):
                offences += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names if n.startswith("_")]
    assert offences == []


def test_the_public_analysis_surface_is_small_sorted_and_documented():
    import capkit.analysis as ca

    names = ca.__all__
    assert len(names) <= 20 and names == sorted(names, key=lambda n: (not n[0].isupper(), n))
    for name in names:
        doc = getattr(ca, name).__doc__ or ""
        assert doc.strip(), f"capkit.analysis.{name} has no docstring"

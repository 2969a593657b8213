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
    "deploy": {"errors", "schemas"},
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


# capkit.analysis, floor by floor (docs/architecture.md, "Inside analysis"): each sub-package may
# import the floors below it; the facade modules (pages, history, __init__) sit on top of all.
ANALYSIS = PACKAGE / "analysis"
FLOORS = {
    "data": set(),
    "fits": {"data"},
    "design": {"data", "fits"},
    "answer": {"data", "fits", "design"},
    "present": {"data", "fits", "answer"},
}


def _floor(path: Path) -> str | None:
    rel = path.relative_to(ANALYSIS)
    return rel.parts[0] if len(rel.parts) > 1 else None


def test_analysis_is_split_into_floors_with_a_thin_facade():
    facade = sorted(p.name for p in ANALYSIS.glob("*.py"))
    assert facade == ["__init__.py", "history.py", "pages.py"]
    assert sorted(p.name for p in ANALYSIS.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(FLOORS)


@pytest.mark.parametrize("path", sorted(ANALYSIS.rglob("*/*.py")), ids=lambda p: str(p.relative_to(ANALYSIS)))
def test_analysis_floors_import_only_the_floors_below(path):
    floor = _floor(path)
    for module, names in _imports(path):
        if not module.startswith("capkit.analysis"):
            continue
        parts = module.split(".")
        other = parts[2] if len(parts) > 2 else None
        if other is None and names:  # `from capkit.analysis import x`: x names the floor
            other = names[0] if names[0] in FLOORS else "facade"
        if other == floor:
            continue
        assert other in FLOORS[floor], f"{path.relative_to(ROOT)} imports {module}: {floor} may not import {other}"


def test_no_module_name_repeats_inside_analysis():
    names = [p.stem for p in ANALYSIS.rglob("*.py") if p.stem != "__init__"]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_no_import_circle_in_capkit():
    """Every import counts, function-level ones too: an import moved into a function to dodge a
    circle is still a circle."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for module, names in _imports(path):
            for cand in [f"{module}.{n}" for n in names] + [module]:
                if cand in modules and cand != name:
                    deps.add(cand)
                    break
        graph[name] = deps
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                circles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # a package's __init__ importing its own modules is not a circle unless they import it back
    circles = [c for c in circles if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(c, c[1:]))]
    assert circles == []

#!/usr/bin/env python3
"""Regenerate environment.yml from pyproject.toml (same names and versions; pip installs the project)."""
import re
import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
specs = project["dependencies"] + project["optional-dependencies"]["dev"]
# where conda-forge names a package differently from PyPI (tests/test_packaging.py reads this map)
CONDA_NAMES = {"build": "python-build"}


def conda(spec: str) -> str:
    m = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?(.*)", spec.strip())
    name = m.group(1).lower()
    return f"{CONDA_NAMES.get(name, name)}{m.group(3).strip()}"


lines = ["# conda env with the same dependencies as pyproject.toml (a test checks they agree;",
         "# regenerate with ops/sync-environment-yml.py).",
         "# conda env create -f environment.yml && conda activate capkit",
         "name: capkit", "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip"]
lines += [f"  - {conda(s)}" for s in specs]
lines += ["  - pip:", "      - -e .[dev]"]
(root / "environment.yml").write_text("\n".join(lines) + "\n")
sys.exit(0)

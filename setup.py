"""Build hook: the report notebooks ship inside the package.

``notebooks/`` at the top level stays the one copy an analyst opens and edits in the repository;
a build maps it onto the package ``capkit._notebooks`` (``package_dir``), so a wheel carries the
notebooks as ``capkit/_notebooks/*.ipynb``, found through ``importlib.resources``
(:mod:`capkit.report.notebooks`). Everything else is in ``pyproject.toml``; this file exists
because a package list that adds a mapped folder to the found packages cannot be written there.
"""

from setuptools import find_namespace_packages, setup

setup(
    # namespace packages too (capkit/runs has no __init__.py), as pyproject's packages.find found them
    packages=find_namespace_packages(include=["capkit", "capkit.*"], exclude=["*.__pycache__"]) + ["capkit._notebooks"],
    package_dir={"capkit._notebooks": "notebooks"},
    package_data={"capkit._notebooks": ["*.ipynb"], "capkit.analysis.answer": ["*.csv"],  # the bundled weekday
                  "capkit.records.data": ["*.jsonl", "*.md"]},  # the bundled conversations
)

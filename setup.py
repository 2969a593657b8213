"""Build hook: the report notebooks ship inside the package.

``notebooks/`` at the top level stays the one copy an analyst opens and edits in the repository;
a build maps it onto the package ``capkit._notebooks`` (``package_dir``), so a wheel carries the
notebooks as ``capkit/_notebooks/*.ipynb``, found through ``importlib.resources``
(:mod:`capkit.report.notebooks`). Everything else is in ``pyproject.toml``; this file exists
because a package list that adds a mapped folder to the found packages cannot be written there.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["capkit", "capkit.*"]) + ["capkit._notebooks"],
    package_dir={"capkit._notebooks": "notebooks"},
    package_data={"capkit._notebooks": ["*.ipynb"]},
)

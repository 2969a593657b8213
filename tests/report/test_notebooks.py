"""Locating the report notebooks and handing them out (`capkit notebooks`); the installed wheel's side
is tests/test_install.py."""

import json

import pytest

from capkit.errors import ConfigError, InstallError
from capkit.report.notebooks import copy_notebooks, notebook_dir, notebook_paths
from capkit.report.publish import REPORT_NOTEBOOKS
from tests.conftest import ROOT, assert_one_line_error, run_cli


def test_a_checkout_reads_its_own_notebooks_folder():
    assert notebook_dir() == ROOT / "notebooks"
    assert notebook_paths(REPORT_NOTEBOOKS) == [ROOT / "notebooks" / n for n in REPORT_NOTEBOOKS]


def test_a_missing_notebook_names_itself_and_the_folder(tmp_path):
    (tmp_path / "overview.ipynb").write_text("{}")
    with pytest.raises(InstallError, match=r"capacity_plan.ipynb is missing from .*; reinstall capkit"):
        notebook_paths(("overview.ipynb", "capacity_plan.ipynb"), tmp_path)
    assert InstallError("x").exit_code == 2


def test_copies_are_the_same_bytes_and_an_edited_copy_is_kept(tmp_path):
    copies = copy_notebooks(tmp_path / "nbs")
    assert sorted(c.name for c in copies) == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert all(c.read_bytes() == (ROOT / "notebooks" / c.name).read_bytes() for c in copies)
    (tmp_path / "nbs" / "overview.ipynb").write_text("edited")
    with pytest.raises(ConfigError, match="already holds"):
        copy_notebooks(tmp_path / "nbs")
    assert (tmp_path / "nbs" / "overview.ipynb").read_text() == "edited"
    copy_notebooks(tmp_path / "nbs", force=True, kernel="capkit")
    nb = json.loads((tmp_path / "nbs" / "overview.ipynb").read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "capkit"


def test_capkit_notebooks_tells_how_to_register_the_kernel(tmp_path):
    proc = run_cli("notebooks", str(tmp_path / "nbs"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    count = len(list((ROOT / "notebooks").glob("*.ipynb")))
    assert f"copied {count} notebooks" in proc.stdout
    assert "-m ipykernel install --user --name capkit" in proc.stdout
    again = run_cli("notebooks", str(tmp_path / "nbs"), timeout=60)
    assert again.returncode == 2
    assert_one_line_error(again, "already holds", "--force")

"""`capkit report`: execute the report notebooks with papermill and publish them as HTML under
``reports/<run_id>/``.

The store URL reaches the kernel through an environment variable, never as a parameter, so a
password in it cannot end up in an executed notebook or a published page. All pages of a report
run in one kernel (see :mod:`capkit.report.pages`): kernel start-up and imports are paid once.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ReportError
from capkit.report.execute import execute_notebook
from capkit.report.html import html_exporter, to_html
from capkit.report.index import write_index, write_reports_index
from capkit.report.notebooks import notebook_paths
from capkit.report.pages import PAGE_KEY, merge_notebooks, split_pages
from capkit.report.workspace import STORE_ENV, Workspace

REPORT_NOTEBOOKS = ("overview.ipynb", "capacity_report.ipynb", "scalability.ipynb", "capacity_plan.ipynb",
                    "llm_serving.ipynb")
COMPARE_NOTEBOOK = "comparison.ipynb"


@dataclass
class Published:
    run_id: str
    folder: Path
    index: Path
    notebooks: list[Path]


def publish_report(run_id: str, *, store_url: str, reports_dir: Path, overrides: dict | None = None,
                   notebooks: tuple[str, ...] = REPORT_NOTEBOOKS, compare: str | None = None) -> Published:
    """Open a :class:`Workspace` for ``store_url`` under ``reports_dir``, :func:`publish` into it, close it."""
    with Workspace(reports_dir, store_url) as workspace:
        return publish(run_id, workspace=workspace, overrides=overrides, notebooks=notebooks, compare=compare)


def publish(run_id: str, *, workspace: Workspace, overrides: dict | None = None,
            notebooks: tuple[str, ...] = REPORT_NOTEBOOKS, notebook_dir: Path | None = None,
            compare: str | None = None) -> Published:
    """Execute ``notebooks`` for ``run_id`` into ``workspace.reports_dir/run_id`` and write its ``index.html``.

    Parameters
    ----------
    run_id : str
    workspace : Workspace
        Opened earlier (its kernel already started, reading the store from :data:`STORE_ENV`,
        never from a parameter); used for this report only, its owner closes it.
    overrides : dict, optional
        Report parameters that differ from the defaults (``ReportParameters.overrides()``): the
        notebooks' ``parameters`` dict.
    notebooks : tuple of str
        Pages, executed together in one kernel.
    notebook_dir : Path, optional
        Where the pages are (default: :func:`~capkit.report.notebooks.notebook_dir`, the installed
        package's or the checkout's).
    compare : str, optional
        A second run: adds the comparison page with ``baseline_run_id=compare``.

    The report is built aside and moved into place at the end: a failed report leaves the
    previous one (if any) untouched and nothing half-written.
    """
    work, km = workspace.folder, workspace.km
    if km is None:
        raise ValueError("a Workspace holds one report: open a new one for the next")
    names = list(notebooks) + ([COMPARE_NOTEBOOK] if compare else [])
    pages = notebook_paths(names, notebook_dir)  # a missing page: one clear line before any work
    pool = ThreadPoolExecutor(max_workers=1)  # nbconvert's import and templates while the kernel works
    exporter = pool.submit(html_exporter)
    pool.shutdown(wait=False)  # the task runs on; exporter.result() waits for it
    params = {"store_url": f"env:{STORE_ENV}", "run_id": run_id, "output_dir": str(work / "tables"),
              "parameters": dict(overrides or {}), "interactive": False,  # papermill: no widget frontend
              **({"baseline_run_id": compare} if compare else {})}
    merged = work / ".merged.ipynb"
    import nbformat

    nbformat.write(merge_notebooks(pages), str(merged))
    try:
        execute_notebook(merged, merged, params, km=km)
    except ReportError as exc:
        raise ReportError(_failing_page(merged, names), exc.ename, exc.evalue) from None
    finally:
        workspace.stop_kernel()
    executed = split_pages(merged, names, work)
    merged.unlink()
    for page in executed:
        to_html(page, exporter.result())
    write_index(work, run_id, executed, compare=compare)
    final = workspace.reports_dir / run_id
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    write_reports_index(workspace.reports_dir)
    return Published(run_id=run_id, folder=final, index=final / "index.html",
                     notebooks=[final / p.name for p in executed])


def _failing_page(merged: Path, names: list[str]) -> str:
    """The page of the first cell with an error output (papermill saved the executed notebook)."""
    import nbformat

    try:
        nb = nbformat.read(str(merged), as_version=4)
    except Exception:  # noqa: BLE001
        return names[0]
    for cell in nb.cells:
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return cell.metadata.get(PAGE_KEY, names[0])
    return names[0]




def add_pages(run_id: str, names: tuple[str, ...], *, workspace: Workspace, parameters: dict | None = None,
              overrides: dict | None = None, notebook_dir: Path | None = None) -> list[Path]:
    """Execute ``names`` for ``run_id`` and add them to ``reports/run_id/`` beside the pages already there.

    Like :func:`publish`, but the rest of the run's report stays: the pages, their figures and tables,
    and anything the caller wrote into ``workspace.folder`` first (``capkit scale``: ``k8s/``) are
    built aside and moved in at the end, each replacing its namesake; a failure moves nothing.
    ``parameters`` are the notebooks' own beyond the report's (``run_id``, ``output_dir``, ``parameters``).
    Returns the HTML pages.
    """
    work, km = workspace.folder, workspace.km
    if km is None:
        raise ValueError("a Workspace holds one report: open a new one for the next")
    pages = notebook_paths(list(names), notebook_dir)
    exporter = html_exporter()
    params = {"store_url": f"env:{STORE_ENV}", "run_id": run_id, "output_dir": str(work / "tables"),
              "parameters": dict(overrides or {}), **(parameters or {})}
    import nbformat

    merged = work / ".merged.ipynb"
    nbformat.write(merge_notebooks(pages), str(merged))
    try:
        execute_notebook(merged, merged, params, km=km)
    except ReportError as exc:
        raise ReportError(_failing_page(merged, list(names)), exc.ename, exc.evalue) from None
    finally:
        workspace.stop_kernel()
    executed = split_pages(merged, list(names), work)
    merged.unlink()
    for page in executed:
        to_html(page, exporter)
    final = workspace.reports_dir / run_id
    final.mkdir(exist_ok=True)
    for item in sorted(work.iterdir()):
        _move_into(item, final / item.name)
    html_pages = [final / p.with_suffix(".html").name for p in executed]
    _link_pages(final / "index.html", html_pages)
    return html_pages


def _link_pages(index: Path, pages: list[Path]) -> None:
    """Add each page to the report's list of pages in ``index`` (when there is one) unless it is there."""
    if not index.exists():
        return
    text = index.read_text(encoding="utf-8")
    head = "<h2>Pages</h2><ul>"
    links = "".join(f'<li><a href="{p.name}">{p.stem.replace("_", " ").capitalize()}</a></li>' for p in pages
                    if f'href="{p.name}"' not in text)
    if links and head in text:
        index.write_text(text.replace(head, head + links, 1), encoding="utf-8")


def _move_into(source: Path, target: Path) -> None:
    """``source`` to ``target``: a file replaces its namesake; a folder's files join the folder there
    (``figures/``, ``tables/``), except ``k8s/``, replaced whole (its manifests are one set)."""
    if source.is_dir() and target.is_dir() and source.name != "k8s":
        for item in sorted(source.iterdir()):
            _move_into(item, target / item.name)
        return
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)

"""Execute the report notebooks with papermill and publish them as HTML under ``reports/<run_id>/``.

The store URL reaches the kernel through an environment variable, never as a parameter, so a
password in it cannot end up in an executed notebook or a published page.

All pages of a report run in one kernel: their cells are joined into one notebook (one
``parameters`` cell holding every page's defaults), executed once, and split back into pages.
Kernel start-up and the imports are paid once instead of once per page.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ReportError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
REPORT_NOTEBOOKS = ("overview.ipynb", "capacity_report.ipynb", "scalability.ipynb", "capacity_plan.ipynb")
COMPARE_NOTEBOOK = "comparison.ipynb"
STORE_ENV = "CAPKIT_REPORT_STORE_URL"
PAGE_KEY = "capkit_page"


def _fast_validation() -> None:
    """Skip jsonschema's optional IRI-format checker: importing ``rfc3987_syntax`` compiles a
    grammar (~2 s per process) and no notebook field uses the ``iri`` format."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


@dataclass
class Published:
    run_id: str
    folder: Path
    index: Path
    notebooks: list[Path]


def absolute_sqlite(url: str) -> str:
    """Make a relative SQLite URL absolute (the kernel runs in the report folder)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def _kernel_manager_base():
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager


class LocalKernelManager(_kernel_manager_base()):
    """A kernel reached over local IPC sockets instead of TCP (no network exposure, no warning)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)


def execute_notebook(notebook: Path, output: Path, parameters: dict, *, env: dict[str, str] | None = None) -> None:
    """Run one notebook with papermill; raise :class:`ReportError` naming the failing cell."""
    _fast_validation()
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                            cwd=str(output.parent), progress_bar=False, report_mode=True,
                            kernel_manager_class="capkit.reporting.LocalKernelManager")
    except PapermillExecutionError as exc:
        raise ReportError(notebook.name, exc.ename, str(exc.evalue).splitlines()[0] if exc.evalue else "") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def to_html(executed: Path) -> Path:
    """HTML without code cells; also writes every figure as PNG beside it."""
    _fast_validation()
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    figures = executed.parent / "figures"
    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                n += 1
                figures.mkdir(exist_ok=True)
                (figures / f"{executed.stem}-{n}.png").write_bytes(base64.b64decode(png))
    return out


def merge_notebooks(paths: list[Path]):
    """One notebook of every page's cells, each cell tagged with its page; the pages' ``parameters``
    cells become one (the first cell) so papermill injects the parameters once."""
    _fast_validation()
    import nbformat

    params, cells = [], []
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                params.append(cell.source)
                continue
            cell.metadata[PAGE_KEY] = path.name
            cells.append(cell)
        kernelspec = nb.metadata.get("kernelspec")
    merged = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec} if kernelspec else {})
    merged.cells = [nbformat.v4.new_code_cell("\n".join(params), metadata={"tags": ["parameters"]})] + cells
    return merged


def split_pages(executed: Path, names: list[str], folder: Path) -> list[Path]:
    """Write one executed notebook per page (its parameter cells first) from the merged one."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    head = [c for c in nb.cells if PAGE_KEY not in c.metadata]
    out = []
    for name in names:
        page = nbformat.v4.new_notebook(metadata=nb.metadata)
        page.cells = head + [c for c in nb.cells if c.metadata.get(PAGE_KEY) == name]
        path = folder / name
        nbformat.write(page, str(path))
        out.append(path)
    return out


def publish(run_id: str, *, store_url: str, reports_dir: Path, parameters: dict | None = None,
            notebooks: tuple[str, ...] = REPORT_NOTEBOOKS, notebook_dir: Path = NOTEBOOK_DIR,
            compare: str | None = None) -> Published:
    """Execute ``notebooks`` for ``run_id`` into ``reports_dir/run_id`` and write its ``index.html``.

    Parameters
    ----------
    run_id : str
    store_url : str
        Reaches the kernel as environment variable :data:`STORE_ENV`, never as a parameter.
    reports_dir : Path
    parameters : dict, optional
        Extra notebook parameters (limits, thresholds…).
    notebooks : tuple of str
        Pages, executed together in one kernel.
    compare : str, optional
        A second run: adds the comparison page with ``baseline_run_id=compare``.

    The folder is built aside and moved into place at the end: a failed report leaves the
    previous one (if any) untouched and nothing half-written.
    """
    reports_dir = reports_dir.resolve()  # the kernel runs in the report folder: no relative paths
    reports_dir.mkdir(parents=True, exist_ok=True)
    final = reports_dir / run_id
    work = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=reports_dir))
    names = list(notebooks) + ([COMPARE_NOTEBOOK] if compare else [])
    try:
        params = {"store_url": f"env:{STORE_ENV}", "run_id": run_id, "output_dir": str(work / "tables"),
                  **({"baseline_run_id": compare} if compare else {}), **(parameters or {})}
        merged = work / ".merged.ipynb"
        import nbformat

        nbformat.write(merge_notebooks([notebook_dir / n for n in names]), str(merged))
        try:
            execute_notebook(merged, merged, params, env={STORE_ENV: absolute_sqlite(store_url)})
        except ReportError as exc:
            raise ReportError(_failing_page(merged, names), exc.ename, exc.evalue) from None
        executed = split_pages(merged, names, work)
        merged.unlink()
        for page in executed:
            to_html(page)
        write_index(work, run_id, executed, compare=compare)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
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


def write_index(folder: Path, run_id: str, executed: list[Path], *, compare: str | None = None) -> Path:
    """A small landing page: the consolidated results and Baseline Metrics tables, links to every
    page and table."""
    tables = sorted((folder / "tables").glob("*.csv")) if (folder / "tables").exists() else []
    baseline = folder / "tables" / "baseline_metrics.csv"
    table_html = consolidated_html = ""
    if baseline.exists():
        import pandas as pd

        table_html = pd.read_csv(baseline).to_html(index=False, escape=True, border=0, classes="baseline")
    consolidated = folder / "tables" / "consolidated_results.csv"
    if consolidated.exists():
        import pandas as pd

        consolidated_html = ("<h2>Consolidated results (peak clean step)</h2>"
                             + pd.read_csv(consolidated).to_html(index=False, escape=True, border=0, na_rep="–"))
    backtest = folder / "tables" / "backtest_summary.csv"
    if backtest.exists():
        import pandas as pd

        frame = pd.read_csv(backtest).round(2)
        consolidated_html += ("<h2>Backtest: how far to trust the projection</h2><p>Fitted on the lower steps, "
                              "predicting the higher ones; errors in %.</p>"
                              + frame.to_html(index=False, escape=True, border=0, na_rep="–"))
    links = "".join(f'<li><a href="{html.escape(p.with_suffix(".html").name)}">'
                    f'{html.escape(p.stem.replace("_", " "))}</a></li>' for p in executed)
    csvs = "".join(f'<li><a href="tables/{html.escape(p.name)}">{html.escape(p.name)}</a></li>' for p in tables)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>capkit report {html.escape(run_id)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head><body>
<h1>Capacity report — run {html.escape(run_id)}</h1>
{f"<p>Compared with run {html.escape(compare)}.</p>" if compare else ""}
{consolidated_html}
<h2>Baseline Metrics (measured)</h2>{table_html}
<h2>Pages</h2><ul>{links}</ul><h2>Tables (CSV)</h2><ul>{csvs}</ul></body></html>"""
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index

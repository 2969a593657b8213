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
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ConfigError, ReportError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
REPORT_NOTEBOOKS = ("overview.ipynb", "capacity_report.ipynb", "scalability.ipynb", "capacity_plan.ipynb")
COMPARE_NOTEBOOK = "comparison.ipynb"
STORE_ENV = "CAPKIT_REPORT_STORE_URL"
PAGE_KEY = "capkit_page"


def _fast_validation() -> None:
    """Skip jsonschema's optional IRI-format checker: importing ``rfc3987_syntax`` compiles a
    grammar (~2 s per process) and no notebook field uses the ``iri`` format. Applied when this
    module is imported, before anything here can import nbformat (and with it jsonschema)."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


_fast_validation()


@dataclass
class Published:
    run_id: str
    folder: Path
    index: Path
    notebooks: list[Path]


def limit_parameters(limits) -> dict:
    """The notebooks' parameters for a :class:`~capkit.schemas.ResourceLimits`."""
    return {"cpu_cores": limits.cpu_cores, "memory_mib": limits.memory_mib,
            "db_connections": limits.db_connections, "network_mbps": limits.network_mbps}


def absolute_sqlite(url: str) -> str:
    """Make a relative SQLite URL absolute (the kernel runs in the report folder)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def _kernel_manager_base():
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager


# Report figures lay themselves out (``tight_layout``); the inline backend's default
# ``bbox_inches="tight"`` would draw every figure once more to crop it (~1 s per report).
KERNEL_ARGS = ("--InlineBackend.print_figure_kwargs={'bbox_inches': None}",)


class LocalKernelManager(_kernel_manager_base()):
    """A kernel reached over local IPC sockets instead of TCP (no network exposure, no warning),
    started with :data:`KERNEL_ARGS`.

    Each kernel gets its own absolute socket path: jupyter_client's default is the relative
    ``kernel-ipc-<n>``, which two kernels started together by one process share (their messages
    then cross and fail the signature check), and a short one, for the 107-byte limit of a Unix
    socket path."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"capkit-kernel-{uuid.uuid4().hex[:12]}-ipc"))
        super().__init__(**kwargs)

    def format_kernel_cmd(self, extra_arguments=None):
        return super().format_kernel_cmd(list(extra_arguments or []) + list(KERNEL_ARGS))


# What a report kernel imports while it starts (~2 s): the parent checks the runs, imports papermill
# and merges the pages meanwhile (see :class:`Workspace`).
PRELOAD = "import matplotlib.pyplot, capkit.analysis.plots"


def start_kernel(cwd: Path, env: dict[str, str]) -> LocalKernelManager:
    """Launch a report kernel now (it preloads :data:`PRELOAD`); hand it to :func:`execute_notebook`
    and shut it down with :func:`stop_kernel`."""
    from jupyter_core.utils import run_sync

    km = LocalKernelManager(kernel_name="python3")
    run_sync(km.start_kernel)(extra_arguments=[f"--IPKernelApp.exec_lines={PRELOAD}"],
                              env={**os.environ, **env}, cwd=str(cwd))
    return km


def stop_kernel(km) -> None:
    from jupyter_core.utils import run_sync

    if run_sync(km.is_alive)():
        run_sync(km.shutdown_kernel)(now=True)  # also removes its connection file and sockets
    else:
        run_sync(km.cleanup_resources)()


def execute_notebook(notebook: Path, output: Path, parameters: dict, *, km) -> None:
    """Run one notebook with papermill in ``km`` (from :func:`start_kernel`; its owner shuts it
    down); raise :class:`ReportError` naming the failing cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    try:
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                            cwd=str(output.parent), progress_bar=False, report_mode=True, km=km,
                            # no save at every cell start and end (85 JSON dumps with validation per
                            # report, ~1 s on the critical path): papermill writes once at the end,
                            # and on a failing cell before raising
                            request_save_on_cell_execute=False)
    except PapermillExecutionError as exc:
        raise ReportError(notebook.name, exc.ename, str(exc.evalue).splitlines()[0] if exc.evalue else "") from None


def html_exporter():
    """nbconvert's HTML exporter without code cells or prompts, its templates loaded."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.from_notebook_node(_warm_up_notebook())  # templates, Markdown, filters: their first use costs
    return exporter                                    # ~0.5 s, paid here while the kernel works


def _warm_up_notebook():
    """A tiny notebook with what report pages hold: Markdown with a table, text, HTML, a PNG."""
    import nbformat

    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="  # 1×1
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="text\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": "**a** | b\n---|---\n1 | 2"}),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table><tr><td>1</td></tr></table>",
                                                       "text/plain": "1"}, execution_count=1),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title\n\n| a | b |\n|---|---|\n| 1 | 2 |"),
                                           cell])


def to_html(executed: Path, exporter) -> Path:
    """HTML without code cells (``exporter`` from :func:`html_exporter`); also writes every figure
    as PNG beside it."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
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


class Workspace:
    """Where a report is built: a hidden folder beside its final place and a kernel started in it.

    Open it first, check the inputs while the kernel imports (~2 s), then :func:`publish` into it.
    Closing stops the kernel and removes the folder unless :func:`publish` moved it into place,
    so a failure anywhere leaves no process and nothing half-written.
    """

    def __init__(self, reports_dir: Path, store_url: str):
        self.reports_dir = reports_dir.resolve()  # the kernel runs in the folder: no relative paths
        self._made_reports_dir = not self.reports_dir.exists()
        try:
            self.reports_dir.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=".report-", dir=self.reports_dir))
        except OSError as exc:
            raise ConfigError(f"cannot write reports to {self.reports_dir}: {exc.strerror}; "
                              "set CAPKIT_REPORTS_DIR to a folder you can write") from None
        self.km = None
        try:
            self.km = start_kernel(self.folder, {STORE_ENV: absolute_sqlite(store_url)})
        except BaseException:
            self.close()
            raise

    def stop_kernel(self) -> None:
        if self.km is not None:
            km, self.km = self.km, None
            stop_kernel(km)

    def close(self) -> None:
        self.stop_kernel()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._made_reports_dir and not any(self.reports_dir.iterdir()):
            self.reports_dir.rmdir()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def publish(run_id: str, *, store_url: str, reports_dir: Path, parameters: dict | None = None,
            notebooks: tuple[str, ...] = REPORT_NOTEBOOKS, notebook_dir: Path = NOTEBOOK_DIR,
            compare: str | None = None, workspace: Workspace | None = None) -> Published:
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
    workspace : Workspace, optional
        One opened earlier with the same ``reports_dir`` and ``store_url`` (its kernel already
        started), used for this report only; its owner closes it. Without it, one is opened and
        closed here.

    The report is built aside and moved into place at the end: a failed report leaves the
    previous one (if any) untouched and nothing half-written.
    """
    if workspace is None:
        with Workspace(reports_dir, store_url) as ws:
            return publish(run_id, store_url=store_url, reports_dir=reports_dir, parameters=parameters,
                           notebooks=notebooks, notebook_dir=notebook_dir, compare=compare, workspace=ws)
    work, km = workspace.folder, workspace.km
    if km is None:
        raise ValueError("a Workspace holds one report: open a new one for the next")
    pool = ThreadPoolExecutor(max_workers=1)  # nbconvert's import and templates while the kernel works
    exporter = pool.submit(html_exporter)
    pool.shutdown(wait=False)  # the task runs on; exporter.result() waits for it
    names = list(notebooks) + ([COMPARE_NOTEBOOK] if compare else [])
    params = {"store_url": f"env:{STORE_ENV}", "run_id": run_id, "output_dir": str(work / "tables"),
              **({"baseline_run_id": compare} if compare else {}), **(parameters or {})}
    merged = work / ".merged.ipynb"
    import nbformat

    nbformat.write(merge_notebooks([notebook_dir / n for n in names]), str(merged))
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


def csv_table(path: Path, decimals: int | None = None) -> str:
    """An HTML table of a CSV the report wrote (csv module: the parent never imports pandas).

    Numbers print with 6 significant digits, or ``decimals`` places; empty cells as "–".
    """
    import csv

    def cell(text: str) -> str:
        if text == "":
            return "–"
        try:
            value = float(text)
        except ValueError:
            return html.escape(text)
        if value.is_integer() and "." not in text and "e" not in text.lower():
            return html.escape(text)
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:.6g}"

    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_index(folder: Path, run_id: str, executed: list[Path], *, compare: str | None = None) -> Path:
    """A small landing page: the consolidated results and Baseline Metrics tables, links to every
    page and table."""
    tables = sorted((folder / "tables").glob("*.csv")) if (folder / "tables").exists() else []
    baseline = folder / "tables" / "baseline_metrics.csv"
    table_html = csv_table(baseline) if baseline.exists() else ""
    consolidated = folder / "tables" / "consolidated_results.csv"
    consolidated_html = ("<h2>Consolidated results (peak clean step)</h2>" + csv_table(consolidated)
                         if consolidated.exists() else "")
    backtest = folder / "tables" / "backtest_summary.csv"
    if backtest.exists():
        consolidated_html += ("<h2>Backtest: how far to trust the projection</h2><p>Fitted on the lower steps, "
                              "predicting the higher ones; errors in %.</p>" + csv_table(backtest, decimals=2))
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

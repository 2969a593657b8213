"""Executed notebooks to HTML pages without code, and their figures as PNG."""

from __future__ import annotations

import base64
from pathlib import Path


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



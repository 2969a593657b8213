"""The report's landing page, ``index.html``: its tables and links to every page."""

from __future__ import annotations

import html
from pathlib import Path


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

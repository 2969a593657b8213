"""The landing pages: a report's ``index.html`` (the answer first, the capacity chart, the key tables,
links to every page and table), the top-level ``reports/index.html`` listing every published run,
and the page shell of ``reports/history.html``.

The answer and the tables arrive as HTML fragments the report kernel wrote into ``tables/`` with
the analysis's formatting helpers (``answer.html``, ``consolidated_results.html``, …): one set of
formatting rules, and this parent process never imports pandas.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:64em;margin:1.5em auto;
padding:0 1.2em;color:#1f2328;line-height:1.45}h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.6em}
.meta{color:#57606a}img{max-width:100%;height:auto}nav a{margin-right:1.2em}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left}
.scroll{overflow-x:auto;max-width:100%}details{margin:1em 0}"""


def page(title: str, body: str) -> str:
    """A whole HTML page around ``body`` (already HTML)."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>")


def _fragment(folder: Path, name: str) -> str:
    path = folder / "tables" / f"{name}.html"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def read_answer(folder: Path) -> dict:
    """``tables/answer.json`` of a published report ({} when absent or unreadable)."""
    try:
        return json.loads((folder / "tables" / "answer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _when(ts) -> str:
    try:
        return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError, OSError):
        return "–"


def write_index(folder: Path, run_id: str, executed: list[Path], *, compare: str | None = None) -> Path:
    """The report's landing page: the answer, the capacity chart, the consolidated results, Baseline
    Metrics and backtest tables, links to every page and table (and to the history and all runs)."""
    tables = sorted((folder / "tables").glob("*.csv")) if (folder / "tables").exists() else []
    facts = read_answer(folder)
    meta = (f'<p class="meta">Run {html.escape(run_id)} · {_when(facts.get("created_at"))} · target '
            f'{html.escape(str(facts.get("target") or "–"))} · git {html.escape((facts.get("git_sha") or "–")[:12])}'
            f' · status {html.escape(str(facts.get("status") or "–"))}</p>')
    answer = (_fragment(folder, "answer")
              or "<p>The answer is not available: the report wrote no tables/answer.html.</p>")
    chart = ""
    if (folder / "figures" / "capacity.png").exists():
        chart = ('<h2>Capacity chart</h2><p><img src="figures/capacity.png" alt="Capacity chart: p95 latency, '
                 'throughput and the binding resource against concurrent users, with the thresholds and the '
                 'capacity per replica marked"></p><p class="meta">For print: <a href="figures/capacity.svg">'
                 "SVG</a>. How to read it: the <a href=\"capacity_plan.html\">capacity plan</a>.</p>")
    sections = [("Consolidated results (peak clean step)", "consolidated_results", ""),
                ("Baseline Metrics (measured)", "baseline_metrics", ""),
                ("Replicas per limit", "replicas", ""),
                ("Backtest: how far to trust the projection", "backtest_summary",
                 "<p>Fitted on the lower steps, predicting the higher ones.</p>")]
    body_tables = "".join(f"<h2>{title}</h2>{intro}{frag}" for title, name, intro in sections
                          if (frag := _fragment(folder, name)))
    links = "".join(f'<li><a href="{html.escape(p.with_suffix(".html").name)}">'
                    f'{html.escape(p.stem.replace("_", " ").capitalize())}</a></li>' for p in executed)
    csvs = "".join(f'<li><a href="tables/{html.escape(p.name)}">{html.escape(p.name)}</a></li>' for p in tables)
    nav = ('<nav><a href="../index.html">All runs</a>' + ('<a href="../history.html">History across runs</a>'
           if (folder.parent / "history.html").exists() else "") + "</nav>")
    body = (f"{nav}<h1>Capacity report</h1>{meta}"
            + (f"<p>Compared with run {html.escape(compare)}: see the comparison page.</p>" if compare else "")
            + f"{answer}{chart}<h2>Pages</h2><ul>{links}</ul>{body_tables}"
            + f"<details><summary>Every table as CSV ({len(tables)})</summary><ul>{csvs}</ul></details>")
    index = folder / "index.html"
    index.write_text(page(f"capkit report {run_id}", body), encoding="utf-8")
    return index


def write_reports_index(reports_dir: Path) -> Path:
    """``reports/index.html``: every published run, newest first, with its answer (rewritten whenever
    a report or the history is published)."""
    reports_dir = Path(reports_dir)
    runs = []
    for folder in reports_dir.iterdir() if reports_dir.exists() else []:
        if folder.is_dir() and not folder.name.startswith(".") and (folder / "index.html").exists():
            facts = read_answer(folder)
            runs.append((float(facts.get("created_at") or folder.stat().st_mtime), folder.name, facts))
    runs.sort(reverse=True)
    rows = "".join(
        f'<tr><td><a href="{html.escape(name)}/index.html">{html.escape(name)}</a></td><td>{_when(ts)}</td>'
        f'<td>{html.escape((facts.get("git_sha") or "–")[:7])}</td>'
        f'<td>{html.escape(str(facts.get("target") or "–"))}</td>'
        f'<td>{html.escape(str(facts.get("headline") or "no answer recorded"))}</td></tr>' for ts, name, facts in runs)
    history = ('<p><a href="history.html">History across runs</a>: capacity, CPU per user and p95 per release.</p>'
               if (reports_dir / "history.html").exists() else
               "<p>No history page yet: <code>capkit report --history</code> draws it.</p>")
    body = (f"<h1>Capacity reports</h1><p class=\"meta\">{len(runs)} published run(s), newest first.</p>{history}"
            f'<div class="scroll"><table><thead><tr><th>Run</th><th>Date</th><th>Git</th><th>Target</th>'
            f"<th>Answer</th></tr></thead><tbody>{rows}</tbody></table></div>")
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = reports_dir / "index.html"
    out.write_text(page("capkit reports", body), encoding="utf-8")
    return out


def write_history_page(reports_dir: Path, body_html: str, *, target: str) -> Path:
    """``reports/history.html`` around ``body_html`` (the analysis's history fragment), then
    :func:`write_reports_index`."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    nav = '<nav><a href="index.html">All runs</a></nav>'
    out = reports_dir / "history.html"
    out.write_text(page(f"capkit history {target}", f"{nav}<h1>History across runs: {html.escape(target)}</h1>"
                        f"{body_html}"), encoding="utf-8")
    write_reports_index(reports_dir)
    return out

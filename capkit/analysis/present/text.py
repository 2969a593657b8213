"""Numbers, statuses and tables formatted for people: one set of helpers for the report's HTML
(notebook pages and ``index.html``) and for the terminal (``capkit plan``'s printed table).

Rules: 3 significant digits with thousands separators, an estimate rounded to what its interval
supports, no raw Python repr (``inf``, ``nan``, ``1e-18``) ever shown, a status as text plus a
coloured dot (no emoji font needed), no index column, wide tables scrolling in their own box.
"""

from __future__ import annotations

import html
import math
import numbers
import re

__all__ = ["number", "interval", "users", "percent", "status_of", "status_html", "status_text", "cell_text",
           "table_html", "frame_html", "terminal_table", "STYLE", "SUPERSCRIPT"]

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

# name -> (label, colour, ASCII mark for terminals); the dot carries the colour, the label the meaning
STATUSES = {"stable": ("Stable", "#1a7f37", "ok"), "attention": ("Needs attention", "#b35900", "!!"),
            "failing": ("Failing", "#c62828", "XX"), "unknown": ("Not measured", "#6e7781", "--")}

# CSS shared by index.html and the notebook pages (embedded once per page, see :func:`frame_html`)
STYLE = """<style>
.ck-scroll{overflow-x:auto;max-width:100%;margin:.4em 0 1em}
.ck-table{border-collapse:collapse;font-size:14px;font-variant-numeric:tabular-nums}
.ck-table th{background:#f3f4f6;text-align:left;font-weight:600}
.ck-table th,.ck-table td{border:1px solid #d0d7de;padding:.3em .65em;vertical-align:top}
.ck-table td.num{text-align:right;white-space:nowrap}
.ck-status{white-space:nowrap}.ck-dot{font-size:1.1em}
.ck-answer{border-left:6px solid #0969da;background:#f6f8fa;padding:.8em 1.1em;margin:.6em 0 1.2em}
.ck-answer p{font-size:17px;line-height:1.45;margin:.2em 0 .7em}
.ck-keys{display:flex;flex-wrap:wrap;gap:.8em 2.2em}
.ck-key .v{font-size:28px;font-weight:700;line-height:1.15}
.ck-key .l{font-size:13px;color:#57606a}.ck-key .b{font-size:13px;font-weight:600}
.ck-basis-measured{color:#1a7f37}.ck-basis-projected{color:#9a6700}
.ck-basis-extrapolated,.ck-basis-not-reached{color:#c62828}
</style>"""


def _finite(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def number(x, sig: int = 3, *, decimals: int | None = None) -> str:
    """``x`` with ``sig`` significant digits (or ``decimals`` places) and thousands separators.

    NaN or None is "–", infinity "∞", and tiny magnitudes use "× 10ⁿ" instead of ``1e-18``.
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if not isinstance(x, numbers.Real) or isinstance(x, bool):
        return str(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    if decimals is not None:
        return f"{x:,.{decimals}f}"
    exp = math.floor(math.log10(abs(x)))
    if exp < -4:  # from the e-format: 10**exp underflows to 0 for a subnormal x (a fit's σ of 5e-324)
        mantissa, exp10 = f"{x:.{sig - 1}e}".split("e")
        return f"{mantissa} × 10{str(int(exp10)).translate(SUPERSCRIPT)}"
    places = max(sig - 1 - exp, 0)
    return f"{round(x, sig - 1 - exp):,.{places}f}"


def interval(estimate, low, high, *, unit: str = "") -> str:
    """"est (low–high) unit", all rounded to two significant digits of the interval's half-width;
    an estimate indistinguishable from 0 (its interval holds 0 and it is tiny against it) is "≈ 0"."""
    suffix = f" {unit}" if unit else ""
    if not _finite(estimate):
        return number(estimate) + suffix
    if not (_finite(low) and _finite(high)) or high <= low:
        return number(estimate) + suffix
    half = (high - low) / 2
    places = max(1 - math.floor(math.log10(half)), 0)
    fmt = lambda v: number(v, decimals=places) if abs(v) >= 10**-places or v == 0 else number(v)  # noqa: E731
    if low <= 0 <= high and abs(estimate) < half * 1e-3:
        return f"≈ 0 ({fmt(low)}–{fmt(high)}){suffix}"
    return f"{fmt(estimate)} ({fmt(low)}–{fmt(high)}){suffix}"


def users(x, *, sig: int = 3) -> str:
    """A user count: "not reached" for infinity, whole users below 1,000, else 3 significant digits."""
    if _finite(x):
        return f"{x:,.0f}" if abs(x) < 1000 else number(x, sig)
    if isinstance(x, numbers.Real) and math.isinf(x):
        return "not reached"
    return "–"


def percent(share, decimals: int = 1) -> str:
    """A share (0.012) as "1.2 %"."""
    return f"{100 * share:.{decimals}f} %" if _finite(share) else "–"


_EMOJI = {"✅": "stable", "⚠️": "attention", "⚠": "attention", "❌": "failing"}


def status_of(text) -> str:
    """The status key (stable, attention, failing, unknown) of a label such as "⚠️ Needs attention"."""
    s = str(text or "")
    for mark, key in _EMOJI.items():
        if mark in s:
            return key
    low = s.lower()
    for key, (label, _, _) in STATUSES.items():
        if label.lower() in low:
            return key
    return "unknown"


def status_html(text) -> str:
    """A status as a coloured ● plus its label (class ``ck-status ck-<key>``)."""
    key = status_of(text)
    label, colour, _ = STATUSES[key]
    return (f'<span class="ck-status ck-{key}"><span class="ck-dot" style="color:{colour}">●</span> '
            f"{label}</span>")


def status_text(text) -> str:
    """A status for the terminal: "[ok] Stable" (ASCII mark, no emoji)."""
    label, _, mark = STATUSES[status_of(text)]
    return f"[{mark}] {label}"


_EMOJI_RE = re.compile("[✅❌]|⚠️?")


def cell_text(value, *, sig: int = 3) -> str:
    """One table cell as text: numbers formatted, None/NaN as "–", emoji stripped."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral):
            return f"{value:,}"
        return number(float(value), sig)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _EMOJI_RE.sub("", str(value)).strip() or "–"


def table_html(columns, rows, *, status_columns=("Status",), caption: str | None = None, style: bool = True) -> str:
    """An HTML table in a horizontally scrolling box: numbers right-aligned and formatted, statuses
    as coloured dots with their labels, no index column. ``style`` embeds :data:`STYLE`."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for col, value in zip(columns, row):
            if col in status_columns:
                cells.append(f"<td>{status_html(value)}</td>")
            elif isinstance(value, numbers.Real) and not isinstance(value, bool):
                cells.append(f'<td class="num">{html.escape(cell_text(value))}</td>')
            else:
                cells.append(f"<td>{html.escape(cell_text(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    table = (f'<div class="ck-scroll"><table class="ck-table">{cap}<thead><tr>{head}</tr></thead>'
             f"<tbody>{''.join(body)}</tbody></table></div>")
    return (STYLE + table) if style else table


def frame_html(frame, *, rename: dict | None = None, **kwargs) -> str:
    """:func:`table_html` of a DataFrame (its index left out; ``rename`` maps column names to
    headers with units)."""
    columns = [(rename or {}).get(c, c) for c in frame.columns]
    rows = [[None if _is_missing(v) else v for v in row] for row in frame.itertuples(index=False)]
    return table_html(columns, rows, **kwargs)


def _is_missing(v) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or v != v
    except (TypeError, ValueError):
        return False


def terminal_table(frame, *, rename: dict | None = None, max_width: int = 80) -> str:
    """A DataFrame as an aligned plain-text table for the terminal (same cell rules as HTML;
    statuses as "[ok] Stable"; long cells cut at ``max_width`` with "…")."""
    columns = [str((rename or {}).get(c, c)) for c in frame.columns]
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row):
            text = status_text(value) if col == "Status" else cell_text(None if _is_missing(value) else value)
            cells.append(text if len(text) <= max_width else text[: max_width - 1] + "…")
        rows.append(cells)
    numeric = [all(isinstance(v, numbers.Real) for v in frame[c].dropna()) and len(frame[c].dropna()) > 0
               for c in frame.columns]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()
    return "\n".join([line(columns), "  ".join("─" * w for w in widths)] + [line(r) for r in rows])

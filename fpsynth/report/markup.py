"""HTML building blocks of the report page: escaped text, numbers, tables, images, sections."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

MISSING = "missing"


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant figures; None/NaN as an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    value = float(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def pct(value: Any) -> str:
    return "&ndash;" if value is None else f"{100 * float(value):.1f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", caption: str = "") -> str:
    """A table; ``headers`` are escaped here, cells must already be HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f'<table class="{esc(cls)}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def img(uri: str, alt: str, title: str = "", size: int = 96) -> str:
    return (
        f'<img src="{uri}" alt="{esc(alt)}" title="{esc(title or alt)}" width="{size}" height="{size}" loading="eager">'
    )


def section(anchor: str, title: str, body: str, intro: str = "") -> str:
    lead = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{lead}{body}</section>'


def note(text: str, kind: str = "note") -> str:
    return f'<div class="{esc(kind)}">{text}</div>'


def missing_cell(row: dict[str, Any]) -> str:
    """The cell of a metric that was not computed, naming the file and config key it needs."""
    if row.get("status") == MISSING:
        return (
            f'<span class="missing" title="{esc(row.get("message", ""))}">{MISSING}: set '
            f"<code>{esc(row['config_key'])}</code></span>"
        )
    return f'<span class="missing">{esc(row.get("status", "not computed"))}: {esc(row.get("reason", ""))}</span>'


def is_ok(block: Any) -> bool:
    return isinstance(block, dict) and block.get("status", "ok") == "ok"


def definition_list(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


CSS = """
:root { --fg:#1b1b1b; --muted:#5b5b5b; --line:#d0d0d0; --bg:#ffffff; --head:#f3f4f6; --warn:#fff4d6;
        --warn-line:#d9a400; --alert:#ffe3e3; --alert-line:#c62828; --ok:#e8f5e9; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 40px; }
h3 { font-size: 17px; margin: 22px 0 8px; }
p.intro, .muted { color: var(--muted); }
code { font: 13px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; background: var(--head); padding: 0 3px; }
pre { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: var(--head); padding: 10px; overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; caption-side: top; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: var(--head); font-weight: 600; }
table.numbers td, table.numbers th { text-align: right; }
table.numbers td:first-child, table.numbers th:first-child { text-align: left; }
table.grid td, table.grid th { text-align: center; padding: 3px; }
table.grid img { display: block; margin: 0 auto; }
.grid .label { font-size: 12px; color: var(--muted); max-width: 110px; overflow-wrap: anywhere; }
.banner { border: 2px solid var(--alert-line); background: var(--alert); padding: 10px 14px; margin: 12px 0;
          font-weight: 600; }
.warn { border-left: 5px solid var(--warn-line); background: var(--warn); padding: 8px 12px; margin: 10px 0; }
.note { border-left: 5px solid var(--line); background: var(--head); padding: 8px 12px; margin: 10px 0; }
.missing { color: var(--alert-line); font-weight: 600; }
nav ol { columns: 3; font-size: 14px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dt { font-weight: 600; } dd { margin: 0; }
svg.plot { font: 11px system-ui, sans-serif; background: #fff; margin: 6px 12px 6px 0; }
svg.plot .axis { stroke: #333; } svg.plot .grid { stroke: #e6e6e6; }
svg.plot .label { font-size: 12px; fill: #333; } svg.plot .title { font-size: 13px; font-weight: 600; }
svg.plot .marker { stroke: var(--alert-line); stroke-dasharray: 4 3; stroke-width: 1.5; }
svg.plot .marker-label { fill: var(--alert-line); }
.plots { display: flex; flex-wrap: wrap; }
@media print { main { max-width: none; } section { break-inside: avoid-page; } }
"""

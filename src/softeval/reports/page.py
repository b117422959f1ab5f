"""page: values as escaped HTML, and the self-contained page frame every report is written into.

Every user-derived value (names from specs, paths, configs) goes through `escape`, `num` or `table`; images are
embedded as base64 so a page can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f7f7f7; padding: 0.6em; white-space: pre-wrap; font-size: 0.85em; }
.sample { font-family: monospace; font-size: 0.85em; white-space: pre-wrap; }
.gen { background: #e6f4ea; }
.note { color: #666; font-size: 0.9em; }
"""


def escape(value) -> str:
    """Any value as HTML text: str() of it, escaped."""
    return html.escape(str(value))


def num(value, digits: int = 4) -> str:
    """A table cell: floats to `digits` places (tiny ones in e-notation so they do not read as 0), None as —."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return html.escape(str(value))
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.2e}"
    return html.escape(str(value))


def table(headers: list[str], rows: list[list], left: int = 0) -> str:
    """A table whose first `left` columns are left-aligned (names) and the rest right-aligned (numbers)."""
    head = "".join(f"<th class='{'l' if i < left else ''}'>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{num(v)}</td>" for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def kv_table(rows: list[tuple[str, object]]) -> str:
    """A two-column key → value table; a list value is shown comma-separated, a missing one as –."""
    def cell(v) -> str:
        if isinstance(v, (list, tuple)):
            return ", ".join(escape(x) for x in v) or "–"
        return "–" if v is None else escape(v)

    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows) + "</table>"


def differences_table(diff: dict[str, list], labels: list[str]) -> str:
    """The settings that differ between runs (setting → one value per run, `labels` in order), or a note that
    none does."""
    if not diff:
        return "<p class='note'>The runs share every setting that can change a number.</p>"
    rows = [[key, *[json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for v in values]]
            for key, values in diff.items()]
    return table(["setting", *labels], rows, left=1 + len(labels))


def img(png: bytes, alt: str) -> str:
    """PNG bytes embedded in the page as base64."""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def slug(name: str) -> str:
    """A name safe as a file name (an image's, next to the page)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def page(title: str, parts: list[str], css: str = CSS) -> str:
    """The whole document: the escaped title as <title> and <h1>, then the sections, one per line."""
    head = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
            f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>"]
    return "\n".join([*head, *parts, "</body></html>"])


__all__ = ["CSS", "escape", "num", "table", "kv_table", "differences_table", "img", "slug", "page"]

"""Small helpers for self-contained HTML pages: escaped text, tables, base64-embedded images.

Pages built with :class:`Page` load nothing from outside the file (inline CSS, images as
``data:`` URIs), so a report can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; background: #f5f6f8; color: #222; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px 0; }
h2 { font-size: 19px; margin: 32px 0 10px 0; border-bottom: 2px solid #dde1e6; padding-bottom: 4px; }
p.sub { color: #555; margin: 0 0 16px 0; }
section { background: #fff; border-radius: 8px; padding: 6px 18px 16px 18px; margin-bottom: 18px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.card { background: #fff; border-radius: 8px; padding: 12px 18px; min-width: 140px; box-shadow: 0 1px 3px rgba(0,0,0,.1); }
.card .label { font-size: 12px; color: #666; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 600; margin-top: 2px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: 13px; font-weight: 600; }
.good { background: #dff3e4; color: #1d6b35; }
.warn { background: #fdecd2; color: #8a5300; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 12px; text-align: left; }
th { background: #f0f2f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
figure { display: inline-block; margin: 6px; vertical-align: top; text-align: center; }
figcaption { font-size: 13px; color: #444; }
pre { background: #f0f2f5; padding: 12px; border-radius: 6px; overflow-x: auto; font-size: 12px; }
.note { color: #666; font-style: italic; }
div.scroll { max-height: 640px; overflow-y: auto; border: 1px solid #e3e6ea; border-radius: 6px; display: inline-block; }
div.scroll table { margin: 0; }
div.scroll th { position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
"""

# Click a header of a table.sortable to sort its rows (again to reverse). A cell's data-v, when
# present, is its sort key; numbers sort numerically and before text (e.g. an empty cell).
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.title = 'click to sort';
    th.addEventListener('click', function () {
      var asc = th.dataset.order !== 'asc';
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.order; });
      th.dataset.order = asc ? 'asc' : 'desc';
      var key = function (row) {
        var cell = row.cells[col], v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
        var n = parseFloat(v);
        return isNaN(n) ? v.toLowerCase() : n;
      };
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows).map(function (r, i) { return [key(r), i, r]; });
      rows.sort(function (a, b) {
        var x = a[0], y = b[0], order;
        if (typeof x === typeof y) { order = x < y ? -1 : x > y ? 1 : 0; } else { order = typeof x === 'number' ? -1 : 1; }
        return (asc ? order : -order) || a[1] - b[1];
      });
      rows.forEach(function (r) { body.appendChild(r[2]); });
    });
  });
});
"""


def esc(value: Any) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value))


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` for embedding a file in the page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(data: bytes, alt: str, mime: str = "image/png", width: int | None = None) -> str:
    """An ``<img>`` tag whose source is embedded."""
    size = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(data, mime)}" alt="{esc(alt)}"{size}>'


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cell(value: Any, numeric: bool) -> str:
    """One ``<td>``; a ``(text, key)`` tuple shows ``text`` and sorts by ``key``."""
    klass = ' class="num"' if numeric else ""
    if isinstance(value, tuple):
        text, key = value
        return f'<td{klass} data-v="{esc(key)}">{esc(text)}</td>'
    return f"<td{klass}>{esc(value)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None,
          sortable: bool = False) -> str:
    """An HTML table; cells are escaped, ``numeric`` columns are right-aligned.

    ``sortable`` tables sort by a column when its header is clicked (inline script added by
    :class:`Page`); a cell given as ``(text, key)`` sorts by ``key``.
    """
    numeric = numeric or [False] * len(headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(_cell(c, n) for c, n in zip(row, numeric, strict=True))
        body.append(f"<tr>{cells}</tr>")
    klass = ' class="sortable"' if sortable else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def card(label: str, value: str) -> str:
    """One big number with a label."""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div></div>'


class Page:
    """Collects titled sections and writes one self-contained HTML file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.parts: list[str] = []

    def add(self, heading: str | None, body: str, anchor: str = "") -> None:
        """Append a section (``body`` is raw HTML built with the helpers above)."""
        ident = f' id="{esc(anchor)}"' if anchor else ""
        head = f"<h2>{esc(heading)}</h2>" if heading else ""
        self.parts.append(f"<section{ident}>{head}{body}</section>")

    def render(self) -> str:
        sub = f'<p class="sub">{esc(self.subtitle)}</p>' if self.subtitle else ""
        body = "".join(self.parts)
        # Inline, so the page stays one file that works offline.
        script = f"<script>{SORT_JS}</script>" if 'class="sortable"' in body else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(self.title)}</title>"
            f"<style>{CSS}</style></head><body><main><h1>{esc(self.title)}</h1>{sub}{body}</main>{script}</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path

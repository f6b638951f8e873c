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


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    """An HTML table; cells are escaped, ``numeric`` columns are right-aligned."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{esc(c)}</td>' if n else f"<td>{esc(c)}</td>" for c, n in zip(row, numeric, strict=True))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(self.title)}</title>"
            f"<style>{CSS}</style></head><body><main><h1>{esc(self.title)}</h1>{sub}{''.join(self.parts)}</main></body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path

"""A self-contained HTML report: one file, PNGs inlined, no external resource.

The page carries its own CSS in a ``<style>`` block, embeds every figure as a
``data:image/png;base64,...`` URI and loads nothing: no script, no stylesheet
link, no web font. It opens offline and can be attached to an e-mail as is.
Every piece of text is HTML-escaped (group labels hold JSON).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; } .notes li { color: #8a5a00; }
code { background: #f6f6f6; padding: 0 0.2em; }
table.settings th { text-align: left; } table.settings td { text-align: left; }
"""


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report.

    Attributes
    ----------
    title : str
        Heading shown above the image.
    png : Path
        A PNG file written before the report (read and inlined).
    caption : str
        One line under the image.
    """

    title: str
    png: Path
    caption: str = ""


@dataclass(frozen=True)
class ReportSection:
    """One configuration family: its settings and its groups.

    Attributes
    ----------
    title : str
        Heading (the family's short title).
    settings : sequence of (str, str)
        Run settings shared by the family (data, learner, rounds, ...), shown as a
        two-column table.
    groups : sequence of str
        One line per group of runs.
    """

    title: str
    settings: Sequence[tuple[str, str]] = ()
    groups: Sequence[str] = ()


def png_data_uri(path: str | Path) -> str:
    """The bytes of a PNG file as a ``data:image/png;base64,`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An escaped ``<table>`` with one header row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def render_report(title: str, figures: Sequence[ReportFigure], headers: Sequence[str],
                  rows: Sequence[Sequence[str]], sections: Sequence[ReportSection],
                  intro: Sequence[str] = (), notes: Sequence[str] = ()) -> str:
    """The report as one HTML string.

    Parameters
    ----------
    title : str
        Page title and first heading.
    figures : sequence of ReportFigure
        Inlined in order, one ``<img>`` each.
    headers, rows : sequences of str
        The summary table (cells already formatted).
    sections : sequence of ReportSection
        Per configuration family: its run settings and its groups.
    intro, notes : sequence of str
        Paragraphs before the table; notes and warnings listed at the end.
    """
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in intro]
    parts += ["<h2>Summary</h2>", html_table(headers, rows)]
    parts.append("<h2>Run settings and groups</h2>")
    for sec in sections:
        parts.append(f"<h3>{html.escape(sec.title)}</h3>")
        if sec.settings:
            parts.append('<table class="settings"><tbody>' + "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in sec.settings)
                + "</tbody></table>")
        parts.append("<ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in sec.groups) + "</ul>")
    parts.append("<h2>Curves</h2>")
    for fig in figures:
        parts.append(f'<figure><h3>{html.escape(fig.title)}</h3><img src="{png_data_uri(fig.png)}" '
                     f'alt="{html.escape(fig.title, quote=True)}">'
                     f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")
    if notes:
        parts.append('<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                     + "</ul>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_report(path: str | Path, title: str, figures: Sequence[ReportFigure], headers: Sequence[str],
                 rows: Sequence[Sequence[str]], sections: Sequence[ReportSection],
                 intro: Sequence[str] = (), notes: Sequence[str] = ()) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_report(title, figures, headers, rows, sections, intro, notes), encoding="utf-8")
    return path

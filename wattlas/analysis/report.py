"""Self-contained interactive HTML reports: one page per table, plotly with its JavaScript inlined.

A report is a list of :class:`Section` (title, text, plotly figures, tables) made by the
builder registered for the table. Builders are found in every module of
``wattlas.analysis`` that defines ``REPORTS = {table_name: builder}``; a builder is called as
``builder(ctx)`` with a :class:`ReportContext` and returns a list of sections. Adding a report
for a new table (e.g. ``bench_results``) is adding such a module; nothing else changes.

The page needs no network: plotly.js is embedded once in the ``<head>``.
"""

from __future__ import annotations

import html
import importlib
import logging
import os
import pkgutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import require_parent_dir
from ..errors import AnalysisError

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ._data import Input

log = logging.getLogger("wattlas.analysis.report")

__all__ = ["ReportContext", "Section", "build_report", "render_html", "report_builders"]


@dataclass
class Section:
    """One part of a report: a heading, a paragraph, figures and tables (caption, frame)."""

    title: str
    text: str = ""
    figures: list[Any] = field(default_factory=list)
    tables: list[tuple[str, pl.DataFrame]] = field(default_factory=list)


@dataclass
class ReportContext:
    """What a builder gets: the selected rows as an :class:`Input`, and the selection."""

    input: Input
    table: str
    source: str | None = None
    trace: str | None = None
    #: Upper bound on values drawn for each distribution fit (speed vs precision).
    fit_samples: int = 50_000
    notes: list[str] = field(default_factory=list)


Builder = Callable[[ReportContext], list[Section]]


def report_builders() -> dict[str, Builder]:
    """Every table that has a report, with its builder (from the modules' ``REPORTS``)."""
    from .. import analysis

    found: dict[str, Builder] = {}
    for mod in pkgutil.iter_modules(analysis.__path__):
        module = importlib.import_module(f"{analysis.__name__}.{mod.name}")
        found.update(getattr(module, "REPORTS", {}))
    return found


def build_report(
    table: str,
    out: str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    source: str | None = None,
    trace: str | None = None,
    data: Any = None,
    title: str | None = None,
    fit_samples: int = 50_000,
) -> Path:
    """Write the HTML report of ``table`` (optionally one source/trace) to ``out``.

    ``data`` replaces the store table with a frame or relation the caller passes in.
    Raises :class:`~wattlas.errors.AnalysisError` when the table has no report or the
    selection has no rows. The file is written to a temporary name and renamed, so a failed
    run never leaves a half-written report.

    Examples
    --------
    >>> build_report("llm_requests", "report.html", source="azure-llm-2023")   # doctest: +SKIP
    PosixPath('report.html')
    """
    from ._data import Input

    require_parent_dir(out, "report")  # before the work, not after it
    builders = report_builders()
    if table not in builders:
        raise AnalysisError(
            f"no report for table {table!r}; reports exist for: {', '.join(sorted(builders))}"
        )
    started = time.perf_counter()
    inp = Input(data if data is not None else table, table=table, store=store, source=source, trace=trace)
    try:
        if inp.count() == 0:
            what = " ".join(x for x in (f"source {source!r}" if source else "",
                                        f"trace {trace!r}" if trace else "") if x)
            raise AnalysisError(
                f"table {table!r} has no rows{' for ' + what if what else ''}; ingest a source "
                "that fills it first (`wattlas sources` lists them)"
            )
        from ._stream import one_blas_thread

        ctx = ReportContext(inp, table, source, trace, fit_samples=fit_samples)
        with one_blas_thread():  # memory-bound dot products: see one_blas_thread
            sections = builders[table](ctx)
    finally:
        inp.close()
    subtitle = ", ".join(x for x in (f"source {source}" if source else "all sources",
                                     f"trace {trace}" if trace else "") if x)
    page = render_html(title or f"wattlas report: {table}", sections, subtitle=subtitle, notes=ctx.notes)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    log.debug("report %s written in %.1f s", out, time.perf_counter() - started)
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
header{background:#12324a;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85;font-size:13px}
nav{padding:8px 32px;background:#e8eef3;font-size:13px} nav a{margin-right:14px;color:#12324a}
main{padding:8px 32px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde3e8;border-radius:6px;padding:12px 20px;margin:18px 0}
h2{font-size:18px;margin:6px 0 8px} p.text{font-size:14px;line-height:1.45;max-width:1000px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 14px}
th,td{border:1px solid #dde3e8;padding:3px 7px;text-align:right} th{background:#f0f4f7}
td.s{text-align:left} caption{text-align:left;font-weight:600;font-size:13px;padding:4px 0}
.fig{margin:8px 0} .notes{font-size:12px;color:#555}
"""


def render_html(title: str, sections: Sequence[Section], *, subtitle: str = "",
                notes: Sequence[str] = ()) -> str:
    """The report page: plotly.js inlined once, then every section's figures and tables."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from .. import __version__

    n_fig = 0
    body = []
    toc = []
    for i, sec in enumerate(sections):
        anchor = f"s{i}"
        toc.append(f'<a href="#{anchor}">{html.escape(sec.title)}</a>')
        parts = [f'<section id="{anchor}"><h2>{html.escape(sec.title)}</h2>']
        if sec.text:
            parts.append(f'<p class="text">{html.escape(sec.text)}</p>')
        for fig in sec.figures:
            n_fig += 1
            height = fig.layout.height or 450
            parts.append('<div class="fig">' + pio.to_html(
                fig, full_html=False, include_plotlyjs=False, div_id=f"fig{n_fig}",
                default_height=f"{height}px", config={"displaylogo": False, "responsive": True},
            ) + "</div>")
        for caption, df in sec.tables:
            parts.append(table_html(df, caption))
        parts.append("</section>")
        body.append("".join(parts))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>"
        f'<body data-figures="{n_fig}"><header><h1>{html.escape(title)}</h1>'
        f"<p>{html.escape(subtitle)} &middot; generated {stamp} by wattlas {html.escape(__version__)}</p>"
        f"</header><nav>{''.join(toc)}</nav><main>{''.join(body)}"
        + (f'<section class="notes"><h2>Notes</h2><ul>{note_html}</ul></section>' if notes else "")
        + "</main></body></html>\n"
    )


def table_html(df: pl.DataFrame, caption: str = "", max_rows: int = 200) -> str:
    """A polars frame as an HTML table: numbers right-aligned with 4 significant digits."""
    import polars as pl

    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = []
    for r in df.head(max_rows).iter_rows():
        cells = []
        for v, dt in zip(r, df.dtypes, strict=True):
            if v is None:
                cells.append('<td class="s">&ndash;</td>')
            elif isinstance(v, float):
                cells.append(f"<td>{v:.4g}</td>")
            elif isinstance(v, int) and not isinstance(v, bool):
                cells.append(f"<td>{v:,}</td>")
            else:
                cls = "" if dt.is_numeric() and dt != pl.Boolean else ' class="s"'
                cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class=\"notes\">{df.height - max_rows:,} more rows not shown</p>" if df.height > max_rows else ""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"

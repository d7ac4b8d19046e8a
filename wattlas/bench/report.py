"""Figures of the bench tables: roofline, power/clock timeline, energy per token, co-location.

:func:`figures` takes a DuckDB connection over a store (``wattlas.connect(store)``) and returns
plotly figures; :func:`write_html` writes them into one self-contained page (plotly's JavaScript
inlined, so it opens offline). ``wattlas report bench_results`` and ``wattlas bench report`` call
these.

Examples
--------
>>> import wattlas                                                   # doctest: +SKIP
>>> figs = figures(wattlas.connect("S"))                             # doctest: +SKIP
>>> write_html(figs, "bench.html")                                   # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _rows(con: Any, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(query, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _latest_run(con: Any, bench: str | None = None, run_id: str | None = None) -> str | None:
    if run_id:
        return run_id
    where = "where bench = ?" if bench else ""
    rows = _rows(con, f"select run_id from bench_runs {where} order by started_at_utc desc limit 1",
                 [bench] if bench else [])
    return rows[0]["run_id"] if rows else None


def roofline_figure(con: Any, run_id: str | None = None) -> Any:
    """Achieved TFLOP/s vs arithmetic intensity of GEMM rows, with the GPU's compute and memory roofs."""
    import plotly.graph_objects as go

    where = "where kind = 'gemm' and tflops is not null" + (" and run_id = ?" if run_id else "")
    rows = _rows(con, f"""select r.dtype, r.m, r.n, r.k, r.tflops, r.arithmetic_intensity_flop_per_byte as ai,
                          r.avg_power_w, r.device_type, coalesce(r.gpu_name, 'cpu') as device
                          from bench_results r {where} order by r.dtype""", [run_id] if run_id else [])
    fig = go.Figure()
    for dtype in sorted({r["dtype"] for r in rows}):
        pts = [r for r in rows if r["dtype"] == dtype]
        fig.add_trace(go.Scatter(
            x=[r["ai"] for r in pts], y=[r["tflops"] for r in pts], mode="markers", name=dtype,
            text=[f"{r['m']}x{r['n']}x{r['k']} {r['device']}<br>"
                  + (f"{r['avg_power_w']:.0f} W" if r["avg_power_w"] is not None else "energy n/a") for r in pts],
            hovertemplate="%{text}<br>AI %{x:.1f} FLOP/B<br>%{y:.1f} TFLOP/s<extra></extra>",
        ))
    roofs = _rows(con, "select distinct gpu_name, peak_tflops_json, peak_mem_bandwidth_gb_s from bench_runs "
                       "where peak_tflops_json is not null and peak_mem_bandwidth_gb_s is not null")
    ais = [r["ai"] for r in rows if r["ai"]]
    n_roofs = 0
    if roofs and ais:
        lo, hi = min(ais) / 2, max(ais) * 2
        xs = [lo * (hi / lo) ** (i / 60) for i in range(61)]
        used = {r["dtype"] for r in rows}
        for roof in roofs:
            peaks = json.loads(roof["peak_tflops_json"])
            bw_tb_s = roof["peak_mem_bandwidth_gb_s"] / 1000.0
            for dtype, peak in sorted(peaks.items()):
                if dtype not in used:
                    continue
                fig.add_trace(go.Scatter(
                    x=xs, y=[min(peak, x * bw_tb_s) for x in xs], mode="lines", line={"dash": "dot", "width": 1},
                    name=f"roof {dtype} ({roof['gpu_name']})", hoverinfo="name",
                ))
                n_roofs += 1
    # The title claims roofs only when some are drawn (a CPU run has no datasheet peaks).
    roof_note = " (datasheet roofs dotted)" if n_roofs else " (no datasheet roofs for these devices)"
    fig.update_layout(title=f"GEMM roofline: achieved TFLOP/s vs arithmetic intensity{roof_note}",
                      xaxis={"type": "log", "title": "arithmetic intensity (FLOP/byte, min. traffic)"},
                      yaxis={"type": "log", "title": "TFLOP/s (median time)"})
    return fig


def timeline_figure(con: Any, run_id: str | None = None) -> Any:
    """Instant power and SM clock over a run (points laid end to end in start order)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if run_id is None:
        got = _rows(con, """select s.run_id from power_samples s join bench_runs r using (run_id)
                            where s.power_w is not null order by r.started_at_utc desc limit 1""")
        run_id = got[0]["run_id"] if got else _latest_run(con)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if run_id is not None:
        rows = _rows(con, """select s.device, s.time_s, s.power_w, s.sm_clock_mhz, s.in_window, s.point_id,
                               epoch(r.started_at_utc) - epoch(min(r.started_at_utc) over ()) as offset_s
                             from power_samples s join bench_results r using (run_id, point_id)
                             where s.run_id = ? order by s.point_id, s.time_s""", [run_id])
        seen: set[tuple[str, int, float]] = set()
        for dev in sorted({r["device"] for r in rows}):
            pts = []
            for r in rows:
                if r["device"] != dev or (dev, r["point_id"], r["time_s"]) in seen:
                    continue
                seen.add((dev, r["point_id"], r["time_s"]))
                pts.append(r)
            t = [r["offset_s"] + r["time_s"] for r in pts]
            if any(r["power_w"] is not None for r in pts):
                fig.add_trace(go.Scatter(x=t, y=[r["power_w"] for r in pts], mode="lines", name=f"{dev} power (W)"),
                              secondary_y=False)
            if any(r["sm_clock_mhz"] is not None for r in pts):
                fig.add_trace(go.Scatter(x=t, y=[r["sm_clock_mhz"] for r in pts], mode="lines",
                                         name=f"{dev} SM clock (MHz)", line={"dash": "dot"}), secondary_y=True)
    fig.update_layout(title=f"Power and clock timeline (run {run_id})")
    fig.update_xaxes(title_text="seconds since the run's first point")
    fig.update_yaxes(title_text="instant power (W)", secondary_y=False)
    fig.update_yaxes(title_text="SM clock (MHz)", secondary_y=True)
    return fig


def energy_per_token_figure(con: Any) -> Any:
    """Energy per token vs batch size for LLM phases (time per token where energy is unavailable)."""
    import plotly.graph_objects as go

    rows = _rows(con, """select model, kind, input_tokens, batch_size, dtype, gpu_name,
                           avg(energy_per_token_j) as j, avg(1.0 / tokens_per_s) as s
                         from bench_results where kind in ('prefill', 'decode', 'e2e')
                         group by all order by model, kind, input_tokens, batch_size""")
    have_energy = any(r["j"] is not None for r in rows)
    key = "j" if have_energy else "s"
    fig = go.Figure()
    groups = sorted({(r["model"], r["kind"], r["input_tokens"], r["gpu_name"] or "cpu") for r in rows},
                    key=lambda g: tuple(str(x) for x in g))
    for g in groups:
        pts = [r for r in rows if (r["model"], r["kind"], r["input_tokens"], r["gpu_name"] or "cpu") == g
               and r[key] is not None]
        if pts:
            fig.add_trace(go.Scatter(x=[r["batch_size"] for r in pts], y=[r[key] for r in pts], mode="lines+markers",
                                     name=f"{g[0]} {g[1]} in={g[2]} ({g[3]})"))
    ytitle = "energy per token (J)" if have_energy else "time per token (s) — energy unavailable"
    fig.update_layout(title="LLM: " + ytitle + " vs batch size", xaxis={"type": "log", "title": "batch size"},
                      yaxis={"type": "log", "title": ytitle})
    return fig


def colocation_figure(con: Any) -> Any:
    """Slowdown of each workload next to each partner, per mode."""
    import plotly.graph_objects as go

    rows = _rows(con, """select colocation_mode, workload, partner_workload, avg(slowdown) as slowdown
                         from bench_results where kind = 'colocation' and partner_workload is not null
                         group by all order by colocation_mode, workload, partner_workload""")
    fig = go.Figure()
    for mode in sorted({r["colocation_mode"] for r in rows}):
        pts = [r for r in rows if r["colocation_mode"] == mode]
        fig.add_trace(go.Bar(x=[f"{r['workload']} | {r['partner_workload']}" for r in pts],
                             y=[r["slowdown"] for r in pts], name=mode))
    fig.update_layout(title="Co-location: slowdown of a workload (left) next to its partner (right)",
                      yaxis={"title": "slowdown (co-located / solo time per iteration)"}, barmode="group")
    return fig


def power_note(con: Any, run_id: str | None = None) -> str | None:
    """Why there is no power timeline (``no power samples: no_powercap``), or ``None`` if there is one."""
    run = " and run_id = ?" if run_id else ""
    if _rows(con, f"select 1 from power_samples where power_w is not null{run} limit 1", [run_id] if run_id else []):
        return None
    runs = _rows(con, f"""select distinct coalesce(energy_unavailable_reason,
                            case when sampler_period_s is null then 'sampler_off' end) as why
                         from bench_runs where true{run}""", [run_id] if run_id else [])
    reasons = sorted({r["why"] for r in runs if r["why"]}) or ["the sampler read no power"]
    return f"no power samples: {', '.join(reasons)}"


def figures_and_notes(con: Any, run_id: str | None = None) -> tuple[list[Any], list[str]]:
    """The bench figures that have data, and one line for each figure left out for want of data."""
    run = " and run_id = ?" if run_id else ""
    counts = {r["kind"]: r["n"] for r in _rows(con, "select kind, count(*) as n from bench_results group by kind")}
    out, notes = [], []
    if _rows(con, f"select 1 from bench_results where kind = 'gemm' and tflops is not null{run} limit 1",
             [run_id] if run_id else []):
        out.append(roofline_figure(con, run_id))
    if counts and (note := power_note(con, run_id)) is not None:
        notes.append(note)  # never an empty timeline: say why it is missing
    elif counts:
        out.append(timeline_figure(con, run_id))
    if any(counts.get(k) for k in ("prefill", "decode", "e2e")):
        out.append(energy_per_token_figure(con))
    if counts.get("colocation"):
        out.append(colocation_figure(con))
    return out, notes


def figures(con: Any, run_id: str | None = None) -> list[Any]:
    """Every bench figure that has data in the store (roofline, timeline, J/token, co-location)."""
    return figures_and_notes(con, run_id)[0]


_TEXT = {
    "GEMM roofline": "Median-time TFLOP/s of every GEMM point against its arithmetic intensity (minimum "
                     "traffic), with the datasheet compute and memory roofs where the store knows the "
                     "device's peaks.",
    "Power and clock timeline": "Instant power (NVML instant field) and SM clock from the sampler, points "
                                "laid end to end: the timeline behind the energy windows.",
    "LLM": "Energy per token (prefill: per prompt token; decode and e2e: per generated token) against batch "
           "size; time per token where energy could not be measured.",
    "Co-location": "Slowdown of each workload next to its partner: co-located over solo time per iteration.",
}


def report_sections(ctx: Any) -> list[Any]:
    """Sections for the general ``wattlas report bench_results`` (``wattlas.analysis.report``).

    ``ctx.input.con`` is a DuckDB connection over the store; one section per figure.
    """
    from ..analysis.report import Section

    out = []
    figs, notes = figures_and_notes(ctx.input.con)
    for fig in figs:
        title = fig.layout.title.text or "bench"
        key = title.split(":")[0].split(" (")[0]
        out.append(Section(title=title, text=_TEXT.get(key, ""), figures=[fig]))
    out += [Section(title="Figures left out", text=note) for note in notes]
    return out


def write_html(figs: list[Any], path: str | Path, title: str = "wattlas bench results",
               notes: list[str] | None = None) -> Path:
    """One self-contained HTML page with every figure (plotly.js inlined once) and ``notes``."""
    from .._files import require_parent_dir

    path = require_parent_dir(path, "bench report")
    parts = []
    for i, fig in enumerate(figs):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    empty = "<p>No figures: see below.</p>" if notes else "<p>No bench results in this store.</p>"
    body = "\n".join(f'<div class="fig">{p}</div>' for p in parts) or empty
    body += "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes or [])
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")
    path.write_text(page, encoding="utf-8")
    return path

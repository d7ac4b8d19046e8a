"""Reports for the serverless tables and the HPC/GPU tables (the issue-4 schemas)."""

from __future__ import annotations

import numpy as np

from . import hpc, serverless
from .arrivals import arrival_rate, interarrival_stats
from .periodicity import auto_bin_s
from .report import ReportContext, Section
from .report_llm import _fmt_bin, _labels, choose_rate_bins


def _lines(go, df, x, y, title_x, title_y, log_x=False, log_y=False, height=400):
    fig = go.Figure()
    for g in df["group"].unique(maintain_order=True).to_list()[:8]:
        sub = df.filter(group=g)
        fig.add_trace(go.Scatter(x=sub[x].to_numpy(), y=sub[y].to_numpy(), mode="lines", name=g))
    fig.update_xaxes(title_text=title_x, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=title_y, type="log" if log_y else "linear")
    fig.update_layout(height=height)
    return fig


def _ecdf_fig(go, frame, col, groups_col, title_x):
    import polars as pl

    fig = go.Figure()
    for g in frame[groups_col].unique(maintain_order=True).to_list()[:8]:
        v = np.sort(frame.filter(pl.col(groups_col) == g)[col].drop_nulls().to_numpy())
        v = v[v > 0]
        if v.size == 0:
            continue
        idx = np.unique(np.linspace(0, v.size - 1, min(v.size, 400)).astype(int))
        fig.add_trace(go.Scatter(x=v[idx], y=(idx + 1) / v.size, mode="lines", name=str(g)))
    fig.update_xaxes(type="log", title_text=title_x)
    fig.update_yaxes(title_text="CDF")
    fig.update_layout(height=400)
    return fig


def build_invocations_report(ctx: ReportContext) -> list[Section]:
    import plotly.graph_objects as go

    inp = ctx.input
    cols = inp.group_by(None, ("source", "trace"))
    shares = serverless.invocation_shares(inp, by=cols)
    rates = _labels(serverless.function_invocation_rates(inp, by=cols), cols)
    fig = _ecdf_fig(go, rates, "invocations_per_day", "group", "mean invocations per day (per function)")
    for x, name in ((24, "1/hour"), (1440, "1/minute")):
        fig.add_vline(x=x, line_dash="dot", annotation_text=name)
    span = float(inp.sql("SELECT max(time_s) - min(time_s) AS s FROM _input")["s"][0] or 0.0)
    b = choose_rate_bins(span, n=1)[0] if span > 0 else 60.0
    b = max(b, 60.0)
    rate = _labels(arrival_rate(inp, bin_s=b, by=cols, time_col="time_s", weight_col="invocations"), cols)
    fig2 = _lines(go, rate, "bin_start_s", "rate_per_s", "time (s from the trace's origin)",
                  f"invocations/s ({_fmt_bin(b)} bins)")
    return [
        Section("Invocations per function",
                "Per-function mean invocation rate over the trace's days (Serverless in the Wild, Fig. 5 "
                "style): the shares invoked at most once per hour or per minute on average, and how "
                "concentrated invocations are in the busiest functions.",
                figures=[fig], tables=[("Concentration of invocations", shares)]),
        Section("Invocation rate over time", "All functions together, empty bins included.", figures=[fig2]),
    ]


def build_durations_report(ctx: ReportContext) -> list[Section]:
    import plotly.graph_objects as go

    inp = ctx.input
    cols = inp.group_by(None, ("source", "trace"))
    col = "duration_s" if inp.has("duration_s") else "avg_duration_s"
    stats = serverless.duration_stats(inp, by=cols)
    sample = _labels(inp.sql("SELECT * FROM _input USING SAMPLE reservoir(200000 ROWS) REPEATABLE (0)"), cols)
    fig = _ecdf_fig(go, sample, col, "group", "execution time (s)")
    return [Section("Execution time", "Distribution of execution times (per invocation for "
                    "function_events; per function-day average for function_durations).",
                    figures=[fig], tables=[("Percentiles", stats)])]


def build_memory_report(ctx: ReportContext) -> list[Section]:
    import plotly.graph_objects as go

    inp = ctx.input
    cols = inp.group_by(None, ("source", "trace"))
    sample = _labels(inp.sql("SELECT * FROM _input"), cols)
    fig = _ecdf_fig(go, sample, "avg_allocated_mb", "group", "average allocated memory per app-day (MB)")
    return [Section("Application memory", "Committed memory per application (daily averages).",
                    figures=[fig], tables=[("Percentiles over apps", serverless.memory_stats(inp, by=cols))])]


def build_cold_starts_report(ctx: ReportContext) -> list[Section]:
    import plotly.graph_objects as go
    import polars as pl

    from .distributions import cdf

    inp = ctx.input
    cols = inp.group_by(None, ("source", "trace"))
    stats = serverless.cold_start_stats(inp, by=cols)
    breakdown = serverless.cold_start_breakdown(inp, by=cols)
    fits = serverless.cold_start_fits(inp, by=cols, max_samples=ctx.fit_samples)
    parts = _labels(breakdown.filter(pl.col("component") != "total"), cols)
    fig = go.Figure()
    for comp in parts["component"].unique(maintain_order=True).to_list():
        sub = parts.filter(component=comp)
        fig.add_trace(go.Bar(x=sub["group"].to_list(), y=sub["mean_s"].to_list(), name=comp))
    fig.update_layout(barmode="stack", height=400, yaxis_title="mean time per cold start (s)")
    sample = _labels(inp.sql(f"SELECT * FROM _input USING SAMPLE reservoir({ctx.fit_samples} ROWS) REPEATABLE (0)"),
                     cols)
    fig2 = _ecdf_fig(go, sample, "cold_start_s", "group", "cold-start time (s)")
    if fits.height:
        best = _labels(fits.filter((pl.col("quantity") == "cold_start_s") & (pl.col("rank_aic") == 1)), cols)
        for r in best.iter_rows(named=True):
            xs = np.geomspace(max(1e-4, sample["cold_start_s"].min() or 1e-4), sample["cold_start_s"].max(), 100)
            fig2.add_trace(go.Scatter(x=xs, y=cdf(r["family"], xs, r["shape"], r["scale"]), mode="lines",
                                      line={"dash": "dash"}, name=f"{r['group']}: {r['family']} fit"))
    span = float(inp.sql("SELECT max(time_s) - min(time_s) AS s FROM _input")["s"][0] or 0.0)
    b = max(60.0, auto_bin_s(span, max_bins=5000))
    rate = _labels(arrival_rate(inp, bin_s=b, by=cols, time_col="time_s"), cols)
    fig3 = _lines(go, rate, "bin_start_s", "rate_per_s", "time (s since day 0)", f"cold starts/s ({_fmt_bin(b)} bins)")
    ia = interarrival_stats(inp, by=cols, time_col="time_s").drop("gap_cv")  # deprecated alias
    return [
        Section("Cold starts", "Counts and cold-start time quantiles per trace.", tables=[("Summary", stats)]),
        Section("Where the time goes", "Mean cold-start time by component (pod allocation, code and "
                "dependency deployment, scheduling).", figures=[fig], tables=[("Components", breakdown)]),
        Section("Distributions and fits", "Cold-start times with the best fit overlaid; fits of cold-start "
                "times and of the gaps between cold starts (the Huawei study reports lognormal and Weibull).",
                figures=[fig2], tables=[("Fits", fits.drop("error") if fits.height else fits)]),
        Section("Cold starts over time", "", figures=[fig3], tables=[("Gaps between cold starts", ia)]),
    ]


def build_jobs_report(ctx: ReportContext) -> list[Section]:
    from plotly.subplots import make_subplots

    inp = ctx.input
    cols = inp.group_by(None, ("source",))
    present = [c for c in ("wait_s", "run_s", "gpus", "cpus") if inp.has(c)]
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=present)
    import plotly.graph_objects as go

    for j, c in enumerate(present, start=1):
        h = _labels(hpc.job_histogram(inp, column=c, by=cols), cols)
        for g in h["group"].unique(maintain_order=True).to_list()[:6]:
            sub = h.filter(group=g)
            fig.add_trace(go.Bar(x=sub["bin_lo"].to_list(), y=sub["requests"].to_list(), name=g, showlegend=j == 1),
                          row=1, col=j)
        fig.update_xaxes(type="log", row=1, col=j)
        fig.update_yaxes(type="log", title_text="jobs" if j == 1 else None, row=1, col=j)
    fig.update_layout(height=420, bargap=0)
    tables = [("Jobs", hpc.job_stats(inp, by=cols))]
    if inp.has("state"):
        tables.append(("Jobs by state", inp.sql(
            f"SELECT {''.join(c + ', ' for c in cols)}state, count(*) AS jobs FROM _input "
            f"GROUP BY ALL ORDER BY jobs DESC")))
    return [Section("Jobs: size, wait and run time", "Log-binned histograms (zeros in the first bin).",
                    figures=[fig], tables=tables)]


def build_gpu_report(ctx: ReportContext) -> list[Section]:
    import plotly.graph_objects as go

    inp = ctx.input
    cols = inp.group_by(None, ("source",))
    stats = hpc.gpu_stats(inp, by=cols)
    per_gpu = hpc.gpu_usage(inp)
    fig = go.Figure()
    for col, name in (("util_mean_pct", "mean utilization (%)"), ("power_mean_w", "mean power (W)"),
                      ("memory_used_mean_mib", "mean memory used (MiB)")):
        v = per_gpu[col].drop_nulls().to_numpy()
        if v.size:
            fig.add_trace(go.Histogram(x=v, name=name, nbinsx=50, visible=True if col == "util_mean_pct" else
                                       "legendonly"))
    fig.update_layout(height=400, xaxis_title="per-GPU mean (click the legend to switch)", yaxis_title="GPUs")
    per_job = hpc.gpu_usage(inp, level="job")
    return [Section("GPU utilization, memory and power",
                    "Per GPU (job, node, GPU index) means over its samples; idle GPUs have mean "
                    "utilization below 1 %. Power is as nvidia-smi sampled it; no energy is derived.",
                    figures=[fig], tables=[("Cluster-wide", stats),
                                           ("Per job (largest 100 by samples)",
                                            per_job.sort("samples", descending=True).head(100))])]


REPORTS = {
    "function_invocations": build_invocations_report,
    "function_events": build_durations_report,
    "function_durations": build_durations_report,
    "app_memory": build_memory_report,
    "cold_starts": build_cold_starts_report,
    "hpc_jobs": build_jobs_report,
    "gpu_samples": build_gpu_report,
}

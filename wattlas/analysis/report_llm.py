"""The ``llm_requests`` report: arrivals, burstiness, fits, tokens, models, periodicity, sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._arrays import time_expr
from ._data import qi
from .arrivals import _gap_quantiles, arrival_rate, bursts, dispersion_index, interarrival_stats
from .distributions import cdf, fit_column, fit_interarrivals
from .periodicity import DAY_S, auto_bin_s, autocorrelation, periodicity, profile
from .report import ReportContext, Section
from .requests import (
    failure_rates,
    session_stats,
    token_correlation,
    token_histogram,
    token_joint_histogram,
    token_stats,
)

if TYPE_CHECKING:
    import polars as pl

RATE_BINS_S = (1.0, 10.0, 60.0, 600.0, 3600.0, DAY_S)
_PROBS = np.unique(np.concatenate([np.linspace(0.005, 0.99, 120), 1 - np.logspace(-2, -4, 12)]))
MAX_PANELS = 6


def label(row: dict[str, Any], cols: list[str]) -> str:
    """``source/trace`` style label of a group."""
    return "/".join(str(row[c]) for c in cols) or "all"


def _labels(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    import polars as pl

    if not cols:
        return df.with_columns(group=pl.lit("all"))
    return df.with_columns(group=pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in cols], separator="/"))


def choose_rate_bins(span_s: float, max_bins: int = 20_000, n: int = 3) -> list[float]:
    """Up to ``n`` bin sizes giving between 10 and ``max_bins`` bins over ``span_s``."""
    ok = [b for b in RATE_BINS_S if 10 <= span_s / b <= max_bins]
    return ok[:n] if ok else [auto_bin_s(span_s)]


def _fmt_bin(b: float) -> str:
    return f"{b / 86400:g} d" if b >= 86400 else f"{b / 3600:g} h" if b >= 3600 else (
        f"{b / 60:g} min" if b >= 60 else f"{b:g} s")


def build_llm_report(ctx: ReportContext) -> list[Section]:
    import plotly.graph_objects as go
    import polars as pl
    from plotly.subplots import make_subplots

    inp = ctx.input
    cols = inp.group_by(None, ("source", "trace"))
    extra = [c for c in ("model", "log_type") if inp.non_null(c)]
    sections: list[Section] = []
    if inp.engine == "numpy":
        # Read every column the statistics below use in one scan; each statistic is then an O(n)
        # pass over arrays in memory (see wattlas.analysis._arrays) instead of a query of its own.
        inp.rows([time_expr("arrival_s"),
                  *(qi(c) for c in ("input_tokens", "output_tokens", "failed") if inp.has(c))],
                 [tuple(cols), tuple(cols + extra)])
    else:
        # Out of core (wattlas.analysis._stream): the first pass over the arrival times also
        # computes every bin size and the gap sample used below.
        from ._stream import stream_times, tallies

        tm = stream_times(inp, cols, "arrival_s")
        span0 = max((g.span or 0.0 for g in tm.groups if g.n), default=0.0)
        tm.want(bins=[*choose_rate_bins(span0), auto_bin_s(span0, max_bins=5000), 3600.0],
                samples=ctx.fit_samples, seed=0)
        # One streamed pass over the tokens: correlation, joint histogram and the fits' samples.
        tallies(inp, cols).want(joint_bins_per_decade=8, samples=("input_tokens", "output_tokens"),
                                max_samples=ctx.fit_samples)

    # ---------------------------------------------------------------- overview
    ia = interarrival_stats(inp, by=cols)
    ts = token_stats(inp, by=cols)
    overview = ia.join(ts.drop("requests"), on=cols, how="left") if cols else pl.concat([ia, ts.drop("requests")],
                                                                                         how="horizontal")
    overview = overview.select(
        *cols, "requests", "span_s", "mean_rate_per_s", "interarrival_cv", "zero_gap_share",
        "input_tokens_p50", "input_tokens_p99", "output_tokens_p50", "output_tokens_p99", "failed_share",
    )
    corr = token_correlation(inp, by=cols)
    sections.append(Section(
        "Overview",
        "One row per trace. CV is the coefficient of variation of inter-arrival gaps (1 for a Poisson "
        "process, larger is burstier); zero_gap_share counts arrivals sharing a timestamp (the trace's "
        "time resolution). Token quantiles interpolate linearly.",
        tables=[("Per-trace summary", overview), ("Input/output token correlation", corr)],
    ))
    span = float(ia["span_s"].max() or 0.0)
    groups_by_size = _labels(ia, cols).sort("requests", descending=True)["group"].to_list()
    shown = groups_by_size[:MAX_PANELS]
    if len(groups_by_size) > MAX_PANELS:
        ctx.notes.append(f"Per-trace panels show the {MAX_PANELS} largest of {len(groups_by_size)} traces.")

    # ---------------------------------------------------------------- arrival rate
    bins = choose_rate_bins(span)
    fig = make_subplots(rows=len(bins), cols=1, subplot_titles=[f"bin {_fmt_bin(b)}" for b in bins],
                        vertical_spacing=0.08)
    palette = _palette(groups_by_size)
    for i, b in enumerate(bins, start=1):
        rate = _labels(arrival_rate(inp, bin_s=b, by=cols), cols)
        for g in shown:
            sub = rate.filter(group=g)
            fig.add_trace(go.Scattergl(x=sub["bin_start_s"].to_numpy(), y=sub["rate_per_s"].to_numpy(),
                                       mode="lines", name=g, legendgroup=g, showlegend=i == 1,
                                       line={"color": palette[g], "width": 1}), row=i, col=1)
        fig.update_yaxes(title_text="requests/s", row=i, col=1)
    fig.update_xaxes(title_text="arrival time (s from the trace's origin)", row=len(bins), col=1)
    fig.update_layout(height=260 * len(bins) + 60, margin={"t": 40})
    sections.append(Section(
        "Arrival rate",
        "Requests per second in bins of several sizes, empty bins included (a gap in traffic shows "
        "as zero). Bins are aligned to multiples of the bin size from the trace's time origin.",
        figures=[fig],
    ))

    # ---------------------------------------------------------------- inter-arrival distribution
    fits = fit_interarrivals(inp, by=cols, max_samples=ctx.fit_samples)
    probs = [float(p) for p in _PROBS]
    q = _labels(_gap_quantiles(inp, cols, probs), cols)
    fits_l = _labels(fits, cols) if fits.height else fits
    fig = go.Figure()
    for g in shown:
        sub = q.filter(group=g)
        if sub.is_empty() or sub["q"][0] is None:
            continue
        x = np.asarray(sub["q"][0], dtype=float)
        fig.add_trace(go.Scatter(x=x, y=probs, mode="lines", name=f"{g} (data)", legendgroup=g,
                                 line={"color": palette[g], "width": 3}))
        if fits.height:
            xs = np.geomspace(max(x.min(), 1e-6), x.max(), 120)
            for r in fits_l.filter(group=g).iter_rows(named=True):
                if r["error"]:
                    continue
                fig.add_trace(go.Scatter(
                    x=xs, y=cdf(r["family"], xs, r["shape"], r["scale"]), mode="lines",
                    name=f"{g}: {r['family']}", legendgroup=g, visible=True if r["rank_aic"] == 1 else "legendonly",
                    line={"color": palette[g], "dash": _DASH.get(r["family"], "dot"), "width": 1.5}))
    fig.update_xaxes(type="log", title_text="gap between consecutive arrivals (s)")
    fig.update_yaxes(title_text="CDF (gaps > 0)")
    fig.update_layout(height=480)
    fit_table = fits.select(*cols, "family", "params", "n", "dropped", "ks_statistic", "ks_pvalue", "aic",
                            "rank_ks", "rank_aic") if fits.height else fits
    sections.append(Section(
        "Inter-arrival times and fitted distributions",
        "Empirical CDF of the gaps between consecutive arrivals (zero gaps excluded) with the "
        "maximum-likelihood fits overlaid (best AIC shown; click the legend for the others). Fits "
        f"use a seeded sample of at most {ctx.fit_samples:,} gaps per trace. KS p-values are "
        "optimistic because the parameters are fitted on the same data.",
        figures=[fig], tables=[("Fits ranked by AIC (rank_ks: rank by KS statistic)", fit_table)],
    ))

    # ---------------------------------------------------------------- burstiness
    windows = [w for w in (1.0, 10.0, 60.0, 600.0, 3600.0, DAY_S) if w <= span / 4] or [1.0]
    disp = _labels(dispersion_index(inp, windows_s=windows, by=cols), cols)
    fig = go.Figure()
    for g in shown:
        sub = disp.filter(group=g)
        fig.add_trace(go.Scatter(x=sub["window_s"].to_numpy(), y=sub["dispersion_index"].to_numpy(),
                                 mode="lines+markers", name=g, line={"color": palette[g]}))
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="Poisson")
    fig.update_xaxes(type="log", title_text="window (s)")
    fig.update_yaxes(type="log", title_text="index of dispersion (var/mean of counts)")
    fig.update_layout(height=420)
    burst_bin = choose_rate_bins(span)[min(1, len(choose_rate_bins(span)) - 1)]
    bt = bursts(inp, bin_s=burst_bin, threshold=2.0, by=cols)
    top = bt.sort("peak_to_mean", descending=True).head(25) if bt.height else bt
    sections.append(Section(
        "Burstiness",
        "Index of dispersion of arrival counts by window size: 1 for a Poisson process, growing "
        f"with the window for bursty traffic. Bursts: runs of {_fmt_bin(burst_bin)} bins above 2x "
        "the trace's mean count per bin (largest peaks first).",
        figures=[fig], tables=[(f"Bursts ({bt.height:,} found; top 25 by peak-to-mean)", top)],
    ))

    # ---------------------------------------------------------------- tokens
    fig = make_subplots(rows=1, cols=2, subplot_titles=["input (prompt) tokens", "output (generated) tokens"])
    zero_notes = []
    for j, col in enumerate(("input_tokens", "output_tokens"), start=1):
        h = _labels(token_histogram(inp, column=col, bins_per_decade=20, by=cols), cols)
        for g in shown:
            sub = h.filter(group=g)
            zeros = sub.filter(pl.col("bin_lo") == 0)["requests"].sum()
            if zeros:
                zero_notes.append(f"{g}: {zeros:,} requests with 0 {col.replace('_', ' ')}")
            sub = sub.filter(pl.col("bin_lo") > 0)
            mid = np.sqrt(sub["bin_lo"].to_numpy() * sub["bin_hi"].to_numpy())
            fig.add_trace(go.Scatter(x=mid, y=sub["density"].to_numpy(), mode="lines", name=g, legendgroup=g,
                                     showlegend=j == 1, line={"color": palette[g], "shape": "hvh"}),
                          row=1, col=j)
        fig.update_xaxes(type="log", title_text="tokens", row=1, col=j)
        fig.update_yaxes(type="log", title_text="density (share per token)", row=1, col=j)
    fig.update_layout(height=440)
    tok_fits = []
    for col in ("input_tokens", "output_tokens"):
        f = fit_column(inp, column=col, by=cols, discrete=True, max_samples=ctx.fit_samples)
        if f.height:
            tok_fits.append(f.filter(pl.col("rank_aic") <= 2).select(
                pl.lit(col).alias("column"), *cols, "family", "params", "ks_statistic", "aic", "rank_ks", "rank_aic"))
    text = ("Token-count distributions on logarithmic bins (20 per decade; density = share of "
            "requests per token). The fits treat counts as discrete (see wattlas.analysis."
            "distributions), including Zipf as BurstGPT reports for request tokens.")
    if zero_notes:
        text += " Not on the log axes: " + "; ".join(zero_notes) + "."
    sections.append(Section("Token distributions", text, figures=[fig], tables=[
        ("Best two fits per trace and column (discrete; ranked by AIC)",
         pl.concat(tok_fits, how="vertical_relaxed") if tok_fits else pl.DataFrame())]))

    # ---------------------------------------------------------------- joint density
    joint = _labels(token_joint_histogram(inp, bins_per_decade=8, by=cols), cols)
    jg = shown[:4]
    fig = make_subplots(rows=1, cols=len(jg), subplot_titles=jg, horizontal_spacing=0.06)
    for j, g in enumerate(jg, start=1):
        sub = joint.filter((pl.col("group") == g) & (pl.col("input_lo") > 0) & (pl.col("output_lo") > 0))
        if sub.is_empty():
            continue
        xi = np.log10(sub["input_lo"].to_numpy())
        yo = np.log10(sub["output_lo"].to_numpy())
        xs, ys = np.unique(xi), np.unique(yo)
        z = np.full((ys.size, xs.size), np.nan)
        z[np.searchsorted(ys, yo), np.searchsorted(xs, xi)] = np.log10(sub["share"].to_numpy())
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, coloraxis="coloraxis", name=g,
                                 hovertemplate="log10 input %{x:.2f}<br>log10 output %{y:.2f}"
                                               "<br>log10 share %{z:.2f}<extra></extra>"), row=1, col=j)
        fig.update_xaxes(title_text="log10 input tokens", row=1, col=j)
    fig.update_yaxes(title_text="log10 output tokens", row=1, col=1)
    fig.update_layout(height=420, coloraxis={"colorscale": "Viridis", "colorbar": {"title": "log10 share"}})
    sections.append(Section(
        "Input vs output tokens",
        "Joint distribution of prompt and generated tokens (share of requests per log-spaced cell, "
        "8 per decade, colour on a log scale).", figures=[fig]))

    # ---------------------------------------------------------------- models / log types / failures
    if extra:
        per = token_stats(inp, by=cols + extra)
        per_l = _labels(per, cols + extra)
        fig = go.Figure(go.Bar(x=per_l["group"].to_list(), y=per_l["requests"].to_list(),
                               marker_color="#2a6f97"))
        fig.update_layout(height=380, yaxis_title="requests")
        tables = [("Per model / log type", per.select(
            *cols, *extra, "requests", "input_tokens_mean", "input_tokens_p50", "input_tokens_p99",
            "output_tokens_mean", "output_tokens_p50", "output_tokens_p99", "failed_share"))]
        if inp.non_null("failed"):
            tables.append(("Failure rates (failed = response tokens 0)", failure_rates(inp, by=cols + extra)))
        sections.append(Section("Per-model breakdown", "Requests and token statistics per model and "
                                "log type (BurstGPT records both).", figures=[fig], tables=tables))
    else:
        ctx.notes.append("This trace records no model or log type: no per-model breakdown.")

    # ---------------------------------------------------------------- periodicity
    pbin = auto_bin_s(span, max_bins=5000)
    per = periodicity(inp, bin_s=pbin, by=cols)
    acf = _labels(autocorrelation(inp, bin_s=pbin, by=cols), cols)
    fig = go.Figure()
    for g in shown:
        sub = acf.filter(group=g)
        fig.add_trace(go.Scatter(x=sub["lag_s"].to_numpy(), y=sub["acf"].to_numpy(), mode="lines", name=g,
                                 line={"color": palette[g]}))
    fig.update_layout(height=380, xaxis_title=f"lag (s; rate in {_fmt_bin(pbin)} bins)",
                      yaxis_title="autocorrelation")
    figs = [fig]
    text = (f"Autocorrelation of the arrival rate ({_fmt_bin(pbin)} bins) and, for traces of a day or "
            "more, the mean rate by hour of day relative to the overall mean (the wall clock where "
            "the trace has one, else the trace's own origin). peak_to_mean is the busiest bin over "
            "the mean.")
    if span >= DAY_S:
        prof = _labels(profile(inp, period_s=DAY_S, bin_s=3600, by=cols), cols)
        f2 = go.Figure()
        for g in shown:
            sub = prof.filter(group=g)
            f2.add_trace(go.Scatter(x=sub["phase_s"].to_numpy() / 3600, y=sub["relative_rate"].to_numpy(),
                                    mode="lines+markers", name=g, line={"color": palette[g]}))
        f2.update_layout(height=380, xaxis_title="hour of day", yaxis_title="rate / mean rate")
        figs.append(f2)
    else:
        ctx.notes.append("Traces shorter than a day: no hour-of-day profile (diurnal structure needs a day).")
    sections.append(Section("Periodicity", text, figures=figs, tables=[("Periodicity summary", per)]))

    # ---------------------------------------------------------------- sessions
    if inp.non_null("session_id"):
        st = session_stats(inp, by=cols)
        sections.append(Section("Conversation sessions", "Sessions are rows sharing a session id "
                                "(BurstGPT release 3 conversation logs); gaps are between consecutive "
                                "turns of a session.", tables=[("Sessions", st)]))
    return sections


_DASH = {"exponential": "dot", "gamma": "dash", "weibull": "dashdot", "lognormal": "longdash"}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")


def _palette(groups: list[str]) -> dict[str, str]:
    return {g: _COLORS[i % len(_COLORS)] for i, g in enumerate(groups)}


REPORTS = {"llm_requests": build_llm_report}

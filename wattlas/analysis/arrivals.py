"""Arrival processes: rate series, inter-arrival statistics, dispersion and bursts.

All statistics are computed per group (default: ``source`` and ``trace`` where those columns
exist) from the group's arrival times, read once per :class:`~wattlas.analysis.Input` and sorted
once (a check, when they are stored in arrival order); see :mod:`wattlas.analysis._arrays`.
Null (and NaN) times are left out. Definitions:

- **rate series**: requests per bin of ``bin_s`` seconds, bins aligned to multiples of
  ``bin_s`` from the time origin, from the group's first to its last non-empty bin, **empty
  bins included** with 0 requests.
- **gaps**: differences between consecutive arrival times of a group sorted by time (equal
  timestamps give zero gaps; the first arrival has none).
- **CV**: population standard deviation / mean of the gaps (1 for a Poisson process).
- **index of dispersion** of counts at window ``w``: variance / mean of the number of arrivals
  per window, over all windows from the first to the last arrival, empty ones included
  (1 for Poisson; > 1 bursty). Windows are aligned like rate bins.
- **bursts**: maximal runs of consecutive bins whose count exceeds ``threshold`` times the
  group's mean count per bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._data import Data, as_input, by_clause, qi, select_list

if TYPE_CHECKING:
    import polars as pl

    from ._data import Input

DEFAULT_BY = ("source", "trace")
DEFAULT_WINDOWS_S = (1.0, 10.0, 60.0, 600.0, 3600.0)

__all__ = ["arrival_rate", "bursts", "dispersion_index", "interarrival_gaps", "interarrival_stats"]


def _times(inp: Input, cols: list[str], time_col: str):
    """Per-group arrival statistics: in memory (``engine="numpy"``) or out of core."""
    if inp.engine == "numpy":
        from ._arrays import times

        return times(inp, cols, time_col)
    from ._stream import stream_times

    return stream_times(inp, cols, time_col)


def _frame(grouping, group_of_row, data: dict, schema: dict) -> pl.DataFrame:
    """An output frame: the group columns of each row, then ``data`` cast to ``schema``."""
    import polars as pl

    cols = grouping.key_columns(group_of_row) if grouping.by else {}
    for name, values in data.items():
        cols[name] = pl.Series(name, values, dtype=schema[name], strict=False)
    return pl.DataFrame(cols)


def interarrival_gaps(
    data: Data = None, *, by: Sequence[str] | None = None, time_col: str = "arrival_s", **select
) -> pl.DataFrame:
    """Gaps between consecutive arrivals, per group, in time order.

    Returns columns ``by...``, ``t`` (arrival, s) and ``gap_s`` (null for each group's first).

    Examples
    --------
    >>> import polars as pl
    >>> interarrival_gaps(pl.DataFrame({"arrival_s": [0.0, 0.5, 2.0]}))["gap_s"].to_list()
    [None, 0.5, 1.5]
    """
    import numpy as np
    import polars as pl

    from ._arrays import times

    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    tm = times(inp, cols, time_col)  # one row per arrival out: the times are read into memory
    sizes = np.array([g.n for g in tm.groups], dtype=np.int64)
    t = np.concatenate([g.t for g in tm.groups]) if tm.groups else np.zeros(0)
    gap = np.concatenate([np.concatenate(([np.nan], g.gaps)) if g.n else g.t for g in tm.groups]) if tm.groups \
        else np.zeros(0)
    first = np.zeros(t.size, dtype=bool)
    first[np.cumsum(sizes)[sizes > 0] - sizes[sizes > 0]] = True
    out = _frame(tm.grouping, np.repeat(np.arange(sizes.size), sizes), {"t": t}, {"t": pl.Float64})
    return out.with_columns(gap_s=pl.Series(gap).set(pl.Series(first), None))


def interarrival_stats(
    data: Data = None, *, by: Sequence[str] | None = None, time_col: str = "arrival_s", **select
) -> pl.DataFrame:
    """Inter-arrival statistics per group.

    Columns: ``requests``, ``span_s``, ``mean_rate_per_s`` (= (requests - 1) / span),
    ``gap_mean_s``, ``gap_std_s``, ``interarrival_cv`` (gap_std_s / gap_mean_s), ``gap_p50_s``,
    ``gap_p90_s``, ``gap_p99_s``, ``gap_max_s`` and ``zero_gap_share`` (share of gaps that are
    exactly 0: simultaneous arrivals, or arrivals within the trace's time resolution). Quantiles
    interpolate linearly (numpy's default, DuckDB's ``quantile_cont``).

    ``gap_cv``, the old name of ``interarrival_cv``, is still the last column (same values);
    deprecated, it goes in the next release: the quickstart, the report and the workload export
    all say ``interarrival_cv``.

    Examples
    --------
    >>> import polars as pl
    >>> s = interarrival_stats(pl.DataFrame({"arrival_s": [0.0, 1.0, 2.0, 3.0]}))
    >>> s.select("requests", "gap_mean_s", "interarrival_cv").row(0)
    (4, 1.0, 0.0)
    """
    import polars as pl

    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    tm = _times(inp, cols, time_col)
    names = ["requests", "span_s", "mean_rate_per_s", "gap_mean_s", "gap_std_s", "interarrival_cv", "gap_p50_s",
             "gap_p90_s", "gap_p99_s", "gap_max_s", "zero_gap_share"]
    out: dict[str, list] = {c: [] for c in names}
    which = []
    for i, g in enumerate(tm.groups):
        if g.n == 0 and cols:
            continue  # no arrival time in this group: no row, as GROUP BY over its gaps gives none
        which.append(i)
        span = g.span
        out["requests"].append(g.n)
        out["span_s"].append(span)
        out["mean_rate_per_s"].append((g.n - 1) / span if span else None)
        if g.n >= 2:
            mean, std, top = g.gap_summary()
            q = g.gap_quantiles((0.5, 0.9, 0.99))
            zero = float(g.zero_gaps()) / (g.n - 1)
            vals = [mean, std, std / mean if mean != 0 else None, *q, float(top), zero]
        else:
            vals = [None] * 8
        for name, v in zip(names[3:], vals, strict=True):
            out[name].append(v)
    schema = {c: pl.Float64 for c in names} | {"requests": pl.Int64}
    frame = _frame(tm.grouping, which, out, schema)
    return frame.with_columns(gap_cv=pl.col("interarrival_cv"))  # deprecated alias (see above)


def _gap_quantiles(inp: Input, cols: list[str], probs: Sequence[float], *, time_col: str = "arrival_s",
                   positive: bool = True) -> pl.DataFrame:
    """``quantile_cont`` of each group's gaps (only gaps > 0 with ``positive``) at ``probs``: columns
    ``by...`` and ``q`` (a list); groups without such a gap have no row."""
    import polars as pl

    tm = _times(inp, cols, time_col)
    qs, which = [], []
    for i, g in enumerate(tm.groups):
        if g.n < 2:
            continue
        q = g.gap_quantiles(probs, positive)
        if q and q[0] is not None:
            which.append(i)
            qs.append(q)
    return _frame(tm.grouping, which, {"q": qs}, {"q": pl.List(pl.Float64)})


def arrival_rate(
    data: Data = None,
    *,
    bin_s: float = 60.0,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    weight_col: str | None = None,
    **select,
) -> pl.DataFrame:
    """Arrival rate per time bin, empty bins included.

    Returns ``by...``, ``bin_start_s`` (bin start, same origin as ``time_col``), ``requests``
    (arrivals in the bin; the sum of ``weight_col`` when given, e.g. per-minute invocation
    counts) and ``rate_per_s`` (= requests / ``bin_s``).

    Examples
    --------
    >>> import polars as pl
    >>> r = arrival_rate(pl.DataFrame({"arrival_s": [0.0, 0.5, 2.5]}), bin_s=1.0)
    >>> r["requests"].to_list()
    [2, 0, 1]
    """
    if not bin_s > 0:
        from ..errors import AnalysisError

        raise AnalysisError(f"bin_s must be > 0, got {bin_s}")
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(time_col, what="arrival_rate")
    if weight_col:
        return _weighted_rate(inp, cols, float(bin_s), time_col, weight_col)
    import numpy as np
    import polars as pl

    tm = _times(inp, cols, time_col)
    which, starts, counts = [], [], []
    for i, g in enumerate(tm.groups):
        b, n = g.bins(bin_s)
        if not b.size:
            continue
        dense = np.zeros(int(b[-1] - b[0]) + 1, dtype=np.int64)
        dense[b - b[0]] = n
        which.append(np.full(dense.size, i))
        starts.append(np.arange(b[0], b[-1] + 1, dtype=np.int64) * float(bin_s))
        counts.append(dense)
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))  # noqa: E731
    requests = cat(counts, np.int64)
    return _frame(tm.grouping, cat(which, np.int64),
                  {"bin_start_s": cat(starts, np.float64), "requests": requests,
                   "rate_per_s": requests / float(bin_s)},
                  {"bin_start_s": pl.Float64, "requests": pl.Int64, "rate_per_s": pl.Float64})


def _weighted_rate(inp: Input, cols: list[str], bin_s: float, time_col: str, weight_col: str) -> pl.DataFrame:
    inp.require(weight_col, what="arrival_rate")
    sel = select_list(cols)
    s_sel = "".join(f"s.{qi(c)}, " for c in cols)
    using = ", ".join([qi(c) for c in cols] + ["b"])
    group_b = ", ".join([qi(c) for c in cols] + ["b"])
    tx = f"CAST({qi(time_col)} AS DOUBLE)"
    return inp.sql(
        f"""
        WITH c AS (
            SELECT {sel}CAST(floor({tx} / $bin) AS BIGINT) AS b, CAST(sum({qi(weight_col)}) AS DOUBLE) AS n
            FROM _input WHERE {tx} IS NOT NULL GROUP BY {group_b}
        ),
        r AS (SELECT {sel}min(b) AS lo, max(b) AS hi FROM c {by_clause(cols)}),
        s AS (SELECT {sel}unnest(range(lo, hi + 1)) AS b FROM r)
        SELECT {s_sel}s.b * $bin AS bin_start_s,
               coalesce(c.n, 0) AS requests,
               coalesce(c.n, 0) / $bin AS rate_per_s
        FROM s LEFT JOIN c USING ({using})
        ORDER BY {s_sel}s.b
        """,
        {"bin": bin_s},
    )


def dispersion_index(
    data: Data = None,
    *,
    windows_s: Sequence[float] = DEFAULT_WINDOWS_S,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """Index of dispersion of counts (variance / mean of arrivals per window) per window size.

    Returns ``by...``, ``window_s``, ``windows`` (windows from first to last arrival, empty
    ones included), ``mean_count``, ``var_count`` (population variance) and
    ``dispersion_index``. Windows longer than the group's span are skipped.

    Examples
    --------
    >>> import polars as pl
    >>> d = dispersion_index(pl.DataFrame({"arrival_s": [0.5, 1.5, 2.5, 3.5]}), windows_s=[1])
    >>> d.select("windows", "mean_count", "dispersion_index").row(0)
    (4, 1.0, 0.0)
    """
    import polars as pl

    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(time_col, what="dispersion_index")
    tm = _times(inp, cols, time_col)
    which, rows = [], {"window_s": [], "windows": [], "mean_count": [], "var_count": []}
    for w in windows_s:
        for i, g in enumerate(tm.groups):
            windows, total, total_sq = g.bin_moments(w)
            if windows < 2:
                continue
            # Empty windows contribute zeros: sums over non-empty windows divided by the total
            # window count give the mean and variance without materializing the empty ones.
            # (Integer sums: exact, as the float sums of integer counts they replace.)
            total, total_sq = float(total), float(total_sq)
            mean = total / windows
            which.append(i)
            rows["window_s"].append(float(w))
            rows["windows"].append(windows)
            rows["mean_count"].append(mean)
            rows["var_count"].append(total_sq / windows - mean**2)
    out = _frame(tm.grouping, which, rows, {"window_s": pl.Float64, "windows": pl.Int64, "mean_count": pl.Float64,
                                             "var_count": pl.Float64})
    out = out.with_columns(
        var_count=pl.col("var_count").clip(lower_bound=0.0),
    ).with_columns(dispersion_index=pl.col("var_count") / pl.col("mean_count"))
    return out.sort([*cols, "window_s"])


def bursts(
    data: Data = None,
    *,
    bin_s: float = 60.0,
    threshold: float = 2.0,
    min_bins: int = 1,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """Bursts: runs of consecutive bins above ``threshold`` x the group's mean count per bin.

    Returns one row per burst: ``by...``, ``start_s``, ``end_s``, ``duration_s``, ``bins``,
    ``requests`` (arrivals in the burst), ``peak_rate_per_s`` and ``peak_to_mean`` (peak bin
    count / mean count per bin over the whole group, empty bins included).

    Examples
    --------
    >>> import polars as pl
    >>> t = [0.5, 10.5] + [5.0 + i / 100 for i in range(20)]
    >>> bursts(pl.DataFrame({"arrival_s": t}), bin_s=1.0).select("start_s", "requests").row(0)
    (5.0, 20)
    """
    import numpy as np
    import polars as pl

    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(time_col, what="bursts")
    tm = _times(inp, cols, time_col)
    names = ["start_s", "end_s", "duration_s", "bins", "requests", "peak_rate_per_s", "peak_to_mean"]
    out: dict[str, list] = {c: [] for c in names}
    which = []
    bin_s = float(bin_s)
    for i, g in enumerate(tm.groups):
        b, n = g.bins(bin_s)
        if not b.size:
            continue
        mean_n = float(n.sum()) / (int(b[-1] - b[0]) + 1)
        hot = n > threshold * mean_n
        hb, hn = b[hot], n[hot]
        if not hb.size:
            continue
        # Islands: runs of consecutive bin numbers among the hot bins.
        starts = np.concatenate(([0], np.flatnonzero(np.diff(hb) != 1) + 1))
        ends = np.append(starts[1:], hb.size)
        for s0, s1 in zip(starts, ends, strict=True):
            if s1 - s0 < min_bins:
                continue
            peak = int(hn[s0:s1].max())
            which.append(i)
            out["start_s"].append(int(hb[s0]) * bin_s)
            out["end_s"].append((int(hb[s1 - 1]) + 1) * bin_s)
            out["duration_s"].append((int(hb[s1 - 1]) - int(hb[s0]) + 1) * bin_s)
            out["bins"].append(int(s1 - s0))
            out["requests"].append(int(hn[s0:s1].sum()))
            out["peak_rate_per_s"].append(peak / bin_s)
            out["peak_to_mean"].append(peak / mean_n)
    schema = {c: pl.Float64 for c in names} | {"bins": pl.Int64, "requests": pl.Int64}
    return _frame(tm.grouping, which, out, schema)

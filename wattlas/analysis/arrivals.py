"""Arrival processes: rate series, inter-arrival statistics, dispersion and bursts.

All statistics are computed per group (default: ``source`` and ``trace`` where those columns
exist) by one SQL statement over the input rows. Definitions:

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

from ._data import Data, as_input, by_clause, order_clause, partition_clause, qi, select_list

if TYPE_CHECKING:
    import polars as pl

    from ._data import Input

DEFAULT_BY = ("source", "trace")
DEFAULT_WINDOWS_S = (1.0, 10.0, 60.0, 600.0, 3600.0)

__all__ = ["arrival_rate", "bursts", "dispersion_index", "interarrival_gaps", "interarrival_stats"]


def _gaps_table(inp: Input, by: list[str], time_col: str) -> str:
    """Materialize (once per Input) the gaps of each group: ``by...``, ``t``, ``gap_s``.

    The window sort partitions by a 64-bit hash of the group columns rather than the columns
    themselves (strings sort slowly); a small key table maps it back. Should two groups ever
    share a hash, the plain partition is used instead.
    """
    inp.require(time_col, what="inter-arrival analysis")
    key = f"gaps|{','.join(by)}|{time_col}"
    if key in inp._cache:
        return inp._cache[key]
    sel = select_list(by)
    t = f"CAST({qi(time_col)} AS DOUBLE)"
    nonnull = f"{qi(time_col)} IS NOT NULL"
    if by:
        gid = f"hash({', '.join(qi(c) for c in by)})"
        keys = inp.temp_table(f"keys|{','.join(by)}", f"SELECT DISTINCT {gid} AS _gid, {', '.join(qi(c) for c in by)} "
                                                      "FROM _input")
        n_keys, n_gid = inp.con.execute(f"SELECT count(*), count(DISTINCT _gid) FROM {keys}").fetchall()[0]
        if n_keys == n_gid:
            raw = inp.temp_table(
                key + "|raw",
                f"SELECT _gid, t, t - lag(t) OVER (PARTITION BY _gid ORDER BY t) AS gap_s "
                f"FROM (SELECT {gid} AS _gid, {t} AS t FROM _input WHERE {nonnull})",
            )
            inp._n_tmp += 1
            name = f"_v{inp._n_tmp}"
            cols = ", ".join(f"k.{qi(c)}" for c in by)
            inp.con.execute(f"CREATE TEMP VIEW {name} AS SELECT {cols}, r.t, r.gap_s FROM {raw} r JOIN {keys} k "
                            "USING (_gid)")
            inp._cache[key] = name
            return name
    return inp.temp_table(
        key,
        f"SELECT {sel}t, t - lag(t) OVER ({partition_clause(by)} ORDER BY t) AS gap_s "
        f"FROM (SELECT {sel}{t} AS t FROM _input WHERE {nonnull})",
    )


def _times(inp: Input, cols: list[str], time_col: str) -> tuple[str, str]:
    """Where to read arrival times from: the already materialized gaps table when there is one
    (a report computes it first), else the input rows."""
    table = inp._cache.get(f"gaps|{','.join(cols)}|{time_col}")
    if table:
        return table, "t"
    return "_input", f"CAST({qi(time_col)} AS DOUBLE)"


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
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    table = _gaps_table(inp, cols, time_col)
    return inp.sql(f"SELECT * FROM {table} {order_clause(cols, 't')}")


def interarrival_stats(
    data: Data = None, *, by: Sequence[str] | None = None, time_col: str = "arrival_s", **select
) -> pl.DataFrame:
    """Inter-arrival statistics per group.

    Columns: ``requests``, ``span_s``, ``mean_rate_per_s`` (= (requests - 1) / span),
    ``gap_mean_s``, ``gap_std_s``, ``gap_cv``, ``gap_p50_s``, ``gap_p90_s``, ``gap_p99_s``,
    ``gap_max_s`` and ``zero_gap_share`` (share of gaps that are exactly 0: simultaneous
    arrivals, or arrivals within the trace's time resolution).

    Examples
    --------
    >>> import polars as pl
    >>> s = interarrival_stats(pl.DataFrame({"arrival_s": [0.0, 1.0, 2.0, 3.0]}))
    >>> s.select("requests", "gap_mean_s", "gap_cv").row(0)
    (4, 1.0, 0.0)
    """
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    return _stats(inp, cols, _gaps_table(inp, cols, time_col))


def _stats(inp: Input, cols: list[str], table: str) -> pl.DataFrame:
    sel = select_list(cols)
    return inp.sql(
        f"""
        SELECT {sel}count(*) AS requests,
               max(t) - min(t) AS span_s,
               (count(*) - 1) / nullif(max(t) - min(t), 0) AS mean_rate_per_s,
               avg(gap_s) AS gap_mean_s,
               stddev_pop(gap_s) AS gap_std_s,
               stddev_pop(gap_s) / nullif(avg(gap_s), 0) AS gap_cv,
               quantile_cont(gap_s, 0.5) AS gap_p50_s,
               quantile_cont(gap_s, 0.9) AS gap_p90_s,
               quantile_cont(gap_s, 0.99) AS gap_p99_s,
               max(gap_s) AS gap_max_s,
               avg(CASE WHEN gap_s IS NULL THEN NULL WHEN gap_s = 0 THEN 1.0 ELSE 0.0 END) AS zero_gap_share
        FROM {table}
        {by_clause(cols)}
        {order_clause(cols)}
        """
    )


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
    sel = select_list(cols)
    s_sel = "".join(f"s.{qi(c)}, " for c in cols)
    using = ", ".join([qi(c) for c in cols] + ["b"])
    group_b = ", ".join([qi(c) for c in cols] + ["b"])
    if weight_col:
        inp.require(weight_col, what="arrival_rate")
    n = f"CAST(sum({qi(weight_col)}) AS DOUBLE)" if weight_col else "count(*)"
    src, tx = ("_input", f"CAST({qi(time_col)} AS DOUBLE)") if weight_col else _times(inp, cols, time_col)
    return inp.sql(
        f"""
        WITH c AS (
            SELECT {sel}CAST(floor({tx} / $bin) AS BIGINT) AS b, {n} AS n
            FROM {src} WHERE {tx} IS NOT NULL GROUP BY {group_b}
        ),
        r AS (SELECT {sel}min(b) AS lo, max(b) AS hi FROM c {by_clause(cols)}),
        s AS (SELECT {sel}unnest(range(lo, hi + 1)) AS b FROM r)
        SELECT {s_sel}s.b * $bin AS bin_start_s,
               coalesce(c.n, 0) AS requests,
               coalesce(c.n, 0) / $bin AS rate_per_s
        FROM s LEFT JOIN c USING ({using})
        ORDER BY {s_sel}s.b
        """,
        {"bin": float(bin_s)},
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
    sel = select_list(cols)
    src, tx = _times(inp, cols, time_col)
    frames = []
    for w in windows_s:
        # Empty windows contribute zeros: sums over non-empty windows divided by the total
        # window count give the mean and variance without materializing the empty ones.
        df = inp.sql(
            f"""
            WITH c AS (
                SELECT {sel}CAST(floor({tx} / $w) AS BIGINT) AS b, count(*) AS n
                FROM {src} WHERE {tx} IS NOT NULL
                GROUP BY {', '.join([qi(c) for c in cols] + ['b'])}
            ),
            g AS (
                SELECT {sel}max(b) - min(b) + 1 AS windows, sum(n)::DOUBLE AS total,
                       sum(n::DOUBLE * n) AS total_sq
                FROM c {by_clause(cols)}
            )
            SELECT {sel}$w AS window_s, windows, total / windows AS mean_count,
                   total_sq / windows - (total / windows) ^ 2 AS var_count
            FROM g WHERE windows >= 2
            """,
            {"w": float(w)},
        )
        frames.append(df)
    out = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    if out.is_empty():
        return out
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
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(time_col, what="bursts")
    sel = select_list(cols)
    using = ", ".join(qi(c) for c in cols)
    join = f"JOIN m USING ({using})" if cols else "CROSS JOIN m"
    src, tx = _times(inp, cols, time_col)
    return inp.sql(
        f"""
        WITH c AS (
            SELECT {sel}CAST(floor({tx} / $bin) AS BIGINT) AS b, count(*) AS n
            FROM {src} WHERE {tx} IS NOT NULL
            GROUP BY {', '.join([qi(c) for c in cols] + ['b'])}
        ),
        m AS (SELECT {sel}sum(n)::DOUBLE / (max(b) - min(b) + 1) AS mean_n FROM c {by_clause(cols)}),
        h AS (SELECT c.*, m.mean_n FROM c {join} WHERE n > $thr * m.mean_n),
        i AS (SELECT *, b - row_number() OVER ({partition_clause(cols)} ORDER BY b) AS island FROM h)
        SELECT {sel}min(b) * $bin AS start_s, (max(b) + 1) * $bin AS end_s,
               (max(b) - min(b) + 1) * $bin AS duration_s, count(*) AS bins, sum(n)::BIGINT AS requests,
               max(n) / $bin AS peak_rate_per_s, max(n) / any_value(mean_n) AS peak_to_mean
        FROM i
        GROUP BY {', '.join([qi(c) for c in cols] + ['island'])}
        HAVING count(*) >= $min_bins
        {order_clause(cols, 'start_s')}
        """,
        {"bin": float(bin_s), "thr": float(threshold), "min_bins": int(min_bins)},
    )

"""What requests look like: token distributions, correlation, failures, conversation sessions.

Quantiles interpolate linearly between order statistics (numpy's default, DuckDB's
``quantile_cont``). Correlations: Pearson on the counts, Pearson on ``ln(1 + tokens)``, and
Spearman (Pearson of average ranks). Failure shares count only rows whose ``failed`` flag is
known (BurstGPT: ``Response tokens == 0``); traces without a failure notion give nulls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AnalysisError
from ._data import Data, as_input, by_clause, order_clause, qi, select_list

if TYPE_CHECKING:
    import polars as pl

from .arrivals import _frame

DEFAULT_BY = ("source", "trace")
TOKEN_COLUMNS = ("input_tokens", "output_tokens")

__all__ = [
    "failure_rates", "session_stats", "sessions", "token_correlation", "token_histogram",
    "token_joint_histogram", "token_stats",
]


def token_stats(
    data: Data = None,
    *,
    by: Sequence[str] | None = None,
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
    **select,
) -> pl.DataFrame:
    """Token counts per group: mean, quantiles, max, and the failure share where known.

    Columns: ``requests``, then for ``input_tokens`` and ``output_tokens`` each
    ``<col>_mean``, ``<col>_p<q>`` per quantile, ``<col>_max``, ``<col>_total``; and
    ``failed_share`` (null when the input has no known failure flags).
    Group by ``("source", "trace", "model", "log_type")`` for the per-model breakdown.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"input_tokens": [10, 20, 30], "output_tokens": [1, 2, 3]})
    >>> token_stats(df).select("requests", "input_tokens_p50", "output_tokens_max").row(0)
    (3, 20.0, 3)
    """
    import polars as pl

    from ._arrays import quantiles_from_counts

    inp = as_input(data, **select)
    cols = tuple(inp.group_by(by, DEFAULT_BY))
    inp.require(*TOKEN_COLUMNS, what="token_stats")
    has_failed = inp.has("failed")
    tl = _tallies(inp, cols, [*TOKEN_COLUMNS, *(["failed"] if has_failed else [])])
    grouping = tl.grouping
    out: dict[str, list] = {"requests": tl.sizes().tolist()}
    schema: dict[str, pl.DataType] = {"requests": pl.Int64}
    for c in TOKEN_COLUMNS:
        vcs = tl.value_counts(c)
        integer = vcs[0][0].dtype.kind in "iub" if vcs else True
        names = [f"{c}_mean", *(f"{c}_p{_qname(q)}" for q in quantiles), f"{c}_max", f"{c}_total"]
        for name in names:
            out[name] = []
            schema[name] = pl.Float64
        schema[f"{c}_max"] = pl.Int64 if integer else pl.Float64
        schema[f"{c}_total"] = pl.Int64
        for values, counts in vcs:
            n = int(counts.sum())
            if n == 0:
                for name in names:
                    out[name].append(None)
                continue
            total = int(np.dot(values.astype(np.int64), counts)) if integer else float(np.dot(values, counts))
            out[f"{c}_mean"].append(total / n)
            for q, v in zip(quantiles, quantiles_from_counts(values, counts, quantiles), strict=True):
                out[f"{c}_p{_qname(q)}"].append(v)
            out[f"{c}_max"].append(values[-1].item())
            out[f"{c}_total"].append(round(total))
    out["failed_share"] = tl.shares()[2] if has_failed else [None] * grouping.n
    schema["failed_share"] = pl.Float64
    return _frame(grouping, np.arange(grouping.n), out, schema)


class _ArrayTallies:
    """The in-memory path (``engine="numpy"``) behind the interface of ``_stream.Tallies``."""

    def __init__(self, inp, cols: tuple[str, ...], columns: Sequence[str]) -> None:
        self.rows = inp.rows([qi(c) for c in columns], [cols])
        self.cols = cols
        self.grouping = self.rows.groupings[cols]
        self.n = self.grouping.n

    def sizes(self) -> np.ndarray:
        return self.rows.sizes(self.cols)

    def value_counts(self, column: str) -> list[tuple[np.ndarray, np.ndarray]]:
        from ._arrays import grouped_value_counts

        return grouped_value_counts(self.rows, qi(column), self.cols)

    def shares(self) -> tuple[np.ndarray, np.ndarray, list]:
        return _shares(self.rows, self.cols)

    def samples(self, column: str, max_samples: int | None, seed: int) -> list[np.ndarray]:
        col = self.rows.columns[qi(column)]
        return [col.valid_values(ix) for ix in self.grouping.rows_of()]  # sampled by the caller


def _tallies(inp, cols: tuple[str, ...], columns: Sequence[str]):
    """Value counts, sizes, failure shares and samples of ``columns`` per group of ``cols``."""
    if inp.engine == "numpy":
        return _ArrayTallies(inp, cols, columns)
    from ._stream import tallies

    return tallies(inp, cols)


def _shares(rows, cols) -> tuple[np.ndarray, np.ndarray, list]:
    """Per group: rows with a known ``failed`` flag, how many failed, and the share (None if none known)."""
    col, g = rows.columns[qi("failed")], rows.groupings[cols]
    flag = col.values.astype(bool, copy=False)
    if g.contiguous:
        ix = g.rows_of()
        if col.valid is None:
            k = rows.sizes(cols)
            f = np.array([np.count_nonzero(flag[i]) for i in ix], dtype=np.int64)
        else:
            k = np.array([np.count_nonzero(col.valid[i]) for i in ix], dtype=np.int64)
            f = np.array([np.count_nonzero(flag[i] & col.valid[i]) for i in ix], dtype=np.int64)
    else:
        # One pass: each row's (group, known, failed) state as one integer.
        state = g.codes.astype(np.int64) * 4 + flag
        if col.valid is not None:
            state += 2 * col.valid
        else:
            state += 2
        c = np.bincount(state, minlength=4 * g.n).reshape(g.n, 4)
        k, f = c[:, 2] + c[:, 3], c[:, 3]
    return k, f, [float(fi) / ki if ki else None for fi, ki in zip(f, k, strict=True)]


def _qname(q: float) -> str:
    s = f"{q * 100:g}"
    return s.replace(".", "_")


def token_correlation(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Correlation of input and output tokens per group.

    Columns: ``requests``, ``pearson``, ``pearson_log`` (of ln(1 + tokens)), ``spearman``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"input_tokens": [1, 2, 3, 4], "output_tokens": [1, 4, 9, 16]})
    >>> round(token_correlation(df)["spearman"][0], 6)
    1.0
    """
    import polars as pl

    from ._arrays import correlations, grouped_value_counts

    inp = as_input(data, **select)
    cols = tuple(inp.group_by(by, DEFAULT_BY))
    inp.require(*TOKEN_COLUMNS, what="token_correlation")
    if inp.engine != "numpy":
        return _token_correlation_streamed(inp, cols)
    xi, xo = qi("input_tokens"), qi("output_tokens")
    rows = inp.rows([xi, xo], [cols])
    grouping = rows.groupings[cols]
    ci, co = rows.columns[xi], rows.columns[xo]
    bounds = [c.range() if c.values.dtype.kind in "iu" else None for c in (ci, co)]
    vcs = grouped_value_counts(rows, xi, cols), grouped_value_counts(rows, xo, cols)
    out: dict[str, list] = {"requests": [], "pearson": [], "pearson_log": [], "spearman": []}
    which = []
    for g, ix in enumerate(grouping.rows_of()):
        x, y = ci.values[ix], co.values[ix]
        if ci.valid is not None or co.valid is not None:
            both = np.ones(x.size, dtype=bool)
            for c in (ci, co):
                if c.valid is not None:
                    both &= c.valid[ix]
            x, y = x[both], y[both]
        if x.size == 0 and cols:
            continue  # no complete pair: no row (the pairs are what is grouped)
        which.append(g)
        out["requests"].append(int(x.size))
        # Per distinct value of each side: the value, ln(1 + value) and its average rank among
        # the group's non-null values (rows below plus the mean position among ties).
        lookups, per_value, means = _rank_tables(vcs[0][g], vcs[1][g], bounds)
        r = correlations(x, y, *lookups, *per_value, *means)
        if vcs[0][g][0].size == 1 or vcs[1][g][0].size == 1:
            r = [math.nan if v is not None else None for v in r]  # a constant side, as DuckDB's corr
        out["pearson"].append(r[0])
        out["pearson_log"].append(r[1])
        out["spearman"].append(r[2])
    schema = {"requests": pl.Int64, "pearson": pl.Float64, "pearson_log": pl.Float64, "spearman": pl.Float64}
    return _frame(grouping, which, out, schema)


def _rank_tables(vc_x, vc_y, bounds) -> tuple[list, list, list]:
    """Per distinct value of each side: the value, ln(1 + value) and its average rank among the
    group's non-null values (rows below plus the mean position among ties); and their means."""
    from ._arrays import Lookup

    lookups, per_value, means = [], [], []
    for (values, counts), bnd in zip((vc_x, vc_y), bounds, strict=True):
        with np.errstate(divide="ignore", invalid="ignore"):
            f = [values.astype(np.float64), np.log(1.0 + values.astype(np.float64)),
                 np.cumsum(counts) - (counts - 1) / 2.0]
        n = max(int(counts.sum()), 1)
        lookups.append(Lookup(values, bnd))
        per_value.append(f)
        means.append([float(np.dot(v, counts)) / n if np.isfinite(v).all() else 0.0 for v in f])
    return lookups, per_value, means


def _bounds(vcs) -> tuple[int, int] | None:
    """(lo, hi) containing every value of the groups' counts and 0 (the streamed null fill)."""
    values = [v for v, _ in vcs if v.size]
    if not values or values[0].dtype.kind not in "iu":
        return None
    return min(0, min(int(v[0]) for v in values)), max(0, max(int(v[-1]) for v in values))


def _correlation_tables(vcs) -> list:
    """Per group: (lookup x, lookup y, tables x, tables y, means x, means y), None without pairs."""
    bounds = [_bounds(v) for v in vcs]
    per_group = []
    for vx, vy in zip(*vcs, strict=True):
        if not (vx[0].size and vy[0].size):
            per_group.append(None)
            continue
        (lx, ly), (fx, fy), (mx, my) = _rank_tables(vx, vy, bounds)
        per_group.append((lx, ly, [lx.table(f) for f in fx], [ly.table(f) for f in fy], mx, my))
    return per_group


def _token_correlation_streamed(inp, cols: tuple[str, ...]) -> pl.DataFrame:
    import polars as pl

    from ._arrays import correlations_from_sums
    from ._stream import tallies

    tl = tallies(inp, cols)
    vcs = tl.value_counts("input_tokens"), tl.value_counts("output_tokens")
    sums, pairs = tl.correlation()
    out: dict[str, list] = {"requests": [], "pearson": [], "pearson_log": [], "spearman": []}
    which = []
    for g in range(tl.n):
        if pairs[g] == 0 and cols:
            continue  # no complete pair: no row (the pairs are what is grouped)
        which.append(g)
        r = correlations_from_sums(sums[g], int(pairs[g]))
        if vcs[0][g][0].size == 1 or vcs[1][g][0].size == 1:
            r = [math.nan if v is not None else None for v in r]  # a constant side, as DuckDB's corr
        out["requests"].append(int(pairs[g]))
        out["pearson"].append(r[0])
        out["pearson_log"].append(r[1])
        out["spearman"].append(r[2])
    schema = {"requests": pl.Int64, "pearson": pl.Float64, "pearson_log": pl.Float64, "spearman": pl.Float64}
    return _frame(tl.grouping, which, out, schema)


def failure_rates(data: Data = None, *, by: Sequence[str] | None = None, **select) -> pl.DataFrame:
    """Failed requests per group (rows with a known ``failed`` flag only).

    Columns: ``requests`` (with a known flag), ``failed``, ``failed_share``. Default groups
    add ``model`` and ``log_type`` where present. Empty when no row has a known flag.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"failed": [True, False, False, None]})
    >>> failure_rates(df).row(0)
    (3, 1, 0.3333333333333333)
    """
    import polars as pl

    inp = as_input(data, **select)
    cols = tuple(inp.group_by(by, (*DEFAULT_BY, "model", "log_type")))
    inp.require("failed", what="failure_rates")
    tl = _tallies(inp, cols, ["failed"])
    known, failed, shares = tl.shares()
    grouping = tl.grouping
    which = [i for i in range(grouping.n) if known[i] or not cols]
    return _frame(grouping, which,
                  {"requests": [int(known[i]) for i in which], "failed": [int(failed[i]) for i in which],
                   "failed_share": [shares[i] for i in which]},
                  {"requests": pl.Int64, "failed": pl.Int64, "failed_share": pl.Float64})


def token_histogram(
    data: Data = None,
    *,
    column: str = "input_tokens",
    bins_per_decade: int = 20,
    by: Sequence[str] | None = None,
    **select,
) -> pl.DataFrame:
    """Histogram of a token column on logarithmic bins.

    Bin ``i`` covers ``[10^(i/b), 10^((i+1)/b))`` with ``b = bins_per_decade``; zeros get
    their own bin ``[0, 1)``. Columns: ``by...``, ``bin_lo``, ``bin_hi``, ``requests``,
    ``share`` (of the group's rows) and ``density`` (share per unit of the column).

    Examples
    --------
    >>> import polars as pl
    >>> h = token_histogram(pl.DataFrame({"input_tokens": [0, 1, 5, 50]}), bins_per_decade=1)
    >>> h.select("bin_lo", "requests").rows()
    [(0.0, 1), (1.0, 2), (10.0, 1)]
    """
    import polars as pl

    inp = as_input(data, **select)
    cols = tuple(inp.group_by(by, DEFAULT_BY))
    inp.require(column, what="token_histogram")
    b = float(bins_per_decade)
    tl = _tallies(inp, cols, [column])
    grouping = tl.grouping
    which, lo_l, hi_l, req_l = [], [], [], []
    for g, (values, counts) in enumerate(tl.value_counts(column)):
        if not values.size:
            continue
        # Bin of each distinct value; values <= 0 share the bin [0, 1) (index -1 here).
        idx = _log_bin(values, b)
        starts = np.concatenate(([0], np.flatnonzero(idx[1:] != idx[:-1]) + 1))
        bi = idx[starts]
        n = np.add.reduceat(counts, starts)
        zero = bi == _ZERO
        lo = np.where(zero, 0.0, 10.0 ** (bi / b))
        hi = np.where(zero, 1.0, 10.0 ** ((bi + 1) / b))
        which.append(np.full(bi.size, g))
        lo_l.append(lo)
        hi_l.append(hi)
        req_l.append(n)
    if which:
        which_a, lo, hi, req = (np.concatenate(x) for x in (which, lo_l, hi_l, req_l))
    else:
        which_a, lo, hi, req = np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    totals = np.bincount(which_a, weights=req, minlength=grouping.n)[which_a] if req.size else np.zeros(0)
    share = req / totals if req.size else np.zeros(0)
    return _frame(grouping, which_a,
                  {"bin_lo": lo, "bin_hi": hi, "requests": req, "share": share, "density": share / (hi - lo)},
                  {"bin_lo": pl.Float64, "bin_hi": pl.Float64, "requests": pl.Int64, "share": pl.Float64,
                   "density": pl.Float64})


_ZERO = np.iinfo(np.int64).min


def _log_bin(values: np.ndarray, b: float) -> np.ndarray:
    """``floor(log10(v) * b + 1e-9)`` (the 1e-9 puts exact powers of ten in their own bin), and
    ``_ZERO`` for values <= 0. Non-decreasing in ``v``."""
    v = values.astype(np.float64)
    pos = v > 0
    out = np.full(v.size, _ZERO, dtype=np.int64)
    out[pos] = np.floor(np.log10(v[pos]) * b + 1e-9).astype(np.int64)
    return out


def token_joint_histogram(
    data: Data = None, *, bins_per_decade: int = 10, by: Sequence[str] | None = None, **select
) -> pl.DataFrame:
    """Joint histogram of (input, output) tokens on logarithmic bins (zeros in bin ``[0, 1)``).

    Columns: ``by...``, ``input_lo``, ``output_lo`` (bin lower edges), ``requests``, ``share``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"input_tokens": [5, 6, 500], "output_tokens": [5, 5, 50]})
    >>> token_joint_histogram(df, bins_per_decade=1).select("input_lo", "output_lo", "requests").rows()
    [(1.0, 1.0, 2), (100.0, 10.0, 1)]
    """
    import polars as pl

    from ._arrays import grouped_value_counts

    inp = as_input(data, **select)
    cols = tuple(inp.group_by(by, DEFAULT_BY))
    inp.require(*TOKEN_COLUMNS, what="token_joint_histogram")
    b = float(bins_per_decade)
    xi, xo = qi("input_tokens"), qi("output_tokens")
    streamed = inp.engine != "numpy"
    if streamed:
        from ._stream import tallies

        tl = tallies(inp, cols)
        grouping = tl.grouping
    else:
        rows = inp.rows([xi, xo], [cols])
        grouping = rows.groupings[cols]
    if streamed:
        counts, firsts, widths = tl.joint(b)
    else:
        layout = [(np.unique(np.concatenate(d)) if (d := [v for v, _ in grouped_value_counts(rows, e, cols)])
                   else np.zeros(0, np.int64),
                   rows.columns[e].range() if rows.columns[e].values.dtype.kind in "iu" else None)
                  for e in (xi, xo)]
        lookups, tables, firsts, widths = _joint_layout(layout, b)
    per_group = widths[0] * widths[1]
    if not streamed:
        counts = _joint_counts(rows, grouping, xi, xo, lookups, tables, widths)
    nz = np.flatnonzero(counts)
    g, rest = np.divmod(nz, per_group)
    ci, co = np.divmod(rest, widths[1])
    req = counts[nz]
    totals = np.bincount(g, weights=req, minlength=grouping.n)

    def lo(code, first):
        return np.where(code == 0, 0.0, 10.0 ** ((code - 1 + first) / b))

    return _frame(grouping, g,
                  {"input_lo": lo(ci, firsts[0]), "output_lo": lo(co, firsts[1]), "requests": req,
                   "share": req / totals[g]},
                  {"input_lo": pl.Float64, "output_lo": pl.Float64, "requests": pl.Int64, "share": pl.Float64})


def _joint_layout(columns: list[tuple[np.ndarray, tuple[int, int] | None]], b: float) -> tuple[list, list, list,
                                                                                              list]:
    """Each row's bin pair as one integer: bins are numbered from 1 above the smallest, 0 is
    [0, 1) (values <= 0 and nulls); bincounts then count every (group, input, output) cell.

    ``columns``: per column, its sorted distinct values and the bounds of every value looked up.
    Returns lookups, per-value cell tables, the first bin and the width of each column.
    """
    from ._arrays import Lookup

    lookups, tables, firsts, widths = [], [], [], []
    for distinct, bounds in columns:
        k = _log_bin(distinct, b)
        real = k != _ZERO
        first = int(k[real].min()) if real.any() else 0
        lookups.append(Lookup(distinct, bounds))
        tables.append(lookups[-1].table(np.where(real, k - first + 1, 0)))
        firsts.append(first)
        widths.append(int(k[real].max()) - first + 2 if real.any() else 1)
    return lookups, tables, firsts, widths


def _joint_counts(rows, grouping, xi: str, xo: str, lookups, tables, widths) -> np.ndarray:
    """The in-memory path's joint-histogram counts, block by block over the snapshot."""
    from ._arrays import blocks

    per_group = widths[0] * widths[1]
    cells = grouping.n * per_group
    counts = np.zeros(cells, dtype=np.int64)
    ci, co = rows.columns[xi], rows.columns[xo]
    for blk in blocks(rows.n):
        cell = tables[0][lookups[0].index(ci.values[blk])]
        if ci.valid is not None:
            cell[~ci.valid[blk]] = 0
        cell *= widths[1]
        out_code = tables[1][lookups[1].index(co.values[blk])]
        if co.valid is not None:
            out_code[~co.valid[blk]] = 0
        cell += out_code
        if grouping.codes is not None:
            cell += grouping.codes[blk].astype(np.int64) * per_group
        counts += np.bincount(cell, minlength=cells)
    return counts


def sessions(
    data: Data = None,
    *,
    session_col: str = "session_id",
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """One row per conversation session (rows with a session id).

    Columns: ``by...``, ``session_id``, ``turns``, ``first_s``, ``last_s``, ``duration_s``,
    ``gap_mean_s`` (mean time between consecutive turns; null for one turn),
    ``input_tokens_total``, ``output_tokens_total``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"session_id": ["a", "a", "b"], "arrival_s": [0.0, 30.0, 5.0],
    ...                    "input_tokens": [1, 2, 3], "output_tokens": [1, 1, 1]})
    >>> sessions(df).select("session_id", "turns", "duration_s").rows()
    [('a', 2, 30.0), ('b', 1, 0.0)]
    """
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(session_col, time_col, *TOKEN_COLUMNS, what="sessions")
    sel = select_list(cols)
    return inp.sql(
        f"""
        SELECT {sel}{qi(session_col)} AS session_id, count(*) AS turns,
               min({qi(time_col)}) AS first_s, max({qi(time_col)}) AS last_s,
               max({qi(time_col)}) - min({qi(time_col)}) AS duration_s,
               (max({qi(time_col)}) - min({qi(time_col)})) / nullif(count(*) - 1, 0) AS gap_mean_s,
               sum(input_tokens)::BIGINT AS input_tokens_total, sum(output_tokens)::BIGINT AS output_tokens_total
        FROM _input WHERE {qi(session_col)} IS NOT NULL
        GROUP BY {', '.join([qi(c) for c in cols] + [qi(session_col)])}
        {order_clause(cols, 'first_s', 'session_id')}
        """
    )


def session_stats(
    data: Data = None,
    *,
    session_col: str = "session_id",
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """Summary of conversation sessions per group.

    Columns: ``sessions``, ``requests_in_sessions``, ``turns_mean``, ``turns_p50``,
    ``turns_p90``, ``turns_max``, ``single_turn_share``, ``gap_p50_s``, ``gap_p90_s`` (time
    between consecutive turns of a session), ``duration_p50_s``, ``duration_p90_s``.
    Empty when no row has a session id.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"session_id": ["a", "a", "b"], "arrival_s": [0.0, 30.0, 5.0],
    ...                    "input_tokens": [1, 2, 3], "output_tokens": [1, 1, 1]})
    >>> session_stats(df).select("sessions", "turns_mean", "gap_p50_s").row(0)
    (2, 1.5, 30.0)
    """
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(session_col, time_col, what="session_stats")
    sel = select_list(cols)
    s = qi(session_col)
    t = qi(time_col)
    part = ", ".join([qi(c) for c in cols] + [s])
    if not inp.non_null(session_col):
        raise AnalysisError(f"no row has a {session_col}: this trace records no conversation sessions")
    return inp.sql(
        f"""
        WITH r AS (
            SELECT {sel}{s} AS sid, {t} AS t,
                   {t} - lag({t}) OVER (PARTITION BY {part} ORDER BY {t}) AS gap_s
            FROM _input WHERE {s} IS NOT NULL
        ),
        per AS (
            SELECT {sel}sid, count(*) AS turns, max(t) - min(t) AS duration_s FROM r
            GROUP BY {', '.join([qi(c) for c in cols] + ['sid'])}
        ),
        g AS (SELECT {sel}quantile_cont(gap_s, 0.5) AS gap_p50_s, quantile_cont(gap_s, 0.9) AS gap_p90_s
              FROM r {by_clause(cols)}),
        p AS (
            SELECT {sel}count(*) AS sessions, sum(turns)::BIGINT AS requests_in_sessions,
                   avg(turns) AS turns_mean, quantile_cont(turns, 0.5) AS turns_p50,
                   quantile_cont(turns, 0.9) AS turns_p90, max(turns) AS turns_max,
                   avg(CASE WHEN turns = 1 THEN 1.0 ELSE 0.0 END) AS single_turn_share,
                   quantile_cont(duration_s, 0.5) AS duration_p50_s,
                   quantile_cont(duration_s, 0.9) AS duration_p90_s
            FROM per {by_clause(cols)}
        )
        SELECT * FROM p {('JOIN g USING (' + ', '.join(qi(c) for c in cols) + ')') if cols else 'CROSS JOIN g'}
        {order_clause(cols)}
        """
    )

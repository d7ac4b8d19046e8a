"""What requests look like: token distributions, correlation, failures, conversation sessions.

Quantiles interpolate linearly between order statistics (numpy's default, DuckDB's
``quantile_cont``). Correlations: Pearson on the counts, Pearson on ``ln(1 + tokens)``, and
Spearman (Pearson of average ranks). Failure shares count only rows whose ``failed`` flag is
known (BurstGPT: ``Response tokens == 0``); traces without a failure notion give nulls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import AnalysisError
from ._data import Data, as_input, by_clause, order_clause, partition_clause, qi, select_list

if TYPE_CHECKING:
    import polars as pl

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
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(*TOKEN_COLUMNS, what="token_stats")
    inner, outer = [], []
    qlist = "[" + ", ".join(str(float(q)) for q in quantiles) + "]"
    for c in TOKEN_COLUMNS:
        inner += [f"avg({qi(c)}) AS {c}_mean", f"quantile_cont({qi(c)}, {qlist}) AS {c}_q",
                  f"max({qi(c)}) AS {c}_max", f"sum({qi(c)})::BIGINT AS {c}_total"]
        outer += [f"{c}_mean"] + [f"{c}_q[{i + 1}] AS {c}_p{_qname(q)}" for i, q in enumerate(quantiles)]
        outer += [f"{c}_max", f"{c}_total"]
    fail = "avg(CASE WHEN failed THEN 1.0 WHEN NOT failed THEN 0.0 END)" if inp.has("failed") else "NULL::DOUBLE"
    sel = select_list(cols)
    return inp.sql(
        f"SELECT {sel}requests, {', '.join(outer)}, failed_share FROM ("
        f"SELECT {sel}count(*) AS requests, {', '.join(inner)}, {fail} AS failed_share "
        f"FROM _input {by_clause(cols)}) {order_clause(cols)}"
    )


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
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(*TOKEN_COLUMNS, what="token_correlation")
    sel = select_list(cols)
    part = partition_clause(cols)
    def ranks(col: str) -> str:
        # Average rank of each distinct value: rows below it plus the mean position among ties.
        # Token counts have few distinct values, so this is a small table joined back.
        grp = ", ".join([qi(c) for c in cols] + ["v"])
        return (f"SELECT {sel}v, sum(n) OVER ({part} ORDER BY v) - (n - 1) / 2.0 AS r FROM "
                f"(SELECT {sel}{col} AS v, count(*) AS n FROM _input GROUP BY {grp})")

    return inp.sql(
        f"""
        WITH ri AS ({ranks('input_tokens')}), ro AS ({ranks('output_tokens')}),
        x AS (SELECT {sel}input_tokens, output_tokens, input_tokens AS vi, output_tokens AS vo FROM _input)
        SELECT {select_list(['x.' + c for c in cols]).replace('"x.', 'x."')}count(*) AS requests,
               corr(x.input_tokens, x.output_tokens) AS pearson,
               corr(ln(1 + x.input_tokens), ln(1 + x.output_tokens)) AS pearson_log,
               corr(ri.r, ro.r) AS spearman
        FROM x
        JOIN ri ON ri.v = x.vi {''.join(f' AND ri.{qi(c)} IS NOT DISTINCT FROM x.{qi(c)}' for c in cols)}
        JOIN ro ON ro.v = x.vo {''.join(f' AND ro.{qi(c)} IS NOT DISTINCT FROM x.{qi(c)}' for c in cols)}
        {('GROUP BY ' + ', '.join(f'x.{qi(c)}' for c in cols)) if cols else ''}
        {('ORDER BY ' + ', '.join(f'x.{qi(c)}' for c in cols)) if cols else ''}
        """
    )


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
    inp = as_input(data, **select)
    cols = inp.group_by(by, (*DEFAULT_BY, "model", "log_type"))
    inp.require("failed", what="failure_rates")
    sel = select_list(cols)
    return inp.sql(
        f"SELECT {sel}count(*) AS requests, count(*) FILTER (WHERE failed) AS failed, "
        f"avg(CASE WHEN failed THEN 1.0 ELSE 0.0 END) AS failed_share "
        f"FROM _input WHERE failed IS NOT NULL {by_clause(cols)} {order_clause(cols)}"
    )


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
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(column, what="token_histogram")
    b = float(bins_per_decade)
    sel = select_list(cols)
    part = partition_clause(cols)
    return inp.sql(
        f"""
        WITH h AS (
            SELECT {sel}CASE WHEN {qi(column)} <= 0 THEN NULL
                        ELSE CAST(floor(log10({qi(column)}) * $b + 1e-9) AS INTEGER) END AS i,
                   count(*) AS requests
            FROM _input WHERE {qi(column)} IS NOT NULL
            GROUP BY {', '.join([qi(c) for c in cols] + ['i'])}
        )
        SELECT {sel}coalesce(10 ^ (i / $b), 0) AS bin_lo,
               CASE WHEN i IS NULL THEN 1 ELSE 10 ^ ((i + 1) / $b) END AS bin_hi,
               requests,
               requests / sum(requests) OVER ({part}) AS share,
               requests / sum(requests) OVER ({part}) / (bin_hi - bin_lo) AS density
        FROM h {order_clause(cols, 'bin_lo')}
        """,
        {"b": b},
    )


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
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    inp.require(*TOKEN_COLUMNS, what="token_joint_histogram")
    sel = select_list(cols)

    def idx(c: str) -> str:
        return f"CASE WHEN {qi(c)} <= 0 THEN NULL ELSE CAST(floor(log10({qi(c)}) * $b + 1e-9) AS INTEGER) END"

    return inp.sql(
        f"""
        WITH h AS (
            SELECT {sel}{idx('input_tokens')} AS i, {idx('output_tokens')} AS o, count(*) AS requests
            FROM _input GROUP BY {', '.join([qi(c) for c in cols] + ['i', 'o'])}
        )
        SELECT {sel}coalesce(10 ^ (i / $b), 0) AS input_lo, coalesce(10 ^ (o / $b), 0) AS output_lo,
               requests, requests / sum(requests) OVER ({partition_clause(cols)}) AS share
        FROM h {order_clause(cols, 'input_lo', 'output_lo')}
        """,
        {"b": float(bins_per_decade)},
    )


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

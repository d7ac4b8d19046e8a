"""Rows of an :class:`~wattlas.analysis._data.Input` held as numpy arrays, read in one scan.

Why this exists: a report asks dozens of statistics of the same rows. Run as separate SQL
statements, each re-reads the table and re-sorts or re-hashes it: a windowed sort for the
inter-arrival gaps, a hash join for Spearman ranks, a sort per quantile, a hash aggregate per
histogram. Here the columns the statistics need are read once (one DuckDB scan) into a
:class:`Rows` snapshot cached on the Input, and every statistic is an O(n) numpy reduction of
it that needs no sort in the common case:

- **arrival times** are grouped and sorted once per group (:class:`Times`). A store written
  in arrival order is already sorted: that is checked in O(n) and the sort skipped. Rate
  series, dispersion, bursts and profiles all come from the distinct times and their
  multiplicities, binned once per bin size.
- **token counts** are small integers with many repeats: exact quantiles, means, maxima,
  histograms and Spearman's average ranks come from a value -> count table
  (:func:`value_counts`, ``np.bincount``), not from a sort.

Definitions are unchanged from the SQL they replace: quantiles interpolate linearly between
order statistics exactly as DuckDB's ``quantile_cont`` (``lo + (hi - lo) * frac`` at rank
``(n - 1) q``), bins are ``floor(t / bin)`` on the same doubles, groups are ordered as
``ORDER BY`` the group columns (nulls last).

Memory: about 8 bytes per row and column read (a 10M-row report holds ~400 MB), against one
scan per statistic before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._data import qi

if TYPE_CHECKING:
    import polars as pl

    from ._data import Input

#: Widest value range counted with a dense ``np.bincount`` (else a sort-based count).
DENSE_MAX = 1 << 23

#: Rows per block in row-level passes: temporaries of 8 MB are reused from the heap, where
#: whole-column temporaries would each be fresh pages (page faults cost more than the arithmetic).
BLOCK = 1 << 20

#: Force group codes through a join instead of ``hash()`` (tests of the collision path).
_FORCE_JOIN = False


def time_expr(col: str) -> str:
    """The SQL expression under which a time column is read (as DOUBLE, like the SQL it replaces)."""
    return f"CAST({qi(col)} AS DOUBLE)"


@dataclass
class Column:
    """One column of a snapshot: its values and, when it has nulls, a validity mask."""

    values: np.ndarray
    valid: np.ndarray | None = None  # None: no nulls
    _range: tuple[int, int] | None = None

    def range(self) -> tuple[int, int]:
        """Smallest and largest stored value (nulls included as their fill, 0): a superset of the
        valid values' range, for lookup tables indexed by any row's value."""
        if self._range is None:
            v = self.values
            self._range = (int(v.min()), int(v.max())) if v.size else (0, 0)
        return self._range

    def valid_values(self, rows: Any = slice(None)) -> np.ndarray:
        v = self.values[rows]
        return v if self.valid is None else v[self.valid[rows]]


@dataclass
class Grouping:
    """Rows split by the values of ``by``: group ``i`` is row ``i`` of ``keys``.

    ``keys`` is ordered like ``ORDER BY by`` in DuckDB (nulls last); ``codes`` gives each
    row's group (``None`` when there is exactly one group, e.g. ``by=()``).
    """

    by: tuple[str, ...]
    keys: pl.DataFrame
    n: int
    codes: np.ndarray | None
    _index: list[Any] | None = None
    _sizes: np.ndarray | None = None
    _contiguous: bool | None = None

    def sizes(self) -> np.ndarray:
        if self.codes is None:
            raise AssertionError("sizes() needs the snapshot's row count")  # pragma: no cover
        if self._sizes is None:
            if self.contiguous:  # sorted codes: each group's end by binary search, no pass
                ends = np.searchsorted(self.codes, np.arange(self.n), side="right")
                self._sizes = np.diff(np.concatenate(([0], ends))).astype(np.int64)
            else:
                self._sizes = np.zeros(self.n, dtype=np.int64)
                for b in blocks(self.codes.size):
                    self._sizes += np.bincount(self.codes[b], minlength=self.n)
        return self._sizes

    @property
    def contiguous(self) -> bool:
        """Whether each group's rows are one slice (rows were read grouped, e.g. one file per trace)."""
        if self._contiguous is None:
            c = self.codes
            self._contiguous = c is None or c.size < 2 or bool(np.all(c[1:] >= c[:-1]))
        return self._contiguous

    def rows_of(self) -> list[Any]:
        """For each group, what indexes its rows: a slice when rows come grouped, else indices."""
        if self._index is None:
            if self.codes is None:
                self._index = [slice(None)] * self.n
            else:
                bounds = np.concatenate(([0], np.cumsum(self.sizes())))
                if self.contiguous:
                    self._index = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
                else:
                    perm = np.argsort(self.codes, kind="stable")
                    self._index = [perm[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return self._index

    def key(self, i: int) -> dict[str, Any]:
        return {c: self.keys[c][i] for c in self.by}

    def key_columns(self, group_of_row: np.ndarray) -> dict[str, pl.Series]:
        """The group columns for output rows belonging to groups ``group_of_row``."""
        import polars as pl

        idx = pl.Series(np.asarray(group_of_row, dtype=np.int64))
        return {c: self.keys[c].gather(idx) for c in self.by}


@dataclass
class Rows:
    """A consistent snapshot: columns (by SQL expression) and groupings read in one query."""

    n: int
    columns: dict[str, Column]
    groupings: dict[tuple[str, ...], Grouping]
    _derived: dict[Any, Any] = field(default_factory=dict)

    def covers(self, exprs: Sequence[str], bys: Sequence[tuple[str, ...]]) -> bool:
        return all(e in self.columns for e in exprs) and all(b in self.groupings for b in bys)

    def sizes(self, by: tuple[str, ...]) -> np.ndarray:
        g = self.groupings[by]
        return np.array([self.n] * g.n, dtype=np.int64) if g.codes is None else g.sizes()

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]


def _to_column(arr: np.ndarray) -> Column:
    """A column of DuckDB's ``fetchnumpy``: a masked array where there are nulls (filled with 0)."""
    if isinstance(arr, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(arr)
        values = np.ma.getdata(arr)
        if mask.any():
            values[mask] = False if values.dtype == bool else 0
            return Column(values, ~mask)
        return Column(values)
    return Column(arr)


def _modulus(key_hashes: np.ndarray) -> int | None:
    """The smallest ``m`` (<= 2^16) under which the key hashes stay distinct, if any.

    Every row's hash is one of the keys' (the keys are the distinct values of the same rows),
    so ``hash % m`` -- two bytes per row, computed by DuckDB -- identifies the row's group
    through a table of ``m`` entries.
    """
    k = key_hashes.size
    for m in range(k, min(1 << 16, 64 * k * k) + 1):
        if np.unique(key_hashes % np.uint64(m)).size == k:
            return m
    return None


@dataclass
class GroupCode:
    """How each row's group is computed in SQL: ``expr`` (needs ``join``) gives a raw code that
    :meth:`decode` maps to the group's index in ``keys`` (ordered as ``ORDER BY by``)."""

    by: tuple[str, ...]
    keys: pl.DataFrame
    expr: str
    join: str = ""
    lut: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.keys.height

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return raw if self.lut is None else self.lut[raw]


def group_code(inp: Input, by: tuple[str, ...], tag: str = "0") -> GroupCode:
    """Keys of grouping ``by`` (one small ``SELECT DISTINCT``) and the SQL giving each row's group.

    The code is ``hash()`` of the group columns modulo a number under which the keys' hashes
    are distinct (two bytes per row, computed by DuckDB); should none small enough exist, the
    rows are joined to the keys instead. With at most one group the code is the constant 0.
    """
    import polars as pl

    if not by:
        return GroupCode(by, pl.DataFrame(), "0::INTEGER")
    cols = ", ".join(qi(c) for c in by)
    keys = inp.sql(f"SELECT DISTINCT {cols}, hash({cols}) AS _h FROM _input ORDER BY {cols}")
    hashes = keys["_h"].to_numpy()
    keys = keys.drop("_h")
    if keys.height <= 1:
        return GroupCode(by, keys, "0::INTEGER")
    m = None if _FORCE_JOIN else _modulus(hashes)
    if m is None:
        name = f"_keys{tag}_{id(inp)}"
        inp.con.register(name, keys.with_row_index("_g").to_arrow())
        on = " AND ".join(f"_input.{qi(c)} IS NOT DISTINCT FROM {name}.{qi(c)}" for c in by)
        return GroupCode(by, keys, f"{name}._g::INTEGER", f"LEFT JOIN {name} ON {on}")
    lut = np.zeros(m, dtype=np.int32)
    lut[(hashes % np.uint64(m)).astype(np.intp)] = np.arange(keys.height, dtype=np.int32)
    return GroupCode(by, keys, f"(hash({', '.join('_input.' + qi(c) for c in by)}) % {m})::USMALLINT", "", lut)


def load_rows(inp: Input, exprs: Sequence[str], bys: Sequence[tuple[str, ...]]) -> Rows:
    """Read ``exprs`` of ``_input`` and the group of each row for every grouping in ``bys``.

    Group codes come from :func:`group_code`; everything else is one scan, fetched straight
    into numpy arrays.
    """
    items = [f"{e} AS _c{i}" for i, e in enumerate(exprs)]
    joins, pending = [], []
    groupings: dict[tuple[str, ...], Grouping] = {}
    for j, by in enumerate(bys):
        gc = group_code(inp, by, str(j))
        if gc.expr == "0::INTEGER":
            n = 1 if not by else gc.n
            groupings[by] = Grouping(by, gc.keys, n, None if n == 1 else np.zeros(0, np.int32))
            continue
        if gc.join:
            joins.append(gc.join)
        items.append(f"{gc.expr} AS _g{j}")
        pending.append((gc, j))
    if not items:
        items = ["NULL::BOOLEAN AS _none"]
    prev = inp.con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    # Insertion order keeps a store written in arrival order sorted, so no sort is needed later.
    inp.con.execute("SET preserve_insertion_order = true")
    try:
        got = inp.con.sql(f"SELECT {', '.join(items)} FROM _input {' '.join(joins)}").fetchnumpy()
    finally:
        inp.con.execute(f"SET preserve_insertion_order = {'true' if prev else 'false'}")
    n = len(next(iter(got.values())))
    columns = {e: _to_column(got.pop(f"_c{i}")) for i, e in enumerate(exprs)}
    for gc, j in pending:
        raw = _to_column(got.pop(f"_g{j}")).values
        groupings[gc.by] = Grouping(gc.by, gc.keys, gc.n, gc.decode(raw))
    return Rows(n, columns, groupings)


# ---------------------------------------------------------------------------- value counts


def value_counts(values: np.ndarray, bounds: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (ascending) and how often each occurs; ``np.bincount`` for narrow integers.

    ``bounds``: known (lo, hi) containing every value (saves two passes).
    """
    if values.size == 0:
        return values[:0], np.zeros(0, np.int64)
    if values.dtype.kind in "iu":
        lo, hi = bounds if bounds is not None else (int(values.min()), int(values.max()))
        if hi - lo < DENSE_MAX:
            if lo >= 0 and hi < DENSE_MAX:
                cnt = np.bincount(values, minlength=hi + 1)  # the value is its own index
                lo = 0
            else:
                cnt = np.bincount((values - lo).astype(np.intp, copy=False), minlength=hi - lo + 1)
            nz = np.flatnonzero(cnt)
            return (nz + lo).astype(values.dtype), cnt[nz].astype(np.int64)
    u, c = np.unique(values, return_counts=True)
    return u, c.astype(np.int64)


def grouped_value_counts(rows: Rows, expr: str, by: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`value_counts` of a column's non-null values in every group (cached on the snapshot)."""

    def make():
        col, g = rows.columns[expr], rows.groupings[by]
        integer = col.values.dtype.kind in "iu"
        bounds = col.range() if integer else None
        if g.contiguous:
            return [value_counts(col.valid_values(ix), bounds) for ix in g.rows_of()]
        v, codes = col.values, g.codes
        if col.valid is not None:
            v, codes = v[col.valid], codes[col.valid]
        if integer and v.size:
            lo, hi = bounds
            lo = min(lo, 0)
            width = hi - lo + 1
            if width * g.n <= DENSE_MAX:
                # One bincount over (group, value) instead of splitting the rows by group.
                cnt = np.zeros(width * g.n, dtype=np.int64)
                for b in blocks(v.size):
                    idx = codes[b].astype(np.int64)
                    idx *= width
                    idx += v[b] if lo == 0 else v[b] - lo
                    cnt += np.bincount(idx, minlength=width * g.n)
                cnt = cnt.reshape(g.n, width)
                out = []
                for i in range(g.n):
                    nz = np.flatnonzero(cnt[i])
                    out.append(((nz + lo).astype(v.dtype), cnt[i, nz].astype(np.int64)))
                return out
        return [value_counts(col.valid_values(ix)) for ix in g.rows_of()]

    return rows.cached(("vc", expr, by), make)


def quantiles_from_counts(values: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """DuckDB's ``quantile_cont`` of the multiset ``values`` x ``counts`` (values ascending).

    Rank ``r = (n - 1) q``; the result is ``lo + (hi - lo) (r - floor(r))`` with ``lo``,
    ``hi`` the order statistics ``floor(r)`` and ``ceil(r)`` (0-based). ``None`` when empty.
    """
    n = int(counts.sum())
    if n == 0:
        return [None] * len(qs)
    cum = np.cumsum(counts)
    out = []
    for q in qs:
        r = (n - 1) * float(q)
        lo, hi = math.floor(r), math.ceil(r)
        v_lo = float(values[np.searchsorted(cum, lo, side="right")])
        if hi == lo:
            out.append(v_lo)
        else:
            v_hi = float(values[np.searchsorted(cum, hi, side="right")])
            out.append(v_lo + (v_hi - v_lo) * (r - lo))
    return out


def blocks(n: int) -> list[slice]:
    """Consecutive slices of at most :data:`BLOCK` rows covering ``range(n)``."""
    return [slice(i, min(n, i + BLOCK)) for i in range(0, n, BLOCK)]


class Lookup:
    """Functions of a column's distinct values, looked up row by row.

    ``distinct`` are the sorted distinct values; :meth:`table` spreads per-value results over
    the lookup space and :meth:`index` maps row values into it: the value itself for narrow
    non-negative integers (a table indexed by value, no arithmetic), the value minus the
    smallest for other narrow integers, else the position found by binary search.
    ``bounds`` contains every value that will be looked up.
    """

    def __init__(self, distinct: np.ndarray, bounds: tuple[int, int] | None = None) -> None:
        self.distinct = distinct
        self.base: int | None = None
        if distinct.dtype.kind in "iu" and distinct.size:
            lo, hi = bounds if bounds is not None else (int(distinct[0]), int(distinct[-1]))
            if hi - lo < DENSE_MAX:
                self.base = 0 if lo >= 0 and hi < DENSE_MAX else lo
                self.size = hi - self.base + 1

    def table(self, per_value: np.ndarray, fill: Any = 0) -> np.ndarray:
        per_value = np.asarray(per_value)
        if self.base is None:
            return per_value
        t = np.full(self.size, fill, dtype=per_value.dtype)
        t[self.distinct - self.base] = per_value
        return t

    def index(self, v: np.ndarray) -> np.ndarray:
        if self.base is None:
            return np.minimum(np.searchsorted(self.distinct, v), max(self.distinct.size - 1, 0))
        return v if self.base == 0 else v - self.base


def correlations(x: np.ndarray, y: np.ndarray, lx: Lookup, ly: Lookup,
                 fx: Sequence[np.ndarray], fy: Sequence[np.ndarray],
                 mean_x: Sequence[float], mean_y: Sequence[float]) -> list[float | None]:
    """Pearson correlations of ``(fx[i](x), fy[i](y))`` over the rows, for every ``i``, in one pass.

    ``fx[i]``, ``fy[i]``: per-distinct-value results (see :class:`Lookup`); ``mean_x[i]``,
    ``mean_y[i]``: a value near each mean, subtracted before summing so that the sums of
    squares do not cancel (the means over the group's non-null values serve). Like DuckDB's
    ``corr``: None for no rows, NaN when a side is constant.
    """
    tables = [lx.table(f) for f in fx], [ly.table(f) for f in fy]
    sums = np.zeros((len(fx), 5))
    for b in blocks(x.size):
        sums += correlation_sums(x[b], y[b], lx, ly, *tables, mean_x, mean_y)
    return correlations_from_sums(sums, x.size)


def correlation_sums(x: np.ndarray, y: np.ndarray, lx: Lookup, ly: Lookup, tx: Sequence[np.ndarray],
                     ty: Sequence[np.ndarray], mean_x: Sequence[float], mean_y: Sequence[float]) -> np.ndarray:
    """For each function pair ``i``: sums of a, c, a^2, c^2, ac over the rows, where a, c are
    ``tx[i]``/``ty[i]`` looked up at the rows' values, less the means (mergeable by adding)."""
    sums = np.zeros((len(tx), 5))
    if x.size == 0:
        return sums
    with np.errstate(invalid="ignore"):  # ln(1 + x) of x = -1 is -inf: NaN, as in DuckDB
        ix, iy = lx.index(x), ly.index(y)
        for i in range(len(tx)):
            a = tx[i][ix] - mean_x[i]
            c = ty[i][iy] - mean_y[i]
            sums[i] = (a.sum(), c.sum(), np.dot(a, a), np.dot(c, c), np.dot(a, c))
    return sums


def correlations_from_sums(sums: np.ndarray, n: int) -> list[float | None]:
    """The correlations of :func:`correlation_sums` totals over ``n`` rows."""
    if n == 0:
        return [None] * len(sums)
    out = []
    for sa, sc, saa, scc, sac in sums.tolist():
        va, vc = saa - sa * sa / n, scc - sc * sc / n
        out.append((sac - sa * sc / n) / math.sqrt(va * vc) if va > 0 and vc > 0 else math.nan)
    return out


# ---------------------------------------------------------------------------- arrival times


class GroupTimes:
    """One group's arrival times, sorted, with what the arrival statistics derive from them."""

    def __init__(self, t: np.ndarray) -> None:
        self.t = t
        self.n = int(t.size)
        self._distinct: tuple[np.ndarray, np.ndarray] | None = None
        self._gaps: np.ndarray | None = None
        self._gap_counts: tuple[np.ndarray, np.ndarray] | None = None
        self._summary: tuple[float, float, float] | None = None
        self._bins: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def gaps(self) -> np.ndarray:
        if self._gaps is None:
            self._gaps = np.diff(self.t)
        return self._gaps

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct times and their multiplicities (a trace at 1 s resolution has far fewer)."""
        if self._distinct is None:
            t = self.t
            if t.size == 0:
                self._distinct = (t, np.zeros(0, np.int64))
            else:
                starts = np.concatenate(([0], np.flatnonzero(t[1:] != t[:-1]) + 1))
                self._distinct = (t[starts], np.diff(np.append(starts, t.size)))
        return self._distinct

    def gap_summary(self) -> tuple[float, float, float]:
        """Mean, population standard deviation and maximum of the gaps (``n >= 2``), block by block.

        The squares are summed around the mean over the span (the same mean, up to rounding),
        so they do not cancel.
        """
        if self._summary is not None:
            return self._summary
        t, m = self.t, self.n - 1
        shift = float(t[-1] - t[0]) / m
        s1 = s2 = 0.0
        top = -math.inf
        for b in blocks(m):
            g = np.diff(t[b.start:b.stop + 1])
            s1 += float(g.sum())
            top = max(top, float(g.max()))
            g -= shift
            s2 += float(np.dot(g, g))
        d = s1 / m - shift
        self._summary = (s1 / m, math.sqrt(max(s2 / m - d * d, 0.0)), top)
        return self._summary

    def gap_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct gap values (ascending) and counts: a bincount when gaps are whole seconds."""
        if self._gap_counts is None:
            t, m = self.t, self.n - 1
            top = self.gap_summary()[2] if m > 0 else 0.0
            cnt = np.zeros(int(top) + 1 if 0 <= top < DENSE_MAX else 0, dtype=np.int64)
            for b in blocks(m) if cnt.size else ():
                g = np.diff(t[b.start:b.stop + 1])
                gi = g.astype(np.int64)
                if not np.array_equal(gi, g):
                    cnt = None  # not whole numbers: count them by sorting
                    break
                cnt += np.bincount(gi, minlength=cnt.size)
            if cnt is not None and cnt.size:
                nz = np.flatnonzero(cnt)
                self._gap_counts = (nz.astype(np.float64), cnt[nz])
            else:
                s = np.sort(self.gaps)
                self._gap_counts = value_counts(s) if s.size else (s, np.zeros(0, np.int64))
        return self._gap_counts

    # The interface shared with the out-of-core groups of wattlas.analysis._stream.
    @property
    def span(self) -> float | None:
        return float(self.t[-1] - self.t[0]) if self.n else None

    def gap_quantiles(self, qs: Sequence[float], positive: bool = False) -> list[float | None]:
        """``quantile_cont`` of the gaps (only those > 0 with ``positive``); None when none."""
        u, c = self.gap_counts() if self.n >= 2 else (np.zeros(0), np.zeros(0, np.int64))
        if positive and u.size and u[0] <= 0:
            keep = u > 0
            u, c = u[keep], c[keep]
        return quantiles_from_counts(u, c, qs)

    def zero_gaps(self) -> int:
        u, c = self.gap_counts()
        return int(c[0]) if u.size and u[0] == 0 else 0

    def bin_moments(self, bin_s: float) -> tuple[int, int, int]:
        """Windows from the first to the last non-empty bin, arrivals, and the sum of squared counts."""
        b, n = self.bins(bin_s)
        if not b.size:
            return 0, 0, 0
        return int(b[-1] - b[0]) + 1, int(n.sum()), int(np.dot(n, n))

    def sample_gaps(self, max_samples: int | None, seed: int) -> np.ndarray:
        """All gaps, or ``choice(gaps, max_samples)`` drawn without making every gap."""
        if max_samples is None or self.n - 1 <= max_samples:
            return self.gaps
        i = np.random.default_rng(seed).choice(self.n - 1, size=int(max_samples), replace=False)
        return self.t[i + 1] - self.t[i]

    def bins(self, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Non-empty bins ``floor(t / bin_s)`` (ascending) and the arrivals in each."""
        key = float(bin_s)
        if key not in self._bins:
            u, c = self.distinct()
            if u.size == 0:
                self._bins[key] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
            else:
                k = np.floor(u / key)
                starts = np.concatenate(([0], np.flatnonzero(k[1:] != k[:-1]) + 1))
                self._bins[key] = (k[starts].astype(np.int64), np.add.reduceat(c, starts))
        return self._bins[key]


@dataclass
class Times:
    """Arrival times per group of ``grouping`` (null and NaN times left out)."""

    grouping: Grouping
    groups: list[GroupTimes]


def times(inp: Input, by: Sequence[str], time_col: str) -> Times:
    """The sorted arrival times of every group, computed once per Input."""
    by = tuple(by)
    key = ("times", by, time_col)
    if key in inp._cache:
        return inp._cache[key]
    inp.require(time_col, what="inter-arrival analysis")
    e = time_expr(time_col)
    rows = inp.rows([e], [by])
    col, g = rows.columns[e], rows.groupings[by]
    t = col.values
    ok = ~np.isnan(t)
    if col.valid is not None:
        ok &= col.valid
    groups = []
    for ix in g.rows_of():
        seg = t[ix]
        sel = ok[ix]
        if not sel.all():
            seg = seg[sel]
        if seg.size > 1 and bool(np.any(seg[1:] < seg[:-1])):
            seg = np.sort(seg, kind="stable")  # a copy: the snapshot stays in read order
        groups.append(GroupTimes(seg))
    out = Times(g, groups)
    inp._cache[key] = out
    return out

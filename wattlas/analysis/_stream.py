"""Statistics of an :class:`~wattlas.analysis._data.Input` in memory bounded whatever its row count.

The in-memory path (:mod:`wattlas.analysis._arrays`) reads every column a report uses into
numpy, about 8 bytes per row and column. Here nothing is held per row:

- **DuckDB aggregates** give what a ``GROUP BY`` gives: token value -> count tables per group
  (exact quantiles, means, maxima, histograms and average ranks come from them), row and
  failure counts, and each group's first and last arrival. DuckDB spills them to
  ``temp_directory`` under ``memory_limit`` (:func:`configure`).
- **Streamed passes** read the rows in chunks of about a million (an Arrow stream) and keep
  only exact mergeable state: sums, a bincount of whole-second gaps, the non-empty bins of
  each bin size (or just their count and sum of squares where there are too many to keep),
  the rows of the seeded samples the fits use, the joint-histogram cells and the correlation
  sums. Arrival times are streamed in insertion order when each group's times are already
  sorted there (a store written in arrival order: checked as they come), else by DuckDB's
  ``ORDER BY``, which sorts out of core.
- **Gap quantiles** of times that are not whole seconds need a global sort of the gaps: the
  pass writes them to a temporary Parquet file, DuckDB sorts it out of core into another one,
  and the order statistics are read back by position.

Every statistic has the in-memory path's definition (the same order statistics and
interpolation, the same bins, the same seeded samples in the same order); sums are added in
chunks of a different size, so floating-point results can differ in the last bits.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._arrays import (
    DENSE_MAX,
    GroupCode,
    Grouping,
    correlation_sums,
    group_code,
    quantiles_from_counts,
    time_expr,
)
from ._data import qi

if TYPE_CHECKING:
    import duckdb

    from ._data import Input

#: DuckDB's memory limit for analyses (``WATTLAS_ANALYSIS_MEMORY`` overrides): what it cannot
#: hold below this it spills to the temporary directory (``WATTLAS_ANALYSIS_TMP``).
MEMORY_LIMIT = "512MB"
#: Rows per streamed chunk.
CHUNK_ROWS = 1 << 20
#: Most bins kept per group and bin size; beyond, only their count and sum of squares.
FULL_BINS_MAX = 1 << 20
#: Bin sizes every time pass computes (rate, dispersion, burst, periodicity and profile bins).
DEFAULT_BINS_S = (1.0, 10.0, 60.0, 300.0, 600.0, 900.0, 3600.0, 21600.0, 86400.0)


def configure(con: duckdb.DuckDBPyConnection) -> str:
    """Give an analysis connection a memory limit and a private temporary directory to spill to.

    Returns the directory (removed by :func:`cleanup`).
    """
    limit = os.environ.get("WATTLAS_ANALYSIS_MEMORY", "").strip() or MEMORY_LIMIT
    base = os.environ.get("WATTLAS_ANALYSIS_TMP", "").strip() or None
    tmp = tempfile.mkdtemp(prefix="wattlas-analysis-", dir=base)
    con.execute(f"SET memory_limit = '{limit.replace(chr(39), '')}'")
    con.execute("SET temp_directory = " + "'" + tmp.replace("'", "''") + "'")
    return tmp


def one_blas_thread():
    """A context in which BLAS (``np.dot``) runs on one thread.

    The sums here are of vectors of a million: memory-bound, so extra BLAS threads buy nothing,
    and while DuckDB's threads produce the next chunk in the background, BLAS threads that
    spin-wait for a core slow each dot product several-fold (3-10x measured on 2 cores).
    threadpoolctl comes with scikit-learn; without it nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def cleanup(tmp: str | None) -> None:
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def chunks(inp: Input, sql: str, *, ordered: bool) -> Iterator[dict[str, np.ndarray]]:
    """The rows of ``sql`` as numpy columns, about a million at a time, in insertion order when
    ``ordered`` (a stream: DuckDB holds a few chunks, not the result)."""
    con = inp.con
    prev = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute(f"SET preserve_insertion_order = {'true' if ordered else 'false'}")
    try:
        # An Arrow stream: DuckDB produces the batches as they are read (pandas chunks would
        # cost the pandas import and a copy per column).
        # Columns are numbers without nulls: zero-copy views (a conversion would import pandas).
        for batch in con.sql(sql).to_arrow_reader(CHUNK_ROWS):
            yield {name: col.to_numpy(zero_copy_only=True) for name, col in
                   zip(batch.schema.names, batch.columns, strict=True)}
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if prev else 'false'}")


def split(codes: np.ndarray) -> Iterator[tuple[int, Any]]:
    """(group, rows) for every group present in a chunk, rows in chunk order."""
    if codes.size == 0:
        return
    first = int(codes[0])
    if codes[-1] == first and not np.any(codes != first):
        yield first, slice(None)
        return
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    starts = np.concatenate(([0], np.flatnonzero(sc[1:] != sc[:-1]) + 1, [sc.size]))
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        yield int(sc[a]), order[a:b]


def sample_positions(n: int, max_samples: int | None, seed: int) -> np.ndarray | None:
    """Positions ``choice(values, max_samples)`` takes, in draw order (None: all values)."""
    if max_samples is None or n <= max_samples:
        return None
    return np.random.default_rng(seed).choice(n, size=int(max_samples), replace=False)


class Picker:
    """Collects the values at ``positions`` (in draw order) of a sequence seen piece by piece."""

    def __init__(self, positions: np.ndarray | None) -> None:
        self.all = positions is None
        self.parts: list[np.ndarray] = []
        if not self.all:
            self.order = np.argsort(positions, kind="stable")
            self.sorted = positions[self.order]
            self.out = np.empty(positions.size)
        self.seen = 0
        self.k = 0

    def feed(self, values: np.ndarray) -> None:
        if self.all:
            self.parts.append(np.array(values, dtype=np.float64))
        else:
            hi = int(np.searchsorted(self.sorted, self.seen + values.size))
            if hi > self.k:
                self.out[self.order[self.k:hi]] = values[self.sorted[self.k:hi] - self.seen]
                self.k = hi
        self.seen += values.size

    def values(self) -> np.ndarray:
        if self.all:
            return np.concatenate(self.parts) if self.parts else np.zeros(0)
        return self.out


# ---------------------------------------------------------------------------- arrival times


class _Unsorted(Exception):
    """A group's times are not in order in insertion order: stream them sorted instead."""


class _Bins:
    """Non-empty bins of one size for one group, merged across chunks."""

    def __init__(self, bin_s: float, keep: bool) -> None:
        self.bin_s, self.keep = bin_s, keep
        self.b: list[np.ndarray] = []
        self.n: list[np.ndarray] = []
        self.carry: tuple[int, int] | None = None
        self.first: int | None = None
        self.total = self.total_sq = 0

    def feed(self, u: np.ndarray, c: np.ndarray) -> None:
        k = np.floor(u / self.bin_s)
        starts = np.concatenate(([0], np.flatnonzero(k[1:] != k[:-1]) + 1))
        b, n = k[starts].astype(np.int64), np.add.reduceat(c, starts)
        if self.carry is not None:
            if b[0] == self.carry[0]:
                n[0] += self.carry[1]
            else:
                self._done(np.array([self.carry[0]]), np.array([self.carry[1]], dtype=np.int64))
        self.carry = (int(b[-1]), int(n[-1]))
        if b.size > 1:
            self._done(b[:-1], n[:-1])

    def _done(self, b: np.ndarray, n: np.ndarray) -> None:
        if self.first is None:
            self.first = int(b[0])
        self.total += int(n.sum())
        self.total_sq += int(np.dot(n, n))
        if self.keep:
            self.b.append(b)
            self.n.append(n)

    def finish(self) -> None:
        if self.carry is not None:
            self._done(np.array([self.carry[0]]), np.array([self.carry[1]], dtype=np.int64))
            self.last = self.carry[0]
            self.carry = None
        if self.keep:
            self.b = [np.concatenate(self.b)] if self.b else [np.zeros(0, np.int64)]
            self.n = [np.concatenate(self.n)] if self.n else [np.zeros(0, np.int64)]


class _TimeAcc:
    """What one pass accumulates for one group from its sorted times."""

    def __init__(self, g: StreamGroupTimes, bins: dict[float, bool], positions: np.ndarray | None,
                 gaps: bool, spill: Any) -> None:
        self.g = g
        self.last_t: float | None = None
        self.seen = 0
        self.gaps = gaps
        self.shift = (g.last - g.first) / (g.n - 1) if g.n >= 2 else 0.0
        self.s1 = self.s2 = 0.0
        self.top = -math.inf
        self.zero = 0
        self.counts = np.zeros(0, np.int64)
        self.big: list[np.ndarray] = []
        self.spill = spill
        self.bins = {b: _Bins(b, keep) for b, keep in bins.items()}
        self.picker = Picker(positions) if positions is not None or g.sample_all else None

    def feed(self, t: np.ndarray) -> None:
        if t.size == 0:
            return
        if (self.last_t is not None and t[0] < self.last_t) or (t.size > 1 and np.any(t[1:] < t[:-1])):
            raise _Unsorted
        gap = np.diff(t, prepend=self.last_t) if self.last_t is not None else np.diff(t)
        if gap.size and self.gaps:
            self._gaps(gap)
        if self.picker is not None and gap.size:
            self.picker.feed(gap)
        starts = np.concatenate(([0], np.flatnonzero(t[1:] != t[:-1]) + 1))
        u, c = t[starts], np.diff(np.append(starts, t.size))
        for b in self.bins.values():
            b.feed(u, c)
        self.last_t = float(t[-1])
        self.seen += t.size

    def _gaps(self, gap: np.ndarray) -> None:
        self.s1 += float(gap.sum())
        self.top = max(self.top, float(gap.max()))
        d = gap - self.shift
        self.s2 += float(np.dot(d, d))
        if self.spill is not None:
            self.zero += int(np.count_nonzero(gap == 0))
            self.spill(self.g.index, gap)
            return
        gi = gap.astype(np.int64)
        small = gi < DENSE_MAX
        if not small.all():
            self.big.append(gi[~small])
            gi = gi[small]
        cnt = np.bincount(gi)
        if cnt.size > self.counts.size:
            cnt[: self.counts.size] += self.counts
            self.counts = cnt
        else:
            self.counts[: cnt.size] += cnt

    def finish(self) -> None:
        g = self.g
        for b in self.bins.values():
            b.finish()
            g._bins[b.bin_s] = b
        if self.picker is not None:
            g._samples[g._sample_key] = self.picker.values()
        if self.gaps and g.n >= 2:
            m = g.n - 1
            d = self.s1 / m - self.shift
            g._summary = (self.s1 / m, math.sqrt(max(self.s2 / m - d * d, 0.0)), self.top)
            if self.spill is None:
                nz = np.flatnonzero(self.counts)
                u, c = nz.astype(np.float64), self.counts[nz]
                if self.big:
                    bu, bc = np.unique(np.concatenate(self.big), return_counts=True)
                    u, c = np.concatenate((u, bu.astype(np.float64))), np.concatenate((c, bc))
                g._gap_counts = (u, c)
            else:
                g._zero = self.zero


class StreamGroupTimes:
    """One group's arrival statistics from streamed passes (the interface of ``_arrays.GroupTimes``)."""

    def __init__(self, owner: StreamTimes, index: int, n: int, first: float, last: float) -> None:
        self.owner, self.index = owner, index
        self.n, self.first, self.last = n, first, last
        self._bins: dict[float, _Bins] = {}
        self._summary: tuple[float, float, float] | None = None
        self._gap_counts: tuple[np.ndarray, np.ndarray] | None = None
        self._zero: int | None = None
        self._samples: dict[tuple[int | None, int], np.ndarray] = {}
        self._sample_key: tuple[int | None, int] = (None, 0)
        self.sample_all = False

    @property
    def span(self) -> float | None:
        return self.last - self.first if self.n else None

    def gap_summary(self) -> tuple[float, float, float]:
        if not self.owner._gaps_done:
            self.owner.run(gaps=True)
        return self._summary

    def gap_quantiles(self, qs: Sequence[float], positive: bool = False) -> list[float | None]:
        if self.n < 2:
            return [None] * len(qs)
        self.gap_summary()
        if self._gap_counts is not None:
            u, c = self._gap_counts
            if positive and u.size and u[0] <= 0:
                keep = u > 0
                u, c = u[keep], c[keep]
            return quantiles_from_counts(u, c, qs)
        skip = self._zero if positive else 0
        return self.owner.sorted_gaps.quantiles(self.index, skip, self.n - 1 - skip, qs)

    def zero_gaps(self) -> int:
        self.gap_summary()
        if self._gap_counts is not None:
            u, c = self._gap_counts
            return int(c[0]) if u.size and u[0] == 0 else 0
        return int(self._zero)

    def bins(self, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
        b = self._bins.get(float(bin_s))
        if b is None or not b.keep:
            self.owner.run(bins={float(bin_s): True})
            b = self._bins[float(bin_s)]
        return b.b[0], b.n[0]

    def bin_moments(self, bin_s: float) -> tuple[int, int, int]:
        b = self._bins.get(float(bin_s))
        if b is None:
            self.owner.run(bins={float(bin_s): False})
            b = self._bins[float(bin_s)]
        if b.first is None:
            return 0, 0, 0
        return b.last - b.first + 1, b.total, b.total_sq

    def sample_gaps(self, max_samples: int | None, seed: int) -> np.ndarray:
        key = (max_samples, seed)
        if self.n < 2:
            return np.zeros(0)
        if key not in self._samples:
            self.owner.run(samples=key)
        return self._samples[key]


class StreamTimes:
    """Arrival statistics per group, computed by passes over the times (see the module docstring).

    The first pass computes everything a report asks (gap statistics, the bins of
    :data:`DEFAULT_BINS_S` and of :meth:`want`, the seeded gap samples); what is asked later and
    not there yet costs one more pass.
    """

    def __init__(self, inp: Input, by: Sequence[str], time_col: str) -> None:
        import polars as pl

        self.inp = inp
        self.by = tuple(by)
        self.code: GroupCode = group_code(inp, self.by, "t")
        self.t = time_expr(time_col)
        self.valid = f"{self.t} IS NOT NULL AND NOT isnan({self.t})"
        agg = inp.con.sql(
            f"SELECT {self.code.expr} AS c, count(*) AS n, min({self.t}) AS lo, max({self.t}) AS hi, "
            f"count(*) FILTER (WHERE {self.t} <> floor({self.t})) AS frac "
            f"FROM _input {self.code.join} WHERE {self.valid} GROUP BY ALL"
        ).fetchnumpy()
        ngroups = 1 if not self.by else self.code.n
        self.grouping = Grouping(self.by, self.code.keys if self.by else pl.DataFrame(), ngroups, None)
        self.groups = [StreamGroupTimes(self, i, 0, math.nan, math.nan) for i in range(ngroups)]
        idx = self.code.decode(np.asarray(agg["c"], dtype=np.int64)) if len(agg["c"]) else np.zeros(0, np.int64)
        for i, n, lo, hi in zip(idx, agg["n"], agg["lo"], agg["hi"], strict=True):
            g = self.groups[int(i)]
            g.n, g.first, g.last = int(n), float(lo), float(hi)
        # Gaps of whole-second times are whole: a bincount holds them. Others go through a sort.
        self.whole = int(np.sum(agg["frac"])) == 0
        self.sorted_in_place: bool | None = None
        self._wanted: dict[float, bool] = {}
        self._wanted_samples: tuple[int | None, int] | None = None
        self._gaps_done = False
        self.sorted_gaps: SortedGaps | None = None

    def want(self, bins: Sequence[float] = (), samples: int | None | str = "none", seed: int = 0) -> None:
        """Ask for bin sizes and a gap sample before the first pass, so that it computes them too."""
        for b in bins:
            self._wanted[float(b)] = True
        if samples != "none":
            self._wanted_samples = (samples, seed)

    def _keep(self, bin_s: float) -> bool:
        span = max((g.span or 0.0 for g in self.groups if g.n), default=0.0)
        return span / bin_s <= FULL_BINS_MAX

    def run(self, *, gaps: bool = False, bins: dict[float, bool] | None = None,
            samples: tuple[int | None, int] | None = None) -> None:
        """One pass computing what is asked and everything wanted but not yet computed."""
        first = not self._gaps_done
        want_bins = dict(bins or {})
        if first:
            gaps = True
            for b in DEFAULT_BINS_S:
                want_bins.setdefault(b, self._keep(b))
            for b, keep in self._wanted.items():
                want_bins[b] = want_bins.get(b, False) or keep
            samples = samples or self._wanted_samples
        if not gaps and not want_bins and samples is None:
            return
        for attempt_ordered in ([False, True] if self.sorted_in_place is not False else [True]):
            accs = self._accumulators(gaps, want_bins, samples)
            try:
                with one_blas_thread():
                    self._scan(accs, ordered_sql=attempt_ordered)
            except _Unsorted:
                self.sorted_in_place = False
                self._close_spill(discard=True)
                continue
            if not attempt_ordered:
                self.sorted_in_place = True
            break
        for a in accs:
            a.finish()
        if gaps:
            self._gaps_done = True
            if self._spill is not None:
                self.sorted_gaps = self._close_spill()

    def _accumulators(self, gaps: bool, bins: dict[float, bool], samples) -> list[_TimeAcc]:
        self._spill = None
        spill = None
        if gaps and not self.whole:
            self._spill = GapSpill(self.inp)
            spill = self._spill.write
        accs = []
        for g in self.groups:
            pos = None
            g.sample_all = False
            if samples is not None and g.n >= 2:
                g._sample_key = samples
                pos = sample_positions(g.n - 1, samples[0], samples[1])
                g.sample_all = pos is None
            accs.append(_TimeAcc(g, bins, pos, gaps, spill))
        return accs

    def _close_spill(self, discard: bool = False) -> SortedGaps | None:
        sp, self._spill = self._spill, None
        if sp is None:
            return None
        if discard:
            sp.discard()
            return None
        return sp.sort()

    def _scan(self, accs: list[_TimeAcc], *, ordered_sql: bool) -> None:
        order = "ORDER BY c, t" if ordered_sql else ""
        sql = (f"SELECT {self.code.expr} AS c, {self.t} AS t FROM _input {self.code.join} "
               f"WHERE {self.valid} {order}")
        for d in chunks(self.inp, sql, ordered=True):
            codes = self.code.decode(d["c"].astype(np.int64, copy=False))
            t = d["t"].astype(np.float64, copy=False)
            for g, rows in split(codes):
                accs[g].feed(t[rows])


class GapSpill:
    """Gaps written to a temporary Parquet file (group index, gap) for an out-of-core sort."""

    def __init__(self, inp: Input) -> None:
        self.inp = inp
        self.dir = tempfile.mkdtemp(prefix="gaps-", dir=inp.scratch())
        self.path = os.path.join(self.dir, "gaps.parquet")
        self.writer = None

    def write(self, group: int, gap: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tbl = pa.table({"g": pa.array(np.full(gap.size, group, np.int32)), "gap": pa.array(gap)})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, tbl.schema, compression="none")
        self.writer.write_table(tbl)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sort(self) -> SortedGaps:
        if self.writer is not None:
            self.writer.close()
        out = os.path.join(self.dir, "sorted.parquet")
        src = self.path.replace("'", "''")
        if self.writer is None:
            return SortedGaps(None, {})
        con = self.inp.con
        prev = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
        con.execute("SET preserve_insertion_order = true")
        try:
            _execute_spilling(con, f"COPY (SELECT gap FROM read_parquet('{src}') ORDER BY g, gap) TO "
                              f"'{out.replace(chr(39), chr(39) * 2)}' (FORMAT parquet, COMPRESSION uncompressed)")
            counts = dict(con.execute(f"SELECT g, count(*) FROM read_parquet('{src}') GROUP BY g").fetchall())
        finally:
            con.execute(f"SET preserve_insertion_order = {'true' if prev else 'false'}")
        os.unlink(self.path)
        return SortedGaps(out, counts)


def _execute_spilling(con, sql: str) -> None:
    """Run an out-of-core ``sql``; under a tight memory limit, once more on one thread.

    Each DuckDB thread keeps its own sort buffers even when the rest spills, so near the limit a
    parallel sort can still run out of memory (seen once in 3 CI runs at 24 MB); DuckDB's own
    advice is fewer threads, which trades speed for the bound.
    """
    import duckdb

    try:
        con.execute(sql)
    except duckdb.OutOfMemoryException:
        threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        con.execute("SET threads = 1")
        try:
            con.execute(sql)
        finally:
            con.execute(f"SET threads = {int(threads)}")


class SortedGaps:
    """Every group's gaps, sorted, in one Parquet file (groups in index order): order statistics
    are read by position, one row group at a time."""

    def __init__(self, path: str | None, counts: dict[int, int]) -> None:
        self.path = path
        self.offsets: dict[int, int] = {}
        pos = 0
        for g in sorted(counts):
            self.offsets[g] = pos
            pos += counts[g]
        self._rg: dict[int, np.ndarray] = {}
        if path is not None:
            import pyarrow.parquet as pq

            self.file = pq.ParquetFile(path)
            sizes = [self.file.metadata.row_group(i).num_rows for i in range(self.file.num_row_groups)]
            self.starts = np.concatenate(([0], np.cumsum(sizes)))

    def at(self, pos: int) -> float:
        i = int(np.searchsorted(self.starts, pos, side="right")) - 1
        if i not in self._rg:
            if len(self._rg) > 64:
                self._rg.clear()
            self._rg[i] = self.file.read_row_group(i, columns=["gap"]).column(0).to_numpy()
        return float(self._rg[i][pos - self.starts[i]])

    def quantiles(self, group: int, skip: int, n: int, qs: Sequence[float]) -> list[float | None]:
        """``quantile_cont`` of the group's sorted gaps ``skip .. skip + n`` (the formula of
        :func:`~wattlas.analysis._arrays.quantiles_from_counts`)."""
        if n <= 0:
            return [None] * len(qs)
        base = self.offsets[group] + skip
        out = []
        for q in qs:
            r = (n - 1) * float(q)
            lo, hi = math.floor(r), math.ceil(r)
            v_lo = self.at(base + lo)
            out.append(v_lo if hi == lo else v_lo + (self.at(base + hi) - v_lo) * (r - lo))
        return out


def stream_times(inp: Input, by: Sequence[str], time_col: str) -> StreamTimes:
    """The :class:`StreamTimes` of a grouping, made once per Input."""
    key = ("stream-times", tuple(by), time_col)
    if key not in inp._cache:
        inp.require(time_col, what="inter-arrival analysis")
        inp._cache[key] = StreamTimes(inp, by, time_col)
    return inp._cache[key]


# ---------------------------------------------------------------------------- column tallies


class Tallies:
    """Per-group value counts of columns (DuckDB ``GROUP BY``) and what streamed passes over
    them give: correlations, the joint log histogram, seeded samples."""

    def __init__(self, inp: Input, by: Sequence[str]) -> None:
        import polars as pl

        self.inp = inp
        self.by = tuple(by)
        self.code = group_code(inp, self.by, "v")
        self.n = 1 if not self.by else self.code.n
        self.grouping = Grouping(self.by, self.code.keys if self.by else pl.DataFrame(), self.n, None)
        self._vc: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._sizes: np.ndarray | None = None
        self._shares = None
        self._samples: dict[tuple[str, int | None, int], list[np.ndarray]] = {}
        self._joint: dict[float, tuple[np.ndarray, list[int], list[int]]] = {}

    def _by_group(self, raw: Any) -> np.ndarray:
        return self.code.decode(np.asarray(raw, dtype=np.int64)) if len(raw) else np.zeros(0, np.int64)

    def _aggregate(self) -> None:
        """Rows per group, the token columns' value counts and the failure counts: one scan
        (``GROUPING SETS``), spilled by DuckDB if the groups outgrow its memory."""
        tokens = [c for c in ("input_tokens", "output_tokens") if self.inp.has(c)]
        failed = self.inp.has("failed")
        items = [f"{self.code.expr} AS c", *(f"{qi(t)} AS v{i}" for i, t in enumerate(tokens)), "count(*) AS n"]
        if failed:
            items += ["count(failed) AS k", "count(*) FILTER (WHERE failed) AS f"]
        sets = ["(c)", *(f"(c, v{i})" for i in range(len(tokens)))]
        flags_sql = ", ".join(f"grouping(v{i}) AS s{i}" for i in range(len(tokens))) or "0 AS s"
        got = self.inp.con.sql(
            f"SELECT {', '.join(items)}, {flags_sql} "
            f"FROM _input {self.code.join} GROUP BY GROUPING SETS ({', '.join(sets)})").fetchnumpy()
        flags = [np.asarray(got[f"s{i}"]) for i in range(len(tokens))]
        total = np.logical_and.reduce(flags) if flags else np.ones(len(got["n"]), bool)
        idx = self._by_group(np.asarray(got["c"])[total])
        self._sizes = np.zeros(self.n, np.int64)
        self._sizes[idx] = np.asarray(got["n"])[total]
        if failed:
            k, f = np.zeros(self.n, np.int64), np.zeros(self.n, np.int64)
            k[idx], f[idx] = np.asarray(got["k"])[total], np.asarray(got["f"])[total]
            self._shares = k, f, [float(fi) / ki if ki else None for fi, ki in zip(f, k, strict=True)]
        for i, t in enumerate(tokens):
            mine = flags[i] == 0
            v = got[f"v{i}"]
            keep = mine & ~np.ma.getmaskarray(v)  # a null value is not counted
            self._vc[t] = self._split(got["c"], np.ma.getdata(v), got["n"], keep)

    def _split(self, c: Any, v: Any, n: Any, keep: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        v = np.asarray(v)[keep]
        if v.dtype == bool:
            v = v.astype(np.int64)
        g = self._by_group(np.asarray(c)[keep])
        order = np.lexsort((v, g))
        g, v, n = g[order], v[order], np.asarray(n, dtype=np.int64)[keep][order]
        ends = np.searchsorted(g, np.arange(self.n), side="right")
        starts = np.concatenate(([0], ends[:-1]))
        return [(v[a:b], n[a:b]) for a, b in zip(starts, ends, strict=True)]

    def sizes(self) -> np.ndarray:
        if self._sizes is None:
            self._aggregate()
        return self._sizes

    def value_counts(self, column: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Distinct non-null values (ascending) and their counts, per group."""
        if column not in self._vc and column in ("input_tokens", "output_tokens") and self._sizes is None:
            self._aggregate()
        if column not in self._vc:
            c = qi(column)
            got = self.inp.con.sql(
                f"SELECT {self.code.expr} AS c, {c} AS v, count(*) AS n FROM _input {self.code.join} "
                f"WHERE {c} IS NOT NULL GROUP BY ALL"
            ).fetchnumpy()
            self._vc[column] = self._split(got["c"], got["v"], got["n"], np.ones(len(got["n"]), bool))
        return self._vc[column]

    def shares(self) -> tuple[np.ndarray, np.ndarray, list]:
        """Rows with a known ``failed`` flag, how many failed, and the share, per group."""
        if self._shares is None:
            self._aggregate()
        return self._shares

    def _stream(self, columns: Sequence[str]) -> Iterator[tuple[int, Any, list[np.ndarray], list[np.ndarray]]]:
        """(group, rows, values, validity masks) of ``columns`` per chunk and group, insertion order."""
        items = [f"{self.code.expr} AS c"]
        for i, col in enumerate(columns):
            items += [f"coalesce({qi(col)}::DOUBLE, 0) AS v{i}" if self._float(col) else
                      f"coalesce({qi(col)}::BIGINT, 0) AS v{i}", f"({qi(col)} IS NOT NULL)::UTINYINT AS k{i}"]
        sql = f"SELECT {', '.join(items)} FROM _input {self.code.join}"
        for d in chunks(self.inp, sql, ordered=True):
            codes = self.code.decode(d["c"].astype(np.int64, copy=False))
            vals = [d[f"v{i}"] for i in range(len(columns))]
            valid = [d[f"k{i}"].view(bool) for i in range(len(columns))]
            for g, rows in split(codes):
                yield g, rows, vals, valid

    def want(self, *, joint_bins_per_decade: float | None = None, samples: Sequence[str] = (),
             max_samples: int | None = 200_000, seed: int = 0) -> None:
        """Ask, before the first streamed pass, for what it should compute besides the token
        correlation: the joint histogram at this bin density, and samples of these columns."""
        if joint_bins_per_decade is not None:
            self._wanted_joint = float(joint_bins_per_decade)
        self._wanted_samples = [(c, max_samples, seed) for c in samples]

    _wanted_joint: float | None = None
    _wanted_samples: list[tuple[str, int | None, int]] = []  # noqa: RUF012 - replaced, never mutated

    def _float(self, column: str) -> bool:
        """Whether a column is streamed as DOUBLE (else BIGINT: integers and booleans)."""
        if self._types is None:
            self._types = {r[0]: str(r[1]) for r in self.inp.con.execute("DESCRIBE _input").fetchall()}
        kind = self._types.get(column, "BIGINT")
        return kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL")

    _types: dict[str, str] | None = None

    def samples(self, column: str, max_samples: int | None, seed: int) -> list[np.ndarray]:
        """Per group: ``choice(non-null values in read order, max_samples)`` (all when fewer)."""
        key = (column, max_samples, seed)
        if key not in self._samples:
            self._pass(samples=[key])
        return self._samples[key]

    def correlation(self) -> tuple[np.ndarray, np.ndarray]:
        """Input/output token correlation sums (see ``_arrays.correlation_sums``; value, ln(1 +
        value), average rank) and complete pairs, per group."""
        if self._corr is None:
            self._pass(corr=True)
        return self._corr

    def joint(self, b: float) -> tuple[np.ndarray, list[int], list[int]]:
        """Joint log-histogram counts of input/output tokens (flattened as the numpy path does),
        the first bin and the width of each column."""
        if float(b) not in self._joint:
            self._pass(joint=float(b))
        return self._joint[float(b)]

    _corr: tuple[np.ndarray, np.ndarray] | None = None

    def _pass(self, *, samples: Sequence[tuple[str, int | None, int]] = (), corr: bool = False,
              joint: float | None = None) -> None:
        """One stream computing what is asked and what :meth:`want` asked that is not there yet."""
        from .requests import _bounds, _correlation_tables, _joint_layout

        tokens = ("input_tokens", "output_tokens")
        have_tokens = all(self.inp.has(c) for c in tokens)
        samples = list(dict.fromkeys([*samples, *(k for k in self._wanted_samples if k not in self._samples
                                                   and self.inp.has(k[0]))]))
        if have_tokens and self._corr is None:
            corr = True
        if joint is None and have_tokens and self._wanted_joint is not None and self._wanted_joint not in self._joint:
            joint = self._wanted_joint
        columns = list(dict.fromkeys([*(tokens if corr or joint is not None else ()), *(k[0] for k in samples)]))
        pos = {c: i for i, c in enumerate(columns)}
        pickers = []
        for col, max_samples, seed in samples:
            counts = [int(c.sum()) for _, c in self.value_counts(col)]
            pickers.append((pos[col], [Picker(sample_positions(n, max_samples, seed)) for n in counts]))
        per_group = sums = pairs = lookups = tables = widths = per_cell = jcounts = firsts = None
        if corr:
            per_group = _correlation_tables((self.value_counts(tokens[0]), self.value_counts(tokens[1])))
            sums, pairs = np.zeros((self.n, 3, 5)), np.zeros(self.n, np.int64)
        if joint is not None:
            layout = []
            for c in tokens:
                vcs = self.value_counts(c)
                d = [v for v, _ in vcs]
                layout.append((np.unique(np.concatenate(d)) if d else np.zeros(0, np.int64), _bounds(vcs)))
            lookups, tables, firsts, widths = _joint_layout(layout, joint)
            per_cell = widths[0] * widths[1]
            jcounts = np.zeros(self.n * per_cell, dtype=np.int64)
        with one_blas_thread():
            self._feed(columns, pickers, per_group if corr else None, (sums, pairs) if corr else None,
                       (lookups, tables, widths, per_cell, jcounts) if joint is not None else None)
        for (col, max_samples, seed), (_, ps) in zip(samples, pickers, strict=True):
            self._samples[(col, max_samples, seed)] = [p.values() for p in ps]
        if corr:
            self._corr = (sums, pairs)
        if joint is not None:
            self._joint[joint] = (jcounts, firsts, widths)

    def _feed(self, columns, pickers, per_group, corr_acc, joint_acc) -> None:
        corr, joint = corr_acc is not None, joint_acc is not None
        if corr:
            sums, pairs = corr_acc
        if joint:
            lookups, tables, widths, per_cell, jcounts = joint_acc
        for g, rows, vals, valid in self._stream(columns):
            for i, ps in pickers:
                ps[g].feed(vals[i][rows][valid[i][rows]])
            if not (corr or joint):
                continue
            vx, vy, kx, ky = vals[0][rows], vals[1][rows], valid[0][rows], valid[1][rows]
            if corr and per_group[g] is not None:
                both = kx & ky
                a, b = vx[both], vy[both]
                pairs[g] += a.size
                sums[g] += correlation_sums(a, b, *per_group[g])
            if joint:
                cell = tables[0][lookups[0].index(vx)]
                cell[~kx] = 0
                cell *= widths[1]
                out_code = tables[1][lookups[1].index(vy)]
                out_code[~ky] = 0
                cell += out_code
                cell += g * per_cell
                jcounts += np.bincount(cell, minlength=jcounts.size)


def tallies(inp: Input, by: Sequence[str]) -> Tallies:
    key = ("tallies", tuple(by))
    if key not in inp._cache:
        inp._cache[key] = Tallies(inp, by)
    return inp._cache[key]


__all__ = ["StreamTimes", "Tallies", "cleanup", "configure", "stream_times", "tallies"]

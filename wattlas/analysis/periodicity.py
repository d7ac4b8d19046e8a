"""Periodicity: autocorrelation and spectrum of the rate series, diurnal/weekly profiles.

The rate series comes from :func:`~wattlas.analysis.arrivals.arrival_rate` (DuckDB, empty bins
included); the autocorrelation and periodogram of that short series are computed with numpy's
FFT per group.

- **ACF** at lag ``h`` bins: ``sum((x_t - m)(x_{t+h} - m)) / sum((x_t - m)^2)``.
- **periodogram**: ``|FFT(x - m)|^2 / n`` at frequencies ``k / (n bin_s)``, ``k >= 1``.
- **profile**: arrivals per phase bin of a period (day or week) divided by how many times
  that phase bin was observed, as a rate and relative to the mean over phases. The phase
  comes from the wall clock (``arrival_time``) where the trace has one (week phase 0 =
  Monday 00:00 of the clock as written; no zone is assumed), else from ``time_col`` modulo
  the period (BurstGPT: its origin is 00:00 of the first day; its weekday is unknown).
- **peak-to-mean**: the largest bin rate over the mean rate, at the given bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AnalysisError
from ._data import Data, as_input, groups, qi, select_list
from .arrivals import DEFAULT_BY, arrival_rate

if TYPE_CHECKING:
    import polars as pl

DAY_S = 86400.0
WEEK_S = 7 * DAY_S
_BIN_CANDIDATES_S = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, DAY_S)

__all__ = ["autocorrelation", "auto_bin_s", "periodicity", "profile", "spectrum"]


def auto_bin_s(span_s: float, max_bins: int = 20_000) -> float:
    """The smallest of 1 s, 10 s, 1 min, 5 min, 15 min, 1 h, 6 h, 1 d giving at most ``max_bins``.

    Examples
    --------
    >>> auto_bin_s(3600), auto_bin_s(121 * 86400)
    (1.0, 900.0)
    """
    for b in _BIN_CANDIDATES_S:
        if span_s / b <= max_bins:
            return b
    return _BIN_CANDIDATES_S[-1]


def _acf(x: np.ndarray) -> np.ndarray:
    n = x.size
    d = x - x.mean()
    f = np.fft.rfft(d, n=2 * n)
    r = np.fft.irfft(f * np.conj(f))[:n]
    return r / r[0] if r[0] > 0 else np.full(n, np.nan)


def _series(data, bin_s, by, time_col, select):
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    if bin_s is None:
        span = inp.sql(
            f"SELECT max(x) - min(x) AS s FROM (SELECT CAST({qi(time_col)} AS DOUBLE) x FROM _input)"
        )["s"][0] or 0.0
        bin_s = auto_bin_s(span)
    rate = arrival_rate(inp, bin_s=bin_s, by=cols, time_col=time_col)
    return cols, float(bin_s), rate


def autocorrelation(
    data: Data = None,
    *,
    bin_s: float | None = None,
    max_lag_s: float | None = None,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """Autocorrelation of the arrival-rate series per group, lags 0 .. ``max_lag_s``.

    ``bin_s`` defaults to :func:`auto_bin_s` of the overall span; ``max_lag_s`` to half the
    group's span. Returns ``by...``, ``bin_s``, ``lag``, ``lag_s``, ``acf``.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> t = np.arange(0, 4000, 1.0)
    >>> t = t[(t % 100) < 50]                          # on/off with period 100 s
    >>> a = autocorrelation(pl.DataFrame({"arrival_s": t}), bin_s=10)
    >>> round(a.filter(lag_s=100.0)["acf"][0], 2)
    0.97
    """
    import polars as pl

    cols, bin_s, rate = _series(data, bin_s, by, time_col, select)
    frames = []
    for key, sub in groups(rate, cols):
        x = sub.sort("bin_start_s")["requests"].to_numpy().astype(float)
        if x.size < 3:
            continue
        acf = _acf(x)
        nlag = x.size // 2 if max_lag_s is None else min(x.size - 1, int(max_lag_s // bin_s))
        lags = np.arange(nlag + 1)
        frames.append(pl.DataFrame({
            **{c: [v] * lags.size for c, v in key.items()},
            "bin_s": np.full(lags.size, bin_s), "lag": lags, "lag_s": lags * bin_s, "acf": acf[: lags.size],
        }))
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def spectrum(
    data: Data = None,
    *,
    bin_s: float | None = None,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """Periodogram of the arrival-rate series per group.

    Returns ``by...``, ``frequency_hz``, ``period_s``, ``power`` and ``power_share`` (share of
    the total power above frequency 0).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> t = np.arange(0, 4000, 1.0)
    >>> t = t[(t % 100) < 50]
    >>> s = spectrum(pl.DataFrame({"arrival_s": t}), bin_s=10)
    >>> round(s.sort("power", descending=True)["period_s"][0])    # 395 bins: nearest Fourier period
    101
    """
    import polars as pl

    cols, bin_s, rate = _series(data, bin_s, by, time_col, select)
    frames = []
    for key, sub in groups(rate, cols):
        x = sub.sort("bin_start_s")["requests"].to_numpy().astype(float)
        if x.size < 4:
            continue
        p = np.abs(np.fft.rfft(x - x.mean())) ** 2 / x.size
        f = np.fft.rfftfreq(x.size, d=bin_s)
        p, f = p[1:], f[1:]
        total = p.sum()
        frames.append(pl.DataFrame({
            **{c: [v] * f.size for c, v in key.items()},
            "frequency_hz": f, "period_s": 1.0 / f, "power": p,
            "power_share": p / total if total > 0 else np.full(f.size, np.nan),
        }))
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def periodicity(
    data: Data = None,
    *,
    bin_s: float | None = None,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    **select,
) -> pl.DataFrame:
    """One row per group summarizing periodic structure of the rate series.

    Columns: ``bin_s``, ``bins``, ``mean_rate_per_s``, ``peak_to_mean`` (largest bin rate /
    mean), ``p99_to_mean``, ``dominant_period_s`` (largest periodogram peak among periods
    shorter than half the span), ``dominant_power_share``, ``acf_1h``, ``acf_1d``, ``acf_1w``
    (autocorrelation at those lags; null when the series is shorter than twice the lag or the
    bin does not divide it).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> t = np.arange(0, 4000, 1.0)
    >>> t = t[(t % 100) < 50]
    >>> round(periodicity(pl.DataFrame({"arrival_s": t}), bin_s=10)["dominant_period_s"][0])
    101
    """
    import polars as pl

    cols, bin_s, rate = _series(data, bin_s, by, time_col, select)
    rows = []
    for key, sub in groups(rate, cols):
        x = sub.sort("bin_start_s")["requests"].to_numpy().astype(float)
        row = {**key, "bin_s": bin_s, "bins": int(x.size)}
        m = x.mean() if x.size else np.nan
        row["mean_rate_per_s"] = m / bin_s if x.size else None
        row["peak_to_mean"] = float(x.max() / m) if x.size and m > 0 else None
        row["p99_to_mean"] = float(np.quantile(x, 0.99) / m) if x.size and m > 0 else None
        dom, share = None, None
        if x.size >= 8:
            p = np.abs(np.fft.rfft(x - m)) ** 2
            f = np.fft.rfftfreq(x.size, d=bin_s)
            ok = (f > 0) & (1.0 / np.where(f > 0, f, 1) <= x.size * bin_s / 2)
            if ok.any() and p[1:].sum() > 0:
                i = np.argmax(np.where(ok, p, -1))
                dom, share = float(1.0 / f[i]), float(p[i] / p[1:].sum())
        row["dominant_period_s"], row["dominant_power_share"] = dom, share
        acf = _acf(x) if x.size >= 3 else np.array([])
        for name, lag_s in (("acf_1h", 3600.0), ("acf_1d", DAY_S), ("acf_1w", WEEK_S)):
            h = lag_s / bin_s
            ok = float(h).is_integer() and h > 0 and 2 * h <= x.size
            row[name] = float(acf[int(h)]) if ok else None
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def profile(
    data: Data = None,
    *,
    period_s: float = DAY_S,
    bin_s: float = 3600.0,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    clock_col: str | None = "arrival_time",
    **select,
) -> pl.DataFrame:
    """Mean arrival rate by phase of a period (hour of day, day of week, ...).

    Returns ``by...``, ``phase_s`` (start of the phase bin within the period), ``requests``,
    ``observed`` (how many times the phase bin was inside the group's time range),
    ``rate_per_s`` (requests / (observed x bin_s)), ``relative_rate`` (rate / mean rate over
    observed phases) and ``clock`` (``wall`` or ``relative``: where the phase came from).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> t = np.arange(0, 2 * 86400, 10.0)
    >>> t = t[(t % 86400) < 43200]                    # busy mornings only
    >>> p = profile(pl.DataFrame({"arrival_s": t}), bin_s=21600)
    >>> p["relative_rate"].to_list()
    [2.0, 2.0, 0.0, 0.0]
    """
    import polars as pl

    if period_s % bin_s:
        raise AnalysisError(f"bin_s ({bin_s}) must divide period_s ({period_s})")
    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    use_clock = bool(clock_col) and inp.non_null(clock_col)
    nb = int(period_s // bin_s)
    if use_clock:
        # Epoch seconds of the clock as written; minus 4 days so that phase 0 is a Monday
        # 00:00 (1970-01-01 was a Thursday). Day phases are unaffected.
        c = f"(epoch({qi(clock_col)}) - 345600)"
        sel = select_list(cols)
        counts = inp.sql(
            f"""
            SELECT {sel}CAST(floor({c} / $bin) AS BIGINT) AS b, count(*) AS n
            FROM _input WHERE {qi(clock_col)} IS NOT NULL
            GROUP BY {', '.join([qi(x) for x in cols] + ['b'])}
            """,
            {"bin": float(bin_s)},
        )
        binned = [(key, sub["b"].to_numpy(), sub["n"].to_numpy()) for key, sub in groups(counts, cols)]
    else:
        from .arrivals import _times

        inp.require(time_col, what="profile")
        tm = _times(inp, cols, time_col)
        binned = [(tm.grouping.key(i), *g.bins(bin_s)) for i, g in enumerate(tm.groups) if g.n]
    frames = []
    for key, b, n in binned:
        lo, hi = int(b.min()), int(b.max())
        phase_of = np.mod(np.arange(lo, hi + 1), nb)
        observed = np.bincount(phase_of, minlength=nb)
        req = np.bincount(np.mod(b, nb), weights=n, minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(observed > 0, req / (observed * bin_s), np.nan)
        mean = np.nanmean(rate)
        frames.append(pl.DataFrame({
            **{k: [v] * nb for k, v in key.items()},
            "phase_s": np.arange(nb) * float(bin_s), "requests": req.astype(np.int64),
            "observed": observed.astype(np.int64), "rate_per_s": rate,
            "relative_rate": rate / mean if mean > 0 else np.full(nb, np.nan),
            "clock": ["wall" if use_clock else "relative"] * nb,
        }).with_columns(pl.col("rate_per_s", "relative_rate").fill_nan(None)))
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()

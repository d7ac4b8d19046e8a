"""Distribution fits by maximum likelihood, ranked by KS statistic and AIC.

Families and their parameters (``shape``, ``scale`` columns; scipy's parametrization with
``loc`` fixed at 0):

============  ==================================  ============================
family        shape                               scale
============  ==================================  ============================
exponential   (none)                              mean (1 / rate)
gamma         k                                   theta (mean = k theta)
weibull       k                                   lambda
lognormal     sigma (of log x)                    exp(mu) (the median)
zipf          alpha (discrete power law, x>=xmin)  (none); ``xmin`` column
============  ==================================  ============================

Continuous data (``discrete=False``): zeros and negative values cannot be fitted by these
families and are dropped (``dropped`` counts them); parameters are the MLE (closed form for
exponential and lognormal, scipy's solver for gamma and Weibull); the log-likelihood is
``sum(logpdf)``; the KS statistic is against the fitted CDF, and its p-value is the textbook
one, which is optimistic because the parameters were fitted on the same data.

Discrete data (``discrete=True``, e.g. token counts): values < 1 are dropped; each continuous
family is used as the discretized law ``P(k) = (F(k+1/2) - F(k-1/2)) / (1 - F(1/2))`` with its
continuous MLE parameters, so that its likelihood, AIC and KS are comparable with Zipf's (a
true pmf ``k^-alpha / zeta(alpha, xmin)``, alpha by numerical MLE). KS is the largest CDF
difference over the integers; no p-value is given (it does not apply to discrete laws).

AIC = 2 k - 2 log L, BIC = k ln n - 2 log L with k the number of fitted parameters.
Large inputs are fitted on a seeded random subsample of ``max_samples`` values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AnalysisError
from ._data import Data, as_input

if TYPE_CHECKING:
    import polars as pl

CONTINUOUS = ("exponential", "gamma", "weibull", "lognormal")
FAMILIES = (*CONTINUOUS, "zipf")
_NPARAMS = {"exponential": 1, "gamma": 2, "weibull": 2, "lognormal": 2, "zipf": 1}

__all__ = ["CONTINUOUS", "FAMILIES", "cdf", "fit_column", "fit_distributions", "fit_interarrivals"]


def _scipy_dist(family: str, shape: float | None, scale: float | None):
    from scipy import stats

    if family == "exponential":
        return stats.expon(scale=scale)
    if family == "gamma":
        return stats.gamma(shape, scale=scale)
    if family == "weibull":
        return stats.weibull_min(shape, scale=scale)
    if family == "lognormal":
        return stats.lognorm(shape, scale=scale)
    raise AnalysisError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def _mle(family: str, x: np.ndarray) -> tuple[float | None, float]:
    from scipy import stats

    if family == "exponential":
        return None, float(x.mean())
    if family == "lognormal":
        lx = np.log(x)
        return float(lx.std()), float(math.exp(lx.mean()))
    if family == "gamma":
        a, _, scale = stats.gamma.fit(x, floc=0)
        return float(a), float(scale)
    if family == "weibull":
        return _weibull_mle(x)
    raise AnalysisError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def _weibull_mle(x: np.ndarray) -> tuple[float, float]:
    """Weibull MLE with location 0: the shape solves the profile-likelihood equation
    ``sum(x^k ln x) / sum(x^k) - 1/k - mean(ln x) = 0`` (monotone in k), then
    ``scale = mean(x^k)^(1/k)``. Values are divided by their median first for range safety."""
    from scipy import optimize

    m = float(np.median(x))
    ly = np.log(x / m)
    mean_ly = float(ly.mean())

    def g(k: float) -> float:
        a = k * ly
        w = np.exp(a - a.max())
        return float((w * ly).sum() / w.sum() - 1.0 / k - mean_ly)

    lo, hi = 1e-3, 1.0
    while g(hi) < 0 and hi < 1e4:
        hi *= 2
    k = optimize.brentq(g, lo, hi, xtol=1e-12, rtol=1e-10)
    a = k * ly
    amax = a.max()
    scale = m * math.exp((amax + math.log(np.exp(a - amax).mean())) / k)
    return float(k), float(scale)


def _zipf_fit(x: np.ndarray, xmin: int) -> float:
    from scipy import optimize, special

    n = x.size
    slog = float(np.log(x).sum())

    def nll(alpha: float) -> float:
        return n * math.log(special.zeta(alpha, xmin)) + alpha * slog

    res = optimize.minimize_scalar(nll, bounds=(1.0 + 1e-6, 20.0), method="bounded",
                                   options={"xatol": 1e-8})
    return float(res.x)


def cdf(family: str, x: Any, shape: float | None, scale: float | None, *,
        discrete: bool = False, xmin: float | None = None) -> np.ndarray:
    """The fitted CDF at ``x`` (for overlays): a row of :func:`fit_distributions` plugs in.

    Examples
    --------
    >>> round(float(cdf("exponential", 1.0, None, 1.0)), 4)
    0.6321
    """
    from scipy import special

    x = np.asarray(x, dtype=float)
    if family == "zipf":
        xmin = 1 if xmin is None else int(xmin)
        k = np.floor(x)
        out = np.where(k < xmin, 0.0, 1.0 - special.zeta(shape, np.maximum(k + 1, xmin)) / special.zeta(shape, xmin))
        return out
    dist = _scipy_dist(family, shape, scale)
    if not discrete:
        return dist.cdf(x)
    lo = dist.cdf(0.5)
    return np.clip((dist.cdf(np.floor(x) + 0.5) - lo) / (1.0 - lo), 0.0, 1.0)


def _discrete_loglik(family: str, shape, scale, values: np.ndarray, counts: np.ndarray, xmin: int) -> float:
    from scipy import special

    if family == "zipf":
        return float(-(counts * shape * np.log(values)).sum() - counts.sum() * math.log(special.zeta(shape, xmin)))
    dist = _scipy_dist(family, shape, scale)
    lo = dist.sf(0.5)
    # sf differences keep precision in the far tail where cdf rounds to 1.
    p = (dist.sf(values - 0.5) - dist.sf(values + 0.5)) / lo
    p = np.maximum(p, 1e-300)
    return float((counts * np.log(p)).sum())


def _discrete_ks(family, shape, scale, values: np.ndarray, counts: np.ndarray, xmin: int) -> float:
    n = counts.sum()
    f_emp = np.cumsum(counts) / n
    f_prev = f_emp - counts / n
    f_mod = cdf(family, values, shape, scale, discrete=True, xmin=xmin)
    f_mod_prev = cdf(family, values - 1, shape, scale, discrete=True, xmin=xmin)
    return float(max(np.abs(f_emp - f_mod).max(), np.abs(f_prev - f_mod_prev).max()))


def fit_distributions(
    values: Any,
    *,
    families: Sequence[str] | None = None,
    discrete: bool = False,
    xmin: int | None = None,
    max_samples: int | None = 200_000,
    seed: int = 0,
) -> pl.DataFrame:
    """Fit each family to ``values`` by maximum likelihood; one row per family, best AIC first.

    Parameters
    ----------
    values
        A numpy array, polars Series or sequence of numbers.
    families
        Default: the four continuous families, plus ``zipf`` when ``discrete``.
    discrete
        Treat values as counts (tokens): see the module docstring.
    xmin
        Zipf's lower bound (default: the smallest value >= 1).
    max_samples
        Fit on a seeded random subsample this large (``None``: all values).

    Returns
    -------
    polars.DataFrame
        ``family``, ``n`` (values fitted), ``dropped``, ``shape``, ``scale``, ``xmin``,
        ``mean`` (of the fitted law; null where infinite), ``log_likelihood``, ``aic``,
        ``bic``, ``ks_statistic``, ``ks_pvalue``, ``rank_aic``, ``rank_ks`` (1 = best),
        ``params`` (readable).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(1).gamma(0.5, 2.0, 20_000)
    >>> f = fit_distributions(x)
    >>> f["family"][0], round(f.filter(family="gamma")["shape"][0], 1)
    ('gamma', 0.5)
    """
    import polars as pl

    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values, dtype=float)
    arr = arr[np.isfinite(arr)]
    fams = list(families) if families else (list(FAMILIES) if discrete else list(CONTINUOUS))
    for f in fams:
        if f not in FAMILIES:
            raise AnalysisError(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")
    if "zipf" in fams and not discrete:
        raise AnalysisError("zipf is a discrete law: pass discrete=True (token counts)")
    keep = arr >= 1 if discrete else arr > 0
    dropped = int((~keep).sum())
    x = arr[keep]
    if discrete:
        x = np.round(x)
    if max_samples is not None and x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, size=max_samples, replace=False)
    if x.size < 10:
        raise AnalysisError(f"need at least 10 positive values to fit distributions, got {x.size}")
    if np.all(x == x[0]):
        raise AnalysisError(f"all {x.size} values equal {x[0]}: nothing to fit")
    n = x.size
    rows = []
    if discrete:
        values_u, counts = np.unique(x, return_counts=True)
        zmin = int(values_u[0]) if xmin is None else int(xmin)
    for fam in fams:
        try:
            if fam == "zipf":
                xz = values_u >= zmin
                shape, scale = _zipf_fit(np.repeat(values_u[xz], counts[xz]), zmin), None
            else:
                shape, scale = _mle(fam, x)
        except (ValueError, FloatingPointError, RuntimeError) as e:  # solver failure: say so
            rows.append({"family": fam, "n": n, "dropped": dropped, "error": str(e)})
            continue
        if discrete:
            ll = _discrete_loglik(fam, shape, scale, values_u, counts, zmin)
            ks, p = _discrete_ks(fam, shape, scale, values_u, counts, zmin), None
        else:
            from scipy import stats

            dist = _scipy_dist(fam, shape, scale)
            ll = float(dist.logpdf(x).sum())
            ks_res = stats.kstest(x, dist.cdf)
            ks, p = float(ks_res.statistic), float(ks_res.pvalue)
        k = _NPARAMS[fam]
        rows.append({
            "family": fam, "n": n, "dropped": dropped, "shape": shape, "scale": scale,
            "xmin": float(zmin) if fam == "zipf" else None,
            "mean": _mean(fam, shape, scale, zmin if discrete else None),
            "log_likelihood": ll, "aic": 2 * k - 2 * ll, "bic": k * math.log(n) - 2 * ll,
            "ks_statistic": ks, "ks_pvalue": p, "params": _describe(fam, shape, scale, zmin if discrete else None),
            "error": None,
        })
    schema = {
        "family": pl.String, "n": pl.Int64, "dropped": pl.Int64, "shape": pl.Float64, "scale": pl.Float64,
        "xmin": pl.Float64, "mean": pl.Float64, "log_likelihood": pl.Float64, "aic": pl.Float64,
        "bic": pl.Float64, "ks_statistic": pl.Float64, "ks_pvalue": pl.Float64, "params": pl.String,
        "error": pl.String,
    }
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)
    df = df.with_columns(
        rank_aic=pl.col("aic").rank("min").cast(pl.Int32),
        rank_ks=pl.col("ks_statistic").rank("min").cast(pl.Int32),
    ).sort("rank_aic", nulls_last=True)
    cols = [c for c in df.columns if c not in ("params", "error")] + ["params", "error"]
    return df.select(cols)


def _mean(fam: str, shape, scale, zmin) -> float | None:
    from scipy import special

    if fam == "zipf":
        return float(special.zeta(shape - 1, zmin) / special.zeta(shape, zmin)) if shape > 2 else None
    return float(_scipy_dist(fam, shape, scale).mean())


def _describe(fam: str, shape, scale, zmin) -> str:
    if fam == "exponential":
        return f"mean={scale:.4g}"
    if fam == "gamma":
        return f"k={shape:.4g}, theta={scale:.4g}"
    if fam == "weibull":
        return f"k={shape:.4g}, lambda={scale:.4g}"
    if fam == "lognormal":
        return f"mu={math.log(scale):.4g}, sigma={shape:.4g}"
    return f"alpha={shape:.4g}, xmin={zmin}"


def fit_column(
    data: Data = None,
    *,
    column: str,
    by: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    discrete: bool = False,
    max_samples: int = 200_000,
    seed: int = 0,
    default_by: Sequence[str] = ("source", "trace"),
    **select,
) -> pl.DataFrame:
    """:func:`fit_distributions` of a column of the input, per group.

    Each group is fitted on a seeded random sample (without replacement) of at most
    ``max_samples`` of its non-null values. Returns the group columns followed by the fit
    columns.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> df = pl.DataFrame({"duration_s": np.random.default_rng(0).lognormal(0, 1, 5000)})
    >>> fit_column(df, column="duration_s")["family"][0]
    'lognormal'
    """

    from .requests import _tallies

    inp = as_input(data, **select)
    cols = tuple(inp.group_by(by, default_by))
    inp.require(column, what="fit_column")
    tl = _tallies(inp, cols, [column])
    values = tl.samples(column, max_samples, seed)
    samples = ((tl.grouping.key(g), v) for g, v in enumerate(values))
    return _fit_groups(samples, families, discrete, max_samples, seed)


def fit_interarrivals(
    data: Data = None,
    *,
    by: Sequence[str] | None = None,
    time_col: str = "arrival_s",
    families: Sequence[str] | None = None,
    max_samples: int = 200_000,
    seed: int = 0,
    **select,
) -> pl.DataFrame:
    """Fit the continuous families to the inter-arrival gaps of each group (zero gaps dropped).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> t = np.cumsum(np.random.default_rng(0).exponential(2.0, 5000))
    >>> f = fit_interarrivals(pl.DataFrame({"arrival_s": t}), families=["exponential"])
    >>> round(f["scale"][0], 1)
    2.0
    """
    from .arrivals import DEFAULT_BY, _times

    inp = as_input(data, **select)
    cols = inp.group_by(by, DEFAULT_BY)
    tm = _times(inp, cols, time_col)
    # The same draw as choice(gaps, ...) (which picks indices, then takes them), without
    # making every gap: only the sampled ones.
    samples = ((tm.grouping.key(g), gt.sample_gaps(max_samples, seed)) for g, gt in enumerate(tm.groups)
               if gt.n >= 2)
    return _fit_groups(samples, families, False, max_samples, seed)


def _fit_groups(samples, families, discrete, max_samples, seed) -> pl.DataFrame:
    import polars as pl

    frames = []
    for key, vals in samples:
        if max_samples is not None and vals.size > max_samples:
            # A fresh generator per group: a group's sample does not depend on the others.
            vals = np.random.default_rng(seed).choice(vals, size=int(max_samples), replace=False)
        try:
            fit = fit_distributions(vals, families=families, discrete=discrete, max_samples=None)
        except AnalysisError:
            continue  # too few values in this group to fit
        frames.append(fit.select([pl.lit(v).alias(c) for c, v in key.items()] + fit.columns))
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()

"""Time and power of a GPU workload under a power cap: a curve fitted to the Zeus traces (ESTIMATE).

A cap above what a workload draws changes nothing; a cap below it makes the GPU lower its clock,
so the work takes longer and the board draws about the cap. With ``x = cap / uncapped draw``
(the workload's average power when run at the GPU's highest limit, its TDP), the curve gives
relative time and relative average power against that uncapped run:

- time: the clock ``f`` falls until ``P_static + P_dyn (f / f0) ** gamma`` meets the cap, and
  time goes as ``1 / f``. With ``s`` the static share of the draw and ``u = min(x / k_time, 1)``:
  ``rel_time(x) = ((1 - s) / (u - s)) ** (1 / gamma)``;
- power: ``rel_power(x) = min(x / k_power, 1)``: the average under a cap tracks the cap.
  ``k_power > 1`` because a cap just above the average already clips the peaks (it lowers power
  before it costs time, Zeus's own finding); ``k_time < 1``: the time cost starts below the draw;
- both are divided by their value at the reference limit (the TDP), so a run at the TDP is
  unchanged by construction.

:data:`CURVE` holds the parameters :func:`fit_curve` finds on the 1,391 capped runs of
``zeus-nsdi23`` (6 workloads on A40, V100, P100 and RTX 6000); ``tests/test_estimate_powercap.py``
refits them from the raw CSVs. Held out one workload at a time, relative time is within 6.4%
MAPE (keeping time fixed, what `estimate` did before: 11.2%). The curve was measured on DNN
training, on GPUs up to 300 W; applying it to LLM serving on other GPUs is an assumption, stated
with every estimate. Below the lowest measured ``x`` (:data:`CURVE` ``x_min``) it is extrapolation,
and the rows are flagged out of domain.

Examples
--------
>>> round(float(rel_time(0.5)), 2), round(float(rel_power(0.5)), 2)
(1.79, 0.46)
>>> float(rel_time(1.5)), float(rel_power(1.5))
(1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import WattlasError

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class CapCurve:
    """Parameters of the cap curve (see the module docstring) and the range it was fitted on."""

    k_time: float
    static_share: float
    gamma: float
    k_power: float
    x_min: float
    x_max: float
    rows: int
    source: str


#: Fitted by :func:`fit_curve` on every capped run of zeus-nsdi23 (regenerate with
#: ``python -m wattlas.predictors.powercap DIR`` on the four summary_power_*.csv files).
CURVE = CapCurve(k_time=0.9383, static_share=0.3687, gamma=2.322, k_power=1.0878, x_min=0.3612, x_max=6.726,
                 rows=1391, source="zeus-nsdi23 summary_power_{a40,v100,p100,rtx6000}.csv (You et al., NSDI 2023)")


def _raw_time(x, c: CapCurve) -> np.ndarray:
    u = np.minimum(np.asarray(x, dtype=np.float64) / c.k_time, 1.0)
    # Below the static share the cap cannot be met at any clock; x is clamped to x_min before this.
    return ((1.0 - c.static_share) / np.maximum(u - c.static_share, 1e-6)) ** (1.0 / c.gamma)


def _raw_power(x, c: CapCurve) -> np.ndarray:
    return np.minimum(np.asarray(x, dtype=np.float64) / c.k_power, 1.0)


def rel_time(x, x_ref=np.inf, curve: CapCurve = CURVE) -> np.ndarray:
    """Time under a cap over time at the reference limit, ``x = cap / uncapped draw``."""
    return _raw_time(x, curve) / _raw_time(x_ref, curve)


def rel_power(x, x_ref=np.inf, curve: CapCurve = CURVE) -> np.ndarray:
    """Average power under a cap over average power at the reference limit."""
    return _raw_power(x, curve) / _raw_power(x_ref, curve)


@dataclass(frozen=True)
class CapResult:
    """Per row: time and power factors, whether the cap lies below the measured range."""

    time_factor: np.ndarray
    power_factor: np.ndarray
    x: np.ndarray
    below_domain: np.ndarray

    @property
    def energy_factor(self) -> np.ndarray:
        return self.time_factor * self.power_factor


def cap_factors(cap_w: float, ref_limit_w: float, uncapped_w: np.ndarray, curve: CapCurve = CURVE) -> CapResult:
    """Factors on time and power of rows drawing ``uncapped_w`` at ``ref_limit_w`` when capped at ``cap_w``."""
    draw = np.asarray(uncapped_w, dtype=np.float64)
    if (~np.isfinite(draw) | (draw <= 0)).any():
        raise WattlasError("power cap: every estimate needs a positive uncapped power (energy / GPU time)")
    x = cap_w / draw
    below = x < curve.x_min - 1e-9
    # Clamped: below the measured range the formula runs towards the static power, where it diverges.
    xc = np.maximum(x, curve.x_min)
    x_ref = np.maximum(ref_limit_w / draw, curve.x_min)
    return CapResult(rel_time(xc, x_ref, curve), rel_power(xc, x_ref, curve), x, below)


#: Column suffixes of per-request estimates and what a cap does to them.
_TIME, _ENERGY, _POWER = "_s_est", "_j_est", "_w_est"

#: Name of the out-of-domain "feature" a cap below the curve's range adds.
DOMAIN_FEATURE = "cap_over_uncapped_draw"


def uncapped_power_w(frame) -> np.ndarray:
    """Per-GPU average draw of each estimated request: its ``power_w_est`` column, else energy / GPU time."""
    if "power_w_est" in frame.columns:
        return frame["power_w_est"].to_numpy().astype(np.float64)
    if not {"energy_j_est", "gpu_s_est"} <= set(frame.columns):
        raise WattlasError("power cap: the estimate has neither power_w_est nor energy_j_est and gpu_s_est")
    e = frame["energy_j_est"].to_numpy().astype(np.float64)
    t = frame["gpu_s_est"].to_numpy().astype(np.float64)
    return np.divide(e, t, out=np.full(e.shape, np.nan), where=t > 0)


def apply_to_estimates(frame, cap_w: float, ref_limit_w: float, curve: CapCurve = CURVE):
    """``frame`` (per-request estimates made at ``ref_limit_w``) under a cap of ``cap_w``, and the factors.

    Method-independent: every ``*_s_est`` column is multiplied by the time factor, every
    ``*_j_est`` by time x power, every ``*_w_est`` by the power factor. Rows with no GPU time
    (nothing to cap) keep their values.
    """
    import polars as pl

    draw = uncapped_power_w(frame)
    busy = np.isfinite(draw) & (draw > 0)
    res = cap_factors(cap_w, ref_limit_w, np.where(busy, draw, ref_limit_w), curve)
    ft = np.where(busy, res.time_factor, 1.0)
    fp = np.where(busy, res.power_factor, 1.0)
    scale = {_TIME: ft, _ENERGY: ft * fp, _POWER: fp}
    cols = [pl.col(c) * pl.Series(scale[suf]) for c in frame.columns
            for suf in scale if c.endswith(suf) and frame[c].dtype.is_numeric()]
    res = CapResult(ft, fp, res.x, res.below_domain & busy)
    return (frame.with_columns(cols) if cols else frame), res


def summary(cap_w: float, ref_limit_w: float, res: CapResult, curve: CapCurve = CURVE) -> dict:
    """What the cap did, for an estimate's summary (JSON-friendly)."""
    def q(v: np.ndarray) -> list[float] | None:
        return [float(np.quantile(v, p)) for p in (0.0, 0.5, 1.0)] if v.size else None

    return {
        "power_limit_w": cap_w, "reference_limit_w": ref_limit_w, "binding": bool((res.time_factor > 1.0).any()),
        "time_factor_min_median_max": q(res.time_factor), "power_factor_min_median_max": q(res.power_factor),
        "energy_factor_min_median_max": q(res.energy_factor),
        "below_measured_range_share": float(res.below_domain.mean()) if res.x.size else 0.0,
        "curve": asdict(curve),
    }


def describe(cap_w: float, ref_limit_w: float, res: CapResult, curve: CapCurve = CURVE) -> list[str]:
    """Assumption lines for the cap, printed with every estimate."""
    if cap_w >= ref_limit_w:
        return [f"power limit {cap_w:.0f} W = the reference limit (TDP): no cap applied"]
    med = float(np.median(res.time_factor)) if res.x.size else 1.0
    med_e = float(np.median(res.energy_factor)) if res.x.size else 1.0
    return [
        f"power cap {cap_w:.0f} W (estimates made at {ref_limit_w:.0f} W, then capped): time x rel_time(cap / draw), "
        f"energy x rel_time x rel_power, from a curve fitted to Zeus DNN-training traces on A40/V100/P100/RTX 6000 "
        f"(held-out-workload MAPE 6.4% on time; an assumption for LLM serving); median factors: time {med:.3f}, "
        f"energy {med_e:.3f}",
    ]


def zeus_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Capped Zeus rows with ``x``, ``x_ref``, relative time and power against each workload's run at
    the GPU's highest limit. ``frame``: gpu, dataset, network, batch_size, optimizer, power_limit_w,
    time_per_epoch_s, avg_power_w (the ``training_power`` table's columns)."""
    import polars as pl

    from .definitions import zeus_reference_runs

    ref = zeus_reference_runs(frame)
    top = frame.group_by("gpu").agg(pl.col("power_limit_w").max().alias("max_limit_w"))
    return ref.join(top, on="gpu").filter(pl.col("evaluate")).with_columns(
        x=pl.col("power_limit_w") / pl.col("ref_power_w"), x_ref=pl.col("max_limit_w") / pl.col("ref_power_w"),
        rel_time=pl.col("time_per_epoch_s") / pl.col("ref_time_s"),
        rel_power=pl.col("avg_power_w") / pl.col("ref_power_w"),
        workload=pl.col("dataset") + "/" + pl.col("network"),
    )


def fit_curve(rows: pl.DataFrame, source: str = "") -> CapCurve:
    """Least squares on log relative time and log relative power of :func:`zeus_rows` output."""
    from scipy.optimize import least_squares

    x, xr = rows["x"].to_numpy(), rows["x_ref"].to_numpy()
    lt, lp = np.log(rows["rel_time"].to_numpy()), np.log(rows["rel_power"].to_numpy())

    def curve(p_t, k_p: float = 1.0) -> CapCurve:
        return CapCurve(p_t[0], p_t[1], p_t[2], k_p, 0.0, 0.0, 0, "")

    t = least_squares(lambda p: np.log(rel_time(x, xr, curve(p))) - lt, [1.0, 0.3, 2.0],
                      bounds=([0.8, 0.0, 0.5], [2.0, 0.6, 6.0])).x
    k_p = least_squares(lambda p: np.log(rel_power(x, xr, curve(t, p[0]))) - lp, [1.1], bounds=([0.5], [2.0])).x[0]
    return CapCurve(float(t[0]), float(t[1]), float(t[2]), float(k_p), float(x.min()), float(x.max()),
                    int(rows.height), source)


def read_zeus_csvs(directory) -> pl.DataFrame:
    """The four ``summary_power_<gpu>.csv`` files of the Zeus NSDI'23 trace as ``training_power`` columns."""
    from pathlib import Path

    import polars as pl

    files = sorted(Path(directory).glob("summary_power_*.csv"))
    if not files:
        raise WattlasError(f"no summary_power_*.csv files in {directory}")
    return pl.concat([pl.read_csv(f).select(
        pl.lit(f.stem.removeprefix("summary_power_")).alias("gpu"), "dataset", "network", "batch_size", "optimizer",
        pl.col("power_limit").cast(pl.Float64).alias("power_limit_w"),
        pl.col("time_per_epoch").alias("time_per_epoch_s"), pl.col("average_power").alias("avg_power_w"),
    ) for f in files])


if __name__ == "__main__":  # refit CURVE: python -m wattlas.predictors.powercap DIR
    import sys

    print(fit_curve(zeus_rows(read_zeus_csvs(sys.argv[1])), CURVE.source))

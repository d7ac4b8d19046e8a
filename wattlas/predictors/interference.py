"""Co-location interference: pairs from ``bench_results`` joined with both members' solo profiles.

A pair row (``colocation_mode`` streams or processes) of member A with partner B becomes one
training row: A's and B's solo time per iteration, solo average power and achieved TFLOP/s (from
their ``solo`` rows), the mode and the device type; the target is A's measured ``slowdown``.
The physics base is "no interference" (slowdown 1): the trees learn log(slowdown).
"""

from __future__ import annotations

import numpy as np
import polars as pl

_PROFILE = ("time_s", "power_w", "tflops")


def from_bench(bench: pl.DataFrame) -> pl.DataFrame:
    """Training rows (see the module docstring) from ``bench_results``-shaped rows.

    Solo profiles come from the same run when the rows carry ``run_id`` (``bench colocate``
    measures its solo baselines in the run): a workload's solo time is the median of its
    ``solo_time_per_iter_s``; its solo power and TFLOP/s come from its ``solo`` rows (null where
    none were measured).
    """
    if bench.height == 0 or "colocation_mode" not in bench.columns:
        return pl.DataFrame()
    rows = bench.filter(pl.col("kind") == "colocation")
    if rows.height == 0:
        return pl.DataFrame()
    if "run_id" not in rows.columns:
        rows = rows.with_columns(run_id=pl.lit("run"))
    power = pl.col("avg_power_w") if "avg_power_w" in rows.columns else pl.lit(None, pl.Float64)
    tflops = pl.col("tflops") if "tflops" in rows.columns else pl.lit(None, pl.Float64)
    solo_t = pl.coalesce(pl.col("solo_time_per_iter_s").cast(pl.Float64),
                         pl.when(pl.col("colocation_mode") == "solo").then(pl.col("time_per_iter_s_median")))
    rows = rows.with_columns(
        gpu=pl.coalesce(pl.col("gpu_name").cast(pl.String), pl.col("device_type").cast(pl.String)),
        _power=pl.when(pl.col("colocation_mode") == "solo").then(power.cast(pl.Float64)),
        _tflops=pl.when(pl.col("colocation_mode") == "solo").then(tflops.cast(pl.Float64)),
        _solo_t=solo_t,
    )
    keys = ["run_id", "device_type", "gpu", "workload"]
    solo = rows.group_by(keys).agg(time_s=pl.col("_solo_t").median(), power_w=pl.col("_power").median(),
                                   tflops=pl.col("_tflops").median())
    pairs = rows.filter(pl.col("colocation_mode").is_in(["streams", "processes"])
                        & pl.col("partner_workload").is_not_null() & (pl.col("slowdown") > 0))
    a = solo.rename({c: f"a_{c}" for c in _PROFILE})
    b = solo.rename({c: f"b_{c}" for c in _PROFILE} | {"workload": "partner_workload"})
    out = (pairs.select("run_id", "device_type", "gpu", "workload", "partner_workload", "colocation_mode",
                        "slowdown")
           .join(a, on=keys, how="inner")
           .join(b, on=["run_id", "device_type", "gpu", "partner_workload"], how="inner")
           .filter(pl.col("a_time_s").is_not_null() & pl.col("b_time_s").is_not_null()))
    return out.with_columns(y=pl.col("slowdown"), evaluate=pl.lit(True))


def _inputs_from_training(frame: pl.DataFrame) -> pl.DataFrame:
    """Accept both training rows (a_*/b_*) and predictor inputs (workload_*/partner_*)."""
    if "a_time_s" in frame.columns:
        return frame
    return frame.select(
        a_time_s="workload_solo_time_s", b_time_s="partner_solo_time_s", a_power_w="workload_solo_power_w",
        b_power_w="partner_solo_power_w", a_tflops="workload_tflops", b_tflops="partner_tflops",
        colocation_mode="colocation_mode", device_type="device_type",
    )


def _num(frame: pl.DataFrame, col: str) -> np.ndarray:
    return frame[col].cast(pl.Float64).fill_null(np.nan).to_numpy()


def features(frame: pl.DataFrame) -> pl.DataFrame:
    f = _inputs_from_training(frame)
    ta, tb = _num(f, "a_time_s"), _num(f, "b_time_s")
    mode = f["colocation_mode"].to_numpy()
    return pl.DataFrame({
        "log_a_time": np.log(ta), "log_b_time": np.log(tb), "log_time_ratio": np.log(tb / ta),
        "a_power_w": _num(f, "a_power_w"), "b_power_w": _num(f, "b_power_w"),
        "a_tflops": _num(f, "a_tflops"), "b_tflops": _num(f, "b_tflops"),
        "mode_streams": (mode == "streams").astype(float), "mode_processes": (mode == "processes").astype(float),
        "is_cuda": (f["device_type"].to_numpy() == "cuda").astype(float),
        "slowdown_phys": np.ones(f.height),
    })


def raw_features(frame: pl.DataFrame) -> pl.DataFrame:
    f = _inputs_from_training(frame)
    out = features(f).drop("log_a_time", "log_b_time", "log_time_ratio", "slowdown_phys")
    # HGB handles NaN, linear regression does not: unmeasured power/TFLOP/s become 0 for the baselines.
    return out.with_columns(a_time_s=_num(f, "a_time_s"), b_time_s=_num(f, "b_time_s")).fill_nan(0.0)

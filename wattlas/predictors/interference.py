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
    """Training rows (see the module docstring) from ``bench_results``-shaped rows."""
    if bench.height == 0 or "colocation_mode" not in bench.columns:
        return pl.DataFrame()
    rows = bench.filter(pl.col("kind") == "colocation")
    power = pl.col("avg_power_w") if "avg_power_w" in rows.columns else pl.lit(None, pl.Float64)
    tflops = pl.col("tflops") if "tflops" in rows.columns else pl.lit(None, pl.Float64)
    rows = rows.with_columns(
        gpu=pl.coalesce(pl.col("gpu_name").cast(pl.String), pl.col("device_type").cast(pl.String)),
        _power=power.cast(pl.Float64), _tflops=tflops.cast(pl.Float64),
    )
    keys = ["device_type", "gpu", "workload"]
    solo = (rows.filter(pl.col("colocation_mode") == "solo")
            .group_by(keys).agg(time_s=pl.col("time_per_iter_s_median").median(),
                                power_w=pl.col("_power").median(), tflops=pl.col("_tflops").median()))
    pairs = rows.filter(pl.col("colocation_mode").is_in(["streams", "processes"])
                        & pl.col("partner_workload").is_not_null() & (pl.col("slowdown") > 0))
    a = solo.rename({c: f"a_{c}" for c in _PROFILE})
    b = solo.rename({c: f"b_{c}" for c in _PROFILE} | {"workload": "partner_workload"})
    out = (pairs.select("device_type", "gpu", "workload", "partner_workload", "colocation_mode", "slowdown")
           .join(a, on=keys, how="inner")
           .join(b, on=["device_type", "gpu", "partner_workload"], how="inner"))
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

"""Prediction speed of the shipped runtime model (gemm-runtime), batch and single point.

Batch: one polars DataFrame of random GEMM shapes (log-uniform M, N, K in 1..16384; H100, A100,
A40; bf16/fp16) through ``load("gemm-runtime").predict`` end to end (spec lookup, roofline
features, input validation, trees). Compared in the same run with the obvious alternatives:
the pure roofline formula in numpy (no model: the speed ceiling of any feature-based model)
and calling the single-point API once per row. Single-point latency is the median and p90 of
``predict`` on one-row frames.

Prints one JSON object as its last line.

    python benchmarks/predict.py [--rows 1000000] [--repeat 3] [--models DIR]

``--models DIR`` times a model trained into DIR (`wattlas predictors train gemm-runtime -o DIR`)
instead of the shipped one: run both in one session to compare settings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import numpy as np
import polars as pl


def shapes(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dims = np.exp(rng.uniform(0, np.log(16384), (3, n))).astype(np.int64) + 1
    return pl.DataFrame({
        "gpu": rng.choice(["H100", "A100", "A40"], n), "m": dims[0], "n": dims[1], "k": dims[2],
        "dtype": rng.choice(["bf16", "fp16"], n),
    })


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--single", type=int, default=300, help="single-point calls to time")
    ap.add_argument("--models", default=None, help="directory of the model files (default: the shipped ones)")
    args = ap.parse_args()

    load_start = os.getloadavg()[0]  # the machine may be shared: say how busy it was

    from wattlas.predictors import load
    from wattlas.predictors.features import gemm_work, gpu_columns

    t0 = time.perf_counter()
    model = load("gemm-runtime", args.models)
    load_s = time.perf_counter() - t0
    frame = shapes(args.rows)

    pred = model.predict(frame)  # warm-up, and a sanity check below
    assert pred.shape == (args.rows,) and np.all(pred > 0)
    batch_s = best_of(lambda: model.predict(frame), args.repeat)
    features_s = best_of(lambda: model.features(frame), args.repeat)

    def roofline() -> np.ndarray:
        spec = gpu_columns(frame["gpu"], frame["dtype"])
        w = gemm_work(frame["m"].to_numpy(), frame["n"].to_numpy(), frame["k"].to_numpy(), spec["dtype_bytes"])
        return np.maximum(w["flops"] / (spec["peak_tflops"] * 1e12), w["bytes"] / (spec["mem_bw_gbs"] * 1e9))

    roofline_s = best_of(roofline, args.repeat)

    singles = [frame.slice(i, 1) for i in range(args.single)]
    model.predict(singles[0])
    lat = []
    for one in singles:
        t = time.perf_counter()
        model.predict(one)
        lat.append(time.perf_counter() - t)
    loop_rows_per_s = len(lat) / sum(lat)
    lat_ms = sorted(x * 1e3 for x in lat)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "benchmark": "predict",
        "model": "gemm-runtime",
        "models_dir": args.models or "shipped",
        "rows": args.rows,
        "predictions_per_s": round(args.rows / batch_s),
        "batch_s": round(batch_s, 4),
        "feature_rows_per_s": round(args.rows / features_s),
        "roofline_only_rows_per_s": round(args.rows / roofline_s),
        "model_vs_roofline_time_ratio": round(batch_s / roofline_s, 2),
        "single_point_latency_ms_median": round(statistics.median(lat_ms), 3),
        "single_point_latency_ms_p90": round(lat_ms[int(0.9 * len(lat_ms))], 3),
        "loop_of_single_points_rows_per_s": round(loop_rows_per_s),
        "batch_vs_single_point_loop_speedup": round(args.rows / batch_s / loop_rows_per_s, 1),
        "load_s": round(load_s, 3),
        "trees": int(model.estimator.n_iter_),
        "cpu_count": os.cpu_count(),
        "loadavg_1m_start": round(load_start, 2),
        "peak_rss_mb": round(rss_mb, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

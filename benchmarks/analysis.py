"""Benchmark: the full LLM-trace report on a 10M-row ``llm_requests`` vs the same statistics in pandas.

Generates a BurstGPT-shaped synthetic table (two traces, two models, two log types, failures,
a daily cycle, gamma inter-arrivals, lognormal tokens) into a fresh store, then in two
separate child processes (so each peak RSS is its own):

- ``wattlas``: ``build_report("llm_requests", ...)`` -- every statistic, fit and figure of the
  report, and the HTML file;
- ``pandas``: the same statistics computed the obvious way with pandas/numpy from the same
  Parquet files, reading the columns it uses (gaps, CV, quantiles, the 132-point gap CDF the
  report draws, rate series with empty bins at the same bin sizes, dispersion indices, bursts,
  token means, quantiles, maxima, totals and histograms, joint histogram, Pearson and Spearman
  correlation, per-model breakdown, failure rates, ACF, hour-of-day profile, and the same
  distribution fits on same-size samples) -- no HTML, no figures.

Both children import their libraries before starting the clock (pandas, scipy.stats; duckdb,
polars, pyarrow, plotly, scipy.stats), so neither time includes import time.

Prints progress to stderr and, as its last line, one JSON object: ``rows``, ``wattlas_s``,
``pandas_s``, ``ratio`` (= pandas_s / wattlas_s), ``peak_rss_mib`` (the wattlas report process),
``pandas_peak_rss_mib``, ``cpus``, and the store's Parquet against DuckDB's writer on the same
rows: ``parquet_bytes``, ``duckdb_parquet_bytes``, ``size_ratio``, ``query_s``, ``query_ratio``
(see ``_parquet_compare.py``). Targets: ratio >= 3, peak_rss_mib <= 2048, wattlas_s < 60.

Usage: ``python benchmarks/analysis.py [--rows N] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DAYS = 30
FIT_SAMPLES = 50_000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(store_dir: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` requests in 1M-row parts (bounded memory)."""
    import pyarrow as pa

    from wattlas.store import Store

    rng = np.random.default_rng(seed)
    store = Store(store_dir)
    traces = {"conv": 0.6, "api": 0.4}
    chunk = 1_000_000
    with store.transaction("bench-synthetic") as tx:
        for trace, share in traces.items():
            n_total = int(rows * share) if trace == "conv" else rows - int(rows * traces["conv"])
            mean_gap = DAYS * 86400 / n_total
            t_last, rid = 0.0, 0
            k = 1 / 1.8**2                                  # inter-arrival CV 1.8
            while rid < n_total:
                n = min(chunk, n_total - rid)
                u = t_last + np.cumsum(rng.gamma(k, mean_gap / k, n))
                # A daily cycle by time warping: more traffic in the afternoon.
                t = u + 0.15 * 86400 / (2 * np.pi) * np.sin(2 * np.pi * u / 86400)
                t_last = float(u[-1])
                out = np.maximum(0, np.round(rng.lognormal(np.log(180), 1.0, n))).astype(np.int64)
                failed = rng.uniform(size=n) < 0.05
                out[failed] = 0
                tbl = pa.table({
                    "trace": pa.array([trace] * n),
                    "request_id": pa.array(np.arange(rid, rid + n, dtype=np.int64)),
                    "arrival_s": pa.array(np.floor(t)),               # BurstGPT: 1 s resolution
                    "model": pa.array(np.where(rng.uniform(size=n) < 0.7, "ChatGPT", "GPT-4")),
                    "log_type": pa.array(np.where(rng.uniform(size=n) < 0.8, "Conversation log", "API log")),
                    "input_tokens": pa.array(np.maximum(1, np.round(rng.lognormal(np.log(600), 1.1, n))).astype(
                        np.int64)),
                    "output_tokens": pa.array(out),
                    "failed": pa.array(failed),
                })
                tx.put("llm_requests", f"{trace}.csv", tbl)
                rid += n
            log(f"generated {trace}: {n_total:,} rows")


def run_wattlas(store_dir: Path, out: Path) -> dict:
    # The libraries the report uses, imported before the clock starts like run_pandas's.
    import duckdb  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import plotly.io  # noqa: F401
    import plotly.offline  # noqa: F401
    import plotly.subplots  # noqa: F401
    import polars  # noqa: F401
    import pyarrow  # noqa: F401
    import scipy.stats  # noqa: F401

    from wattlas.analysis.report import build_report

    t = time.perf_counter()
    build_report("llm_requests", out, store=store_dir, fit_samples=FIT_SAMPLES)
    return {"seconds": time.perf_counter() - t}


def run_pandas(store_dir: Path) -> dict:
    """The report's statistics with pandas/numpy (no HTML)."""
    import pandas as pd
    from scipy import stats as sst

    from wattlas.analysis.distributions import fit_distributions
    from wattlas.analysis.report_llm import _PROBS, choose_rate_bins
    from wattlas.store import Store

    t0 = time.perf_counter()
    files = Store(store_dir).table_files("llm_requests")
    # The columns used below (the store also holds columns this trace leaves null).
    used = ["trace", "request_id", "arrival_s", "model", "log_type", "input_tokens", "output_tokens", "failed"]
    df = pd.concat([pd.read_parquet(f, columns=used) for f in files], ignore_index=True)
    df["source"] = "bench-synthetic"
    res = {}
    keys = ["source", "trace"]
    span = 0.0
    for (src, tr), g in df.groupby(keys, sort=True):
        g = g.sort_values(["arrival_s", "request_id"])
        t = g["arrival_s"].to_numpy()
        gaps = np.diff(t)
        span = max(span, t[-1] - t[0])
        r = {
            "requests": len(g), "span_s": t[-1] - t[0], "cv": gaps.std() / gaps.mean(),
            "gap_q": np.quantile(gaps, [0.5, 0.9, 0.99]).tolist(), "zero": float((gaps == 0).mean()),
            "gap_max": gaps.max(), "failed": g["failed"].mean(),
            # The inter-arrival CDF the report draws: 132 quantiles of the gaps > 0.
            "gap_cdf": np.quantile(gaps[gaps > 0], _PROBS),
        }
        for b in choose_rate_bins(t[-1] - t[0]):
            c = g.groupby(np.floor(t / b).astype(np.int64)).size()
            c = c.reindex(range(c.index.min(), c.index.max() + 1), fill_value=0)
            r[f"rate_{b}"] = float(c.mean())
        for w in (1.0, 10.0, 60.0, 600.0, 3600.0, 86400.0):
            if w <= span / 4:
                b = np.floor(t / w).astype(np.int64)
                c = np.bincount(b - b.min())
                r[f"idc_{w}"] = float(c.var() / c.mean())
        # Bursts at the second rate bin: runs of bins above 2x the mean count.
        bb = choose_rate_bins(t[-1] - t[0])[1]
        b = np.floor(t / bb).astype(np.int64)
        c = np.bincount(b - b.min())
        hot = c > 2 * c.mean()
        r["bursts"] = int(np.sum(hot[1:] & ~hot[:-1]) + hot[0])
        for col in ("input_tokens", "output_tokens"):
            v = g[col]
            r[col] = [v.mean(), *np.quantile(v, [0.5, 0.9, 0.99]).tolist(), v.max(), v.sum()]
            pos = v[v > 0].to_numpy()
            r[col + "_hist"] = np.histogram(np.log10(pos), bins=np.arange(0, 7.05, 0.05))[0].sum()
        li, lo = np.log10(g["input_tokens"].clip(lower=1)), np.log10(g["output_tokens"].clip(lower=1))
        r["joint"] = int(np.histogram2d(li, lo, bins=(np.arange(0, 7.2, 0.125), np.arange(0, 7.2, 0.125)))[0].sum())
        r["pearson"] = g["input_tokens"].corr(g["output_tokens"])
        r["pearson_log"] = np.log1p(g["input_tokens"]).corr(np.log1p(g["output_tokens"]))
        r["spearman"] = g["input_tokens"].corr(g["output_tokens"], method="spearman")
        # Fits on samples of the same size as the report's.
        rng = np.random.default_rng(0)
        pos_gaps = gaps[gaps > 0]
        r["fit_gaps"] = fit_distributions(rng.choice(pos_gaps, min(FIT_SAMPLES, pos_gaps.size), replace=False),
                                          max_samples=None)["family"][0]
        for col in ("input_tokens", "output_tokens"):
            v = g[col].to_numpy()
            r["fit_" + col] = fit_distributions(rng.choice(v, min(FIT_SAMPLES, v.size), replace=False),
                                                discrete=True, max_samples=None)["family"][0]
        # Periodicity: ACF of the rate series and the hour-of-day profile.
        pb = 900.0 if (t[-1] - t[0]) / 900 <= 5000 else 3600.0
        b = np.floor(t / pb).astype(np.int64)
        x = np.bincount(b - b.min()).astype(float)
        d = x - x.mean()
        f = np.fft.rfft(d, n=2 * x.size)
        acf = np.fft.irfft(f * np.conj(f))[: x.size]
        r["acf_1d"] = float(acf[int(86400 / pb)] / acf[0])
        r["spectrum_peak"] = float(np.argmax(np.abs(np.fft.rfft(d))[1:]))
        hours = (t % 86400 // 3600).astype(int)
        r["profile"] = np.bincount(hours, minlength=24).tolist()
        res[(src, tr)] = r
    per_model = df.groupby(keys + ["model", "log_type"]).agg(
        requests=("input_tokens", "size"), in_mean=("input_tokens", "mean"),
        in_p50=("input_tokens", "median"), in_p90=("input_tokens", lambda s: s.quantile(0.9)),
        in_p99=("input_tokens", lambda s: s.quantile(0.99)), in_max=("input_tokens", "max"),
        in_total=("input_tokens", "sum"), out_mean=("output_tokens", "mean"), out_p50=("output_tokens", "median"),
        out_p90=("output_tokens", lambda s: s.quantile(0.9)), out_p99=("output_tokens", lambda s: s.quantile(0.99)),
        out_max=("output_tokens", "max"), out_total=("output_tokens", "sum"), failed=("failed", "mean"))
    fails = df[df["failed"].notna()].groupby(keys + ["model", "log_type"])["failed"].agg(["size", "sum", "mean"])
    _ = (sst, per_model, fails)
    return {"seconds": time.perf_counter() - t0}


def child(kind: str, store_dir: Path, out: Path) -> None:
    res = run_wattlas(store_dir, out) if kind == "wattlas" else run_pandas(store_dir)
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keep", type=Path, help="Work in this directory and keep it (default: a temp dir).")
    ap.add_argument("--child", choices=["wattlas", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.store, args.store.parent / "report.html")
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="wattlas-bench-analysis-"))
    store_dir = work / "store"
    if not (store_dir / "catalog.json").exists():
        t = time.perf_counter()
        generate(store_dir, args.rows)
        log(f"generation: {time.perf_counter() - t:.1f} s")
    results = {}
    for kind in ("wattlas", "pandas"):
        proc = subprocess.run([sys.executable, __file__, "--child", kind, "--store", str(store_dir)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"{kind} run failed")
        results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        log(f"{kind}: {results[kind]['seconds']:.1f} s, peak RSS {results[kind]['peak_rss_mib']:.0f} MiB")
    w, p = results["wattlas"], results["pandas"]
    # The store's Parquet vs DuckDB's writer on the same rows (a child checks they match).
    from _parquet_compare import run_compare  # benchmarks/ is on sys.path when a script runs

    from wattlas.store import Store

    layout = run_compare(Store(store_dir).table_files("llm_requests"))
    print(json.dumps({
        "rows": args.rows,
        "wattlas_s": round(w["seconds"], 2),
        "pandas_s": round(p["seconds"], 2),
        "ratio": round(p["seconds"] / w["seconds"], 2),
        "peak_rss_mib": round(w["peak_rss_mib"]),
        "pandas_peak_rss_mib": round(p["peak_rss_mib"]),
        "report_bytes": (store_dir.parent / "report.html").stat().st_size,
        **{k: layout[k] for k in ("parquet_bytes", "duckdb_parquet_bytes", "size_ratio", "query_s", "query_ratio")},
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()

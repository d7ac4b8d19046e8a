"""Turning a trace into load: exports in the formats real tools read, and synthetic look-alikes.

Formats (checked against each tool's own loader):

``burstgpt``
    ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`` -- the column
    order of BurstGPT releases 1 and 2. vLLM's ``BurstGPTDataset`` (``vllm/benchmarks/
    datasets.py``) reads it with ``pandas.read_csv``, keeps rows with ``Model == "GPT-4"`` and
    ``Response tokens > 0``, and takes the prompt and output lengths **by position** (columns
    2 and 3), so the order matters. Traces that record no model get ``model`` (default
    ``GPT-4`` so that vLLM keeps them; a label, not a claim) and no log type ``log_type``.
``vidur`` (alias ``splitwise``)
    ``arrived_at,num_prefill_tokens,num_decode_tokens`` as in vidur's
    ``data/processed_traces/splitwise_*.csv``, read by its ``TraceReplayRequestGenerator``
    (``arrived_at`` in seconds; vidur clips token counts to >= 1 itself).
``jsonl``
    One JSON object per line: ``{"timestamp": ms, "input_length": n, "output_length": n}``,
    the Mooncake trace schema that trace-replay load generators read (e.g. AIPerf's
    ``--custom-dataset-type mooncake_trace`` with ``--fixed-schedule``); ``timestamp`` is an
    integer number of milliseconds from the start of the slice. No ``hash_ids``: the public
    traces do not record prompt contents.

Times in every export count from the start of the slice and are divided by ``rate_scale``
(2 plays the slice twice as fast).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AnalysisError
from ._data import Data, as_input

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("wattlas.analysis.workload")

FORMATS = ("burstgpt", "vidur", "splitwise", "jsonl")
BURSTGPT_HEADER = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
VIDUR_HEADER = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")

__all__ = ["FORMATS", "WorkloadFile", "export_workload", "synthesize_workload", "workload_slice", "write_workload"]


@dataclass(frozen=True)
class WorkloadFile:
    """What an export or synth wrote."""

    path: Path
    format: str
    requests: int
    duration_s: float


def workload_slice(
    data: Data = None,
    *,
    source: str | None = None,
    trace: str | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    rate_scale: float = 1.0,
    store=None,
) -> pl.DataFrame:
    """The requests of one trace between ``start_s`` and ``start_s + duration_s``.

    Times count from the trace's first arrival. Returns ``arrival_s`` (from the start of the
    slice, divided by ``rate_scale``), ``input_tokens``, ``output_tokens``, ``model``,
    ``log_type``, in arrival order. Raises when the selection spans several traces
    (give ``trace``) or is empty.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"arrival_s": [10.0, 11.0, 15.0], "input_tokens": [5, 6, 7], "output_tokens": [1, 2, 3]})
    >>> workload_slice(df, start_s=1.0, rate_scale=2.0)["arrival_s"].to_list()
    [0.0, 2.0]
    """
    if not rate_scale > 0:
        raise AnalysisError(f"rate_scale must be > 0, got {rate_scale}")
    inp = as_input(data, store=store, source=source, trace=trace)
    inp.require("arrival_s", "input_tokens", "output_tokens", what="workload export")
    if inp.has("trace"):
        traces = inp.sql("SELECT DISTINCT source, trace FROM _input ORDER BY 1, 2" if inp.has("source")
                         else "SELECT DISTINCT trace FROM _input ORDER BY 1")
        if traces.height > 1:
            names = ", ".join("/".join(str(v) for v in r) for r in traces.rows())
            raise AnalysisError(f"the selection holds {traces.height} traces ({names}); choose one with --trace "
                                "(and --source)")
    if inp.count() == 0:
        raise AnalysisError("no requests selected" + (f" for source {source!r}" if source else "")
                            + (f", trace {trace!r}" if trace else ""))
    model = "model" if inp.has("model") else "NULL::VARCHAR"
    log_type = "log_type" if inp.has("log_type") else "NULL::VARCHAR"
    order = ", request_id" if inp.has("request_id") else ""
    end = "" if duration_s is None else "AND rel < $start + $dur"
    return inp.sql(
        f"""
        WITH r AS (SELECT *, arrival_s - min(arrival_s) OVER () AS rel FROM _input)
        SELECT (rel - $start) / $scale AS arrival_s, input_tokens, output_tokens,
               {model} AS model, {log_type} AS log_type
        FROM r WHERE rel >= $start {end}
        ORDER BY rel{order}
        """,
        {"start": float(start_s), "scale": float(rate_scale),
         **({"dur": float(duration_s)} if duration_s is not None else {})},
    )


def write_workload(df: pl.DataFrame, path: str | os.PathLike[str], fmt: str, *, model: str = "GPT-4",
                   log_type: str = "API log") -> WorkloadFile:
    """Write requests (``arrival_s``, ``input_tokens``, ``output_tokens`` [, ``model``,
    ``log_type``]) in format ``fmt``; atomic (temporary file, then rename)."""
    import polars as pl

    if fmt not in FORMATS:
        raise AnalysisError(f"unknown workload format {fmt!r}; known: {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "burstgpt":
        cols = df.columns
        filled = df.with_columns(
            model=(pl.col("model") if "model" in cols else pl.lit(None, pl.String)).fill_null(model),
            log_type=(pl.col("log_type") if "log_type" in cols else pl.lit(None, pl.String)).fill_null(log_type),
        )
        n_filled = filled.height - (df["model"].drop_nulls().len() if "model" in cols else 0)
        if n_filled:
            log.warning("%d request(s) have no model in the trace: wrote Model=%r (vLLM's BurstGPT loader keeps "
                        "only GPT-4 rows)", n_filled, model)
        out = filled.select(
            pl.col("arrival_s").alias("Timestamp"), pl.col("model").alias("Model"),
            pl.col("input_tokens").alias("Request tokens"), pl.col("output_tokens").alias("Response tokens"),
            (pl.col("input_tokens") + pl.col("output_tokens")).alias("Total tokens"),
            pl.col("log_type").alias("Log Type"),
        )
        out.write_csv(tmp, float_precision=6)
    elif fmt in ("vidur", "splitwise"):
        df.select(
            pl.col("arrival_s").alias("arrived_at"), pl.col("input_tokens").alias("num_prefill_tokens"),
            pl.col("output_tokens").alias("num_decode_tokens"),
        ).write_csv(tmp, float_precision=6)
    else:
        ms = np.rint(df["arrival_s"].to_numpy() * 1000.0).astype(np.int64)
        inp = df["input_tokens"].to_numpy()
        outp = df["output_tokens"].to_numpy()
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for chunk in range(0, ms.size, 100_000):
                sl = slice(chunk, chunk + 100_000)
                fh.write("".join(
                    json.dumps({"timestamp": int(t), "input_length": int(i), "output_length": int(o)}) + "\n"
                    for t, i, o in zip(ms[sl].tolist(), inp[sl].tolist(), outp[sl].tolist(), strict=True)
                ))
    os.replace(tmp, path)
    dur = float(df["arrival_s"].max() - df["arrival_s"].min()) if df.height else 0.0
    return WorkloadFile(path, "vidur" if fmt == "splitwise" else fmt, df.height, dur)


def export_workload(
    data: Data = None,
    *,
    path: str | os.PathLike[str],
    fmt: str,
    source: str | None = None,
    trace: str | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    rate_scale: float = 1.0,
    model: str = "GPT-4",
    log_type: str = "API log",
    store=None,
) -> WorkloadFile:
    """Write a slice of a trace (:func:`workload_slice`) in format ``fmt`` (see module docs).

    Examples
    --------
    >>> export_workload(source="azure-llm-2023", trace="conv", duration_s=600,
    ...                 fmt="vidur", path="conv.csv")                    # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown workload format {fmt!r}; known: {', '.join(FORMATS)}")
    df = workload_slice(data, source=source, trace=trace, start_s=start_s, duration_s=duration_s,
                        rate_scale=rate_scale, store=store)
    return write_workload(df, path, fmt, model=model, log_type=log_type)


def synthesize_workload(
    like: Data = None,
    *,
    duration_s: float,
    rate_per_s: float | None = None,
    seed: int = 0,
    source: str | None = None,
    trace: str | None = None,
    store=None,
    profile_bins: int | None = None,
) -> pl.DataFrame:
    """A synthetic request trace with the original's burstiness, rate shape and token mix.

    Method (all vectorized):

    1. **Rate shape.** The original's arrival counts per phase bin of a period -- one day
       (24 hourly bins) when the trace spans a day or more, else the trace's own span
       (``profile_bins`` bins, default one per minute up to 120) -- divided by how often each
       bin was observed, relative to the mean: ``s(phase)``. The synthetic trace starts at the
       original's starting phase and repeats the shape every period.
    2. **Burstiness.** Arrival times are mapped to operational time ``u = integral of s``,
       which removes the rate shape; the CV of the original's gaps in ``u`` is measured, and a
       gamma renewal process with that CV and mean rate ``rate_per_s`` (default: the
       original's) is drawn in ``u`` and mapped back to real time.
    3. **Tokens.** (input, output) pairs are drawn with replacement from the original, which
       keeps the joint distribution (including the correlation) exactly.

    Not modelled: correlation between consecutive gaps beyond the rate shape (e.g. long
    silent periods that recur), and dependence between tokens and arrival time. Use an export
    of the real trace when those matter.

    Returns ``request_id``, ``arrival_s`` (from 0), ``input_tokens``, ``output_tokens``.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> orig = pl.DataFrame({"arrival_s": np.cumsum(rng.exponential(1.0, 5000)),
    ...                      "input_tokens": rng.integers(1, 100, 5000), "output_tokens": 10})
    >>> syn = synthesize_workload(orig, duration_s=1000, seed=1)
    >>> 900 < syn.height < 1100
    True
    """
    import polars as pl

    if not duration_s > 0:
        raise AnalysisError(f"duration_s must be > 0, got {duration_s}")
    inp = as_input(like, store=store, source=source, trace=trace)
    inp.require("arrival_s", "input_tokens", "output_tokens", what="synthesize_workload")
    if inp.has("trace") and inp.sql("SELECT count(DISTINCT trace) AS n FROM _input")["n"][0] > 1:
        raise AnalysisError("the original selection holds several traces; give source/trace (SOURCE/TRACE)")
    clock = inp.non_null("arrival_time")
    phase_sql = "epoch(arrival_time) - epoch(date_trunc('day', arrival_time))" if clock else "NULL::DOUBLE"
    base = inp.sql(f"SELECT arrival_s AS t, {phase_sql} AS clock_phase FROM _input ORDER BY arrival_s")
    if base.height < 50:
        raise AnalysisError(f"need at least 50 requests to model a trace, got {base.height}")
    t = base["t"].to_numpy().astype(float)
    t0 = t[0]
    t = t - t0
    span = float(t[-1])
    if span <= 0:
        raise AnalysisError("all arrivals share one timestamp: no rate to model")
    if span >= 86400:
        period, nb = 86400.0, 24
        phase0 = float(base["clock_phase"][0]) if clock else float(t0 % 86400)
    else:
        period = span
        nb = profile_bins or int(min(120, max(1, span // 60)))
        phase0 = 0.0
    width = period / nb
    # Absolute phase-bin index of every arrival; exposure = how many times each phase bin was seen.
    b = np.floor((t + phase0) / width).astype(np.int64)
    b_lo, b_hi = int(b[0]), int(b[-1])
    observed = np.bincount(np.mod(np.arange(b_lo, b_hi + 1), nb), minlength=nb).astype(float)
    counts = np.bincount(np.mod(b, nb), minlength=nb).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(observed > 0, counts / (observed * width), np.nan)
    mean_rate_profile = np.nanmean(rate)
    shape_ = np.nan_to_num(rate / mean_rate_profile, nan=1.0)
    shape_ = np.maximum(shape_, 1e-3)  # a phase never seen busy still gets a trickle: keeps Lambda invertible

    def lam(x: np.ndarray, start_phase: float) -> np.ndarray:
        """Operational time: integral of the shape from 0 to x (piecewise linear)."""
        edges_u = np.concatenate([[0.0], np.cumsum(shape_) * width])  # one period
        pos = x + start_phase
        k = np.floor(pos / period)
        r = pos - k * period
        u = k * edges_u[-1] + np.interp(r, np.arange(nb + 1) * width, edges_u)
        r0 = start_phase
        u0 = np.interp(r0, np.arange(nb + 1) * width, edges_u)
        return u - u0

    u = lam(t, phase0)
    gaps_u = np.diff(u)
    cv = float(gaps_u.std() / gaps_u.mean()) if gaps_u.mean() > 0 else 1.0
    # Mean rate in real time equals the rate in operational time when the shape averages 1
    # over the period (time-weighted), which it does by construction on observed phases.
    target = float(rate_per_s) if rate_per_s else (t.size - 1) / span
    if not target > 0:
        raise AnalysisError(f"rate_per_s must be > 0, got {rate_per_s}")
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, duration_s, int(min(2_000_000, max(1000, duration_s / width * 50))) + 1)
    u_grid = lam(grid, phase0)
    u_end = u_grid[-1]
    k = 1.0 / max(cv, 1e-3) ** 2
    expected = u_end * target
    n_draw = int(expected + 10 * np.sqrt(expected * max(cv, 1.0) ** 2) + 100)
    gaps = rng.gamma(k, 1.0 / (target * k), n_draw)
    # Stationary start for a renewal process: the first arrival after a random (equilibrium) offset.
    first = rng.uniform(0, 1) * gaps[0]
    su = first + np.concatenate([[0.0], np.cumsum(gaps[1:])])
    while su[-1] < u_end:  # rare: draw more
        more = rng.gamma(k, 1.0 / (target * k), n_draw)
        su = np.concatenate([su, su[-1] + np.cumsum(more)])
    su = su[su < u_end]
    arrival = np.interp(su, u_grid, grid)
    # Sorted so that a seed gives the same pairs whatever order the scan returned rows in.
    tok = inp.sql("SELECT input_tokens, output_tokens FROM _input ORDER BY arrival_s, input_tokens, output_tokens")
    pick = rng.integers(0, tok.height, arrival.size)
    return pl.DataFrame({
        "request_id": np.arange(arrival.size, dtype=np.int64),
        "arrival_s": arrival,
        "input_tokens": tok["input_tokens"].to_numpy()[pick],
        "output_tokens": tok["output_tokens"].to_numpy()[pick],
    })


def parse_like(like: str, known_sources: Sequence[str] = ()) -> tuple[str, str | None]:
    """``SOURCE/TRACE`` -> (source, trace); ``SOURCE`` alone -> (source, None).

    Examples
    --------
    >>> parse_like("azure-llm-2023/conv")
    ('azure-llm-2023', 'conv')
    """
    src, _, tr = like.partition("/")
    if not src:
        raise AnalysisError(f"--like wants SOURCE/TRACE (e.g. azure-llm-2023/conv), got {like!r}")
    return src, tr or None



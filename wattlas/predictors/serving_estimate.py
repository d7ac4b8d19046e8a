"""The ``serving-energy`` method of ``wattlas estimate``: a trace served by a continuous-batching engine.

All figures are ESTIMATES. The trace is cut into windows of :data:`WINDOW_S` seconds. In each
window, Little's law gives the number of requests in the engine, ``B = rate x latency(B)``, with
``latency(B) = mean output tokens x ITL(B) + prefill`` and ITL(B) from the ``serving-energy``
predictor; ``B`` is solved as a fixed point and capped at ``max_num_seqs``, or lower when the KV
cache of fewer sequences fills the GPUs' memory (:func:`wattlas.predictors.memory.largest_batch`;
the busiest window's ``B`` is what the memory check then verifies). When one replica
cannot keep up at the cap (``B`` would exceed it), replicas are added until the busiest window
fits: ``replicas = ceil(rate / (cap / latency(cap)))``; GPUs needed = replicas x GPUs per replica.

Per request: ``energy = output tokens x energy per token at the window's B`` (the predictor's
figure includes prefill at the benchmark's prompt lengths). When ``B < 1`` the engine is busy a
share ``B`` of the window (one request at a time) and idle the rest; idle time draws the idle
power of :func:`idle_power_w`, labelled as measured or assumed. Average power = all energy /
span; peak power = the largest window's power.

The three steps are separate so that ``estimate`` can run its physics checks between them:
:func:`plan_serving` (Little's law, at the TDP the measurements were made at), then
:func:`estimate_serving` (per-request ``*_s_est``, ``*_j_est``, ``*_w_est`` columns, which a
power cap scales), then :func:`summarize` (idle energy, never a request's column, so the cap does
not scale it). Under a cap the batch is still the one solved at the TDP: a slower engine would
hold more requests in flight, which is not modelled.

A request is out of domain when its output length lies outside the measured configurations'
mean output lengths, or its window's batch outside their batches, or any other feature outside
the predictor's training envelope (an unseen GPU).

Examples
--------
>>> batch, capped = solve_batch(2.0, lambda b: 1.0 + 0.0 * b, 256)   # 2 req/s x 1 s latency
>>> round(batch, 9), capped
(2.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .gpus import get_gpu

#: Width of the windows whose arrival rate sets the batch (s).
WINDOW_S = 300.0
#: Lowest H100 SXM power in our own bench samples (train-store power_samples, device gpu0, outside
#: timing windows, model loaded, 2026-11-23 run): 114.7 W.
_H100_IDLE_W = 114.7


def idle_power_w(gpu: str) -> tuple[float, str]:
    """(idle power per GPU in W, where it comes from)."""
    spec = get_gpu(gpu)
    if spec.key == "H100-SXM":
        return _H100_IDLE_W, "measured: lowest H100 SXM reading in wattlas bench power samples (model loaded)"
    tdp = spec.tdp_w or 700.0
    return _H100_IDLE_W * tdp / 700.0, (f"assumed: the measured H100 SXM idle (114.7 W) scaled by TDP "
                                        f"({tdp:.0f}/700 W); no idle measurement of {spec.name}")


def solve_batch(rate_per_s: float, latency_s: Callable[[float], float], cap: int) -> tuple[float, bool]:
    """(requests in the engine, capped?) from Little's law ``B = rate x latency(B)``, B in (0, cap].

    ``latency`` must not decrease with B (a bigger batch never speeds a step up), so
    ``g(B) = rate latency(B) - B`` has one sign change: bisection in log space finds it.
    """
    if rate_per_s <= 0:
        return 0.0, False
    if rate_per_s * latency_s(float(cap)) >= cap:
        return float(cap), True
    lo, hi = 1e-6, float(cap)
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        if rate_per_s * latency_s(mid) > mid:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi), False


@dataclass(frozen=True)
class Curve:
    """The predictor's figures on a log-spaced grid of batches, interpolated in log space."""

    batch: np.ndarray
    energy_per_token_j: np.ndarray
    power_w: np.ndarray
    itl_s: np.ndarray

    def at(self, b: float | np.ndarray, which: str) -> np.ndarray:
        y = getattr(self, which)
        x = np.log(np.clip(b, self.batch[0], self.batch[-1]))
        return np.exp(np.interp(x, np.log(self.batch), np.log(y)))


def curve(model, row: dict, cap: int, points: int = 48) -> tuple[Curve, dict[str, np.ndarray]]:
    """Predictions at batches 1..cap for one deployment ``row`` (the model's inputs without
    batch_size), and per feature which grid batches are outside the training envelope."""
    import polars as pl

    grid = np.unique(np.geomspace(1.0, float(max(cap, 1)), points))
    frame = pl.DataFrame({**{k: [v] * grid.size for k, v in row.items()}, "batch_size": grid})
    X = model.features(frame)
    pred = np.asarray(model.estimator.predict(X)).reshape(grid.size, -1)
    names = list(model.definition.target_names)
    out = Curve(grid, pred[:, names.index("energy_per_token_j")], pred[:, names.index("avg_power_w")],
                pred[:, names.index("median_itl_s")])
    # ITL must not fall as the batch grows (Little's law needs it): a running maximum.
    out = Curve(grid, out.energy_per_token_j, out.power_w, np.maximum.accumulate(out.itl_s))
    return out, model.out_of_domain_by_feature(X)


def prefill_s(row: dict, input_tokens: float) -> float:
    """Roofline prefill time of one prompt (s): 2 P_act p FLOPs at the dense peak, or the
    weights read once, whichever is longer (an optimistic bound: no queueing, no chunking)."""
    from .serving import _COMPUTE_DTYPE, WEIGHT_BYTES, normalize_precision

    spec = get_gpu(row["gpu"])
    p = normalize_precision(row["precision"])
    n = float(row["num_gpus"])
    act = float(row.get("activated_params_b") or row["total_params_b"]) * 1e9
    flops = 2.0 * act * input_tokens / (n * spec.peak_tflops(_COMPUTE_DTYPE[p]) * 1e12)
    read = float(row["total_params_b"]) * 1e9 * WEIGHT_BYTES[p] / (n * spec.mem_bw_gbs * 1e9)
    return max(flops, read)


def _windows(arrival_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(window index per request, length of each window in s, span in s)."""
    t0 = float(arrival_s.min())
    span = max(float(arrival_s.max()) - t0, 1.0)
    k = max(1, math.ceil(span / WINDOW_S))
    idx = np.minimum(((arrival_s - t0) // WINDOW_S).astype(np.int64), k - 1)
    lengths = np.full(k, WINDOW_S)
    lengths[-1] = max(span - WINDOW_S * (k - 1), 1.0)
    return idx, lengths, span


#: A power cap's time factor as a function of the per-GPU draw at the TDP (W).
Stretch = Callable[[float], float]


@dataclass
class TracePlan:
    """One trace's deployment from Little's law, before any energy: what the memory check and the
    per-request estimates need."""

    name: str
    rows: np.ndarray  # positions of the trace's requests in the requests frame
    row: dict  # the deployment row, with the trace's mean output length
    curve: Curve
    prefill_s: float
    window: np.ndarray  # window index per request
    lengths_s: np.ndarray  # length of each window
    span_s: float
    rate_per_s: np.ndarray  # arrivals per second in each window (all replicas)
    batch: np.ndarray  # requests in flight per replica in each window
    replicas: int
    capped: bool
    cap: int
    output_tokens: np.ndarray
    input_tokens: np.ndarray


def _plan_trace(model, name, rows: np.ndarray, g, row: dict, cap: int, stretch: Stretch | None) -> TracePlan:
    """Little's law for one trace: per window, requests in flight per replica, and replicas needed."""
    arrival = g["arrival_s"].to_numpy().astype(np.float64)
    out = g["output_tokens"].to_numpy().astype(np.float64).clip(1)
    inp = g["input_tokens"].to_numpy().astype(np.float64).clip(1)
    row = {**row, "output_tokens": float(out.mean())}
    cv, _ = curve(model, row, cap)
    pre_s = prefill_s(row, float(inp.mean()))

    def latency(b: float) -> float:
        t = row["output_tokens"] * float(cv.at(max(b, 1.0), "itl_s")) + pre_s
        # Under a power cap every step is slower by the cap curve's factor at the batch's draw.
        return t if stretch is None else t * stretch(float(cv.at(max(b, 1.0), "power_w")) / row["num_gpus"])

    idx, lengths, span = _windows(arrival)
    rate = np.bincount(idx, minlength=lengths.size) / lengths
    capacity = cap / latency(float(cap))  # requests/s one replica serves at the cap
    replicas = max(1, math.ceil(float(rate.max()) / capacity - 1e-9))
    solved = [solve_batch(float(r) / replicas, latency, cap) for r in rate]
    return TracePlan(name, rows, row, cv, pre_s, idx, lengths, span, rate, np.array([s[0] for s in solved]),
                     replicas, bool(replicas > 1 or any(s[1] for s in solved)), cap, out, inp)


def plan_serving(model, requests, row: dict, cap: int, stretch: Stretch | None = None) -> list[TracePlan]:
    """:class:`TracePlan` per trace of ``requests`` (columns trace, arrival_s, input_tokens,
    output_tokens) served by the deployment ``row`` with at most ``cap`` requests in flight.

    ``stretch(per-GPU draw at the TDP)`` is the time factor of a power cap: a capped engine is
    slower, so at the same arrival rate it holds more requests in flight (Little's law). Solving
    the batch with it keeps the capped estimate's average power at or under the cap."""
    import polars as pl

    from ..errors import WattlasError

    if "arrival_s" not in requests.columns:
        raise WattlasError("serving-energy needs the requests' arrival times (arrival_s): it derives the batch "
                           "from the arrival rate")
    if "trace" not in requests.columns:
        requests = requests.with_columns(trace=pl.lit(""))
    traces = requests["trace"].to_numpy()
    return [_plan_trace(model, name, np.flatnonzero(traces == name), g, row, cap, stretch)
            for (name,), g in requests.group_by(["trace"], maintain_order=True)]


def max_batch(plans: list[TracePlan]) -> int:
    """Most requests in flight on one replica in any window of any trace (at least 1)."""
    return max([1, *(math.ceil(float(p.batch.max()) - 1e-9) for p in plans)])


def _columns(model, p: TracePlan, out_env: tuple[float, float]) -> tuple[dict, dict]:
    """Per-request columns and out-of-domain flags of one planned trace."""
    import polars as pl

    b_eff = np.maximum(p.batch, 1.0)  # below one request in flight the engine runs them one at a time
    idx, out = p.window, p.output_tokens
    itl = p.curve.at(b_eff, "itl_s")[idx]
    # Out of domain: each window's batch through the model's envelope, each request's output length.
    X = model.features(pl.DataFrame({**{k: [v] * b_eff.size for k, v in p.row.items()}, "batch_size": b_eff}))
    # The windows' output length is the trace's mean: requests are checked one by one instead.
    ood = {k: v[idx] for k, v in model.out_of_domain_by_feature(X).items() if k != "log2_output_tokens"}
    lo, hi = out_env
    ood_out = (out < lo) | (out > hi)
    if ood_out.any():  # named after the feature, so that its envelope (log2 tokens) reads beside it
        ood["log2_output_tokens"] = ood.get("log2_output_tokens", np.zeros(out.size, dtype=bool)) | ood_out
    cols = {
        # Suffixes _s_est, _j_est, _w_est: the power cap (powercap.apply_to_estimates) scales them.
        "prefill_s_est": np.full(out.size, p.prefill_s), "decode_s_est": out * itl,
        "energy_j_est": out * p.curve.at(b_eff, "energy_per_token_j")[idx],
        "gpu_s_est": out * itl / b_eff[idx] * p.row["num_gpus"],
        # Per GPU, what the deployment draws at the window's batch (the cap acts per GPU).
        "power_w_est": p.curve.at(b_eff, "power_w")[idx] / p.row["num_gpus"],
        "batch_est": p.batch[idx],
    }
    return cols, ood


def output_envelope(model) -> tuple[float, float]:
    """(shortest, longest) mean output length of the measured configurations (tokens)."""
    env = model.meta.get("envelope", {}).get("log2_output_tokens", [None, None])
    return (2.0 ** env[0], 2.0 ** env[1]) if env[0] is not None else (0.0, math.inf)


def estimate_serving(model, requests, plans: list[TracePlan]) -> tuple:
    """(per-request frame, out-of-domain flags per feature) for ``requests`` as planned by
    :func:`plan_serving`. Idle energy is not a request's: it is added by :func:`summarize`."""
    import polars as pl

    out_env = output_envelope(model)
    n = requests.height
    cols: dict[str, np.ndarray] = {}
    ood: dict[str, np.ndarray] = {}
    for p in plans:
        c, o = _columns(model, p, out_env)
        for k, v in c.items():
            cols.setdefault(k, np.full(n, np.nan))[p.rows] = v
        for k, v in o.items():
            ood.setdefault(k, np.zeros(n, dtype=bool))[p.rows] = v
    frame = requests.with_columns(
        pl.Series("prefill_s_est", cols["prefill_s_est"]), pl.Series("decode_s_est", cols["decode_s_est"]),
        # Not split: the measured energy per output token includes prefill.
        pl.lit(None, dtype=pl.Float64).alias("prefill_energy_j_est"),
        pl.lit(None, dtype=pl.Float64).alias("decode_energy_j_est"),
        pl.Series("energy_j_est", cols["energy_j_est"]), pl.Series("gpu_s_est", cols["gpu_s_est"]),
        pl.Series("power_w_est", cols["power_w_est"]), pl.Series("batch_est", cols["batch_est"]),
    )
    return frame, ood


def summarize(frame, plans: list[TracePlan], time_factor: np.ndarray, power_limit_w: float,
              batch_cap_source: str, out_env: tuple[float, float]) -> list[dict]:
    """Per-trace figures from the per-request estimates in ``frame`` (after any power cap; its
    per-request ``time_factor`` is reported on the ITL and prefill), plus idle energy.

    Idle time draws :func:`idle_power_w` (at most the power limit): the GPUs are idle a share
    ``1 - B`` of a window with ``B < 1`` requests in flight (B solved with the cap's slowdown)."""
    energy = frame["energy_j_est"].to_numpy().astype(np.float64)
    out = []
    for p in plans:
        idle_w, idle_src = idle_power_w(p.row["gpu"])
        idle_w = min(idle_w, power_limit_w)
        idx, k = p.window, p.lengths_s.size
        busy = np.minimum(p.batch, 1.0)
        n_gpus = p.row["num_gpus"] * p.replicas
        active_j = np.bincount(idx, weights=energy[p.rows], minlength=k)
        idle_j = (1.0 - busy) * p.lengths_s * idle_w * n_gpus
        window_w = (active_j + idle_j) / p.lengths_s
        total_j = float(active_j.sum() + idle_j.sum())
        reqs = p.output_tokens.size
        b_mean = float(np.average(p.batch[idx]))
        # ITL at the mean batch, stretched by the cap like every time column.
        itl_mean = float(p.curve.at(max(b_mean, 1.0), "itl_s")) * float(np.median(time_factor[p.rows]))
        out.append({
            "trace": p.name, "requests": int(reqs), "span_h": round(p.span_s / 3600.0, 3),
            "arrival_rate_per_s": reqs / p.span_s,
            "output_tokens_mean": float(p.output_tokens.mean()), "input_tokens_mean": float(p.input_tokens.mean()),
            "batch_est_mean": b_mean, "batch_est_max": float(p.batch.max()),
            "max_num_seqs": p.cap, "batch_cap_source": batch_cap_source, "capped": p.capped,
            "replicas": p.replicas, "gpus_needed": int(n_gpus), "itl_s_est_at_mean_batch": itl_mean,
            "prefill_s_est": p.prefill_s * float(np.median(time_factor[p.rows])),
            "energy_per_request_j_est": total_j / reqs,
            "energy_per_output_token_j_est": total_j / p.output_tokens.sum(),
            "active_energy_kwh_est": float(active_j.sum()) / 3.6e6, "idle_energy_kwh_est": float(idle_j.sum()) / 3.6e6,
            "total_energy_kwh_est": total_j / 3.6e6, "energy_per_hour_kwh_est": total_j / 3.6e6 / (p.span_s / 3600.0),
            "avg_power_w_est": total_j / p.span_s, "peak_power_w_est": float(window_w.max()),
            "idle_power_w_per_gpu": idle_w, "idle_power_source": idle_src,
            "output_tokens_envelope": [round(out_env[0], 1), round(out_env[1], 1)],
        })
    return out


def deployment_row(model: str, gpu: str, dtype: str, tensor_parallel: int) -> dict:
    """The ``serving-energy`` inputs (without batch and output length) of an ``estimate`` model name."""
    from .estimate import LLMS
    from .llm import weights

    cfg = LLMS[model]
    total_b = (weights(cfg) + cfg.n_embd * cfg.vocab_size) / 1e9  # + the input embedding
    return {"gpu": gpu, "total_params_b": round(total_b, 3), "activated_params_b": round(total_b, 3),
            "precision": dtype, "architecture": "dense", "num_gpus": tensor_parallel,
            "tensor_parallel": tensor_parallel, "expert_parallel": 1, "data_parallel": 1}

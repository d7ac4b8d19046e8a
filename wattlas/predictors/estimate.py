"""Trace energy ESTIMATES: per-request prefill/decode time and energy of an LLM request trace.

Nothing here is a measurement. Per request, prefill runs the model's layers on the prompt's
tokens; decode runs one step per output token inside a continuous batch of ``decode_batch``
requests. Layer operator times come from the ``operator-runtime`` predictor (GEMMs, norms,
activation, RoPE, residual adds); the attention kernel itself (not in Vidur's operator set) and
the LM head use the roofline at the GPU's datasheet peaks (optimistic). Energy is time times an
assumed board power of ``min(power limit, TDP)`` while busy: an upper bound on power, since no
power measurement of LLM serving on that GPU backs it. Every assumption is returned with the
numbers.

How far to trust them: :func:`estimate_trace` runs every available method (``llm-energy``,
``operator-runtime``) and returns, besides the chosen method's ``traces`` rows, ``methods`` (per
method: ``default``, ``selected``, ``description``, and per trace ``energy_kwh_est``,
``gpu_busy_hours_est``, ``gpus_needed`` = ceil(busy / span), ``out_of_domain_share`` and
``out_of_domain_energy_share``: the requests, and their share of the energy, outside the model's
training envelope recorded in ``models/<name>.json``, with ``out_of_domain_features`` counts),
``default_method`` and ``default_reason``, ``ranges`` (min-max energy over the methods) and
``warnings`` (over :data:`OOD_WARN_SHARE` outside, or more GPUs needed than one replica).

Examples
--------
>>> from wattlas.predictors.estimate import Assumptions, estimate_requests
>>> import polars as pl
>>> reqs = pl.DataFrame({"input_tokens": [1000], "output_tokens": [100]})
>>> out = estimate_requests(reqs, Assumptions(gpu="H100", model="llama-3-8b"))   # doctest: +SKIP
>>> out.columns[-2:]                                                             # doctest: +SKIP
['decode_energy_j_est', 'energy_j_est']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import WattlasError
from .gpus import DTYPE_BYTES, get_gpu, normalize_dtype


@dataclass(frozen=True)
class LlmConfig:
    layers: int
    n_embd: int
    n_expanded_embd: int
    n_head: int
    n_kv_head: int
    vocab_size: int
    source: str


#: Architecture of the models `wattlas estimate` knows (from each model's Hugging Face config.json).
LLMS = {
    "llama-3-8b": LlmConfig(32, 4096, 14336, 32, 8, 128256, "meta-llama/Meta-Llama-3-8B config.json"),
    "llama-3-70b": LlmConfig(80, 8192, 28672, 64, 8, 128256, "meta-llama/Meta-Llama-3-70B config.json"),
    "llama-2-7b": LlmConfig(32, 4096, 11008, 32, 32, 32000, "meta-llama/Llama-2-7b-hf config.json"),
    "llama-2-70b": LlmConfig(80, 8192, 28672, 64, 8, 32000, "meta-llama/Llama-2-70b-hf config.json"),
}

#: Operators of one layer, with how many times each runs (two residual adds per layer).
LAYER_OPS = {"input_layernorm": 1, "attn_pre_proj": 1, "attn_rope": 1, "attn_post_proj": 1,
             "post_attention_layernorm": 1, "mlp_up_proj": 1, "mlp_act": 1, "mlp_down_proj": 1, "add": 2}


@dataclass(frozen=True)
class Assumptions:
    gpu: str
    model: str
    power_limit_w: float | None = None
    decode_batch: int = 16
    tensor_parallel: int = 1
    dtype: str = "bf16"
    #: serving-energy: the engine's cap on sequences in flight (vLLM's max_num_seqs).
    max_num_seqs: int = 256

    def describe(self, tdp_w: float | None, power_w: float, method: str = "") -> list[str]:
        cfg = LLMS[self.model]
        if method.startswith("serving-energy"):
            from .serving_estimate import WINDOW_S

            return [
                f"model {self.model} ({cfg.source}), dense, {normalize_dtype(self.dtype)} weights; one replica "
                f"per {self.tensor_parallel} {get_gpu(self.gpu).name} GPU(s), served by a continuous-batching "
                "engine like the vLLM deployments ML.ENERGY measured",
                f"requests in flight per {WINDOW_S:.0f} s window from Little's law: B = arrival rate x (mean output "
                f"tokens x ITL(B) + roofline prefill), ITL from serving-energy, capped at --max-num-seqs "
                f"{self.max_num_seqs}; replicas added when one cannot keep up at the cap",
                "energy per request = output tokens x serving-energy's energy per output token at B (measured "
                "figures include prefill at the benchmark's prompt lengths, not this trace's)",
                "idle power for the time the trace leaves the GPUs idle (B < 1): see idle_power_source",
                "energy per hour = (request energy + idle energy) / span of the trace's arrivals",
            ]
        if method.startswith("llm-energy"):
            return [
                f"model {self.model} ({cfg.source}); {normalize_dtype(self.dtype)}; one {get_gpu(self.gpu).name}",
                f"each request runs in a static batch of {self.decode_batch} requests of its own length (prefill "
                "then all decode steps); its energy is 1/batch of the batch's; its times are the batch's",
                f"time and GPU energy from the llm-energy predictor (measured `wattlas bench llm` iterations: "
                f"transformers eager backend, host-bound decode) at a {power_w:.0f} W power limit; idle power "
                "between requests is not counted",
                "energy per hour = estimated energy of all requests / span of the trace's arrivals",
            ]
        return [
            f"model {self.model}: {cfg.layers} layers, hidden {cfg.n_embd}, MLP {cfg.n_expanded_embd}, "
            f"{cfg.n_head}/{cfg.n_kv_head} heads ({cfg.source}); {normalize_dtype(self.dtype)} weights",
            f"one replica per {self.tensor_parallel} {get_gpu(self.gpu).name} GPU(s) (tensor parallel "
            f"{self.tensor_parallel}); communication time between shards is not counted",
            "prefill: each request's prompt alone in one forward pass (no chunking, no batching of prefills)",
            f"decode: continuous batching of {self.decode_batch} requests, one token per request per step; "
            "a request's decode energy is its share (1/batch) of each step",
            "layer operators from the operator-runtime predictor; attention kernel and LM head by roofline "
            "at datasheet peak (optimistic)",
            f"power while busy = min(power limit, TDP) = {power_w:.0f} W per GPU (TDP {tdp_w} W): an upper "
            "bound, not a measurement; idle power between requests is not counted",
            "energy per hour = estimated energy of all requests / span of the trace's arrivals",
        ]


def _predict_with_domain(predictor, frame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``predictor``'s predictions for ``frame`` and, per feature, the rows outside its training envelope."""
    from .bundle import predict_chunked

    X = predictor.features(frame)
    pred = np.asarray(predict_chunked(predictor.estimator.predict, X))
    return pred, predictor.out_of_domain_by_feature(X)


def _layer_times(predictor, cfg: LlmConfig, tokens: np.ndarray,
                 a: Assumptions) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Predicted time (s) of one layer's operators for each token count in ``tokens``, and per
    feature which token counts have an operator outside the predictor's training envelope."""
    import polars as pl

    ops = list(LAYER_OPS)
    frame = pl.DataFrame({
        "op": np.repeat(ops, tokens.size), "num_tokens": np.tile(tokens, len(ops)).astype(np.int64),
    }).with_columns(
        gpu=pl.lit(a.gpu), n_embd=pl.lit(cfg.n_embd), n_expanded_embd=pl.lit(cfg.n_expanded_embd),
        n_head=pl.lit(cfg.n_head), n_kv_head=pl.lit(cfg.n_kv_head), use_gated_mlp=pl.lit(True),
        tensor_parallel=pl.lit(a.tensor_parallel), dtype=pl.lit(a.dtype),
    )
    t, ood = _predict_with_domain(predictor, frame)
    t = t.reshape(len(ops), tokens.size)
    weights = np.array([LAYER_OPS[o] for o in ops], dtype=np.float64)[:, None]
    return (t * weights).sum(axis=0), {k: v.reshape(len(ops), tokens.size).any(axis=0) for k, v in ood.items()}


def _llm_energy_model(models_dir):
    """The ``llm-energy`` predictor when one is available (trained on measured bench energy), else None."""
    from .bundle import available, load

    return load("llm-energy", models_dir) if "llm-energy" in available(models_dir) else None


def _with_llm_energy(model, requests, a: Assumptions, power_w: float):
    """Per-request estimates from the measured-energy ``llm-energy`` predictor.

    A request's time and energy come from an ``e2e`` iteration (prefill then all decode steps)
    of ``decode_batch`` requests of its length, divided by the batch for energy; its prefill part
    is a ``prefill`` iteration of the same batch, and decode is the difference.
    """
    import polars as pl

    inp = requests["input_tokens"].to_numpy().astype(np.int64).clip(1)
    out = requests["output_tokens"].to_numpy().astype(np.int64).clip(1)
    n = len(inp)
    b = a.decode_batch
    common = {"gpu": [a.gpu] * n, "model": [a.model] * n, "dtype": [a.dtype] * n, "power_limit_w": [power_w] * n,
              "batch_size": [b] * n, "input_tokens": inp, "output_tokens": out}
    e2e, ood_e2e = _predict_with_domain(model, pl.DataFrame({**common, "phase": ["e2e"] * n}))
    pre, ood_pre = _predict_with_domain(model, pl.DataFrame({**common, "phase": ["prefill"] * n}))
    e2e, pre = e2e.reshape(n, -1), pre.reshape(n, -1)
    # A request is outside the domain when either of the two iterations that make it up is.
    ood = {k: ood_e2e.get(k, np.zeros(n, bool)) | ood_pre.get(k, np.zeros(n, bool)) for k in {*ood_e2e, *ood_pre}}
    names = list(model.definition.target_names)
    t_i, e_i = names.index("time_s"), names.index("energy_j")
    pre_t, pre_e = pre[:, t_i], pre[:, e_i]
    dec_t = np.maximum(e2e[:, t_i] - pre_t, 0.0)
    dec_e = np.maximum(e2e[:, e_i] - pre_e, 0.0)
    return requests.with_columns(
        pl.Series("prefill_s_est", pre_t), pl.Series("decode_s_est", dec_t),
        pl.Series("prefill_energy_j_est", pre_e / b), pl.Series("decode_energy_j_est", dec_e / b),
    ).with_columns(energy_j_est=pl.col("prefill_energy_j_est") + pl.col("decode_energy_j_est"),
                   gpu_s_est=(pl.col("prefill_s_est") + pl.col("decode_s_est")) / b), ood


#: Methods of :func:`estimate_requests` (``auto`` picks the first available).
METHODS = ("serving-energy", "llm-energy", "operator-runtime")

#: Share of requests (or of estimated energy) outside a model's training envelope above which
#: the estimate is flagged as mostly extrapolation.
OOD_WARN_SHARE = 0.05

_DESCRIPTIONS = {
    "serving-energy": "serving-energy predictor (ML.ENERGY v3 vLLM measurements) at the batch the trace's load "
    "implies (Little's law), plus idle power",
    "llm-energy": "llm-energy predictor (trained on measured GPU energy)",
    "operator-runtime": "operator-runtime predictor + roofline attention, times an assumed board power",
}


def available_methods(a: Assumptions, models_dir=None) -> dict[str, str | None]:
    """Each of :data:`METHODS` -> None when it can run here, else why not."""
    from .bundle import available

    have = available(models_dir)
    why = {"serving-energy": None if "serving-energy" in have else "no serving-energy model in the models directory"}
    if "llm-energy" not in have:
        why["llm-energy"] = "no llm-energy model in the models directory"
    elif a.tensor_parallel != 1:
        why["llm-energy"] = f"llm-energy was measured on one GPU (--tensor-parallel is {a.tensor_parallel})"
    else:
        why["llm-energy"] = None
    why["operator-runtime"] = None if "operator-runtime" in have else "no operator-runtime model"
    return why


def default_method(a: Assumptions, models_dir=None) -> tuple[str, str]:
    """(method ``auto`` uses, the reason)."""
    why = available_methods(a, models_dir)
    if why["serving-energy"] is None:
        return "serving-energy", ("trained on real serving-engine measurements (ML.ENERGY v3, vLLM with continuous "
                                  "batching); llm-energy was measured with an eager backend (host-bound decode) and "
                                  "operator-runtime multiplies kernel time by an assumed board power")
    if why["llm-energy"] is None:
        return "llm-energy", ("trained on measured GPU energy (wattlas bench llm); operator-runtime multiplies "
                              "predicted kernel time by an assumed board power (an upper bound)")
    return "operator-runtime", f"the only method available: {why['llm-energy']}"


def _power_w(a: Assumptions) -> tuple[float, float | None]:
    tdp = get_gpu(a.gpu).tdp_w
    power_w = min(a.power_limit_w or tdp, tdp) if tdp else a.power_limit_w
    if power_w is None:
        raise WattlasError(f"{get_gpu(a.gpu).name} has no published TDP: pass --power-limit")
    return power_w, tdp


def _check(a: Assumptions, method: str, models_dir) -> None:
    if a.model not in LLMS:
        raise WattlasError(f"unknown model {a.model!r}; known: {', '.join(LLMS)}")
    if a.decode_batch < 1 or a.tensor_parallel < 1:
        raise WattlasError("--decode-batch and --tensor-parallel must be >= 1")
    if method not in ("auto", *METHODS):
        raise WattlasError(f"method must be auto, {', '.join(METHODS)}, got {method!r}")
    if a.max_num_seqs < 1:
        raise WattlasError(f"--max-num-seqs must be >= 1, got {a.max_num_seqs}")
    if method == "serving-energy" and available_methods(a, models_dir)["serving-energy"] is not None:
        raise WattlasError("no serving-energy model available: use --method llm-energy or operator-runtime")
    _power_w(a)
    if method == "llm-energy" and available_methods(a, models_dir)["llm-energy"] is not None:
        raise WattlasError("no llm-energy model available (or --tensor-parallel > 1): use --method operator-runtime")


def estimate_requests(requests, a: Assumptions, models_dir=None, method: str = "auto"):
    """Per-request prefill/decode time and energy ESTIMATES for ``requests`` (input/output tokens).

    ``auto`` uses the ``serving-energy`` predictor (ML.ENERGY vLLM measurements, batch from the
    trace's load) when its model is available, else ``llm-energy`` (our eager-backend
    measurements, one GPU), else layer operator times from ``operator-runtime`` and an assumed
    board power. Every method runs the same way: the memory check (at the batch it uses), the
    estimate at the TDP, then the power cap (:func:`powercap.apply_to_estimates`). Returns
    (frame, info): ``info["method"]`` says which, the frame's
    ``out_of_domain`` column flags requests outside that model's training envelope, and
    ``info["domain"]`` (a :class:`~wattlas.predictors.bundle.DomainSummary`) counts them per feature.
    """
    import polars as pl

    from . import memory, powercap
    from .bundle import DomainSummary, load

    power_w, tdp = _power_w(a)
    name = default_method(a, models_dir)[0] if method == "auto" else method
    _check(a, name, models_dir)
    model = load(name, models_dir)
    plans, batch, cap_source = None, a.decode_batch, "--decode-batch"
    if name == "serving-energy":  # the batch comes from the trace's load, not from --decode-batch
        plans, batch, cap_source = _serving_plans(model, requests, a, power_w, tdp or power_w)
    # Physics every method must respect (issue 15): the model has to fit in the GPUs' memory, and
    # a power cap is applied to the uncapped estimate with the measured cap curve.
    mem = {**memory.check_requests(requests, a.model, a.gpu, a.dtype, a.tensor_parallel, batch),
           "batch_source": cap_source if plans is None else "Little's law, busiest window"}
    ref_w = tdp or power_w
    if plans is None:
        run = _with_llm_energy if name == "llm-energy" else _with_operator_runtime
        frame, ood = run(model, requests, a, ref_w)
    else:  # measured at the GPUs' default limit, the TDP: the same reference as the other methods
        from .serving_estimate import estimate_serving

        frame, ood = estimate_serving(model, requests, plans)
    frame, cap = powercap.apply_to_estimates(frame, power_w, ref_w)
    envelope = dict(model.meta.get("envelope", {}))
    if cap.below_domain.any():
        ood = {**ood, powercap.DOMAIN_FEATURE: cap.below_domain}
        envelope[powercap.DOMAIN_FEATURE] = [powercap.CURVE.x_min, powercap.CURVE.x_max]
    domain = DomainSummary.from_flags(name, frame.height, ood, envelope)
    serving = None
    if plans is not None:  # idle energy after the cap: it is no request's, so the cap does not scale it
        from .serving_estimate import output_envelope, summarize

        serving = summarize(frame, plans, cap.time_factor, power_w, cap_source, output_envelope(model))
    flags = np.zeros(frame.height, dtype=bool)
    for f in ood.values():
        flags |= f
    return frame.with_columns(pl.Series("out_of_domain", flags)), {
        "power_w": ref_w, "tdp_w": tdp, "method": _DESCRIPTIONS[name], "method_name": name, "domain": domain,
        "ood": ood, "memory": mem, "power_cap": powercap.summary(power_w, ref_w, cap),
        "cap_assumptions": powercap.describe(power_w, ref_w, cap), "serving": serving}


def _serving_plans(model, requests, a: Assumptions, power_w: float, ref_w: float) -> tuple[list, int, str]:
    """serving-energy's Little's-law plan, the batch the memory check verifies, and what capped it.

    The engine holds at most ``--max-num-seqs`` requests, and no more than the KV cache of the
    trace's mean context lets fit beside the weights (vLLM preempts past that). When not even one
    fits, the memory check refuses with the numbers at batch 1, before any prediction. Under a
    power cap the batch is solved with the cap curve's slowdown (a slower engine holds more)."""
    from . import memory, powercap
    from .serving_estimate import deployment_row, max_batch, plan_serving

    ctx = float((requests["input_tokens"] + requests["output_tokens"]).mean() or 0.0)
    fits = memory.largest_batch(a.model, a.gpu, a.dtype, tensor_parallel=a.tensor_parallel, context_tokens=ctx)
    if fits < 1:
        memory.check_requests(requests, a.model, a.gpu, a.dtype, a.tensor_parallel, 1)  # raises
    seqs = min(a.max_num_seqs, fits)
    source = "--max-num-seqs" if seqs == a.max_num_seqs else f"KV-cache memory ({fits} sequences of {ctx:,.0f} tokens)"
    row = deployment_row(a.model, a.gpu, a.dtype, a.tensor_parallel)

    def stretch(draw_w: float) -> float:  # the cap curve's time factor, as apply_to_estimates uses it
        return float(powercap.cap_factors(power_w, ref_w, np.array([draw_w])).time_factor[0])

    plans = plan_serving(model, requests, row, seqs, stretch if power_w < ref_w else None)
    return plans, max_batch(plans), source


def _with_operator_runtime(predictor, requests, a: Assumptions, power_w: float):
    """Per-request estimates from layer operator times (``operator-runtime``), roofline attention
    and LM head, times an assumed board power; and per feature the requests outside the envelope."""
    import polars as pl

    cfg = LLMS[a.model]
    spec = get_gpu(a.gpu)
    dt = normalize_dtype(a.dtype)
    s = DTYPE_BYTES[dt]
    peak = spec.peak_tflops(dt) * 1e12
    bw = spec.mem_bw_gbs * 1e9
    t = a.tensor_parallel
    inp = requests["input_tokens"].to_numpy().astype(np.int64).clip(1)
    out = requests["output_tokens"].to_numpy().astype(np.int64).clip(0)
    d = cfg.n_embd // cfg.n_head
    # Prefill: layer operators at M = prompt tokens, causal attention FLOPs 2*p^2*h/t, LM head at M=1.
    uniq, inv = np.unique(inp, return_inverse=True)
    layer_prefill, ood_prefill = _layer_times(predictor, cfg, uniq, a)
    layer_prefill = layer_prefill[inv]
    attn_prefill = np.maximum(2.0 * inp.astype(float) ** 2 * (cfg.n_head // t) * d / peak,
                              s * inp * (cfg.n_head + 2 * cfg.n_kv_head) // t * d / bw)
    lm_head = lambda m: np.maximum(2.0 * m * cfg.n_embd * cfg.vocab_size / t / peak,  # noqa: E731
                                   s * (cfg.n_embd * cfg.vocab_size / t + m * cfg.vocab_size / t) / bw)
    prefill_s = cfg.layers * (layer_prefill + attn_prefill) + lm_head(1.0)
    # Decode: one step with B tokens; attention reads each request's KV cache (mean context).
    b = a.decode_batch
    step_layers, ood_step = _layer_times(predictor, cfg, np.array([b]), a)
    ctx = inp + out / 2.0
    kv_bytes = 2.0 * s * ctx * (cfg.n_kv_head // t if cfg.n_kv_head >= t else 1) * d
    attn_step = np.maximum(4.0 * b * ctx * (cfg.n_head // t) * d / peak, b * kv_bytes / bw)
    step_s = cfg.layers * (step_layers[0] + attn_step) + lm_head(float(b))
    decode_s = out * step_s
    gpus = t
    prefill_j = prefill_s * power_w * gpus
    decode_j = decode_s * power_w * gpus / b
    n = len(inp)
    # A request is outside the domain when its prefill's operators are, or the decode step's are.
    ood = {k: ood_prefill.get(k, np.zeros(uniq.size, bool))[inv] | bool(ood_step.get(k, [False])[0])
           for k in {*ood_prefill, *ood_step}}
    ood = {k: v for k, v in ood.items() if v.any()} if n else {}
    return requests.with_columns(
        pl.Series("prefill_s_est", prefill_s), pl.Series("decode_s_est", decode_s),
        pl.Series("prefill_energy_j_est", prefill_j), pl.Series("decode_energy_j_est", decode_j),
        pl.Series("energy_j_est", prefill_j + decode_j),
        # GPU time this request occupies: its own prefill, its 1/batch share of the decode steps.
        pl.Series("gpu_s_est", (prefill_s + decode_s / b) * gpus),
    ), ood


def _trace_stats(g, a: Assumptions) -> dict:
    """Totals of one trace's per-request estimates, with how far they can be trusted."""
    span_s = max(float(g["arrival_s"].max() - g["arrival_s"].min()), 1.0)
    e = float(g["energy_j_est"].sum())
    busy_s = float(g["gpu_s_est"].sum())
    ood = g["out_of_domain"].to_numpy()
    # Replicas of tensor_parallel GPUs that must run at once so the summed busy time fits the span.
    replicas = max(1, math.ceil(busy_s / a.tensor_parallel / span_s - 1e-9))
    return {
        "span_s": span_s, "energy_j": e, "busy_s": busy_s,
        "energy_kwh_est": e / 3.6e6,
        "energy_per_hour_kwh_est": e / 3.6e6 / (span_s / 3600.0),
        "gpu_busy_hours_est": busy_s / 3600.0,
        "replicas_needed": replicas,
        "gpus_needed": replicas * a.tensor_parallel,
        "out_of_domain_requests": int(ood.sum()),
        "out_of_domain_share": float(ood.mean()) if ood.size else 0.0,
        "out_of_domain_energy_share": float(g.filter(g["out_of_domain"])["energy_j_est"].sum()) / e if e else 0.0,
    }


def _read_requests(store, source: str, trace: str | None):
    where = "source = ?" + (" and trace = ?" if trace else "")
    params = [source, trace] if trace else [source]
    con = store.connect()
    try:
        reqs = con.sql(
            f"select trace, request_id, arrival_s, input_tokens, output_tokens from llm_requests where {where} "
            "order by trace, request_id", params=params,
        ).pl()
    finally:
        con.close()
    if reqs.height == 0:
        raise WattlasError(
            f"no llm_requests rows for source {source!r}{f' trace {trace!r}' if trace else ''} in {store.root}; "
            f"ingest it first (`wattlas ingest {source}`)"
        )
    return reqs


def estimate_trace(store, source: str, trace: str | None, a: Assumptions, models_dir=None, method: str = "auto"):
    """(per-request frame, summary dict) of ESTIMATES for the requests of ``source`` in ``store``.

    Every available method runs; ``summary["traces"]`` holds the chosen one's figures (``method``,
    default ``auto``), and ``summary["methods"]`` each method's totals per trace with the share of
    requests and of energy outside its model's training envelope (see :func:`report_lines`).
    """
    import polars as pl

    from .memory import MemoryFitError

    reqs = _read_requests(store, source, trace)
    chosen = default_method(a, models_dir)[0] if method == "auto" else method
    _check(a, chosen, models_dir)  # before the long runs
    dflt, reason = default_method(a, models_dir)
    why = available_methods(a, models_dir)
    # The selected method first: when it cannot run (memory), nothing is estimated. Another method
    # that cannot run at its own batch (--decode-batch) is listed as not run, with the numbers.
    runs = {chosen: estimate_requests(reqs, a, models_dir, chosen)}
    for name in METHODS:
        if why[name] is None and name != chosen:
            try:
                runs[name] = estimate_requests(reqs, a, models_dir, name)
            except MemoryFitError as e:
                why[name] = str(e)
    per_method = {name: runs[name] for name in METHODS if name in runs}
    per_request, info = per_method[chosen]
    serving = {t["trace"]: t for t in info["serving"] or []}
    summary_rows = []
    for (name,), g in per_request.group_by(["trace"], maintain_order=True):
        st = _trace_stats(g, a)
        summary_rows.append({
            "trace": name, "requests": g.height, "span_h": round(st["span_s"] / 3600.0, 3),
            "prefill_s_median_est": float(g["prefill_s_est"].median()),
            "decode_s_median_est": float(g["decode_s_est"].median()),
            "energy_per_request_j_est": st["energy_j"] / g.height,
            "energy_kwh_est": st["energy_kwh_est"],
            "energy_per_hour_kwh_est": st["energy_per_hour_kwh_est"],
            "gpu_busy_hours_est": st["gpu_busy_hours_est"],
            **_serving_columns(serving.get(name)),
        })
    methods = [_method_entry(name, frame, inf, a, dflt, chosen) for name, (frame, inf) in per_method.items()]
    summary = {
        "label": f"{a.model} on {get_gpu(a.gpu).name}, source {source}",
        "kind": "estimate",
        "traces": summary_rows,
        "method": info["method"],
        "selected_method": chosen,
        "default_method": dflt,
        "default_reason": reason,
        "methods": methods,
        "unavailable_methods": {k: v for k, v in why.items() if v is not None},
        "ranges": _ranges(methods),
        "assumptions": a.describe(info["tdp_w"], info["power_w"], info["method"]) + info["cap_assumptions"]
        + [_memory_line(info["memory"])],
        "memory": info["memory"],
        "power_cap": {m: inf["power_cap"] for m, (_, inf) in per_method.items()},
    }
    if "serving-energy" in per_method:  # its trace-level figures (batch, GPUs, idle, power), new keys only
        summary["serving"] = per_method["serving-energy"][1]["serving"]
    summary["warnings"] = _warnings(summary, a)
    return per_request.with_columns(pl.lit(True).alias("is_estimate")), summary


def _memory_line(mem: dict) -> str:
    return (f"memory: weights {mem['weights_gb']:.1f} GB + KV cache {mem['kv_gb']:.1f} GB (batch {mem['batch']} "
            f"({mem['batch_source']}) x {mem['context_tokens']:,.0f} tokens, the trace's mean prompt + output) of "
            f"{mem['available_gb']:.1f} GB available on {mem['tensor_parallel']} GPU(s)")


def _method_entry(name: str, frame, info: dict, a: Assumptions, dflt: str, chosen: str) -> dict:
    """One method's totals per trace, with the requests outside its training envelope per feature."""
    traces_col = frame["trace"].to_numpy()
    traces = []
    for (trace,), g in frame.group_by(["trace"], maintain_order=True):
        st = _trace_stats(g, a)
        rows = traces_col == trace
        by_feature = {k: int(v[rows].sum()) for k, v in info["ood"].items() if v[rows].any()}
        entry = {"trace": trace, **{k: v for k, v in st.items() if k not in ("span_s", "energy_j", "busy_s")},
                 "out_of_domain_features": by_feature}
        # serving-energy sizes the deployment from Little's law, not from busy time / span.
        served = next((s for s in info.get("serving") or [] if s["trace"] == trace), None)
        if served is not None:
            entry.update(replicas_needed=served["replicas"], gpus_needed=served["gpus_needed"])
        traces.append(entry)
    return {"method": name, "default": name == dflt, "selected": name == chosen, "description": info["method"],
            "envelope": {k: list(v) for k, v in info["domain"].ranges.items()}, "traces": traces}


def _serving_columns(served: dict | None) -> dict:
    """The serving-energy figures the trace table shows beside the shared ones (none for other methods)."""
    if served is None:
        return {}
    keys = ("energy_per_output_token_j_est", "idle_energy_kwh_est", "total_energy_kwh_est", "avg_power_w_est",
            "peak_power_w_est", "batch_est_mean", "gpus_needed")
    return {k: served[k] for k in keys}


def _ranges(methods: list[dict]) -> list[dict]:
    """Per trace, the lowest and highest energy over the methods (their disagreement)."""
    out = {}
    for m in methods:
        for t in m["traces"]:
            out.setdefault(t["trace"], []).append(t["energy_kwh_est"])
    return [{"trace": k, "energy_kwh_est_min": min(v), "energy_kwh_est_max": max(v),
             "max_over_min": max(v) / min(v) if min(v) > 0 else None} for k, v in out.items()]


def _warnings(summary: dict, a: Assumptions) -> list[str]:
    """Extrapolation over :data:`OOD_WARN_SHARE`, and traces one replica cannot keep up with."""
    out = []
    for m in summary["methods"]:
        for t in m["traces"]:
            if max(t["out_of_domain_share"], t["out_of_domain_energy_share"]) > OOD_WARN_SHARE:
                feats = _feature_list(t["out_of_domain_features"], m["envelope"])
                out.append(f"{m['method']}: {t['out_of_domain_share']:.1%} of the requests of trace {t['trace']} "
                           f"({t['out_of_domain_energy_share']:.1%} of its estimated energy) are outside the model's "
                           f"training envelope ({feats}): those estimates are extrapolations")
    for t in summary.get("serving") or []:
        if t["capped"]:
            limit = (f"--max-num-seqs {t['max_num_seqs']}" if t["batch_cap_source"] == "--max-num-seqs"
                     else f"the {t['max_num_seqs']} that {t['batch_cap_source']} holds")
            out.append(f"serving-energy, trace {t['trace']}: Little's law puts more than {limit} "
                       f"requests in flight on one replica at the busiest "
                       f"{_window_s():.0f} s window ({t['arrival_rate_per_s']:.3g} req/s on average): capped at "
                       f"{t['max_num_seqs']}, {t['replicas']} replica(s), {t['gpus_needed']} GPU(s)")
    out += _physics_warnings(summary, a)
    sel = next(m for m in summary["methods"] if m["selected"])
    if sel["method"] == "serving-energy":
        return out
    for t in sel["traces"]:
        if t["replicas_needed"] > 1:
            span_h = next(r["span_h"] for r in summary["traces"] if r["trace"] == t["trace"])
            reps = f" ({t['replicas_needed']} replicas of {a.tensor_parallel})" if a.tensor_parallel > 1 else ""
            out.append(f"trace {t['trace']}: {t['gpu_busy_hours_est']:.3g} GPU-busy hours in a {span_h:.3g} h span: "
                       f"it needs {t['gpus_needed']} GPUs{reps} at decode batch {a.decode_batch} "
                       f"(ceil(busy / span)); one {'replica' if reps else 'GPU'} cannot keep up")
    return out


def _physics_warnings(summary: dict, a: Assumptions) -> list[str]:
    """Requests whose own batch overflows memory; a cap below the cap curve's measured range."""
    out = []
    mem = summary.get("memory")
    if mem and mem["requests_over_memory"]:
        out.append(f"{mem['requests_over_memory']:,} requests ({mem['requests_over_memory_share']:.2%}) have more than "
                   f"{mem['longest_fitting_context_tokens']:,} tokens of context: a batch of {mem['batch']} like "
                   f"them does not fit in {mem['available_gb']:.1f} GB next to {mem['weights_gb']:.1f} GB of weights")
    for name, cap in summary.get("power_cap", {}).items():
        if cap["below_measured_range_share"] > 0:
            out.append(f"{name}: the {cap['power_limit_w']:.0f} W cap is below {cap['curve']['x_min']:.2f} x the "
                       f"uncapped draw for {cap['below_measured_range_share']:.1%} of the requests, below the "
                       "range the cap curve was measured on: their slowdown is extrapolated")
    return out


def report_lines(summary: dict) -> list[str]:
    """Plain lines for stderr: every method's energy side by side, the default and why, warnings."""
    lines = []
    for r in summary["ranges"]:
        ratio = f", {r['max_over_min']:.2f}x apart" if r["max_over_min"] else ""
        lines.append(f"Methods for trace {r['trace']}: energy {r['energy_kwh_est_min']:.4g}-"
                     f"{r['energy_kwh_est_max']:.4g} kWh{ratio}")
        for m in summary["methods"]:
            t = next(x for x in m["traces"] if x["trace"] == r["trace"])
            mark = "*" if m["default"] else " "
            sel = " (selected)" if m["selected"] and not m["default"] else ""
            lines.append(
                f"  {mark} {m['method']:<17}{t['energy_kwh_est']:>10.4g} kWh {t['energy_per_hour_kwh_est']:>9.4g}"
                f" kWh/h {t['gpu_busy_hours_est']:>8.3g} GPU-h, needs {t['gpus_needed']:>3} GPU(s); out of domain: "
                f"{t['out_of_domain_share']:.1%} of requests, {t['out_of_domain_energy_share']:.1%} of energy{sel}")
    lines.append(f"  * default: {summary['default_method']}: {summary['default_reason']}")
    lines += _serving_lines(summary.get("serving") or [])
    for k, v in summary["unavailable_methods"].items():
        lines.append(f"  not run: {k}: {v}")
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return lines


def _window_s() -> float:
    from .serving_estimate import WINDOW_S

    return WINDOW_S


def _serving_lines(serving: list[dict]) -> list[str]:
    """serving-energy per trace: per request, per token, per hour, power, batch, GPUs, idle."""
    out = []
    for t in serving:
        cap = " (capped)" if t["capped"] else ""
        out += [
            f"serving-energy, trace {t['trace']}: {t['requests']:,} requests over {t['span_h']:.3g} h "
            f"({t['arrival_rate_per_s']:.3g} req/s, mean {t['input_tokens_mean']:.0f} in / "
            f"{t['output_tokens_mean']:.0f} out tokens)",
            f"  batch (Little's law): mean {t['batch_est_mean']:.3g}, max {t['batch_est_max']:.3g} of --max-num-seqs "
            f"{t['max_num_seqs']}{cap}; ITL {t['itl_s_est_at_mean_batch'] * 1e3:.3g} ms, prefill "
            f"{t['prefill_s_est'] * 1e3:.3g} ms; {t['replicas']} replica(s) = {t['gpus_needed']} GPU(s) needed",
            f"  energy: {t['energy_per_request_j_est']:.4g} J/request, {t['energy_per_output_token_j_est']:.4g} "
            f"J/output token, {t['energy_per_hour_kwh_est']:.4g} kWh/h ({t['active_energy_kwh_est']:.4g} kWh serving "
            f"+ {t['idle_energy_kwh_est']:.4g} kWh idle = {t['total_energy_kwh_est']:.4g} kWh)",
            f"  power: average {t['avg_power_w_est']:.4g} W, peak ({_window_s():.0f} s window) "
            f"{t['peak_power_w_est']:.4g} W; idle {t['idle_power_w_per_gpu']:.4g} W/GPU ({t['idle_power_source']})",
        ]
    return out


def _feature_list(counts: dict[str, int], envelope: dict, most: int = 5) -> str:
    """``feature: N outside [lo, hi]; ...`` for the ``most`` features with the most requests outside."""
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    text = "; ".join(f"{k}: {n:,} outside [{_g(envelope[k][0])}, {_g(envelope[k][1])}]" for k, n in top[:most])
    return text + (f"; {len(top) - most} more features" if len(top) > most else "")


def _g(x: float) -> str:
    return f"{x:.4g}"

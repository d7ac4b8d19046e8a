"""Trace energy ESTIMATES: per-request prefill/decode time and energy of an LLM request trace.

Nothing here is a measurement. Per request, prefill runs the model's layers on the prompt's
tokens; decode runs one step per output token inside a continuous batch of ``decode_batch``
requests. Layer operator times come from the ``operator-runtime`` predictor (GEMMs, norms,
activation, RoPE, residual adds); the attention kernel itself (not in Vidur's operator set) and
the LM head use the roofline at the GPU's datasheet peaks (optimistic). Energy is time times an
assumed board power of ``min(power limit, TDP)`` while busy: an upper bound on power, since no
power measurement of LLM serving on that GPU backs it. Every assumption is returned with the
numbers.

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

    def describe(self, tdp_w: float | None, power_w: float, method: str = "") -> list[str]:
        cfg = LLMS[self.model]
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


def _layer_times(predictor, cfg: LlmConfig, tokens: np.ndarray, a: Assumptions) -> np.ndarray:
    """Predicted time (s) of one layer's operators for each token count in ``tokens``."""
    import polars as pl

    ops = list(LAYER_OPS)
    frame = pl.DataFrame({
        "op": np.repeat(ops, tokens.size), "num_tokens": np.tile(tokens, len(ops)).astype(np.int64),
    }).with_columns(
        gpu=pl.lit(a.gpu), n_embd=pl.lit(cfg.n_embd), n_expanded_embd=pl.lit(cfg.n_expanded_embd),
        n_head=pl.lit(cfg.n_head), n_kv_head=pl.lit(cfg.n_kv_head), use_gated_mlp=pl.lit(True),
        tensor_parallel=pl.lit(a.tensor_parallel), dtype=pl.lit(a.dtype),
    )
    t = predictor.predict(frame).reshape(len(ops), tokens.size)
    weights = np.array([LAYER_OPS[o] for o in ops], dtype=np.float64)[:, None]
    return (t * weights).sum(axis=0)


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
    e2e = model.predict({**common, "phase": ["e2e"] * n})
    pre = model.predict({**common, "phase": ["prefill"] * n})
    names = list(model.definition.target_names)
    t_i, e_i = names.index("time_s"), names.index("energy_j")
    pre_t, pre_e = pre[:, t_i], pre[:, e_i]
    dec_t = np.maximum(e2e[:, t_i] - pre_t, 0.0)
    dec_e = np.maximum(e2e[:, e_i] - pre_e, 0.0)
    return requests.with_columns(
        pl.Series("prefill_s_est", pre_t), pl.Series("decode_s_est", dec_t),
        pl.Series("prefill_energy_j_est", pre_e / b), pl.Series("decode_energy_j_est", dec_e / b),
    ).with_columns(energy_j_est=pl.col("prefill_energy_j_est") + pl.col("decode_energy_j_est"),
                   gpu_s_est=(pl.col("prefill_s_est") + pl.col("decode_s_est")) / b)


def estimate_requests(requests, a: Assumptions, models_dir=None, method: str = "auto"):
    """Per-request prefill/decode time and energy ESTIMATES for ``requests`` (input/output tokens).

    Uses the ``llm-energy`` predictor (measured GPU energy) when one is available and the
    tensor-parallel degree is 1; otherwise layer operator times from ``operator-runtime`` and an
    assumed board power. Returns (frame, info) with ``info["method"]`` saying which.
    """
    import polars as pl

    from .bundle import load

    if a.model not in LLMS:
        raise WattlasError(f"unknown model {a.model!r}; known: {', '.join(LLMS)}")
    if a.decode_batch < 1 or a.tensor_parallel < 1:
        raise WattlasError("--decode-batch and --tensor-parallel must be >= 1")
    cfg = LLMS[a.model]
    spec = get_gpu(a.gpu)
    dt = normalize_dtype(a.dtype)
    s = DTYPE_BYTES[dt]
    peak = spec.peak_tflops(dt) * 1e12
    bw = spec.mem_bw_gbs * 1e9
    t = a.tensor_parallel
    tdp = spec.tdp_w
    power_w = min(a.power_limit_w or tdp, tdp) if tdp else a.power_limit_w
    if power_w is None:
        raise WattlasError(f"{spec.name} has no published TDP: pass --power-limit")
    if method not in ("auto", "llm-energy", "operator-runtime"):
        raise WattlasError(f"method must be auto, llm-energy or operator-runtime, got {method!r}")
    llm_model = None
    if method != "operator-runtime" and a.tensor_parallel == 1:
        llm_model = _llm_energy_model(models_dir)
    if method == "llm-energy" and llm_model is None:
        raise WattlasError("no llm-energy model available (or --tensor-parallel > 1): use --method operator-runtime")
    if llm_model is not None:
        return _with_llm_energy(llm_model, requests, a, power_w), {
            "power_w": power_w, "tdp_w": tdp, "method": "llm-energy predictor (trained on measured GPU energy)"}
    predictor = load("operator-runtime", models_dir)

    inp = requests["input_tokens"].to_numpy().astype(np.int64).clip(1)
    out = requests["output_tokens"].to_numpy().astype(np.int64).clip(0)
    d = cfg.n_embd // cfg.n_head
    # Prefill: layer operators at M = prompt tokens, causal attention FLOPs 2*p^2*h/t, LM head at M=1.
    uniq, inv = np.unique(inp, return_inverse=True)
    layer_prefill = _layer_times(predictor, cfg, uniq, a)[inv]
    attn_prefill = np.maximum(2.0 * inp.astype(float) ** 2 * (cfg.n_head // t) * d / peak,
                              s * inp * (cfg.n_head + 2 * cfg.n_kv_head) // t * d / bw)
    lm_head = lambda m: np.maximum(2.0 * m * cfg.n_embd * cfg.vocab_size / t / peak,  # noqa: E731
                                   s * (cfg.n_embd * cfg.vocab_size / t + m * cfg.vocab_size / t) / bw)
    prefill_s = cfg.layers * (layer_prefill + attn_prefill) + lm_head(1.0)
    # Decode: one step with B tokens; attention reads each request's KV cache (mean context).
    b = a.decode_batch
    step_layers = _layer_times(predictor, cfg, np.array([b]), a)[0]
    ctx = inp + out / 2.0
    kv_bytes = 2.0 * s * ctx * (cfg.n_kv_head // t if cfg.n_kv_head >= t else 1) * d
    attn_step = np.maximum(4.0 * b * ctx * (cfg.n_head // t) * d / peak, b * kv_bytes / bw)
    step_s = cfg.layers * (step_layers + attn_step) + lm_head(float(b))
    decode_s = out * step_s
    gpus = t
    prefill_j = prefill_s * power_w * gpus
    decode_j = decode_s * power_w * gpus / b
    return requests.with_columns(
        pl.Series("prefill_s_est", prefill_s), pl.Series("decode_s_est", decode_s),
        pl.Series("prefill_energy_j_est", prefill_j), pl.Series("decode_energy_j_est", decode_j),
        pl.Series("energy_j_est", prefill_j + decode_j),
        # GPU time this request occupies: its own prefill, its 1/batch share of the decode steps.
        pl.Series("gpu_s_est", (prefill_s + decode_s / b) * gpus),
    ), {"power_w": power_w, "tdp_w": tdp,
        "method": "operator-runtime predictor + roofline attention, times an assumed board power"}


def estimate_trace(store, source: str, trace: str | None, a: Assumptions, models_dir=None, method: str = "auto"):
    """(per-request frame, summary dict) of ESTIMATES for the requests of ``source`` in ``store``."""
    import polars as pl

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
    per_request, info = estimate_requests(reqs, a, models_dir, method)
    summary_rows = []
    for (name,), g in per_request.group_by(["trace"], maintain_order=True):
        span_h = max(float(g["arrival_s"].max() - g["arrival_s"].min()), 1.0) / 3600.0
        e = float(g["energy_j_est"].sum())
        summary_rows.append({
            "trace": name, "requests": g.height, "span_h": round(span_h, 3),
            "prefill_s_median_est": float(g["prefill_s_est"].median()),
            "decode_s_median_est": float(g["decode_s_est"].median()),
            "energy_per_request_j_est": e / g.height,
            "energy_kwh_est": e / 3.6e6,
            "energy_per_hour_kwh_est": e / 3.6e6 / span_h,
            "gpu_busy_hours_est": float(g["gpu_s_est"].sum()) / 3600.0,
        })
    summary = {
        "label": f"{a.model} on {get_gpu(a.gpu).name}, source {source}",
        "kind": "estimate",
        "traces": summary_rows,
        "method": info["method"],
        "assumptions": a.describe(info["tdp_w"], info["power_w"], info["method"]),
    }
    return per_request.with_columns(pl.lit(True).alias("is_estimate")), summary

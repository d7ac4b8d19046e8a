"""LLM serving iterations: transformer FLOP/byte counts for prefill and decode, and bench rows.

One *iteration* is what ``wattlas bench llm`` times: prefill of ``batch_size`` prompts of
``input_tokens`` tokens each; one decode step of ``batch_size`` sequences whose context is
``input_tokens`` tokens long; or ``e2e``, a prefill followed by ``output_tokens`` decode steps.
Counts per iteration (s = bytes per element, L layers, P weights without embeddings, o output
tokens, C = o p + o^2 / 2 the context summed over the decode steps):

- prefill: ``flops = 2 P B p + 2 L B p^2 h`` (causal attention, QK and AV);
  ``bytes = s (P + 2 L B p kv d)`` (weights once, KV cache written)
- decode: ``flops = 2 P B + 4 L B c h``; ``bytes = s (P + 2 L B c kv d)`` (KV cache read)
- e2e: prefill plus ``flops = 2 P B o + 4 L B C h``, ``bytes = s (o P + 2 L B C kv d)``

The physics bases are the roofline time and that time at full board power ``min(limit, TDP)``.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from ..errors import WattlasError
from .estimate import LLMS, LlmConfig
from .gpus import DTYPE_BYTES, get_gpu, normalize_dtype

PHASES = ("prefill", "decode", "e2e")


def resolve_llm(name: str) -> str:
    """``llama-3-8b`` from names such as ``meta-llama/Meta-Llama-3-8B`` or ``Llama-2-7b-hf``."""
    n = str(name).lower().split("/")[-1]
    n = re.sub(r"^meta-", "", n)
    n = re.sub(r"-(hf|instruct|chat)$", "", n)
    if n in LLMS:
        return n
    raise WattlasError(f"unknown LLM {name!r}; known: {', '.join(LLMS)}")


def weights(cfg: LlmConfig) -> float:
    """Parameters outside the embeddings: attention (QKV, O) and gated MLP, plus the LM head."""
    d = cfg.n_embd // cfg.n_head
    per_layer = cfg.n_embd * (cfg.n_head + 2 * cfg.n_kv_head) * d + cfg.n_head * d * cfg.n_embd \
        + 3 * cfg.n_embd * cfg.n_expanded_embd
    return float(cfg.layers * per_layer + cfg.n_embd * cfg.vocab_size)


def iteration_features(frame: pl.DataFrame) -> pl.DataFrame:
    """Feature frame for rows with gpu, model, phase, batch_size, input_tokens, dtype, power_limit_w."""
    n = frame.height
    cols = {k: np.empty(n) for k in ("flops", "bytes", "peak", "bw", "tdp", "sm", "dtype_bytes", "power")}
    phase = frame["phase"].to_numpy()
    bad = sorted(set(phase.tolist()) - set(PHASES))
    if bad:
        raise WattlasError(f"phase must be one of {', '.join(PHASES)}, got {bad}")
    b = frame["batch_size"].cast(pl.Float64).to_numpy()
    p = frame["input_tokens"].cast(pl.Float64).to_numpy()
    o = (frame["output_tokens"].cast(pl.Float64).to_numpy() if "output_tokens" in frame.columns
         else np.ones(n))
    pl_w = frame["power_limit_w"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    keys = list(zip(frame["gpu"].to_list(), frame["model"].to_list(), frame["dtype"].to_list(), strict=True))
    for key in set(keys):
        rows = np.array([k == key for k in keys])
        gpu, model, dtype = key
        spec, cfg, dt = get_gpu(gpu), LLMS[resolve_llm(model)], normalize_dtype(dtype)
        s = DTYPE_BYTES[dt]
        d = cfg.n_embd // cfg.n_head
        w = weights(cfg)
        ph = phase[rows]
        bb, pp, oo = b[rows], p[rows], o[rows]
        kv = 2.0 * cfg.layers * bb * pp * cfg.n_kv_head * d
        pre_flops = 2 * w * bb * pp + 2 * cfg.layers * bb * pp**2 * cfg.n_embd
        ctx_sum = oo * pp + oo**2 / 2.0
        e2e_flops = pre_flops + 2 * w * bb * oo + 4 * cfg.layers * bb * ctx_sum * cfg.n_embd
        e2e_bytes = s * (w + kv) + s * (oo * w + 2.0 * cfg.layers * bb * ctx_sum * cfg.n_kv_head * d)
        cols["flops"][rows] = np.select([ph == "prefill", ph == "decode"],
                                        [pre_flops, 2 * w * bb + 4 * cfg.layers * bb * pp * cfg.n_embd], e2e_flops)
        cols["bytes"][rows] = np.where(ph == "e2e", e2e_bytes, s * (w + kv))
        cols["peak"][rows] = spec.peak_tflops(dt) * 1e12
        cols["bw"][rows] = spec.mem_bw_gbs * 1e9
        cols["tdp"][rows] = spec.tdp_w or np.nan
        cols["sm"][rows] = spec.sm_count or np.nan
        cols["dtype_bytes"][rows] = s
    power = np.where(np.isnan(pl_w), cols["tdp"], np.minimum(pl_w, cols["tdp"]))
    t_comp = cols["flops"] / cols["peak"]
    t_mem = cols["bytes"] / cols["bw"]
    t_roof = np.maximum(t_comp, t_mem)
    return pl.DataFrame({
        "is_prefill": (phase == "prefill").astype(float), "is_e2e": (phase == "e2e").astype(float),
        "log2_batch": np.log2(b), "log2_tokens": np.log2(p), "log2_output": np.log2(np.maximum(o, 1.0)),
        "log_flops": np.log(cols["flops"]), "log_bytes": np.log(cols["bytes"]),
        "log_ai": np.log(cols["flops"] / cols["bytes"]), "log_t_comp": np.log(t_comp), "log_t_mem": np.log(t_mem),
        "peak_tflops": cols["peak"] / 1e12, "mem_bw_gbs": cols["bw"] / 1e9, "sm_count": cols["sm"],
        "tdp_w": cols["tdp"], "power_cap_w": power, "dtype_bytes": cols["dtype_bytes"],
        "t_roof_s": t_roof, "e_roof_j": t_roof * power,
    })


def raw_features(frame: pl.DataFrame) -> pl.DataFrame:
    f = iteration_features(frame)
    return pl.DataFrame({
        "is_prefill": f["is_prefill"], "is_e2e": f["is_e2e"], "batch_size": frame["batch_size"].cast(pl.Float64),
        "output_tokens": np.exp2(f["log2_output"].to_numpy()),
        "input_tokens": frame["input_tokens"].cast(pl.Float64), "peak_tflops": f["peak_tflops"],
        "mem_bw_gbs": f["mem_bw_gbs"], "tdp_w": f["tdp_w"], "power_cap_w": f["power_cap_w"],
    })


def from_bench(bench: pl.DataFrame) -> pl.DataFrame:
    """Training rows from ``bench_results`` prefill/decode rows with measured energy."""
    if bench.height == 0:
        return pl.DataFrame()
    rows = bench.filter(pl.col("kind").is_in(PHASES) & (pl.col("time_per_iter_s_median") > 0)
                        & pl.col("energy_per_iter_j").is_not_null() & (pl.col("energy_per_iter_j") > 0))
    if rows.height == 0:
        return pl.DataFrame()
    pl_col = pl.col("power_limit_w").cast(pl.Float64) if "power_limit_w" in rows.columns else pl.lit(None)
    return rows.select(
        gpu="gpu_name", model="model", phase="kind", batch_size="batch_size", input_tokens="input_tokens",
        output_tokens=pl.col("output_tokens").fill_null(1), dtype="dtype", power_limit_w=pl_col,
        y_time_s="time_per_iter_s_median", y_energy_j="energy_per_iter_j",
    ).with_columns(evaluate=pl.lit(True), arch=pl.col("model"))

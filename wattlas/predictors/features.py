"""Physics-informed features: roofline times, arithmetic intensity, waves, power headroom.

Everything here is vectorised numpy over plain arrays; the feature *contract* of each model
(ordered names, units, formulas) is :data:`RUNTIME_FEATURES` / :data:`POWER_FEATURES`, written
into each model's ``.json`` beside its ``.skops`` file.

Definitions (P = dense peak FLOP/s for the dtype, B = memory bytes/s, S = SM count):
``flops = 2 M N K``; ``bytes = s (M K + K N + M N)``; ``t_roof = max(flops / P, bytes / B)``;
``tiles = ceil(M/128) ceil(N/128)``, ``waves = ceil(tiles / S)``, ``wave_eff = tiles / (waves S)``
(128x128 output tiles are an assumption, not the library's actual tile choice).

Examples
--------
>>> import numpy as np
>>> f = gemm_work(np.array([4096.0]), np.array([4096.0]), np.array([4096.0]), np.array([2.0]))
>>> float(f["flops"][0]), float(f["bytes"][0])
(137438953472.0, 100663296.0)
"""

from __future__ import annotations

import numpy as np

from ..errors import WattlasError
from .gpus import DTYPE_BYTES, get_gpu, normalize_dtype

TILE = 128.0
_LOG2 = np.log2

#: Spec columns added per row from the GPU table (NaN where NVIDIA publishes no value).
SPEC_COLUMNS = ("peak_tflops", "mem_bw_gbs", "sm_count", "l2_mb", "tdp_w", "boost_clock_mhz")

RUNTIME_FEATURES = (
    ("log2_m", "log2 of GEMM rows M (tokens)"),
    ("log2_n", "log2 of GEMM output columns N (elementwise ops: elements per token)"),
    ("log2_k", "log2 of GEMM reduction size K (NaN for elementwise ops)"),
    ("dtype_bytes", "bytes per element"),
    ("log_flops", "ln of floating-point operations"),
    ("log_bytes", "ln of bytes moved with no reuse"),
    ("log_ai", "ln of arithmetic intensity flops/bytes"),
    ("log_t_comp", "ln of flops / peak FLOP/s (s)"),
    ("log_t_mem", "ln of bytes / memory bandwidth (s)"),
    ("log_t_roof", "ln of max(t_comp, t_mem) (s)"),
    ("log_ridge", "ln of the GPU's ridge point peak/bandwidth (FLOP/B)"),
    ("waves", "ceil(tiles / SMs), 128x128 tiles"),
    ("wave_eff", "tiles / (waves * SMs)"),
    ("log_tiles", "ln of 128x128 output tiles"),
    ("peak_tflops", "GPU dense peak for the dtype (TFLOP/s)"),
    ("mem_bw_gbs", "GPU memory bandwidth (GB/s)"),
    ("sm_count", "GPU streaming multiprocessors"),
    ("l2_mb", "GPU L2 cache (MB)"),
    ("boost_clock_mhz", "GPU boost clock (MHz)"),
    ("t_roof_s", "roofline time max(t_comp, t_mem) (s): the physics base the model corrects"),
)


#: Output tiles (rows x columns) of common cuBLAS/CUTLASS GEMM kernels: 64- and 128-wide on Ampere,
#: 128x256 and 256x128 on Hopper. Which one the library picks is unknown, so the wave
#: quantization of each is a feature. Counted against the GPU's own SMs, these describe how a
#: shape fills that GPU, which is what carries over to a GPU the model never saw.
TILE_SHAPES = ((64, 64), (128, 64), (64, 128), (128, 256), (256, 128))

TILE_FEATURES = tuple(
    item for tm, tn in TILE_SHAPES for item in (
        (f"wave_eff_{tm}x{tn}", f"tiles / (waves * SMs) for {tm}x{tn} output tiles"),
        (f"tiles_per_sm_{tm}x{tn}", f"ceil(M/{tm}) ceil(N/{tn}) / SMs"),
    )
)


def tile_features(m, n, sm_count) -> dict[str, np.ndarray]:
    """Wave efficiency and tiles per SM for each tile shape of :data:`TILE_SHAPES`."""
    m, n, sms = (np.asarray(a, dtype=np.float64) for a in (m, n, sm_count))
    # Each tile edge's ceil() once: simulators ask for millions of rows, and these are most of the cost.
    rows = {t: np.ceil(m / t) for t in sorted({tm for tm, _ in TILE_SHAPES})}
    cols = {t: np.ceil(n / t) for t in sorted({tn for _, tn in TILE_SHAPES})}
    out = {}
    for tm, tn in TILE_SHAPES:
        tiles = rows[tm] * cols[tn]
        per_sm = tiles / sms
        out[f"wave_eff_{tm}x{tn}"] = tiles / (np.ceil(per_sm) * sms)
        out[f"tiles_per_sm_{tm}x{tn}"] = per_sm
    return out


def _codes(values) -> tuple[np.ndarray, list]:
    """(integer code per row, distinct values) without Python-level loops over rows."""
    import polars as pl

    ser = values if isinstance(values, pl.Series) else pl.Series(np.asarray(values, dtype=object).astype(str))
    ser = ser.cast(pl.String)
    uniq = ser.unique(maintain_order=True)
    codes = ser.replace_strict(uniq, pl.int_range(len(uniq), eager=True), return_dtype=pl.Int32)
    return codes.to_numpy(), uniq.to_list()


def gpu_columns(gpus, dtypes) -> dict[str, np.ndarray]:
    """Per-row GPU spec values for GPU names and dtypes (arrays or polars Series; peak is per dtype)."""
    g_code, g_names = _codes(gpus)
    d_code, d_names = _codes(dtypes)
    pair = g_code.astype(np.int64) * len(d_names) + d_code
    table = {c: np.full(len(g_names) * len(d_names), np.nan) for c in (*SPEC_COLUMNS, "dtype_bytes")}
    for gi, g in enumerate(g_names):
        spec = get_gpu(g)
        for di, d in enumerate(d_names):
            i = gi * len(d_names) + di
            if not np.any(pair == i):
                continue
            dt = normalize_dtype(d)
            table["peak_tflops"][i] = spec.peak_tflops(dt)
            table["dtype_bytes"][i] = DTYPE_BYTES[dt]
            for c in SPEC_COLUMNS[1:]:
                v = getattr(spec, c)
                table[c][i] = np.nan if v is None else float(v)
    return {c: v[pair] for c, v in table.items()}


def gemm_work(m, n, k, dtype_bytes) -> dict[str, np.ndarray]:
    """FLOPs and no-reuse bytes of [M x K] @ [K x N] GEMMs."""
    m, n, k, s = (np.asarray(a, dtype=np.float64) for a in (m, n, k, dtype_bytes))
    return {"flops": 2.0 * m * n * k, "bytes": s * (m * k + k * n + m * n)}


def roofline_features(m, n, k, flops, nbytes, spec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The runtime feature columns of :data:`RUNTIME_FEATURES` (``k`` may be NaN)."""
    m, n, k = (np.asarray(a, dtype=np.float64) for a in (m, n, k))
    peak = spec["peak_tflops"] * 1e12
    bw = spec["mem_bw_gbs"] * 1e9
    t_comp = flops / peak
    t_mem = nbytes / bw
    t_roof = np.maximum(t_comp, t_mem)
    tiles = np.ceil(m / TILE) * np.ceil(n / TILE)
    sms = spec["sm_count"]
    waves = np.ceil(tiles / sms)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "log2_m": _LOG2(m), "log2_n": _LOG2(n), "log2_k": _LOG2(k),
            "dtype_bytes": spec["dtype_bytes"],
            "log_flops": np.log(flops), "log_bytes": np.log(nbytes), "log_ai": np.log(flops / nbytes),
            "log_t_comp": np.log(t_comp), "log_t_mem": np.log(t_mem), "log_t_roof": np.log(t_roof),
            "log_ridge": np.log(peak / bw),
            "waves": waves, "wave_eff": tiles / (waves * sms), "log_tiles": np.log(tiles),
            "peak_tflops": spec["peak_tflops"], "mem_bw_gbs": spec["mem_bw_gbs"], "sm_count": sms,
            "l2_mb": spec["l2_mb"], "boost_clock_mhz": spec["boost_clock_mhz"],
            "t_roof_s": t_roof,
        }


# ---------------------------------------------------------------- transformer operators
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = ("input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add")
OPERATOR_OPS = GEMM_OPS + ELEMENTWISE_OPS


def operator_work(op, tokens, tp, n_head, n_kv_head, n_embd, n_expanded_embd, gated, dtype_bytes):
    """(m, n, k, flops, bytes) per transformer operator of one tensor-parallel shard.

    GEMM shapes follow Vidur's shard layout (see ``wattlas.ingest.sources.vidur``). Elementwise
    operators get ``n`` = elements per token written, ``k`` = NaN, and FLOP/byte counts of a
    fused kernel reading inputs and writing outputs once (layer norm: 5 FLOP/element; SiLU-mul
    / GELU: 8; RoPE on q and k: 6; add: 1).
    """
    op = np.asarray(op, dtype=object)
    unknown = sorted(set(op.tolist()) - set(OPERATOR_OPS))
    if unknown:
        raise WattlasError(f"unknown operator(s) {unknown}; known: {', '.join(OPERATOR_OPS)}")
    m, t, nh, nkv, h, f, s = (np.asarray(a, dtype=np.float64) for a in
                              (tokens, tp, n_head, n_kv_head, n_embd, n_expanded_embd, dtype_bytes))
    g = np.asarray(gated, dtype=bool)
    d = h / nh
    up = np.where(g, 2.0 * f, f) / t
    nan = np.full(m.shape, np.nan)
    k = np.select([op == "attn_pre_proj", op == "attn_post_proj", op == "mlp_up_proj", op == "mlp_down_proj"],
                  [h, nh * d / t, h, f / t], nan)
    n_gemm = np.select([op == "attn_pre_proj", op == "attn_post_proj", op == "mlp_up_proj", op == "mlp_down_proj"],
                       [(nh + 2 * nkv) * d / t, h, up, h], nan)
    # Elementwise: (elements written per token, elements read per token, FLOP per element).
    qk = (nh + nkv) * d / t
    act_out = f / t
    act_in = np.where(g, 2.0 * f, f) / t
    n_elem = np.select([op == "input_layernorm", op == "post_attention_layernorm", op == "attn_rope",
                        op == "mlp_act", op == "add"], [h, h, qk, act_out, h], nan)
    read = np.select([op == "attn_rope", op == "mlp_act", op == "add"], [qk, act_in, 2 * h], h)
    fpe = np.select([op == "mlp_act", op == "attn_rope", op == "add"], [8.0, 6.0, 1.0], 5.0)
    is_gemm = np.isin(op, GEMM_OPS)
    work = gemm_work(m, np.where(is_gemm, n_gemm, 1.0), np.where(is_gemm, k, 1.0), s)
    flops = np.where(is_gemm, work["flops"], m * n_elem * fpe)
    nbytes = np.where(is_gemm, work["bytes"], s * m * (n_elem + read))
    n = np.where(is_gemm, n_gemm, n_elem)
    return m, n, k, flops, nbytes


def power_features(ref_power_w, ref_time_s, power_limit_w, batch_size, tdp_w, fp32_tflops, mem_bw_gbs):
    """Zeus-style power-limit features around an unconstrained reference run of the workload."""
    ref_p, ref_t, pl_w, bs, tdp = (np.asarray(a, dtype=np.float64) for a in
                                   (ref_power_w, ref_time_s, power_limit_w, batch_size, tdp_w))
    p_phys = np.minimum(ref_p, pl_w)
    t_phys = ref_t * np.maximum(1.0, ref_p / pl_w)
    return {
        "log_ref_power": np.log(ref_p), "log_ref_time": np.log(ref_t),
        "power_limit_w": pl_w, "pl_over_tdp": pl_w / tdp, "log_headroom": np.log(pl_w / ref_p),
        "ref_over_tdp": ref_p / tdp, "log2_batch": np.log2(bs), "tdp_w": tdp,
        "peak_fp32_tflops": np.asarray(fp32_tflops, dtype=np.float64),
        "mem_bw_gbs": np.asarray(mem_bw_gbs, dtype=np.float64),
        "power_phys_w": p_phys, "time_phys_s": t_phys,
    }


POWER_FEATURES = (
    ("log_ref_power", "ln of the reference run's average power (W) at the GPU's highest power limit"),
    ("log_ref_time", "ln of the reference run's time per epoch (s)"),
    ("power_limit_w", "power limit (W)"),
    ("pl_over_tdp", "power limit / TDP"),
    ("log_headroom", "ln(power limit / reference power)"),
    ("ref_over_tdp", "reference power / TDP"),
    ("log2_batch", "log2 batch size"),
    ("tdp_w", "GPU TDP (W)"),
    ("peak_fp32_tflops", "GPU FP32 peak (TFLOP/s)"),
    ("mem_bw_gbs", "GPU memory bandwidth (GB/s)"),
    ("power_phys_w", "physics power min(reference power, limit) (W)"),
    ("time_phys_s", "physics time reference time * max(1, reference power / limit) (s)"),
)

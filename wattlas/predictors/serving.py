"""Serving energy of an LLM deployment from ML.ENERGY v3 measurements (vLLM, continuous batching).

One row is one served configuration, as the ``serving_energy`` table holds it: a model (total and
activated parameters, weight precision), a GPU type and count with tensor/expert/data
parallelism, the average number of sequences the engine decoded at once (``batch_size``) and the
average output length. The ``serving-energy`` predictor learns three measured figures of that
row: energy per output token (J, all GPUs, prefill included), average power (W, all GPUs
together) and median inter-token latency (s).

Physics anchor (one decode step of the whole deployment, N GPUs, B sequences in flight):

- weights read per step: ``W = P_total s (1 - (1 - P_act / P_total)^B)`` bytes. ``s`` is bytes
  per weight (bf16 2, fp8 1, mxfp4 4.25 bits = 0.53). A dense model reads every weight once per
  step (``P_act = P_total``). An MoE token reads only its activated parameters, and B tokens
  that pick experts independently touch ``1 - (1 - r)^B`` of the expert weights, with
  ``r = P_act / P_total`` standing for (experts per token / experts): ``P_act`` at B = 1, all
  weights at large B. Shared (attention) weights are counted as experts here: an approximation.
- KV cache read per step: ``KV = B c k`` bytes, with ``c = output_tokens / 2`` the mean context
  that decode adds (the prompts' lengths are not in the data, so their KV is not counted) and
  ``k = 131072 (P_act / 8e9)^0.4`` bytes per token. 131072 B is Llama-3-8B's bf16 KV per token
  (32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B); the 0.4 power follows Llama-3-70B (327 KB),
  Qwen3-235B-A22B (192 KB) and Qwen3-30B-A3B (98 KB) within 10 %; MLA models (DeepSeek) hold
  about a third of it.
- ``t_mem = (W + KV) / (N BW)``: weights and KV are sharded over all N GPUs (TP or EP; the
  attention replicas of data-parallel attention are not counted). ``t_comp = 2 P_act B / (N F)``
  with F the dense tensor-core peak for the precision (mxfp4 runs as w4a16: the bf16 peak).
- ``t_comm`` (N > 1 only): a tensor-parallel layer ends its attention and its MLP with an
  all-reduce (Megatron-LM, Shoeybi et al. 2019), and a decode step's all-reduces carry a few
  KB to MB, where NCCL's latency floor, not NVLink bandwidth, sets their time. ``t_comm = 2 L
  t_ar`` with ``t_ar`` = :data:`ALLREDUCE_S` (10 us, an assumed order of magnitude, not fitted)
  and ``L = 32 (P_total / 8e9)^0.35`` layers (Llama-3 8B / 70B / 405B: 32 / 80 / 126; the data
  carries no layer count, and MoE models have fewer layers than this gives). Chosen over the
  anchor without it by nested leave-one-model-out (inner folds on the training models only):
  picked in 18 of 18 outer folds, dense energy per token 12.4 % -> 10.5 %.
- ``itl_phys_s = t_mem + t_comp + t_comm`` (no overlap of reading and computing: across the 565
  text-LLM configurations the sum tracks the measured ITL better than the roofline maximum,
  std of ln(measured / physics) 0.40 vs 0.49 on dense models); ``power_phys_w = N TDP``;
  ``energy_per_token_phys_j = power_phys_w itl_phys_s / B``.

Examples
--------
>>> import polars as pl
>>> f = physics_frame(pl.DataFrame({"gpu": ["H100"], "num_gpus": [1], "total_params_b": [8.0],
...     "activated_params_b": [8.0], "precision": ["bf16"], "batch_size": [1.0], "output_tokens": [2.0]}))
>>> round(float(f["itl_phys_s"][0]) * 1e3, 3)   # 16 GB of weights at 3.35 TB/s (4.776 ms) + compute
4.792
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ..errors import WattlasError
from .gpus import get_gpu

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store

#: Bytes per weight of each precision ML.ENERGY v3 serves (mxfp4: 4-bit values + one 8-bit scale per 32).
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "mxfp4": 4.25 / 8}
_PRECISION_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float8": "fp8",
                      "fp8_e4m3": "fp8", "e4m3": "fp8"}
#: The tensor-core peak each precision's kernels run at (fp8 weights: W8A8 fp8 GEMMs; mxfp4: w4a16).
_COMPUTE_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "mxfp4": "bf16"}
KV_BYTES_PER_TOKEN_8B = 131072.0
KV_EXPONENT = 0.4
#: Time of one small all-reduce in a decode step (s): the order of NCCL's latency floor on NVLink.
ALLREDUCE_S = 10e-6
#: Layers of a model of P total parameters: 32 (P / 8e9) ** LAYER_EXPONENT (Llama-3 8B/70B/405B).
LAYER_EXPONENT = 0.35
ARCHITECTURES = ("dense", "moe", "hybrid")
#: Tasks of the ML.ENERGY benchmark that are text LLM serving (the rest is multimodal or diffusion).
TEXT_TASKS = ("lm-arena-chat", "gpqa", "sourcegraph-fim")


def normalize_precision(value: str) -> str:
    """``bf16``, ``fp16``, ``fp8`` or ``mxfp4`` from names such as ``bfloat16``."""
    p = str(value).strip().lower()
    p = _PRECISION_ALIASES.get(p, p)
    if p not in WEIGHT_BYTES:
        raise WattlasError(f"unknown weight precision {value!r}; known: {', '.join(WEIGHT_BYTES)}")
    return p


def normalize_architecture(value: str, total_b: float, activated_b: float) -> str:
    """``dense``, ``moe`` or ``hybrid`` (Mamba-Transformer); ``auto``: MoE when fewer parameters are active."""
    a = str(value).strip().lower()
    if a in ("auto", ""):
        return "moe" if activated_b < total_b else "dense"
    if "hybrid" in a or "mamba" in a:
        return "hybrid"
    if "moe" in a or "mixture" in a:
        return "moe"
    if "dense" in a:
        return "dense"
    raise WattlasError(f"unknown architecture {value!r}; known: {', '.join(ARCHITECTURES)} or auto")


def model_group(model_id: str, total_b: float, activated_b: float) -> str:
    """The leave-one-model-out group of a model: its family and size, so that precision and
    fine-tune variants of one base model (``Qwen3-235B-A22B-Instruct-2507`` and its ``-FP8``,
    the ``-Thinking`` twin; Llama-3.1-70B and Llama-3.3-70B) are held out together.

    >>> model_group("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", 235, 22)
    'qwen3 235B/A22B'
    >>> model_group("meta-llama/Llama-3.3-70B-Instruct", 70, 70)
    'llama 70B'
    """
    name = str(model_id).split("/")[-1].lower()
    family = re.match(r"[a-z]+(?:\d+(?=-))?", name)
    fam = family.group(0) if family else name
    size = f"{total_b:g}B" + (f"/A{activated_b:g}B" if activated_b < total_b else "")
    return f"{fam} {size}"


def _spec_arrays(gpus: np.ndarray, precision: np.ndarray) -> dict[str, np.ndarray]:
    n = len(gpus)
    out = {k: np.full(n, np.nan) for k in ("mem_bw_gbs", "peak_tflops", "tdp_w", "memory_gb")}
    for g, p in set(zip(gpus.tolist(), precision.tolist(), strict=True)):
        rows = (gpus == g) & (precision == p)
        spec = get_gpu(g)
        if spec.tdp_w is None or spec.mem_bw_gbs is None:
            raise WattlasError(f"{spec.name} has no published TDP or memory bandwidth: serving-energy needs both")
        out["mem_bw_gbs"][rows] = spec.mem_bw_gbs
        out["peak_tflops"][rows] = spec.peak_tflops(_COMPUTE_DTYPE[p])
        out["tdp_w"][rows] = spec.tdp_w
        out["memory_gb"][rows] = spec.memory_gb or np.nan
    return out


def _col(frame: pl.DataFrame, name: str, default: float) -> np.ndarray:
    if name not in frame.columns:
        return np.full(frame.height, default)
    return frame[name].cast(float).to_numpy()


def physics_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The physics quantities of the module docstring, one row per input row."""
    import polars as pl

    precision = np.array([normalize_precision(p) for p in frame["precision"].to_list()])
    spec = _spec_arrays(np.array(frame["gpu"].to_list(), dtype=object), precision.astype(object))
    n = _col(frame, "num_gpus", 1.0)
    total = frame["total_params_b"].cast(float).to_numpy() * 1e9
    act = np.minimum(_col(frame, "activated_params_b", np.nan) * 1e9, total)
    act = np.where(np.isnan(act), total, act)
    b = frame["batch_size"].cast(float).to_numpy()
    out_tokens = frame["output_tokens"].cast(float).to_numpy()
    s = np.array([WEIGHT_BYTES[p] for p in precision])
    touched = 1.0 - (1.0 - act / total) ** b
    weight_bytes = total * s * touched
    kv_per_token = KV_BYTES_PER_TOKEN_8B * (act / 8e9) ** KV_EXPONENT
    kv_bytes = b * (out_tokens / 2.0) * kv_per_token
    t_mem = (weight_bytes + kv_bytes) / (n * spec["mem_bw_gbs"] * 1e9)
    t_comp = 2.0 * act * b / (n * spec["peak_tflops"] * 1e12)
    layers = 32.0 * (total / 8e9) ** LAYER_EXPONENT
    t_comm = np.where(n > 1, 2.0 * layers * ALLREDUCE_S, 0.0)
    itl = t_mem + t_comp + t_comm
    power = n * spec["tdp_w"]
    return pl.DataFrame({
        "weight_bytes": weight_bytes, "kv_bytes": kv_bytes, "weight_gb_per_gpu": total * s / n / 1e9,
        "t_mem_s": t_mem, "t_comp_s": t_comp, "t_comm_s": t_comm, "itl_phys_s": itl, "power_phys_w": power,
        "energy_per_token_phys_j": power * itl / b, "weight_bytes_per_param": s, **spec,
    })


FEATURES = (
    ("activated_share", "activated / total parameters (1 for dense)"),
    ("weight_bytes_per_param", "bytes per weight: bf16 2, fp8 1, mxfp4 0.53"),
    ("is_moe", "1 for mixture-of-experts models"),
    ("is_hybrid", "1 for Mamba-Transformer hybrids"),
    ("num_gpus", "GPUs serving one deployment"),
    ("tensor_parallel", "tensor-parallel degree"),
    ("expert_parallel", "expert-parallel degree"),
    ("data_parallel", "data-parallel degree (attention replicas)"),
    ("log2_batch", "log2 of sequences decoded at once (whole deployment)"),
    ("log2_batch_per_gpu", "log2 of sequences per GPU"),
    ("log2_output_tokens", "log2 of the mean output length (tokens)"),
    ("weight_memory_share", "weights / memory of the GPUs (how little room the KV cache has)"),
    ("kv_share", "KV-cache bytes / (weights + KV) read per step"),
    ("log_t_mem", "ln of t_mem (s)"),
    ("log_t_comp", "ln of t_comp (s)"),
    ("log_compute_over_memory", "ln of t_comp / t_mem (> 0: compute-bound step)"),
    ("mem_bw_gbs", "GPU memory bandwidth (GB/s)"),
    ("peak_tflops", "GPU dense peak for the precision's kernels (TFLOP/s)"),
    ("tdp_w", "GPU TDP (W)"),
    ("memory_gb", "GPU memory (GB)"),
    ("energy_per_token_phys_j", "physics base: N TDP itl_phys / B (J per output token)"),
    ("power_phys_w", "physics base: N TDP (W)"),
    ("itl_phys_s", "physics base: t_mem + t_comp + t_comm (s)"),
    # Last, so that the columns before it keep their order (tree fits depend on it).
    ("log_t_comm_share", "ln(1 + t_comm / (t_mem + t_comp)): share of the step in all-reduces"),
)


def _architecture_flags(frame: pl.DataFrame, total_b: np.ndarray, act_b: np.ndarray) -> np.ndarray:
    arch = frame["architecture"].to_list() if "architecture" in frame.columns else ["auto"] * frame.height
    return np.array([normalize_architecture(a, t, x) for a, t, x in zip(arch, total_b, act_b, strict=True)])


def features(frame: pl.DataFrame) -> pl.DataFrame:
    """Feature frame of the ``serving-energy`` model (:data:`FEATURES`, in that order)."""
    import polars as pl

    ph = physics_frame(frame)
    total_b = frame["total_params_b"].cast(float).to_numpy()
    act_b = np.minimum(_col(frame, "activated_params_b", np.nan), total_b)
    act_b = np.where(np.isnan(act_b), total_b, act_b)
    arch = _architecture_flags(frame, total_b, act_b)
    n = _col(frame, "num_gpus", 1.0)
    b = frame["batch_size"].cast(float).to_numpy()
    cols = {
        "activated_share": act_b / total_b, "weight_bytes_per_param": ph["weight_bytes_per_param"].to_numpy(),
        "is_moe": (arch == "moe").astype(float), "is_hybrid": (arch == "hybrid").astype(float), "num_gpus": n,
        "tensor_parallel": _col(frame, "tensor_parallel", 1.0), "expert_parallel": _col(frame, "expert_parallel", 1.0),
        "data_parallel": _col(frame, "data_parallel", 1.0), "log2_batch": np.log2(b),
        "log2_batch_per_gpu": np.log2(b / n), "log2_output_tokens": np.log2(frame["output_tokens"].cast(float)),
        "weight_memory_share": ph["weight_gb_per_gpu"].to_numpy() / ph["memory_gb"].to_numpy(),
        "kv_share": (ph["kv_bytes"] / (ph["weight_bytes"] + ph["kv_bytes"])).to_numpy(),
        "log_t_mem": np.log(ph["t_mem_s"].to_numpy()), "log_t_comp": np.log(ph["t_comp_s"].to_numpy()),
        "log_compute_over_memory": np.log((ph["t_comp_s"] / ph["t_mem_s"]).to_numpy()),
        "log_t_comm_share": np.log1p((ph["t_comm_s"] / (ph["t_mem_s"] + ph["t_comp_s"])).to_numpy()),
    }
    for c in ("mem_bw_gbs", "peak_tflops", "tdp_w", "memory_gb", "energy_per_token_phys_j", "power_phys_w",
              "itl_phys_s"):
        cols[c] = ph[c].to_numpy()
    return pl.DataFrame({k: np.asarray(cols[k], dtype=np.float64) for k, _ in FEATURES})


def raw_features(frame: pl.DataFrame) -> pl.DataFrame:
    """The inputs as numbers, without physics (for the linear and raw gradient-boosting baselines)."""
    import polars as pl

    f = features(frame)
    return pl.DataFrame({
        "total_params_b": frame["total_params_b"].cast(float),
        "activated_params_b": frame["total_params_b"].cast(float).to_numpy() * f["activated_share"].to_numpy(),
        "weight_bytes_per_param": f["weight_bytes_per_param"], "is_moe": f["is_moe"], "is_hybrid": f["is_hybrid"],
        "num_gpus": f["num_gpus"], "tensor_parallel": f["tensor_parallel"], "expert_parallel": f["expert_parallel"],
        "data_parallel": f["data_parallel"], "batch_size": frame["batch_size"].cast(float),
        "output_tokens": frame["output_tokens"].cast(float), "mem_bw_gbs": f["mem_bw_gbs"],
        "peak_tflops": f["peak_tflops"], "tdp_w": f["tdp_w"], "memory_gb": f["memory_gb"],
    })


#: ``serving_energy`` columns the training frame reads, and the predictor input each becomes.
TABLE_COLUMNS = {
    "model_id": "model_id", "task": "task", "architecture": "architecture", "total_params_b": "total_params_b",
    "activated_params_b": "activated_params_b", "weight_precision": "precision", "gpu": "gpu",
    "num_gpus": "num_gpus", "tensor_parallel": "tensor_parallel", "expert_parallel": "expert_parallel",
    "data_parallel": "data_parallel", "max_num_seqs": "max_num_seqs", "avg_batch_size": "batch_size",
    "avg_output_tokens": "output_tokens", "energy_per_token_j": "y_energy_per_token_j",
    "avg_power_w": "y_avg_power_w", "median_itl_s": "y_median_itl_s",
}


def from_table(rows: pl.DataFrame) -> pl.DataFrame:
    """Training rows from ``serving_energy`` rows: text-LLM tasks only, renamed, with the groups.

    Rows are sorted (tree fits sum in row order, and SQL returns rows in no fixed order), so the
    same store gives the same cross-validation table run after run.
    """
    import polars as pl

    rows = rows.filter(pl.col("task").is_in(TEXT_TASKS))
    if rows.height == 0:
        return pl.DataFrame()
    out = rows.select([pl.col(k).alias(v) for k, v in TABLE_COLUMNS.items()])
    groups = [model_group(m, t, a) for m, t, a in
              zip(out["model_id"], out["total_params_b"], out["activated_params_b"], strict=True)]
    arch = [normalize_architecture(a or "auto", t, x) for a, t, x in
            zip(out["architecture"], out["total_params_b"], out["activated_params_b"], strict=True)]
    return out.with_columns(
        model_group=pl.Series(groups), architecture=pl.Series(arch),
        precision=pl.col("precision").map_elements(normalize_precision, return_dtype=pl.String),
        gpu=pl.col("gpu").map_elements(lambda g: get_gpu(g).key, return_dtype=pl.String),
        evaluate=pl.lit(True),
    ).sort("model_id", "task", "gpu", "num_gpus", "tensor_parallel", "expert_parallel", "data_parallel",
           "max_num_seqs", "batch_size")


def training_frame(store: Store, include_quick: bool = False) -> pl.DataFrame:
    """``serving-energy`` training rows from the store's ``serving_energy`` table (text LLM tasks)."""
    cols = ", ".join(TABLE_COLUMNS)
    try:
        rows = store.sql(f"select {cols} from serving_energy order by model_id, task, gpu, num_gpus, "
                         "tensor_parallel, expert_parallel, data_parallel, max_num_seqs, avg_batch_size")
    except Exception as e:  # no table yet: say what to ingest
        raise WattlasError(f"no serving_energy rows in the store ({e}): run `wattlas ingest mlenergy-v3` "
                           "first") from e
    frame = from_table(rows)
    if frame.height == 0:
        raise WattlasError("no text-LLM serving_energy rows in the store: run `wattlas ingest mlenergy-v3` first")
    return frame

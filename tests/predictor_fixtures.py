"""Small synthetic training data for every predictor (no ../shared data needed).

``vidur_store`` writes Vidur-shaped ``operator_times`` rows (four real architectures whose
operators share shapes the way the real profiles do: Llama-2-7B and Llama-3-8B share h = 4096;
Qwen-72B's RoPE at TP 2 is Llama-2-7B's at TP 1) on two GPUs, plus a `wattlas bench gemm` run on
H100 whose shapes Vidur also profiled. Times are roofline times with a shape-dependent
efficiency and noise, so the tree fits have something to learn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from wattlas.bench.session import rows_to_table
from wattlas.predictors import features as F
from wattlas.predictors.gpus import get_gpu
from wattlas.store import Store

#: (model, n_embd, n_expanded_embd, n_head, n_kv_head, gated), as in Vidur's profiles.
MODELS = (
    ("meta-llama/Llama-2-7b-hf", 4096, 11008, 32, 32, True),
    ("meta-llama/Meta-Llama-3-8B", 4096, 14336, 32, 8, True),
    ("Qwen/Qwen-72B", 8192, 24576, 64, 64, True),
    ("microsoft/phi-2", 2560, 10240, 32, 32, False),
)
GPUS = ("A100-SXM4-80GB", "H100-SXM")
TOKENS = (1, 8, 32, 128, 512, 2048)


def operator_rows(seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for gpu in GPUS:
        for model, h, f, nh, nkv, gated in MODELS:
            for tp in (1, 2):
                for tokens in TOKENS:
                    for op in F.OPERATOR_OPS:
                        rows.append(dict(gpu=gpu, model=model, op=op, num_tokens=tokens, tensor_parallel=tp,
                                         n_head=nh, n_kv_head=nkv, n_embd=h, n_expanded_embd=f,
                                         use_gated_mlp=gated))
    df = pl.DataFrame(rows)
    spec = F.gpu_columns(df["gpu"], pl.Series(["fp16"] * df.height))
    m, n, k, flops, nbytes = F.operator_work(
        df["op"].to_numpy(), df["num_tokens"].to_numpy(), df["tensor_parallel"].to_numpy(), df["n_head"].to_numpy(),
        df["n_kv_head"].to_numpy(), df["n_embd"].to_numpy(), df["n_expanded_embd"].to_numpy(),
        df["use_gated_mlp"].to_numpy(), spec["dtype_bytes"])
    t_roof = np.maximum(flops / (spec["peak_tflops"] * 1e12), nbytes / (spec["mem_bw_gbs"] * 1e9))
    eff = 0.35 + 0.4 * np.tanh(np.log1p(m) / 6)  # small batches use the GPU worse
    t = (t_roof / eff + 4e-6) * rng.uniform(0.95, 1.05, df.height)
    is_gemm = np.isin(df["op"].to_numpy(), F.GEMM_OPS)
    as_int = [None if not g else int(round(v)) for g, v in zip(is_gemm, np.nan_to_num(n), strict=True)]
    k_int = [None if not g else int(round(v)) for g, v in zip(is_gemm, np.nan_to_num(k), strict=True)]
    return df.with_columns(
        gpu_label=pl.col("gpu").str.slice(0, 4).str.to_lowercase(), vocab_size=pl.lit(32000, pl.Int32),
        dtype=pl.lit("fp16"), is_gemm=pl.Series(is_gemm),
        m=pl.when(pl.Series(is_gemm)).then(pl.col("num_tokens")), n=pl.Series(as_int, dtype=pl.Int64),
        k=pl.Series(k_int, dtype=pl.Int64), time_min_s=pl.Series(t * 0.98), time_max_s=pl.Series(t * 1.05),
        time_mean_s=pl.Series(t), time_median_s=pl.Series(t), time_std_s=pl.Series(t * 0.01),
        row=pl.int_range(pl.len(), dtype=pl.Int64),
        n_head=pl.col("n_head").cast(pl.Int32), n_kv_head=pl.col("n_kv_head").cast(pl.Int32),
        n_embd=pl.col("n_embd").cast(pl.Int32), n_expanded_embd=pl.col("n_expanded_embd").cast(pl.Int32),
    )


def bench_gemm_rows() -> tuple[list[dict], list[dict]]:
    """One `bench gemm` run on H100: two shapes Vidur has (Llama-2-7B attention output at M 128, 512)
    and one it has not."""
    spec = get_gpu("H100-SXM")
    runs = [{"run_id": "g1", "bench": "gemm", "status": "complete", "device_type": "cuda", "quick": False,
             "started_at_utc": datetime(2026, 11, 1, tzinfo=UTC)}]
    res = []
    for i, (m, n, k) in enumerate(((128, 4096, 4096), (512, 4096, 4096), (4096, 8192, 8192))):
        t = 2.0 * m * n * k / (spec.peak_tflops("bf16") * 1e12) / 0.7 + 5e-6
        res.append(dict(run_id="g1", point_id=i, kind="gemm", device_type="cuda", gpu_name="NVIDIA H100 80GB HBM3",
                        dtype="fp16", m=m, n=n, k=k, time_per_iter_s_median=t, energy_source="nvml_counter",
                        window_too_short=False))
    return runs, res


def vidur_store(root: Path, *, bench: bool = True) -> Store:
    st = Store(root)
    with st.transaction("vidur-profiling") as tx:
        tx.put("operator_times", "fixture", operator_rows())
    if bench:
        runs, res = bench_gemm_rows()
        with st.transaction("wattlas-bench") as tx:
            tx.put("bench_runs", "g1", rows_to_table(runs))
            tx.put("bench_results", "g1.0", rows_to_table(res))
    return st


def zeus_frame() -> pl.DataFrame:
    """training_power-shaped rows: 3 networks x 2 GPUs x 4 power limits, reference rows included."""
    from wattlas.predictors.definitions import zeus_reference_runs

    rng = np.random.default_rng(1)
    rows = []
    for gpu, top in (("A40", 300.0), ("V100-PCIe", 250.0)):
        for net in ("resnet50", "bert", "ncf"):
            ref_p, ref_t = rng.uniform(150, 280), rng.uniform(10, 100)
            for pl_w in (top - 150, top - 100, top - 50, top):
                rows.append(dict(gpu=gpu, dataset="d", network=net, batch_size=64, optimizer="adam",
                                 power_limit_w=pl_w, time_per_epoch_s=ref_t * max(1.0, ref_p / pl_w),
                                 avg_power_w=min(ref_p, pl_w) * rng.uniform(0.97, 1.0)))
    return zeus_reference_runs(pl.DataFrame(rows)).with_columns(y=pl.col("avg_power_w"))

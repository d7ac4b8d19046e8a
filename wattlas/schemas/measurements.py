"""Public GPU measurement sets: Zeus power traces and Vidur operator profiles."""

from ._base import Column, TableSchema

TRAINING_POWER = TableSchema(
    name="training_power",
    description=(
        "One row per (GPU, workload, batch size, optimizer, power limit) training configuration: "
        "measured time per epoch and average GPU power (Zeus NSDI'23 power traces, measured once each)."
    ),
    columns=(
        Column("gpu_label", "string", "GPU as the raw file names it (`a40`, `v100`, `p100`, `rtx6000`)", required=True),
        Column(
            "gpu", "string",
            "GPU specification key of `wattlas predictors gpus` (`A40`, `V100-PCIe`, ...)", required=True,
        ),
        Column("dataset", "string", "Training data set (`imagenet`, `squad`, ...)", required=True),
        Column("network", "string", "DNN trained (`resnet50`, `bert_base_uncased`, ...)", required=True),
        Column("batch_size", "int32", "Training batch size", unit="samples", required=True, min=0),
        Column("optimizer", "string", "Optimizer (`adadelta`, `adam`, `adamw`)", required=True),
        Column("power_limit_w", "float64", "GPU power limit set for the run", unit="W", required=True, min=0),
        Column("time_per_epoch_s", "float64", "Measured duration of one training epoch", unit="s", required=True,
               min=0),
        Column("avg_power_w", "float64", "Measured average GPU power during the epoch", unit="W", required=True, min=0),
        Column(
            "energy_per_epoch_j", "float64",
            "Derived: `time_per_epoch_s * avg_power_w` (both measured)", unit="J", required=True, min=0
        ),
        Column("row", "int64", "0-based data row in the raw file", required=True, min=0),
    ),
)

OPERATOR_TIMES = TableSchema(
    name="operator_times",
    description=(
        "One row per (GPU, model, tensor-parallel degree, token count, operator) of a transformer "
        "layer profile: measured GPU time statistics (Vidur `mlp.csv`, 20 timed repetitions), with "
        "the GEMM shape reconstructed from the model columns for the projection operators."
    ),
    columns=(
        Column("gpu_label", "string", "GPU folder of the raw file (`a100`, `a40`, `h100`)", required=True),
        Column("gpu", "string", "GPU specification key (`A100-SXM4-80GB`, `A40`, `H100-SXM`)", required=True),
        Column("model", "string", "Model as `<org>/<name>` from the raw path", required=True),
        Column(
            "op", "string",
            "Operator: `attn_pre_proj`, `attn_post_proj`, `mlp_up_proj`, `mlp_down_proj` (GEMMs), "
            "`input_layernorm`, `post_attention_layernorm`, `attn_rope`, `mlp_act`, `add`, `emb`",
            required=True,
        ),
        Column("num_tokens", "int64", "Tokens in the batch (GEMM rows M)", unit="tokens", required=True, min=0),
        Column(
            "tensor_parallel", "int32", "Tensor-parallel degree whose shard shapes were profiled", required=True, min=1,
        ),
        Column("n_head", "int32", "Query heads of the full model", required=True, min=1),
        Column("n_kv_head", "int32", "Key/value heads of the full model", required=True, min=1),
        Column("n_embd", "int32", "Hidden size h", required=True, min=1),
        Column("n_expanded_embd", "int32", "MLP intermediate size f (per branch when gated)", required=True, min=1),
        Column("vocab_size", "int32", "Vocabulary size (embedding only)", required=True),
        Column("use_gated_mlp", "bool", "Gated (SiLU-and-mul) MLP; false: GELU, biased (phi-2)", required=True),
        Column("dtype", "string", "Element type profiled (`fp16`, Vidur's default)", required=True),
        Column("is_gemm", "bool", "The operator is one GEMM [M x K] @ [K x N]", required=True),
        Column("m", "int64", "GEMM rows M (= num_tokens); null for non-GEMM operators"),
        Column("n", "int64", "GEMM output columns N of one tensor-parallel shard; null for non-GEMM"),
        Column("k", "int64", "GEMM reduction size K of one tensor-parallel shard; null for non-GEMM"),
        Column("time_min_s", "float64", "Fastest of the timed repetitions", unit="s", required=True, min=0),
        Column("time_max_s", "float64", "Slowest of the timed repetitions", unit="s", required=True, min=0),
        Column("time_mean_s", "float64", "Mean of the timed repetitions", unit="s", required=True, min=0),
        Column("time_median_s", "float64", "Median of the timed repetitions", unit="s", required=True, min=0),
        Column("time_std_s", "float64", "Standard deviation of the timed repetitions", unit="s", required=True, min=0),
        Column("row", "int64", "0-based data row in the raw file", required=True, min=0),
    ),
    notes=(
        "Vidur's token grid overlaps at 2048 and 4096, so those token counts appear twice per "
        "(model, tensor-parallel degree); both measurements are kept as rows.",
    ),
)

TABLES = (TRAINING_POWER, OPERATOR_TIMES)

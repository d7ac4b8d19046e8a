"""Serving-engine energy measurements: the ML.ENERGY Benchmark v3 leaderboard configurations."""

from ._base import Column, TableSchema

_TEXT = "text and multimodal chat tasks (`llm`, `mllm`); null for diffusion"
_IMAGE = "`text-to-image` only; null otherwise"
_VIDEO = "`text-to-video` only; null otherwise"
_DIFFUSION = "diffusion tasks only; null otherwise"

SERVING_ENERGY = TableSchema(
    name="serving_energy",
    description=(
        "One row per measured serving configuration (model, task, GPU, GPU count, parallelism, batch "
        "setting) of a serving-engine energy benchmark: the ML.ENERGY Benchmark v3 (vLLM for text and "
        "multimodal chat, diffusers/xDiT for diffusion, GPU energy by Zeus). Every figure is as the "
        "leaderboard publishes it, converted to the unit in the column name; power and energy are of "
        "all `num_gpus` GPUs together."
    ),
    columns=(
        Column("model_id", "string", "Hugging Face model id (`meta-llama/Llama-3.1-8B-Instruct`)", required=True),
        Column("nickname", "string", "Display name of the model, from the leaderboard index"),
        Column(
            "task", "string",
            "Benchmark task: `lm-arena-chat` (chat), `gpqa` (reasoning), `sourcegraph-fim` (code completion), "
            "`image-chat`, `video-chat`, `text-to-image`, `text-to-video`",
            required=True,
        ),
        Column(
            "architecture_family", "string",
            "Task family from the index's `architectures`: `llm`, `mllm` (multimodal LLM) or `diffusion`",
            required=True,
        ),
        Column(
            "architecture", "string",
            "Model architecture as published: `Dense Transformer`, `MoE` or `Mamba-Transformer Hybrid`; "
            "null where not published (diffusion models)",
        ),
        Column("total_params_b", "float64", "Total parameters", unit="1e9 parameters", required=True, min=0),
        Column(
            "activated_params_b", "float64", "Parameters active per token (= total for dense models)",
            unit="1e9 parameters", required=True, min=0,
        ),
        Column(
            "weight_precision", "string", "Weight precision as published: `bfloat16`, `fp8`, `mxfp4`",
            required=True,
        ),
        Column(
            "gpu", "string", "GPU specification key of `wattlas predictors gpus` (`H100-SXM`, `B200`)",
            required=True,
        ),
        Column("gpu_label", "string", "GPU as the leaderboard names it (`gpu_model`: `H100`, `B200`)", required=True),
        Column("num_gpus", "int32", "GPUs serving the model (power and energy are of all of them)", required=True,
               min=1),
        Column(
            "tensor_parallel", "int32",
            f"Tensor-parallel degree; {_TEXT}. `num_gpus` = tensor x data parallel, or the expert-parallel "
            "degree where both are 1", min=1,
        ),
        Column("expert_parallel", "int32", f"Expert-parallel degree (1 for dense models); {_TEXT}", min=1),
        Column("data_parallel", "int32", f"Data-parallel degree; {_TEXT}", min=1),
        Column(
            "parallel_notes", "string",
            "The leaderboard's note on the parallelism (`DP for attention, EP for MLP experts`); null when "
            "it publishes none or an empty one",
        ),
        Column("ulysses_degree", "int32", f"Ulysses sequence-parallel degree; {_DIFFUSION}", min=1),
        Column("ring_degree", "int32", f"Ring-attention sequence-parallel degree; {_DIFFUSION}", min=1),
        Column(
            "max_num_seqs", "int32",
            f"The serving engine's batch cap (vLLM `max_num_seqs`), the swept setting; {_TEXT}",
            unit="requests", min=1,
        ),
        Column(
            "avg_batch_size", "float64", f"Measured average running batch during the steady state; {_TEXT}",
            unit="requests", min=0,
        ),
        Column(
            "avg_output_tokens", "float64", f"Average output length per request (`avg_output_len`); {_TEXT}",
            unit="tokens", min=0,
        ),
        Column(
            "avg_power_w", "float64", "Measured average power of all `num_gpus` GPUs during the steady state",
            unit="W", required=True, min=0,
        ),
        Column(
            "energy_per_request_j", "float64",
            f"Energy per request as published (= `energy_per_token_j * avg_output_tokens`); {_TEXT}",
            unit="J", min=0,
        ),
        Column(
            "energy_per_token_j", "float64",
            f"Steady-state energy per output token of all GPUs (= `avg_power_w / "
            f"output_throughput_tokens_per_s`); {_TEXT}",
            unit="J", min=0,
        ),
        Column("median_itl_s", "float64", f"Median inter-token latency; {_TEXT}", unit="s", min=0),
        Column("p90_itl_s", "float64", f"90th-percentile inter-token latency; {_TEXT}", unit="s", min=0),
        Column("p95_itl_s", "float64", f"95th-percentile inter-token latency; {_TEXT}", unit="s", min=0),
        Column("p99_itl_s", "float64", f"99th-percentile inter-token latency; {_TEXT}", unit="s", min=0),
        Column(
            "output_throughput_tokens_per_s", "float64", f"Steady-state output tokens per second; {_TEXT}",
            unit="tokens/s", min=0,
        ),
        Column(
            "output_length_bins", "list<float64>",
            f"Output-length histogram of the configuration's requests: the n+1 bin edges, increasing; {_TEXT}",
            unit="tokens",
        ),
        Column(
            "output_length_counts", "list<int64>",
            f"Output-length histogram: requests per bin (n counts for the n+1 edges); {_TEXT}",
            unit="requests",
        ),
        Column("batch_size", "int32", f"Images or videos generated per batch; {_DIFFUSION}", min=1),
        Column("inference_steps", "int32", f"Denoising steps per generation; {_DIFFUSION}", unit="steps", min=1),
        Column(
            "batch_latency_s", "float64", f"Measured time to generate one batch; {_DIFFUSION}", unit="s", min=0,
        ),
        Column(
            "energy_per_image_j", "float64",
            f"Energy per image (= `avg_power_w * batch_latency_s / batch_size`); {_IMAGE}", unit="J", min=0,
        ),
        Column(
            "throughput_images_per_s", "float64", f"Images per second (= `batch_size / batch_latency_s`); {_IMAGE}",
            unit="images/s", min=0,
        ),
        Column("image_height_px", "int32", f"Generated image height; {_IMAGE}", unit="px", min=1),
        Column("image_width_px", "int32", f"Generated image width; {_IMAGE}", unit="px", min=1),
        Column(
            "energy_per_video_j", "float64",
            f"Energy per video (= `avg_power_w * batch_latency_s / batch_size`); {_VIDEO}", unit="J", min=0,
        ),
        Column(
            "throughput_videos_per_s", "float64", f"Videos per second (= `batch_size / batch_latency_s`); {_VIDEO}",
            unit="videos/s", min=0,
        ),
        Column("video_height_px", "int32", f"Generated video height; {_VIDEO}", unit="px", min=1),
        Column("video_width_px", "int32", f"Generated video width; {_VIDEO}", unit="px", min=1),
        Column("num_frames", "int32", f"Frames per generated video; {_VIDEO}", unit="frames", min=1),
        Column("fps", "int32", f"Frame rate of the generated video; {_VIDEO}", unit="frames/s", min=1),
        Column("last_updated", "date", "The leaderboard index's `last_updated` date", required=True),
        Column(
            "configuration", "int32", "0-based position in the raw file's `configurations` list", required=True,
            min=0,
        ),
    ),
    notes=(
        "The files also publish, per (model, task), an `output_length_distribution` that is the sum of "
        "the configurations' histograms; the reader checks that it is and does not store it again. A "
        "JSON key the reader does not know is refused (naming the file and the key), never dropped.",
    ),
)

TABLES = (SERVING_ENERGY,)

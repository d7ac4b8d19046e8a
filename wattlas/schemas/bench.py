"""Bench measurements: one row per run, one per measured point, and the power-sample timelines.

Written by ``wattlas bench`` (source ``wattlas-bench``); rows are keyed by run id (``bench_runs``)
and by ``<run_id>.<point_id>`` (``bench_results``, ``power_samples``), so a run interrupted
half-way keeps every point it finished. Column meanings follow the methodology reference
(``shared/spec/bench.md``, section 9).
"""

from ._base import Column, TableSchema

_ENERGY_SOURCE = (
    "Where `energy_j` comes from: `nvml_counter` (GPU total-energy counter, synchronized window), "
    "`rapl` (CPU package counters), or `unavailable` (then `energy_j` is null and "
    "`energy_unavailable_reason` says why)"
)

BENCH_RUNS = TableSchema(
    name="bench_runs",
    description=(
        "One row per `wattlas bench` run: the machine, software versions, device settings in force "
        "and the options used. Written with status `running` when the run starts and rewritten when "
        "it ends (`complete`, `interrupted` or `failed`)."
    ),
    columns=(
        Column("run_id", "string", "Run id (UTC start time plus a random suffix)", required=True),
        Column("bench", "string", "What was run: `gemm`, `llm`, `colocate`, `energy-check`", required=True),
        Column("status", "string", "`running`, `complete`, `interrupted` (Ctrl-C) or `failed`", required=True),
        Column("started_at_utc", "timestamp[us, UTC]", "Run start", required=True),
        Column("ended_at_utc", "timestamp[us, UTC]", "Run end; null while running"),
        Column("points", "int64", "Points measured and committed", unit="points"),
        Column("command_line", "string", "The command line as typed"),
        Column("settings_json", "string", "Every option of the run (sizes, dtypes, windows, ...) as JSON"),
        Column("quick", "bool", "`--quick`: short windows, results flagged `window_too_short`"),
        Column("host", "string", "Host name"),
        Column("cluster_run_id", "string",
               "`--engine ray`: the id shared by the runs (one per device or node) of one cluster command; "
               "null for a local run"),
        Column("ray_node_id", "string", "`--engine ray`: the Ray node the run's actor ran on"),
        Column("ray_node_ip", "string", "`--engine ray`: that node's IP address"),
        Column("os", "string", "Operating system and kernel release"),
        Column("python_version", "string", "Python version"),
        Column("wattlas_version", "string", "wattlas version (package metadata)"),
        Column("wattlas_commit", "string", "Git commit of the wattlas checkout, where known"),
        Column("device_type", "string", "`cuda` or `cpu`: where the workloads ran", required=True),
        Column("gpu_count", "int32", "GPUs NVML sees", unit="GPUs"),
        Column("gpu_name", "string", "Name of the GPU used (NVML)"),
        Column("gpu_uuid", "string", "UUID of the GPU used (NVML), matched to the CUDA device by UUID"),
        Column("pci_bus_id", "string", "PCI bus id of the GPU used"),
        Column("gpu_arch", "string", "NVML architecture name (`hopper`, `ampere`, ...)"),
        Column("compute_capability", "string", "CUDA compute capability (`9.0`)"),
        Column("sm_count", "int32", "Streaming multiprocessors", unit="SMs"),
        Column("gpu_memory_total_mb", "float64", "GPU memory", unit="MiB"),
        Column("l2_cache_mb", "float64", "L2 cache size", unit="MiB"),
        Column("driver_version", "string", "NVIDIA driver version"),
        Column("nvml_version", "string", "NVML library version"),
        Column("cuda_driver_version", "string", "CUDA version the driver supports (NVML)"),
        Column("cuda_version", "string", "CUDA version torch was built with"),
        Column("torch_version", "string", "torch version (null when not used)"),
        Column("transformers_version", "string", "transformers version (LLM runs)"),
        Column("numpy_version", "string", "numpy version"),
        Column("nvml_unavailable_reason", "string", "Why NVML could not be used (null when it was)"),
        Column("power_limit_w", "float64", "Enforced power limit at run start", unit="W"),
        Column("power_limit_default_w", "float64", "Default power limit", unit="W"),
        Column("power_limit_min_w", "float64", "Lowest settable power limit", unit="W"),
        Column("power_limit_max_w", "float64", "Highest settable power limit", unit="W"),
        Column(
            "clocks_locked",
            "string",
            "`true` when this run locked the SM clocks (opt-in sweep), `false` when NVML reports the "
            "default application clocks and this run set none, `unknown` otherwise (NVML has no query "
            "for clocks locked by someone else)",
        ),
        Column("persistence_mode", "bool", "GPU persistence mode"),
        Column("mig_mode", "bool", "MIG enabled (current mode)"),
        Column("tf32_allowed", "bool", "torch's default for TF32 in fp32 matmuls (GEMM tf32 rows set it per row)"),
        Column("allow_device_settings", "bool", "`--allow-device-settings` given (power/clock sweeps)"),
        Column("peak_tflops_json", "string", "Dense peak TFLOP/s per dtype used for `peak_fraction`, as JSON"),
        Column("peak_source", "string", "Where the peak figures come from"),
        Column("peak_mem_bandwidth_gb_s", "float64", "Datasheet memory bandwidth (roofline)", unit="GB/s"),
        Column("cpu_model", "string", "CPU model name (/proc/cpuinfo)"),
        Column("cpu_count", "int32", "Logical CPUs available to the process", unit="CPUs"),
        Column("rapl_status", "string", "`available` or why CPU energy cannot be read (`no_powercap`, ...)"),
        Column("energy_source", "string", "Primary energy source of the run's rows (see bench_results)"),
        Column("energy_unavailable_reason", "string", "Why energy is unavailable for the whole run"),
        Column("idle_power_w", "float64", "Idle power measured at run start (counter over `idle_s`)", unit="W"),
        Column("idle_s", "float64", "Length of the idle measurement", unit="s"),
        Column("sampler_period_s", "float64", "Power sampler period", unit="s"),
        Column("window_s", "float64", "Requested energy window per point", unit="s"),
        Column("warmup_s", "float64", "Requested warm-up per point", unit="s"),
        Column("loadavg_1m_start", "float64", "1-minute load average at run start"),
        Column(
            "other_gpu_processes_start", "int32",
            "Compute processes of others on the GPU at "
            "start", unit="processes",
        ),
        Column("error", "string", "Error message of a failed run"),
    ),
)

BENCH_RESULTS = TableSchema(
    name="bench_results",
    description=(
        "One row per measured point: a GEMM shape and dtype, an LLM phase at a batch size and "
        "length, or one workload of a co-location pair. Time comes from CUDA events (GPU) or "
        "perf_counter (CPU); energy from a separate synchronized window of at least `window_s` "
        "(GPU: NVML energy counter; CPU: RAPL), never estimated: unmeasurable energy is null with "
        "`energy_source = 'unavailable'` and a reason."
    ),
    columns=(
        Column("run_id", "string", "Run id (joins bench_runs)", required=True),
        Column("point_id", "int64", "0-based point number within the run", required=True),
        Column(
            "kind", "string",
            "`gemm`, `prefill` (forward over the prompt), `decode` (one token step with KV cache), "
            "`e2e` (prefill plus all decode steps of a batch of requests), `colocation`",
            required=True,
        ),
        Column("started_at_utc", "timestamp[us, UTC]", "When the point started"),
        Column("device_type", "string", "`cuda` or `cpu`", required=True),
        Column("device_index", "int32", "CUDA device index (null on CPU)"),
        Column("gpu_name", "string", "GPU name (null on CPU)"),
        Column("gpu_uuid", "string", "GPU UUID (null on CPU)"),
        Column("backend", "string", "`torch` (CUDA), `numpy` (CPU), `transformers`"),
        Column("dtype", "string", "`fp32`, `tf32` (fp32 inputs, TF32 allowed), `bf16`, `fp16`, `fp8` (e4m3), `fp64`"),
        Column("tf32_allowed", "bool", "TF32 allowed for fp32 matmuls during this point (CUDA)"),
        Column("m", "int64", "GEMM rows of A and C"),
        Column("n", "int64", "GEMM columns of B and C"),
        Column("k", "int64", "GEMM inner dimension"),
        Column("bytes_per_iter", "float64", "Fewest bytes a GEMM must move (A, B read once, C written once)", unit="B"),
        Column("arithmetic_intensity_flop_per_byte", "float64", "flops_per_iter / bytes_per_iter", unit="FLOP/B"),
        Column("model", "string", "Architecture config name (`llama-3-8b`, `tiny-llama`, ...)"),
        Column("model_config_hash", "string", "SHA-256 (first 16 hex) of the architecture config JSON"),
        Column("model_params", "int64", "Parameters of the model", unit="parameters"),
        Column("attn_implementation", "string", "Attention kernel used by transformers (`sdpa`, `eager`)"),
        Column("batch_size", "int64", "Sequences per batch", unit="sequences"),
        Column(
            "input_tokens", "int64",
            "Prompt length per sequence (decode: context before the first "
            "step)", unit="tokens",
        ),
        Column(
            "output_tokens", "int64",
            "Generated tokens per sequence (decode: steps before the cache is "
            "cropped back)", unit="tokens",
        ),
        Column("input_init", "string", "How inputs/weights were filled (`normal(0,1)`, `normal(0,0.02)`)"),
        Column("l2_flush", "bool", "L2 flushed before each timed iteration (cold) or not (warm)"),
        Column("warmup_s", "float64", "Warm-up run before timing", unit="s"),
        Column("n_iters", "int64", "Timed iterations (samples behind the quantiles)", unit="iterations"),
        Column("time_per_iter_s_median", "float64", "Median time per iteration", unit="s"),
        Column("time_per_iter_s_p10", "float64", "10th percentile time per iteration", unit="s"),
        Column("time_per_iter_s_p90", "float64", "90th percentile time per iteration", unit="s"),
        Column("time_per_iter_s_mean", "float64", "Mean time per iteration", unit="s"),
        Column("timer", "string", "`cuda_event` or `perf_counter`"),
        Column("flops_per_iter", "float64", "Floating-point operations per iteration (GEMM: 2MNK)", unit="FLOP"),
        Column("tflops", "float64", "flops_per_iter / time_per_iter_s_median / 1e12", unit="TFLOP/s"),
        Column("peak_tflops", "float64", "Datasheet dense peak for this dtype (null where unknown)", unit="TFLOP/s"),
        Column("peak_fraction", "float64", "tflops / peak_tflops"),
        Column("window_s", "float64", "Length of the energy window (synchronized at both ends)", unit="s"),
        Column("window_iters", "int64", "Iterations run back to back in the energy window", unit="iterations"),
        Column(
            "window_time_per_iter_s", "float64",
            "window_s / window_iters (host-timed, includes launch "
            "gaps)", unit="s",
        ),
        Column("energy_j", "float64", "Energy of the window, all devices measured (see `energy_scope`)", unit="J"),
        Column("energy_per_iter_j", "float64", "energy_j / window_iters", unit="J"),
        Column("avg_power_w", "float64", "energy_j / window_s", unit="W"),
        Column("energy_source", "string", _ENERGY_SOURCE, required=True),
        Column("energy_scope", "string", "`gpu` (board), `module` (GH200: CPU+GPU+memory), `package` (CPU)"),
        Column(
            "energy_unavailable_reason", "string",
            "Why `energy_j` is null: `no_gpu`, `nvml_unavailable`, `counter_not_supported`, "
            "`below_counter_resolution` (zero delta), `counter_reset`, `no_powercap`, "
            "`permission_denied`, `no_package_zone`, `read_error`",
        ),
        Column("idle_power_w", "float64", "Idle power of the run (bench_runs), copied for convenience", unit="W"),
        Column("dynamic_energy_j", "float64", "energy_j - idle_power_w * window_s (extra, not the headline)", unit="J"),
        Column(
            "cpu_energy_j", "float64",
            "RAPL package energy of the window (all packages), null if "
            "unreadable", unit="J",
        ),
        Column("dram_energy_j", "float64", "RAPL DRAM energy of the window, null if unreadable", unit="J"),
        Column(
            "power_integral_j", "float64",
            "Cross-check, not the headline: trapezoid integral of the instant power samples over the window",
            unit="J",
        ),
        Column("power_instant_mean_w", "float64", "Mean of instant power samples in the window", unit="W"),
        Column("power_instant_max_w", "float64", "Max of instant power samples in the window", unit="W"),
        Column("n_power_samples", "int64", "Power samples in the window", unit="samples"),
        Column("sampler_period_s", "float64", "Power sampler period", unit="s"),
        Column("power_limit_w", "float64", "Enforced power limit during the window", unit="W"),
        Column(
            "locked_sm_clock_mhz", "float64",
            "SM clock locked by an opt-in sweep (null: not locked by "
            "wattlas)", unit="MHz",
        ),
        Column("sm_clock_mhz_start", "float64", "SM clock at window start", unit="MHz"),
        Column("sm_clock_mhz_end", "float64", "SM clock at window end", unit="MHz"),
        Column("sm_clock_mhz_mean", "float64", "Mean SM clock of the window's samples", unit="MHz"),
        Column("mem_clock_mhz", "float64", "Memory clock at window start", unit="MHz"),
        Column("temp_c_start", "float64", "GPU temperature at window start", unit="°C"),
        Column("temp_c_end", "float64", "GPU temperature at window end", unit="°C"),
        Column("clock_event_reasons", "int64", "OR of NVML clock-event (throttle) reason bits over the window"),
        Column("clock_event_reason_names", "string", "The set bits by name (`sw_power_cap,hw_slowdown`)"),
        Column("throttled", "bool", "Power, thermal or hardware slowdown occurred in the window"),
        Column("window_too_short", "bool", "Window shorter than requested or than 1 s, or a zero counter delta"),
        Column("concurrent_activity", "bool", "Other compute processes on the GPU, or CPU load from others"),
        Column("other_processes", "int32", "Other compute processes on the GPU during the window", unit="processes"),
        Column("loadavg_1m", "float64", "1-minute load average at window end"),
        Column("steal_frac", "float64", "Share of CPU time stolen by the hypervisor during the window"),
        Column("cooldown_s", "float64", "Idle pause before the point", unit="s"),
        Column(
            "tokens_per_s", "float64",
            "Tokens processed per second (prefill: prompt tokens; decode/e2e: "
            "generated)", unit="tokens/s",
        ),
        Column("energy_per_token_j", "float64", "energy_per_iter_j per token of `tokens_per_s`", unit="J/token"),
        Column("energy_per_request_j", "float64", "e2e: energy_per_iter_j / batch_size", unit="J/request"),
        Column("workload", "string", "Co-location: this row's workload (`gemm`, `copy`, `cpu-gemm`, `cpu-stream`)"),
        Column("partner_workload", "string", "Co-location: the other workload (null when solo)"),
        Column("colocation_mode", "string", "`solo`, `streams` (one process, two CUDA streams), `processes`"),
        Column(
            "solo_time_per_iter_s", "float64",
            "Co-location: this workload's time per iteration alone, same "
            "run", unit="s",
        ),
        Column("slowdown", "float64",
               "Co-location: time_per_iter_s_mean (rate over the overlap) / solo_time_per_iter_s"),
        Column("combined_throughput", "float64", "Co-location: sum over the pair of 1/slowdown (system throughput)"),
        Column("pair_energy_j", "float64", "Co-location: device energy of the pair window", unit="J"),
        Column(
            "solo_energy_sum_j", "float64",
            "Co-location: energy the same work took alone (solo J/iteration times iterations done, "
            "summed over the pair)",
            unit="J",
        ),
    ),
)

POWER_SAMPLES = TableSchema(
    name="power_samples",
    description=(
        "Timelines from the background power sampler (a separate process polling at "
        "`sampler_period_s`): GPU instant power (`NVML_FI_DEV_POWER_INSTANT`), clocks, temperature "
        "and clock-event reasons; on CPU, utilisation and RAPL power where readable. A cross-check "
        "and a timeline, never the headline energy."
    ),
    columns=(
        Column("run_id", "string", "Run id", required=True),
        Column("point_id", "int64", "Point the sample belongs to", required=True),
        Column("device", "string", "`gpu<index>` (NVML index) or `cpu`", required=True),
        Column("time_s", "float64", "Seconds since the point started", unit="s", required=True),
        Column("in_window", "bool", "Taken inside the point's energy window"),
        Column(
            "power_w", "float64",
            "Instant power (GPU: NVML instant field; CPU: RAPL delta over the "
            "period)", unit="W",
        ),
        Column("power_source", "string", "`nvml_instant`, `rapl_delta`, or null when unreadable"),
        Column("power_avg_w", "float64", "NVML 1-second average power (cross-check only)", unit="W"),
        Column("sm_clock_mhz", "float64", "SM clock", unit="MHz"),
        Column("mem_clock_mhz", "float64", "Memory clock", unit="MHz"),
        Column("temp_c", "float64", "GPU temperature", unit="°C"),
        Column("clock_event_reasons", "int64", "NVML clock-event reason bitmask"),
        Column("gpu_util_pct", "float64", "NVML GPU utilisation (share of time a kernel ran)", unit="%"),
        Column("cpu_util_frac", "float64", "Busy share of all CPUs since the previous sample (/proc/stat)"),
    ),
)

TABLES = (BENCH_RUNS, BENCH_RESULTS, POWER_SAMPLES)

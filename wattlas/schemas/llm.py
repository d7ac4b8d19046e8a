"""LLM request traces: BurstGPT, Azure LLM 2023/2024, Azure LMM 2025."""

from ._base import Column, TableSchema

LLM_REQUESTS = TableSchema(
    name="llm_requests",
    description="One row per LLM inference request of a public request trace.",
    columns=(
        Column(
            "trace", "string",
            "Trace within the source, from the file name: `code`, `conv`, `multimodal`, `BurstGPT_1`, ...",
            required=True,
        ),
        Column("request_id", "int64", "0-based row order within its raw file", required=True, min=0),
        Column(
            "arrival_s",
            "float64",
            "Arrival time in seconds from the source's origin: BurstGPT's `Timestamp` as is "
            "(one origin shared by all its files); wall-clock traces: seconds since the trace's "
            "first request",
            unit="s",
            required=True,
        ),
        Column(
            "arrival_time",
            "timestamp[us]",
            "Wall-clock arrival as written in the trace (microseconds, no zone attached); null "
            "where the trace has no wall clock (BurstGPT)",
        ),
        Column(
            "arrival_tz",
            "string",
            "Time zone of `arrival_time` where the trace states one (`UTC` for `+00:00`/`Z`); "
            "null where the trace gives none (Azure 2023: unspecified, not assumed UTC)",
        ),
        Column("model", "string", "Model called (`ChatGPT`, `GPT-4`); null where the trace does not say"),
        Column("log_type", "string", "BurstGPT `Log Type`: `Conversation log` or `API log`"),
        Column("session_id", "string", "Conversation id (BurstGPT 3 conversation rows); null otherwise"),
        Column(
            "input_tokens", "int64", "Prompt (context) tokens; LMM: text plus image tokens",
            unit="tokens", required=True, min=0,
        ),
        Column("output_tokens", "int64", "Generated (response) tokens", unit="tokens", required=True, min=0),
        Column("images", "int32", "Images in the request (Azure LMM 2025 only)", unit="images", min=0),
        Column(
            "elapsed_s",
            "float64",
            "BurstGPT 3 `Elapsed time`: submission to final response on the provider's service "
            "(not TTFT, not a local measurement)",
            unit="s",
            min=0,
        ),
        Column(
            "failed",
            "bool",
            "BurstGPT: the request failed (`Response tokens` == 0); null where the trace has no "
            "failure notion",
        ),
    ),
)

TABLES = (LLM_REQUESTS,)

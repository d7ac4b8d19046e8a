"""Azure LLM inference traces 2023 (Splitwise) and 2024 (DynamoLLM), and LMM 2025 (ModServe).

Same columns, three timestamp conventions: 2023 naive with 7 fractional digits (CRLF, no final
newline); 2024 ``+00:00`` with the fraction sometimes absent; 2025 ISO ``T...Z`` in a ``.csv.gz``
with a ``NumImages`` column. ``arrival_s`` counts from each trace's first request.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from ..csvread import INT, TS_ISO_Z, TS_NAIVE, TS_OFFSET, CsvLayout
from ..registry import Source, SourceFile
from ._llm import convert_llm_csv

RAW = "https://raw.githubusercontent.com/Azure/AzurePublicDataset/master/data"
BLOB = "https://azurepublicdatasettraces.blob.core.windows.net/azurellminfererencetrace"
SHARED = "byte-identical copy in ../shared/data/azure_llm_2023 (Azure/AzurePublicDataset)"

SOURCES = (
    Source(
        id="azure-llm-2023",
        title="Azure LLM inference trace 2023 (Splitwise): code and conversation, 1 hour",
        tables=("llm_requests",),
        files=(
            SourceFile(
                "AzureLLMInferenceTrace_code.csv", f"{RAW}/AzureLLMInferenceTrace_code.csv", 320_117,
                "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6", SHARED,
            ),
            SourceFile(
                "AzureLLMInferenceTrace_conv.csv", f"{RAW}/AzureLLMInferenceTrace_conv.csv", 719_188,
                "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8", SHARED,
            ),
        ),
        licence="CC-BY-4.0",
        citation=(
            "Patel, Choukse, Zhang, Shah, Goiri, Maleki, Bianchini. Splitwise: Efficient "
            "generative LLM inference using phase splitting. ISCA 2024."
        ),
        paper="https://arxiv.org/abs/2311.18677",
        homepage="https://github.com/Azure/AzurePublicDataset/blob/master/AzureLLMInferenceDataset2023.md",
        description="8,819 code and 19,366 conversation requests on 2023-11-16: arrival time, "
        "context and generated tokens. Timestamps carry no time zone.",
    ),
    Source(
        id="azure-llm-2024",
        title="Azure LLM inference trace 2024 (DynamoLLM): code and conversation, one week",
        tables=("llm_requests",),
        files=(
            SourceFile("AzureLLMInferenceTrace_code_1week.csv",
                       f"{BLOB}/AzureLLMInferenceTrace_code_1week.csv", 691_989_454),
            SourceFile("AzureLLMInferenceTrace_conv_1week.csv",
                       f"{BLOB}/AzureLLMInferenceTrace_conv_1week.csv", 1_135_195_393),
        ),
        licence="CC-BY-4.0",
        citation=(
            "Stojkovic, Zhang, Goiri, Torrellas, Choukse. DynamoLLM: Designing LLM Inference "
            "Clusters for Performance and Energy Efficiency. HPCA 2025."
        ),
        paper="https://arxiv.org/abs/2408.00741",
        homepage="https://github.com/Azure/AzurePublicDataset/blob/master/AzureLLMInferenceDataset2024.md",
        description="16.8M code and 27.3M conversation requests over two different 7-day windows "
        "in May 2024 (UTC).",
        notes=("Hashes published by third parties are not authoritative; recorded on first download.",),
    ),
    Source(
        id="azure-lmm-2025",
        title="Azure multimodal (LMM) inference trace 2025 (ModServe), one week",
        tables=("llm_requests",),
        files=(
            SourceFile("AzureLMMInferenceTrace_multimodal.csv.gz",
                       f"{RAW}/AzureLMMInferenceTrace_multimodal.csv.gz"),
        ),
        licence="CC-BY-4.0",
        citation=(
            "Qiu, Biswas, Zhao, Mohan, Khare, Choukse, Goiri, Zhang, Shen, Bansal, Ramjee, "
            "Fonseca. ModServe: Modality- and Stage-Aware Resource Disaggregation for Scalable "
            "Multimodal Model Serving. SoCC 2025."
        ),
        paper="https://arxiv.org/abs/2502.00937",
        homepage="https://github.com/Azure/AzurePublicDataset/blob/master/AzureLMMInferenceDataset2025.md",
        description="1,000,000 sampled multimodal requests, 2024-10-15 to 2024-10-22 (UTC): "
        "images per request, context tokens (text and image), generated tokens.",
    ),
)

_TOKENS = {"input_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"}


def _zone(tz: str | None):
    # Columns the trace lacks (model, log type, failure, ...) come out as typed nulls.
    return lambda lf: lf.with_columns(arrival_tz=pl.lit(tz, pl.String))


LAYOUT_2023 = CsvLayout(
    name="Azure LLM 2023",
    header=("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    raw_types={"TIMESTAMP": TS_NAIVE, "ContextTokens": INT, "GeneratedTokens": INT},
    columns={"arrival_time": "TIMESTAMP", **_TOKENS},
    derive=_zone(None),
)
LAYOUT_2024 = CsvLayout(
    name="Azure LLM 2024",
    header=LAYOUT_2023.header,
    raw_types={"TIMESTAMP": TS_OFFSET, "ContextTokens": INT, "GeneratedTokens": INT},
    columns=LAYOUT_2023.columns,
    derive=_zone("UTC"),
)
LAYOUT_2025 = CsvLayout(
    name="Azure LMM 2025",
    header=("TIMESTAMP", "NumImages", "ContextTokens", "GeneratedTokens"),
    raw_types={"TIMESTAMP": TS_ISO_Z, "NumImages": INT, "ContextTokens": INT, "GeneratedTokens": INT},
    columns={"arrival_time": "TIMESTAMP", "images": "NumImages", **_TOKENS},
    derive=_zone("UTC"),
)

LAYOUTS = {
    "azure-llm-2023": [LAYOUT_2023],
    "azure-llm-2024": [LAYOUT_2024],
    "azure-lmm-2025": [LAYOUT_2025],
}
_NAMES = {
    "azure-llm-2023": re.compile(r"AzureLLMInferenceTrace_(\w+?)\.csv$"),
    "azure-llm-2024": re.compile(r"AzureLLMInferenceTrace_(\w+?)_1week\.csv$"),
    "azure-lmm-2025": re.compile(r"AzureLMMInferenceTrace_(\w+?)\.csv(\.gz)?$"),
}


def trace_name(source_id: str, path: Path) -> str:
    m = _NAMES[source_id].match(path.name)
    if m:
        return m.group(1)
    return path.name.split(".")[0]


def accepts(source_id: str, path: Path) -> bool:
    m = _NAMES[source_id].match(path.name)
    return bool(m) and not (source_id == "azure-llm-2023" and m.group(1).endswith("_1week"))


def convert(source_id: str, path: Path, out_dir: Path) -> dict[str, list[Path]]:
    return convert_llm_csv(
        path, out_dir, LAYOUTS[source_id], trace_name(source_id, path), wall_clock=True
    )

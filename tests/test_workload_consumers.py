"""A ``jsonl`` (Mooncake) export of the real Azure LLM 2023 code trace, read by the replay tools' own code.

AIPerf 0.13.0 and GuideLLM 0.8.1 (the ``consumers`` extra) load the export with their own command-line
parsers, dataset loaders and schedulers (``tests/consumer_replay.py``, one process per tool). The
prompts they build must have exactly ``input_length`` tokens, they must ask for exactly
``output_length`` tokens, and they must send each request at the trace's own arrival offset
(milliseconds in ``timestamp``, turned into seconds by the flags the README gives).

vLLM and SGLang need a GPU stack to import, so for them the export is checked against the
invariants their loaders rely on (see ``test_export_meets_the_invariants_vllm_and_sglang_rely_on``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from wattlas.analysis.workload import export_workload
from wattlas.store import Store

ROOT = Path(__file__).resolve().parents[1]
SLICE_S = 300.0  # the first 5 minutes of the code trace: 781 requests, 1.67 M prompt tokens
BLOCK_TOKENS = 512  # Mooncake's block size, the export's default hash block

pytestmark = pytest.mark.shared


def _azure_code_requests(shared_data: Path) -> pl.DataFrame:
    """The raw trace's arrival offsets (s) and token counts for the slice, in arrival order."""
    raw = pl.read_csv(shared_data / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv")
    ts = raw["TIMESTAMP"].str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
    df = raw.with_columns(offset_s=(ts - ts.min()).dt.total_microseconds() / 1e6).sort("offset_s", maintain_order=True)
    return df.filter(pl.col("offset_s") < SLICE_S)


def _export_code_slice(shared_data: Path, tmp_path: Path) -> Path:
    from wattlas.ingest import ingest

    store = Store(tmp_path / "store")
    ingest("azure-llm-2023", [shared_data / "azure_llm_2023"], store=store, workers=1)
    out = tmp_path / "code.jsonl"
    export_workload(store=store, source="azure-llm-2023", trace="code", fmt="jsonl", path=out, duration_s=SLICE_S)
    return out


def _replay(consumer: str, trace: Path, tmp_path: Path) -> dict[str, Any]:
    """Run ``tests/consumer_replay.py`` for ``consumer`` offline, with private caches."""
    work = tmp_path / consumer
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "hf"), "HF_HUB_CACHE": str(work / "hub"),
           "HF_DATASETS_CACHE": str(work / "datasets"), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "tests.consumer_replay", consumer, str(trace), str(work)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{consumer} could not load {trace.name}:\n{proc.stderr[-4000:]}"
    return json.loads((work / "result.json").read_text(encoding="utf-8"))


def _assert_faithful(result: dict[str, Any], source: pl.DataFrame) -> None:
    assert len(result["prompt_tokens"]) == source.height == 781
    assert result["prompt_tokens"] == source["ContextTokens"].to_list()
    assert result["output_tokens"] == source["GeneratedTokens"].to_list()
    sent = sorted(result["send_offsets_s"])
    # The export keeps whole milliseconds: each send time is within 0.5 ms of the raw arrival.
    worst = max(abs(s - t) for s, t in zip(sent, source["offset_s"].to_list(), strict=True))
    assert worst <= 0.0005 + 1e-9, f"send times drift up to {worst * 1000:.3f} ms from the trace"
    assert sent[-1] == pytest.approx(source["offset_s"][-1], abs=0.0005)


def test_aiperf_replays_the_export_with_exact_lengths_and_arrivals(shared_data, tmp_path):
    pytest.importorskip("aiperf", reason="AIPerf is in the test extra (pip install -e '.[test]')")
    source = _azure_code_requests(shared_data)
    trace = _export_code_slice(shared_data, tmp_path)
    result = _replay("aiperf", trace, tmp_path)
    # `aiperf validate mooncake-trace` accepts every row, and the loader picks mooncake_trace.
    assert result["validation_errors"] == [] and result["validated_rows"] == source.height
    assert result["dataset_type"] == "mooncake_trace"
    _assert_faithful(result, source)


def test_guidellm_replays_the_export_with_exact_lengths_and_arrivals(shared_data, tmp_path):
    pytest.importorskip("guidellm", reason="GuideLLM is in the test extra (pip install -e '.[test]')")
    source = _azure_code_requests(shared_data)
    trace = _export_code_slice(shared_data, tmp_path)
    # GuideLLM's kind=mooncake rejects a trace without hash_ids ("Trace missing required columns")
    # and rows whose hash_ids do not number ceil(input_length / 512).
    _assert_faithful(_replay("guidellm", trace, tmp_path), source)


def test_export_meets_the_invariants_vllm_and_sglang_rely_on(shared_data, tmp_path):
    """Checked against vLLM 0.33.0 ``vllm/benchmarks/datasets/datasets.py`` (``TimedTrace.sample`` and
    ``_expand_prompt``: the prompt is built only from ``hash_ids``, one ``chunk_size`` block per id, the
    last block cut to what is left of ``input_length``; ``timestamp * --timed-trace-sec-multiplier`` is
    the send time in seconds) and SGLang 0.5.23 ``sglang/benchmark/datasets/mooncake.py``
    (``get_mooncake_request_over_time``: sorts by ``timestamp``, sends at ``(timestamp - first) / 1000``
    seconds, builds the prompt from ``hash_ids`` only)."""
    rows = [json.loads(line) for line in _export_code_slice(shared_data, tmp_path).read_text().splitlines()]
    source = _azure_code_requests(shared_data)
    assert len(rows) == source.height
    assert all("hash_ids" in r for r in rows), "no hash_ids: vLLM sends empty prompts, SGLang 21-token ones"
    ids = [h for r in rows for h in r["hash_ids"]]
    for r in rows:
        # One id per 512-token block, so vLLM's prompt has exactly input_length tokens.
        assert len(r["hash_ids"]) == math.ceil(r["input_length"] / BLOCK_TOKENS), r
        assert isinstance(r["timestamp"], int)
    assert len(set(ids)) == len(ids), "ids repeat although no prefix sharing was asked for"
    stamps = [r["timestamp"] for r in rows]
    assert stamps[0] == 0 and stamps == sorted(stamps)
    # Milliseconds: the last request arrives ~300 s in, i.e. ~300,000 ms (not 300 s read as ms).
    assert stamps[-1] == round(source["offset_s"][-1] * 1000)

"""llm_requests from every LLM trace format, checked value by value against the raw bytes."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from wattlas.ingest import ingest
from wattlas.store import Store

from .llm_fixtures import (
    AZURE_2023_CODE,
    AZURE_2024_CODE,
    AZURE_LMM_2025,
    BURSTGPT_1,
    BURSTGPT_3,
    write,
)


def rows(store_dir: Path, query: str) -> list[tuple]:
    return Store(store_dir).sql(query).rows()


def test_burstgpt_both_layouts(tmp_path, store_dir):
    write(tmp_path / "raw", "BurstGPT_1.csv", BURSTGPT_1)
    write(tmp_path / "raw", "BurstGPT_3.csv", BURSTGPT_3)
    report = ingest("burstgpt", [tmp_path / "raw"], store=store_dir)
    assert report.rows["llm_requests"] == 10
    got = rows(store_dir, """
        select trace, request_id, arrival_s, model, log_type, session_id, input_tokens,
               output_tokens, elapsed_s, failed, arrival_time is null
        from llm_requests order by trace, request_id""")
    assert got[0] == ("BurstGPT_1", 0, 5.0, "ChatGPT", "Conversation log", None, 472, 18, None, False, True)
    assert got[3][6] == 0 and got[3][9] is False  # zero request tokens are kept, not a failure
    assert got[4][7] == 0 and got[4][9] is True  # zero response tokens = failed
    # release 3: columns mapped by name although two were inserted at positions 2-3
    assert got[5] == (
        "BurstGPT_3", 0, 19440110.0, "GPT-4", "Conversation log",
        "1722ac82-0a46-4bf0-aa08-89794e7a2b3f", 906, 446, 43.0, False, True,
    )
    assert got[9][5] is None and got[9][4] == "API log"  # empty Session ID is data, not an error


def test_azure_2023_crlf_seven_digits(tmp_path, store_dir):
    write(tmp_path, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    ingest("azure-llm-2023", [tmp_path / "AzureLLMInferenceTrace_code.csv"], store=store_dir)
    got = rows(store_dir, "select request_id, arrival_time, arrival_tz, arrival_s, input_tokens, "
                          "output_tokens from llm_requests order by request_id")
    assert len(got) == 4  # no header off-by-one, last row without newline kept
    assert got[0] == (0, datetime(2023, 11, 16, 18, 17, 3, 979960), None, 0.0, 4808, 10)
    assert got[-1][1] == datetime(2023, 11, 16, 19, 14, 19, 928016)
    assert got[-1][3] == pytest.approx(3435.948056, abs=1e-9)
    assert got[-1][5] == 173  # no stray '\r' in the last column


def test_azure_2024_offset_and_missing_fraction(tmp_path, store_dir):
    write(tmp_path, "AzureLLMInferenceTrace_code_1week.csv", AZURE_2024_CODE)
    ingest("azure-llm-2024", [tmp_path], store=store_dir)
    got = rows(store_dir, "select trace, arrival_time, arrival_tz, arrival_s from llm_requests order by request_id")
    assert got[0] == ("code", datetime(2024, 5, 10, 0, 0, 0, 9930), "UTC", 0.0)
    assert got[3][1] == datetime(2024, 5, 10, 0, 0, 1)  # '+00:00' without a fraction
    assert got[3][3] == pytest.approx(1 - 0.00993, abs=1e-9)


def test_azure_lmm_2025_gzip_z(tmp_path, store_dir):
    write(tmp_path, "AzureLMMInferenceTrace_multimodal.csv.gz", AZURE_LMM_2025, gz=True)
    ingest("azure-lmm-2025", [tmp_path], store=store_dir)
    got = rows(store_dir, "select trace, arrival_time, arrival_tz, images, input_tokens, output_tokens "
                          "from llm_requests order by request_id")
    assert got[0] == ("multimodal", datetime(2024, 10, 15, 12, 0, 0, 269000), "UTC", 0, 770, 491)
    assert got[3][3] == 16
    assert len(got) == 5


def test_reingest_replaces_rows(tmp_path, store_dir):
    write(tmp_path, "BurstGPT_1.csv", BURSTGPT_1)
    for _ in range(3):
        ingest("burstgpt", [tmp_path], store=store_dir)
    assert rows(store_dir, "select count(*) from llm_requests") == [(5,)]
    assert rows(store_dir, "select count(*) from ingest_manifest") == [(1,)]
    # a second file adds its rows and keeps the first file's
    write(tmp_path, "BurstGPT_3.csv", BURSTGPT_3)
    ingest("burstgpt", [tmp_path / "BurstGPT_3.csv"], store=store_dir)
    assert rows(store_dir, "select trace, count(*) from llm_requests group by 1 order by 1") == [
        ("BurstGPT_1", 5), ("BurstGPT_3", 5)]


# ------------------------------------------------------------------ real data
def _numpy_stats(path: Path) -> dict[str, float]:
    """Independent reference: Python csv + numpy on the raw file."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        data = list(reader)
    assert header == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
    t = np.array([
        datetime.strptime(r[0][:26], "%Y-%m-%d %H:%M:%S.%f").timestamp() for r in data
    ])
    gaps = np.diff(np.sort(t))
    inp = np.array([int(r[1]) for r in data])
    out = np.array([int(r[2]) for r in data])
    return {
        "requests": len(data), "first": data[0][0], "last": data[-1][0],
        "span_s": t.max() - t.min(), "cv": gaps.std() / gaps.mean(),
        "in50": np.percentile(inp, 50), "in99": np.percentile(inp, 99),
        "out50": np.percentile(out, 50), "out99": np.percentile(out, 99),
    }


@pytest.mark.shared
def test_azure_2023_real_files_exact(shared_data, store_dir):
    from wattlas.analysis import trace_summary

    raw = shared_data / "azure_llm_2023"
    ingest("azure-llm-2023", [raw], store=store_dir)
    store = Store(store_dir)
    counts = dict(store.sql("select trace, count(*) from llm_requests group by trace").rows())
    assert counts == {"code": 8819, "conv": 19366}
    ends = {t: (a, b) for t, a, b in store.sql(
        "select trace, min(arrival_time), max(arrival_time) from llm_requests group by trace").rows()}
    assert ends["code"] == (datetime(2023, 11, 16, 18, 17, 3, 979960), datetime(2023, 11, 16, 19, 14, 19, 928016))
    assert ends["conv"] == (datetime(2023, 11, 16, 18, 15, 46, 680590), datetime(2023, 11, 16, 19, 14, 8, 402527))
    con = store.connect()
    summary = {r["trace"]: r for r in trace_summary(con, "azure-llm-2023").iter_rows(named=True)}
    for trace in ("code", "conv"):
        ref = _numpy_stats(raw / f"AzureLLMInferenceTrace_{trace}.csv")
        got = summary[trace]
        assert got["requests"] == ref["requests"]
        assert got["span_s"] == pytest.approx(ref["span_s"], abs=1e-6)
        assert got["mean_rate_per_s"] == pytest.approx((ref["requests"] - 1) / ref["span_s"], rel=1e-9)
        assert got["interarrival_cv"] == pytest.approx(ref["cv"], rel=1e-6)
        for k, col in (("in50", "input_tokens_p50"), ("in99", "input_tokens_p99"),
                       ("out50", "output_tokens_p50"), ("out99", "output_tokens_p99")):
            assert got[col] == pytest.approx(ref[k], rel=1e-12), col

"""The jsonl (Mooncake) export: hash_ids, time units, sessions, and the stderr summary.

vLLM and SGLang need a GPU stack to import, so these tests check the invariants their
loaders rely on, read from their code (not copied):

- vLLM 0.34.0, ``vllm/benchmarks/datasets/datasets.py``: ``TimedTrace.sample`` reads the keys
  ``timestamp``, ``input_length``, ``output_length``, ``hash_ids`` (its label defaults) and sets
  each request's time to ``float(timestamp) * --timed-trace-sec-multiplier`` (default 1, so
  milliseconds need 0.001); ``TimedTrace._expand_prompt`` expands every id into
  ``min(--timed-trace-chunk-hash-size, tokens left)`` tokens and stops when the ids run out, so
  a prompt has ``input_length`` tokens only when ``len(hash_ids) * block >= input_length``; its
  token cache is keyed by ``f"{id}:{size}"``, so a repeated id gives the same tokens only when
  it covers a complete block both times. ``vllm/benchmarks/serve.py`` ``get_request`` (self-
  timed) sleeps until each request's time, counted from the start, in file order without
  sorting: timestamps must start near 0 and never decrease.
- SGLang 0.5.23, ``sglang/benchmark/datasets/mooncake.py``
  (``python -m sglang.bench_serving --dataset-name mooncake``):
  ``get_mooncake_request_over_time`` sorts by ``timestamp``, replays at
  ``(timestamp - first) / 1000`` s (milliseconds), builds the prompt from ``hash_ids`` alone
  (``input_length`` is not read) and takes ``output_length``.

AIPerf's and GuideLLM's own loaders run on these exports in their own test file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wattlas import analysis as wa
from wattlas.analysis.workload import block_hash_ids, export_workload, write_workload
from wattlas.errors import AnalysisError
from wattlas.ingest.sources import sample
from wattlas.store import Store

from .llm_fixtures import BURSTGPT_1, write

# BurstGPT release 3 layout with conversations that continue (the byte-exact fixture in
# llm_fixtures.py has one turn per session). Turns, in arrival order:
#   A1 A2 A3: a conversation of three turns; B1 B2: two; C1: one; an API call with no session;
#   D1 (empty prompt) D2; E1 E2 where E2 is shorter than E1's input + output.
BURSTGPT_3_SESSIONS = (
    b"Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    b"100.0,sess-a,5,ChatGPT,600,200,800,Conversation log\n"
    b"101.0,sess-b,3,GPT-4,1100,50,1150,Conversation log\n"
    b"102.0,,4,ChatGPT,700,0,700,API log\n"
    b"103.0,sess-c,2,ChatGPT,300,20,320,Conversation log\n"
    b"110.0,sess-a,6,ChatGPT,1300,100,1400,Conversation log\n"
    b"115.0,sess-b,4,GPT-4,1250,60,1310,Conversation log\n"
    b"120.0,sess-a,2,ChatGPT,2100,10,2110,Conversation log\n"
    b"125.0,sess-d,1,ChatGPT,0,5,5,Conversation log\n"
    b"130.0,sess-d,1,ChatGPT,512,5,517,Conversation log\n"
    b"131.0,sess-e,1,ChatGPT,1024,5,1029,Conversation log\n"
    b"132.0,sess-e,1,ChatGPT,600,5,605,Conversation log\n"
)
FIXTURE_SESSIONS = ["a", "b", None, "c", "a", "b", "a", "d", "d", "e", "e"]
# Worked out by hand from the model (block 512): a continuing turn repeats the previous turn's
# ids of its complete blocks, min(floor(prev_input / 512), floor(input / 512)) of them, and gets
# fresh ids (counting up in order of first use) for the rest of its ceil(input / 512) blocks.
FIXTURE_HASH_IDS = [
    [0, 1],               # A1 600: 2 blocks, 1 complete
    [2, 3, 4],            # B1 1100
    [5, 6],               # no session
    [7],                  # C1 300
    [0, 8, 9],            # A2 1300: A1's complete block, then fresh (A1's partial block changed)
    [2, 3, 10],           # B2 1250: B1's 2 complete blocks
    [0, 8, 11, 12, 13],   # A3 2100: A2's 2 complete blocks
    [],                   # D1: empty prompt, no id
    [14],                 # D2 512: D1 had no block
    [15, 16],             # E1 1024
    [15, 17],             # E2 600 < 1029: its 1 complete block
]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True, timeout=300)


def _summary(stderr: str) -> dict[str, float]:
    m = re.search(r"wrote ([\d,]+) requests .*: span ([\d,.]+) s, mean rate ([\d,.]+) req/s, "
                  r"inter-arrival CV ([\d.]+)", stderr)
    assert m, stderr
    n, span, rate, cv = (float(g.replace(",", "")) for g in m.groups())
    return {"requests": n, "span_s": span, "rate": rate, "cv": cv}


def _numpy_stats(seconds: np.ndarray) -> dict[str, float]:
    """Independent of wattlas: span, (n - 1) / span, population std / mean of the gaps."""
    gaps = np.diff(seconds)
    span = seconds[-1] - seconds[0]
    return {"requests": seconds.size, "span_s": span, "rate": (seconds.size - 1) / span,
            "cv": gaps.std() / gaps.mean()}


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> Path:
    from wattlas.ingest import ingest

    root = tmp_path_factory.mktemp("mc")
    ingest(sample.SOURCE_ID, sample.generate(root / "raw", duration_s=900), store=Store(root / "store"), workers=1)
    return root / "store"


@pytest.fixture(scope="module")
def burstgpt_store(tmp_path_factory) -> Path:
    from wattlas.ingest import ingest

    root = tmp_path_factory.mktemp("b3")
    paths = [write(root / "raw", "BurstGPT_3.csv", BURSTGPT_3_SESSIONS),
             write(root / "raw", "BurstGPT_1.csv", BURSTGPT_1)]
    ingest("burstgpt", paths, store=Store(root / "store"), workers=1)
    return root / "store"


def test_hash_ids_one_per_block_globally_unique_and_ms_timestamps(sample_store, tmp_path):
    st = Store(sample_store)
    out = tmp_path / "code.jsonl"
    wf = export_workload(store=st, source=sample.SOURCE_ID, trace="code", start_s=30, duration_s=600,
                         rate_scale=1.5, fmt="jsonl", path=out)
    rows = _rows(out)
    assert len(rows) == wf.requests > 1000
    src = wa.workload_slice(store=st, source=sample.SOURCE_ID, trace="code", start_s=30, duration_s=600,
                            rate_scale=1.5)
    for r, i, o in zip(rows, src["input_tokens"].to_list(), src["output_tokens"].to_list(), strict=True):
        assert list(r) == ["timestamp", "input_length", "output_length", "hash_ids"]  # Mooncake's order
        assert (r["input_length"], r["output_length"]) == (i, o)
        assert all(type(v) is int for v in (r["timestamp"], r["input_length"], r["output_length"], *r["hash_ids"]))
        # vLLM _expand_prompt: the ids cover the prompt, and no id is left over.
        assert len(r["hash_ids"]) == -(-i // 512)
        assert len(r["hash_ids"]) * 512 >= i > (len(r["hash_ids"]) - 1) * 512
    ids = [h for r in rows for h in r["hash_ids"]]
    assert ids == list(range(len(ids)))  # no id twice: no prefix sharing claimed; first use order
    # Time base: round(offset from the slice start / rate_scale * 1000), offsets from the raw
    # arrivals (trace start = first arrival), independent of workload_slice.
    raw = st.sql(f"select arrival_s from llm_requests where source = '{sample.SOURCE_ID}' and trace = 'code' "
                 "order by arrival_s, request_id")["arrival_s"].to_numpy()
    rel = raw - raw[0]
    rel = rel[(rel >= 30) & (rel < 630)]
    ts = np.array([r["timestamp"] for r in rows])
    assert np.array_equal(ts, np.rint((rel - 30) / 1.5 * 1000).astype(np.int64))
    assert ts[0] >= 0 and np.all(np.diff(ts) >= 0)  # vLLM get_request: file order, from 0
    # vLLM with --timed-trace-sec-multiplier 0.001 / SGLang's (ts - first) / 1000 give the offsets.
    assert np.max(np.abs(ts * 0.001 - (rel - 30) / 1.5)) <= 0.0005 + 1e-9


def test_hash_block_16_and_time_unit_s_from_the_cli(sample_store, tmp_path):
    out = tmp_path / "conv16.jsonl"
    r = _cli("workload", "export", "llm_requests", "--source", sample.SOURCE_ID, "--trace", "conv", "-f", "jsonl",
             "--duration", "300", "--hash-block", "16", "--time-unit", "s", "-o", str(out),
             "--store", str(sample_store))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out.resolve())  # stdout: the path only; the summary is on stderr
    assert "16-token hash blocks" in r.stderr and "s timestamps" in r.stderr
    rows = _rows(out)
    for row in rows:
        assert len(row["hash_ids"]) == -(-row["input_length"] // 16)
        assert isinstance(row["timestamp"], float)
    ids = [h for row in rows for h in row["hash_ids"]]
    assert len(ids) == len(set(ids))
    src = wa.workload_slice(store=Store(sample_store), source=sample.SOURCE_ID, trace="conv", duration_s=300)
    assert [row["timestamp"] for row in rows] == pytest.approx(src["arrival_s"].to_list(), abs=5e-7)
    assert rows[0]["timestamp"] == 0.0


def test_stderr_summary_matches_numpy(sample_store, tmp_path):
    out = tmp_path / "code.jsonl"
    r = _cli("workload", "export", "llm_requests", "--source", sample.SOURCE_ID, "--trace", "code", "-f", "jsonl",
             "-o", str(out), "--store", str(sample_store))
    assert r.returncode == 0, r.stderr
    got = _summary(r.stderr)
    want = _numpy_stats(np.array([row["timestamp"] for row in _rows(out)]) / 1000.0)
    assert got["requests"] == want["requests"]
    assert got["span_s"] == pytest.approx(want["span_s"], abs=5e-4)
    assert got["rate"] == pytest.approx(want["rate"], abs=5e-5)
    assert got["cv"] == pytest.approx(want["cv"], abs=5e-5)
    # The CSV formats report the same way (times as written, 6 decimals).
    csv_out = tmp_path / "code.csv"
    r = _cli("workload", "export", "llm_requests", "--source", sample.SOURCE_ID, "--trace", "code", "-f", "vidur",
             "-o", str(csv_out), "--store", str(sample_store))
    assert r.returncode == 0, r.stderr
    import pandas as pd

    want = _numpy_stats(pd.read_csv(csv_out)["arrived_at"].to_numpy())
    assert _summary(r.stderr)["cv"] == pytest.approx(want["cv"], abs=5e-5)


def test_synth_prints_target_beside_achieved(sample_store, tmp_path):
    out = tmp_path / "syn.jsonl"
    r = _cli("workload", "synth", "--like", f"{sample.SOURCE_ID}/conv", "--duration", "600", "--seed", "4",
             "-o", str(out), "--store", str(sample_store))
    assert r.returncode == 0, r.stderr
    ts = np.array([row["timestamp"] for row in _rows(out)]) / 1000.0
    want = _numpy_stats(ts)
    assert _summary(r.stderr)["cv"] == pytest.approx(want["cv"], abs=5e-5)
    cv = re.search(r"inter-arrival CV: target ([\d.]+) \(the original's; [\d.]+ with its rate shape removed\), "
                   r"achieved ([\d.]+)", r.stderr)
    rate = re.search(r"mean rate: target ([\d,.]+) req/s, achieved ([\d,.]+) req/s", r.stderr)
    assert cv and rate, r.stderr
    orig = wa.interarrival_stats(store=Store(sample_store), source=sample.SOURCE_ID, trace="conv").row(0, named=True)
    assert float(cv[1]) == pytest.approx(orig["gap_cv"], abs=5e-5)
    assert float(rate[1]) == pytest.approx(orig["mean_rate_per_s"], abs=5e-5)
    assert float(cv[2]) == pytest.approx(want["cv"], abs=5e-5)
    assert float(rate[2].replace(",", "")) == pytest.approx(want["rate"], abs=5e-5)


def test_sessions_share_prefixes_exactly_where_a_conversation_continues(burstgpt_store, tmp_path):
    st = Store(burstgpt_store)
    out = tmp_path / "b3.jsonl"
    wf = export_workload(store=st, source="burstgpt", trace="BurstGPT_3", fmt="jsonl", prefix_sharing="sessions",
                         path=out)
    rows = _rows(out)
    assert [r["input_length"] for r in rows] == [600, 1100, 700, 300, 1300, 1250, 2100, 0, 512, 1024, 600]
    assert [r["timestamp"] for r in rows] == [0, 1000, 2000, 3000, 10000, 15000, 20000, 25000, 30000, 31000, 32000]
    assert [r["hash_ids"] for r in rows] == FIXTURE_HASH_IDS
    assert (wf.continued_turns, wf.shorter_turns, wf.shared_blocks, wf.blocks) == (5, 1, 6, 24)  # 18 fresh + 6 repeated
    # Structure, whatever the numbers: an id appears again only in a later turn of the same
    # conversation, and there only as a complete block of both prompts (vLLM keys its token
    # cache by id and block size: a partial block's id must not be reused).
    first_seen: dict[int, int] = {}
    for j, r in enumerate(rows):
        n_full = r["input_length"] // 512
        for pos, h in enumerate(r["hash_ids"]):
            if h in first_seen:
                i = first_seen[h]
                assert FIXTURE_SESSIONS[i] is not None and FIXTURE_SESSIONS[i] == FIXTURE_SESSIONS[j]
                assert pos < n_full and pos < rows[i]["input_length"] // 512
                assert rows[i]["hash_ids"][:pos + 1] == r["hash_ids"][:pos + 1]  # a shared prefix, not a block
            else:
                first_seen[h] = j
    # Every continuing turn with complete blocks on both sides shares, and nothing else does.
    sharing = [j for j, r in enumerate(rows) if any(first_seen[h] != j for h in r["hash_ids"])]
    assert sharing == [4, 5, 6, 10]  # A2, B2, A3, E2 (D2 follows an empty prompt)
    # Without sharing the same fixture has every id once.
    plain = tmp_path / "plain.jsonl"
    export_workload(store=st, source="burstgpt", trace="BurstGPT_3", fmt="jsonl", path=plain)
    ids = [h for r in _rows(plain) for h in r["hash_ids"]]
    assert ids == list(range(24))


def test_sessions_refused_without_session_ids(burstgpt_store, sample_store, tmp_path):
    with pytest.raises(AnalysisError, match=r"conversation ids.*burstgpt/BurstGPT_1.*BurstGPT release 3"):
        export_workload(store=Store(burstgpt_store), source="burstgpt", trace="BurstGPT_1", fmt="jsonl",
                        prefix_sharing="sessions", path=tmp_path / "x.jsonl")
    r = _cli("workload", "export", "llm_requests", "--source", sample.SOURCE_ID, "--trace", "code", "-f", "jsonl",
             "--prefix-sharing", "sessions", "-o", str(tmp_path / "y.jsonl"), "--store", str(sample_store))
    assert r.returncode != 0 and "conversation ids" in r.stderr and r.stdout == ""
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()
    with pytest.raises(AnalysisError, match="jsonl"):
        export_workload(store=Store(sample_store), source=sample.SOURCE_ID, trace="code", fmt="vidur",
                        hash_block=16, path=tmp_path / "z.csv")
    with pytest.raises(AnalysisError, match="hash block"):
        block_hash_ids([5], block=0)


def test_unsorted_frames_are_written_in_arrival_order(tmp_path):
    import polars as pl

    df = pl.DataFrame({"arrival_s": [2.0, 0.0, 1.0], "input_tokens": [3, 1, 600], "output_tokens": [1, 1, 1]})
    rows = _rows(write_workload(df, tmp_path / "u.jsonl", "jsonl").path)
    assert [(r["timestamp"], r["input_length"], r["hash_ids"]) for r in rows] == [
        (0, 1, [0]), (1000, 600, [1, 2]), (2000, 3, [3])]


@pytest.mark.shared
def test_real_azure_2023_code_export(tmp_path, shared_data):
    from wattlas.ingest import ingest

    st = Store(tmp_path / "s")
    ingest("azure-llm-2023", [shared_data / "azure_llm_2023"], store=st, workers=1)
    out = tmp_path / "code.jsonl"
    wf = export_workload(store=st, source="azure-llm-2023", trace="code", fmt="jsonl", path=out)
    rows = _rows(out)
    assert wf.requests == len(rows) == 8819
    assert all(len(r["hash_ids"]) == -(-r["input_length"] // 512) for r in rows)
    ids = [h for r in rows for h in r["hash_ids"]]
    assert ids == list(range(len(ids)))
    ts = np.array([r["timestamp"] for r in rows])
    assert ts[0] == 0 and ts[-1] == 3435948 and np.all(np.diff(ts) >= 0)
    want = _numpy_stats(ts / 1000.0)
    assert wf.interarrival_cv == pytest.approx(want["cv"], rel=1e-9)
    assert wf.mean_rate_per_s == pytest.approx(want["rate"], rel=1e-9)

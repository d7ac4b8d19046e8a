"""The CLI contract: commands, flags, clean machine-readable stdout, exit codes, messages."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys

import pytest

from .llm_fixtures import AZURE_2023_CODE, BURSTGPT_1, write


def wattlas(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture
def store_with_trace(tmp_path, store_dir):
    write(tmp_path / "raw", "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    r = wattlas("ingest", "azure-llm-2023", "--from", str(tmp_path / "raw"), "--store", str(store_dir))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "llm_requests: 4 rows written" in r.stderr
    return store_dir


def test_sql_csv_is_pure(store_with_trace):
    r = wattlas("sql", "select trace, count(*) as n from llm_requests group by trace",
                "--store", str(store_with_trace), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert list(csv.reader(io.StringIO(r.stdout))) == [["trace", "n"], ["code", "4"]]


def test_sql_json_is_pure(store_with_trace):
    r = wattlas("sql", "select request_id, arrival_time from llm_requests order by 1 limit 2",
                "--store", str(store_with_trace), "--format", "json")
    assert json.loads(r.stdout) == [
        {"request_id": 0, "arrival_time": "2023-11-16T18:17:03.979960"},
        {"request_id": 1, "arrival_time": "2023-11-16T18:17:04.031960"},
    ]


def test_sql_error_is_one_paragraph(store_with_trace):
    r = wattlas("sql", "select nope from llm_requests", "--store", str(store_with_trace))
    assert r.returncode == 1
    assert r.stdout == ""
    assert "error: query failed" in r.stderr and "Traceback" not in r.stderr
    r = wattlas("sql", "select nope from llm_requests", "--store", str(store_with_trace), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bad_input_message_and_exit_code(tmp_path, store_dir):
    write(tmp_path, "BurstGPT_1.csv", BURSTGPT_1.replace(b"1087", b"10x7"))
    r = wattlas("ingest", "burstgpt", "--from", str(tmp_path / "BurstGPT_1.csv"), "--store", str(store_dir))
    assert r.returncode == 1
    assert "BurstGPT_1.csv line 3, column 'Request tokens': '10x7' is not an integer" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_source(store_dir):
    r = wattlas("ingest", "nope", "--store", str(store_dir))
    assert r.returncode == 1 and "unknown source 'nope'; known sources:" in r.stderr


def test_sources_json():
    r = wattlas("sources", "--json")
    data = {s["id"]: s for s in json.loads(r.stdout)}
    assert data["azure-llm-2023"]["files"][0]["pinned"] is True
    assert data["burstgpt"]["licence"] == "CC-BY-4.0"
    assert any(not f["pinned"] for f in data["burstgpt"]["files"])


def test_tables_json(store_with_trace):
    r = wattlas("tables", "--store", str(store_with_trace), "--format", "json")
    tables = {t["table"]: t for t in json.loads(r.stdout)}
    assert tables["llm_requests"]["rows"] == 4
    cols = {c["name"]: c for c in tables["llm_requests"]["columns"]}
    assert cols["arrival_s"]["unit"] == "s" and cols["arrival_s"]["type"] == "DOUBLE"


def test_quickstart_offline_falls_back_to_sample(store_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = wattlas("quickstart", "--store", str(store_dir), "--format", "csv",
                env_extra={"WATTLAS_MIRROR": f"http://127.0.0.1:{port}"})
    assert r.returncode == 0, r.stderr
    assert "GENERATED SAMPLE" in r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["trace"] for row in rows] == ["code", "conv"]
    assert all(row["source"] == "azure-llm-2023-sample" for row in rows)
    assert float(rows[0]["interarrival_cv"]) > 1.0

"""The store is never silently wrong: read commands need a store, say which one, and names resolve or fail
with a did-you-mean that lists what is there (issue 13, section 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattlas._names import resolve_name
from wattlas.errors import UnknownSourceError, WattlasError

from .llm_fixtures import AZURE_2023_CODE, write


def wattlas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store with azure-llm-2023 traces code and conv (4 rows each); ingest is a writing command."""
    tmp = tmp_path_factory.mktemp("storeopen")
    for trace in ("code", "conv"):
        write(tmp / "raw", f"AzureLLMInferenceTrace_{trace}.csv", AZURE_2023_CODE)
    root = tmp / "store"
    r = wattlas("ingest", "azure-llm-2023", "--from", str(tmp / "raw"), "--store", str(root))
    assert r.returncode == 0, r.stderr
    assert (root / "catalog.json").is_file()
    return root


READ_COMMANDS = {
    "sql": ["sql", "select count(*) from llm_requests"],
    "tables": ["tables"],
    "report": ["report", "llm_requests", "-o", "{tmp}/r.html"],
    "workload export": ["workload", "export", "llm_requests", "-f", "jsonl", "-o", "{tmp}/w.jsonl",
                        "--source", "azure-llm-2023"],
    "estimate": ["estimate", "--source", "azure-llm-2023", "--gpu", "H100", "--model", "llama-3-8b"],
    "bench report": ["bench", "report", "-o", "{tmp}/b.html"],
    "release build": ["release", "build", "demo", "-o", "{tmp}/rel"],
}


@pytest.mark.parametrize("name", list(READ_COMMANDS))
def test_read_command_refuses_a_missing_store_and_creates_nothing(tmp_path, name):
    missing = tmp_path / "typo-store"
    args = [a.format(tmp=tmp_path) for a in READ_COMMANDS[name]]
    r = wattlas(*args, "--store", str(missing))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""  # today `sql` printed a count of 0 here and exited 0
    assert f"no wattlas store at {missing}" in " ".join(r.stderr.split()), r.stderr
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_read_command_refuses_an_empty_directory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = wattlas("sql", "select count(*) from llm_requests", "--store", str(empty), "--format", "csv")
    assert r.returncode == 1 and r.stdout == ""
    assert "is empty" in r.stderr
    assert list(empty.iterdir()) == []  # no .lock, no .snapshots


def test_store_path_on_stderr_unless_quiet(store):
    r = wattlas("sql", "select count(*) as n from llm_requests", "--store", str(store), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "n\n8\n"
    assert f"store: {store}" in r.stderr
    r = wattlas("--quiet", "sql", "select count(*) as n from llm_requests", "--store", str(store), "-f", "csv")
    assert r.returncode == 0 and r.stdout == "n\n8\n"
    assert "store:" not in r.stderr


def test_trace_in_the_wrong_case_resolves(store, tmp_path):
    out = tmp_path / "w.jsonl"
    r = wattlas("workload", "export", "llm_requests", "-f", "jsonl", "-o", str(out),
                "--source", "Azure-LLM-2023", "--trace", "CODE", "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "trace 'CODE' read as 'code'" in r.stderr and "source 'Azure-LLM-2023' read as" in r.stderr
    assert len(out.read_text().splitlines()) == 4


def test_unknown_trace_lists_the_traces_here(store, tmp_path):
    r = wattlas("report", "llm_requests", "-o", str(tmp_path / "r.html"), "--source", "azure-llm-2023",
                "--trace", "nope", "--store", str(store))
    assert r.returncode == 1
    assert "traces here: code, conv" in r.stderr
    assert not (tmp_path / "r.html").exists()


def test_unknown_source_in_a_selection_suggests_and_lists(store, tmp_path):
    r = wattlas("workload", "export", "llm_requests", "-f", "jsonl", "-o", str(tmp_path / "w.jsonl"),
                "--source", "azure_llm_2023", "--store", str(store))
    assert r.returncode == 1
    assert "did you mean 'azure-llm-2023'?" in r.stderr and "sources here: azure-llm-2023" in r.stderr


def test_ingest_of_a_misspelt_source_suggests_the_id(tmp_path):
    r = wattlas("ingest", "azure_llm_2023", "--store", str(tmp_path / "s"))
    assert r.returncode == 1
    assert "unknown source 'azure_llm_2023' (did you mean 'azure-llm-2023'" in r.stderr
    assert not (tmp_path / "s").exists()


def test_report_of_a_misspelt_table_suggests_the_table(store, tmp_path):
    r = wattlas("report", "llm_request", "-o", str(tmp_path / "r.html"), "--store", str(store))
    assert r.returncode == 1
    assert "unknown table 'llm_request' (did you mean 'llm_requests'?)" in r.stderr


def test_resolve_name_rules():
    assert resolve_name("conv", ["code", "conv"], what="trace") == "conv"
    assert resolve_name("CONV", ["code", "conv"], what="trace") == "conv"
    with pytest.raises(WattlasError, match="did you mean 'conv'"):
        resolve_name("CONV", ["code", "conv"], what="trace", exact=True)
    # Two names that differ only in case: no guess, both suggested.
    with pytest.raises(WattlasError, match="did you mean 'CONV' or 'Conv'"):
        resolve_name("conv", ["Conv", "CONV"], what="trace")
    with pytest.raises(UnknownSourceError, match="there are no sources in t"):
        resolve_name("s", [], what="source", where="in t", error=UnknownSourceError)
    with pytest.raises(WattlasError, match=r"unknown trace 'zz'; traces here: code, conv$"):
        resolve_name("zz", ["conv", "code"], what="trace", here="traces here")

"""Help that tells the truth (issue 13, section 5): what --help, tables, sources and the
quickstart show is what the commands take and do, in an 80-column terminal."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wattlas import __version__
from wattlas.cli import main

from .llm_fixtures import AZURE_2023_CODE, write


def wattlas(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose stdout is a pipe, in an 80-column terminal."""
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="80", **env), timeout=120)


def help_of(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *command: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*command, "--help"]) == 0
    return capsys.readouterr().out


def panels(text: str) -> dict[str, str]:
    """The boxes of a rich --help: panel title -> its text."""
    out: dict[str, str] = {}
    for block in re.split(r"^╭─ ", text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        out[title.strip(" ─╮")] = body.split("╰")[0]
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ --version, --debug, metavars
def test_version_prints_the_package_version():
    r = wattlas("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wattlas {__version__}"


def test_root_help_shows_debug_quiet_and_version(capsys, monkeypatch):
    options = panels(help_of(capsys, monkeypatch))["Options"]
    for flag in ("--version", "--debug", "--quiet"):
        assert flag in options


@pytest.mark.parametrize("command", [(), ("ingest",), ("sql",), ("sources",), ("predict",), ("bench", "llm")])
def test_flags_show_no_bool_metavar(capsys, monkeypatch, command):
    text = help_of(capsys, monkeypatch, *command)
    assert "<bool>" not in text and "--help" in text


def test_repeatable_path_option_shows_path_dots(capsys, monkeypatch):
    text = help_of(capsys, monkeypatch, "ingest")
    assert re.search(r"--from\s+PATH\.\.\.", text), text
    assert "list[" not in text


# ------------------------------------------------------------------ predict
def test_predict_help_groups_options_by_predictor(capsys, monkeypatch):
    boxes = panels(help_of(capsys, monkeypatch, "predict"))
    by_predictor = {title.split(": ", 1)[1]: body for title, body in boxes.items() if title.startswith("Point")}
    assert re.search(r"--m\b", by_predictor["gemm-runtime"]) and "--k" in by_predictor["gemm-runtime"]
    assert "--n-embd" in by_predictor["operator-runtime"] and "--op" in by_predictor["operator-runtime"]
    assert "--ref-power" in by_predictor["training-power, training-time"]
    assert "--model" in by_predictor["llm-energy"] and "--phase" in by_predictor["llm-energy"]
    assert "--gpu" in by_predictor["every predictor"]


def test_one_name_for_an_llm(capsys, monkeypatch):
    for command in (("predict",), ("estimate",), ("bench", "llm")):
        text = help_of(capsys, monkeypatch, *command)
        assert re.search(r"--model\b", text), command
        assert "--llm" not in text, command  # the old spelling is hidden


def test_predict_llm_is_a_hidden_alias_of_model(capsys):
    point = ["llm-energy", "--gpu", "H100", "--phase", "prefill", "--batch-size", "1", "--input-tokens", "512",
             "-f", "json"]
    assert main(["predict", *point, "--model", "llama-3-8b"]) == 0
    new = json.loads(capsys.readouterr().out)
    assert main(["predict", *point, "--llm", "llama-3-8b"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert new == old and new[0]["model"] == "llama-3-8b" and new[0]["energy_j"] > 0
    assert main(["predict", *point, "--model", "llama-3-8b", "--llm", "llama-2-7b"]) == 1
    assert "--llm is the old name of --model" in capsys.readouterr().err


# ------------------------------------------------------------------ tables, sources
@pytest.fixture
def store_with_trace(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    write(tmp_path / "raw", "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    assert main(["ingest", "azure-llm-2023", "--from", str(tmp_path / "raw"), "--store", str(store)]) == 0
    return store


def test_tables_leaves_out_empty_tables_unless_all(store_with_trace, capsys):
    capsys.readouterr()
    assert main(["tables", "--store", str(store_with_trace), "-f", "json"]) == 0
    captured = capsys.readouterr()
    assert [t["table"] for t in json.loads(captured.out)] == ["ingest_manifest", "llm_requests"]
    assert "--all lists them" in captured.err
    assert main(["tables", "--store", str(store_with_trace), "-f", "json", "--all"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert len(every) > 5 and {t["table"] for t in every if t["rows"]} == {"ingest_manifest", "llm_requests"}


def test_tables_name_shows_one_table(store_with_trace, capsys):
    capsys.readouterr()
    assert main(["tables", "bench_results", "--store", str(store_with_trace), "-f", "json"]) == 0
    (one,) = json.loads(capsys.readouterr().out)  # empty, but asked for by name
    assert one["table"] == "bench_results" and one["rows"] == 0 and one["columns"]
    assert main(["tables", "llm_requests", "--store", str(store_with_trace)]) == 0
    text = capsys.readouterr().out
    assert "llm_requests: 4 rows" in text and "bench_results" not in text
    assert main(["tables", "llm_request", "--store", str(store_with_trace)]) == 1
    assert "did you mean 'llm_requests'" in capsys.readouterr().err


def test_sources_table_shows_the_readme_fields_without_wrapping_ids():
    from wattlas.ingest.registry import sources

    r = wattlas("sources")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for s in sources():
        # The id whole at the start of a line (not folded at 80 columns), and its paper.
        assert any(line.startswith(f"{s.id} ") for line in lines), s.id
    text = re.sub(r"\s+", " ", r.stdout)
    # README: "files, sizes, hashes (pinned or not), licence, citation, paper".
    pinned = next(f for s in sources() for f in s.files if f.pinned and f.size_bytes)
    assert pinned.sha256[:16] in text and f"{pinned.size_bytes:,} B" in text
    assert "unpinned" in text and "licence" in text and "citation" in text
    assert "https://arxiv.org/abs/2311.18677" in text


# ------------------------------------------------------------------ offline
def test_offline_error_names_every_missing_file(tmp_path):
    r = wattlas("ingest", "azure-llm-2023", "--store", str(tmp_path / "s"),
                WATTLAS_MIRROR=f"http://127.0.0.1:{_closed_port()}")
    assert r.returncode == 1
    message = " ".join(r.stderr.split())
    assert "AzureLLMInferenceTrace_code.csv" in message and "AzureLLMInferenceTrace_conv.csv" in message
    assert "--from" in message


def test_second_quickstart_does_not_repeat_the_network_error(store_with_trace, capsys, monkeypatch):
    monkeypatch.setenv("WATTLAS_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    capsys.readouterr()
    assert main(["quickstart", "--store", str(store_with_trace), "-f", "csv"]) == 0
    captured = capsys.readouterr()
    assert "could not download" not in captured.err and "GENERATED SAMPLE" not in captured.err
    assert "using the azure-llm-2023 rows already in the store" in captured.err
    header = captured.out.splitlines()[0].split(",")
    # One name per statistic: the quickstart, the report and the API say interarrival_cv.
    assert "interarrival_cv" in header and "gap_cv" not in header
    report = (store_with_trace / "report.html").read_text()
    assert "interarrival_cv" in report and "gap_cv" not in report


def test_second_offline_quickstart_reuses_the_sample_quietly(tmp_path, capsys, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("WATTLAS_MIRROR", f"http://127.0.0.1:{port}")
    store = str(tmp_path / "s")
    assert main(["quickstart", "--store", store, "-f", "csv"]) == 0
    assert f"127.0.0.1:{port}" in capsys.readouterr().err  # the first run says why, in full
    assert main(["quickstart", "--store", store, "-f", "csv"]) == 0
    captured = capsys.readouterr()
    assert f"127.0.0.1:{port}" not in captured.err
    assert "GENERATED SAMPLE already in the store" in " ".join(captured.err.split())
    assert "azure-llm-2023-sample" in captured.out


def test_interarrival_stats_names_the_cv_interarrival_cv_and_keeps_gap_cv_as_alias():
    import polars as pl

    from wattlas.analysis import interarrival_stats

    s = interarrival_stats(pl.DataFrame({"arrival_s": [0.0, 1.0, 3.0]})).row(0, named=True)
    assert s["interarrival_cv"] == pytest.approx(0.5 / 1.5)
    assert s["gap_cv"] == s["interarrival_cv"]  # deprecated, one release

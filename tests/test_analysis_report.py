"""Reports: the quickstart ends with report.html, which renders in headless Chromium.

The browser test drives Debian's ``chromium`` through playwright (no browser download) and
skips when either is absent. It fails on any JavaScript error, console error, network request
(the page must be self-contained) or figure that did not draw, and saves a screenshot
(``$WATTLAS_SCREENSHOT_DIR`` keeps a copy; the README's picture was made that way).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import socket
import threading
from pathlib import Path

import polars as pl
import pytest

from wattlas.analysis.report import build_report, report_builders
from wattlas.cli import main
from wattlas.errors import AnalysisError

from . import _browser


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keep_screenshot(src: Path, name: str) -> None:
    dest = os.environ.get("WATTLAS_SCREENSHOT_DIR")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, Path(dest) / name)


def _check_render(report: Path, shot: Path) -> dict:
    res = _browser.render(report, shot)
    assert res["errors"] == [], res["errors"]
    assert res["console_errors"] == [], res["console_errors"]
    assert res["figures"] >= 6
    assert res["drawn"] == res["figures"]
    assert shot.stat().st_size > 10_000
    return res


def test_quickstart_offline_writes_a_report_that_renders(tmp_path, monkeypatch, capsys):
    # No network: the official download fails fast (closed local port) and the sample is used.
    monkeypatch.setenv("WATTLAS_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    store = tmp_path / "store"
    assert main(["quickstart", "--store", str(store)]) == 0
    captured = capsys.readouterr()
    report = store / "report.html"
    assert f"report: {report.resolve()}" in captured.out.replace("\n", "")
    assert "GENERATED SAMPLE" in captured.err
    page = report.read_text()
    # Self-contained: plotly.js inline, no external scripts or stylesheets.
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page
    assert "azure-llm-2023-sample" in page
    _check_render(report, tmp_path / "quickstart-sample.png")


@pytest.mark.shared
def test_quickstart_with_the_real_trace_from_a_local_mirror(tmp_path, monkeypatch, capsys, shared_data):
    # Serve the byte-identical shared copies as a mirror on 127.0.0.1 (WATTLAS_MIRROR/<source>/<file>).
    root = tmp_path / "mirror" / "azure-llm-2023"
    root.mkdir(parents=True)
    for f in (shared_data / "azure_llm_2023").glob("*.csv"):
        shutil.copyfile(f, root / f.name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WATTLAS_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}")
        store = tmp_path / "store"
        assert main(["quickstart", "--store", str(store)]) == 0
    finally:
        httpd.shutdown()
    out = capsys.readouterr().out
    assert "report:" in out and "GENERATED" not in out
    report = store / "report.html"
    page = report.read_text()
    assert "source azure-llm-2023 " in page and "8,819" in page and "19,366" in page
    shot = tmp_path / "report-azure-llm-2023.png"
    _check_render(report, shot)
    _keep_screenshot(shot, "report-azure-llm-2023.png")


def test_report_command_and_registry(tmp_path, capsys):
    assert "llm_requests" in report_builders()
    # A table without a builder, or an empty selection, is a clear error and writes nothing.
    assert main(["report", "no_such_table", "-o", str(tmp_path / "a.html"), "--store", str(tmp_path / "s")]) == 1
    assert main(["report", "llm_requests", "-o", str(tmp_path / "b.html"), "--store", str(tmp_path / "s")]) == 1
    (tmp_path / "e").mkdir()  # a store with nothing committed yet
    (tmp_path / "e" / "catalog.json").write_text('{"format": 1, "generation": 0, "tables": {}}')
    assert main(["report", "llm_requests", "-o", str(tmp_path / "c.html"), "--store", str(tmp_path / "e")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown table 'no_such_table'" in err and "no wattlas store at" in err and "has no rows" in err
    assert not list(tmp_path.glob("*.html"))
    with pytest.raises(AnalysisError):
        build_report("llm_requests", tmp_path / "c.html", data=pl.DataFrame(
            {"arrival_s": [], "input_tokens": [], "output_tokens": []}, schema={
                "arrival_s": pl.Float64, "input_tokens": pl.Int64, "output_tokens": pl.Int64}))


def test_report_on_a_burstgpt_shaped_frame_has_models_failures_sessions_and_diurnal(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    n = 20_000
    t = np.sort(rng.uniform(0, 3 * 86400, n))
    df = pl.DataFrame({
        "source": "burstgpt", "trace": "BurstGPT_3", "request_id": np.arange(n), "arrival_s": np.floor(t),
        "model": rng.choice(["ChatGPT", "GPT-4"], n), "log_type": rng.choice(["Conversation log", "API log"], n),
        "session_id": rng.choice([f"s{i}" for i in range(3000)], n).astype(object),
        "input_tokens": rng.zipf(1.6, n).clip(1, 30_000), "output_tokens": rng.integers(0, 800, n),
    }).with_columns(failed=pl.col("output_tokens") == 0)
    out = build_report("llm_requests", tmp_path / "b.html", data=df)
    page = out.read_text()
    for heading in ("Per-model breakdown", "Failure rates", "Conversation sessions", "hour of day"):
        assert heading in page
    res = _check_render(out, tmp_path / "burstgpt-like.png")
    assert res["figures"] >= 8

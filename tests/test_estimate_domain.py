"""Estimates say how far to trust them (issue 13, section 3).

`wattlas estimate` reports, per method, the share of requests (and of energy) outside the model's
training envelope, prints every method side by side with the default marked, and says how many
GPUs a trace needs when its summed busy time exceeds its span; `predict --input` prints a
one-line out-of-domain summary on stderr.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

import wattlas.predictors
from wattlas.cli import main
from wattlas.ingest import ingest

from .llm_fixtures import AZURE_2023_CODE, write

MODELS = Path(wattlas.predictors.__file__).parent / "models"

# In the llm-energy envelope: 512 prompt tokens, 64 output tokens (a measured e2e point).
IN_DOMAIN = (512, 64)
# Outside it: the long prompt and long answer of the conv trace.
LONG_PROMPT = (14050, 10)
LONG_ANSWER = (600, 1000)


def _azure_conv(rows: list[tuple[int, int]], step_s: float) -> bytes:
    """An Azure 2023 conv file (CRLF, no final newline) with one request every ``step_s`` seconds."""
    lines = [b"TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i, (inp, out) in enumerate(rows):
        t = i * step_s
        h, rem = divmod(t, 3600.0)
        m, s = divmod(rem, 60.0)
        lines.append(f"2023-11-16 {int(h):02d}:{int(m):02d}:{s:010.7f},{inp},{out}".encode())
    return b"\r\n".join(lines)


def _store(tmp_path: Path, store_dir: Path, rows: list[tuple[int, int]], step_s: float) -> Path:
    raw = tmp_path / "raw"
    write(raw, "AzureLLMInferenceTrace_conv.csv", _azure_conv(rows, step_s))
    write(raw, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    ingest("azure-llm-2023", [raw], store=store_dir)
    return store_dir


def _estimate(store: Path, capsys, *extra: str) -> tuple[dict, str]:
    args = ["estimate", "--source", "azure-llm-2023", "--trace", "conv", "--gpu", "H100", "--model", "llama-3-8b",
            "--store", str(store), *extra]
    assert main(args) == 0
    cap = capsys.readouterr()
    return cap.out, cap.err


def _independent_ood(rows: list[tuple[int, int]]) -> list[bool]:
    """Requests outside llm-energy's recorded envelope of prompt and output tokens (log2 ranges)."""
    env = json.loads((MODELS / "llm-energy.json").read_text())["envelope"]
    (tlo, thi), (olo, ohi) = env["log2_tokens"], env["log2_output"]
    return [not (2**tlo <= i <= 2**thi and 2**olo <= o <= 2**ohi) for i, o in rows]


ROWS = [IN_DOMAIN] * 30 + [LONG_PROMPT] * 6 + [LONG_ANSWER] * 4


def test_estimate_reports_out_of_domain_share_and_every_method(tmp_path: Path, store_dir: Path, capsys):
    store = _store(tmp_path, store_dir, ROWS, step_s=600.0)  # sparse: 6.5 h, one GPU keeps up
    # Since issue 14 the default is serving-energy; llm-energy is selected here to check its envelope.
    out, err = _estimate(store, capsys, "--format", "json", "--method", "llm-energy")
    summary = json.loads(out)  # stdout is one clean JSON document
    methods = {m["method"]: m for m in summary["methods"]}
    assert set(methods) == {"serving-energy", "llm-energy", "operator-runtime"}
    assert methods["serving-energy"]["default"] and not methods["llm-energy"]["default"]
    assert summary["default_method"] == "serving-energy" and "measurements" in summary["default_reason"]

    expected = _independent_ood(ROWS)
    assert sum(expected) == 10
    (t,) = methods["llm-energy"]["traces"]
    assert t["out_of_domain_requests"] == sum(expected)
    assert t["out_of_domain_share"] == pytest.approx(sum(expected) / len(ROWS))  # 0.25
    assert t["out_of_domain_features"]["log2_tokens"] == 6 and t["out_of_domain_features"]["log2_output"] == 4
    # The energy share is the energy of exactly those requests (per-request output, -o).
    pq = tmp_path / "per_request.parquet"
    _estimate(store, capsys, "--format", "json", "--method", "llm-energy", "-o", str(pq))
    per = pl.read_parquet(pq).sort("request_id")
    assert per["out_of_domain"].to_list() == expected
    share = per.filter(pl.col("out_of_domain"))["energy_j_est"].sum() / per["energy_j_est"].sum()
    assert t["out_of_domain_energy_share"] == pytest.approx(share)
    assert t["out_of_domain_energy_share"] > 0.05
    assert any("llm-energy: 25.0% of the requests" in w for w in summary["warnings"])
    assert "llm-energy: 25.0% of the requests" in err  # warnings reach stderr in JSON mode too

    # The range spans both methods' energies.
    (r,) = summary["ranges"]
    energies = [m["traces"][0]["energy_kwh_est"] for m in summary["methods"]]
    assert (r["energy_kwh_est_min"], r["energy_kwh_est_max"]) == (min(energies), max(energies))
    assert t["gpus_needed"] == 1 and not any("cannot keep up" in w for w in summary["warnings"])


def test_estimate_table_prints_methods_side_by_side_on_stderr(tmp_path: Path, store_dir: Path, capsys):
    store = _store(tmp_path, store_dir, ROWS, step_s=600.0)
    out, err = _estimate(store, capsys, "--format", "csv", "--method", "operator-runtime")
    df = pl.read_csv(out.encode())  # stdout stays one CSV table, the selected method's figures
    assert df.height == 1 and df["trace"].to_list() == ["conv"]
    lines = err.splitlines()
    default = next(ln for ln in lines if ln.strip().startswith("llm-energy"))
    selected = next(ln for ln in lines if ln.strip().startswith("operator-runtime"))
    assert "(selected)" in selected and "out of domain: 25.0% of requests" in default
    assert any(ln.startswith("Methods for trace conv: energy ") and " kWh" in ln for ln in lines)
    assert any("default: serving-energy: trained on real serving-engine measurements" in ln for ln in lines)
    assert float(df["energy_kwh_est"][0]) > 0


def test_estimate_says_how_many_gpus_a_dense_trace_needs(tmp_path: Path, store_dir: Path, capsys):
    store = _store(tmp_path, store_dir, [IN_DOMAIN] * 40, step_s=0.05)  # 40 requests in 2 s
    out, err = _estimate(store, capsys, "--format", "json", "--method", "llm-energy")
    summary = json.loads(out)
    (row,) = summary["traces"]
    (t,) = next(m for m in summary["methods"] if m["selected"])["traces"]
    span_h = max(39 * 0.05, 1.0) / 3600.0
    assert row["gpu_busy_hours_est"] > span_h
    assert t["gpus_needed"] == math.ceil(row["gpu_busy_hours_est"] / span_h) > 1
    assert f"it needs {t['gpus_needed']} GPUs at decode batch 16" in err
    assert t["out_of_domain_share"] == 0.0  # all requests are the measured point


def test_predict_input_prints_out_of_domain_summary(tmp_path: Path, capsys):
    inp = tmp_path / "in.csv"
    pl.DataFrame({"gpu": ["H100"] * 3, "m": [512, 4096, 2**20], "n": [4096] * 3, "k": [4096] * 3,
                  "dtype": ["bf16"] * 3}).write_csv(inp)
    assert main(["predict", "gemm-runtime", "--input", str(inp), "--format", "csv"]) == 0
    cap = capsys.readouterr()
    assert pl.read_csv(cap.out.encode()).height == 3  # stdout: only the CSV
    assert "1 of 3 rows outside the training envelope of gemm-runtime" in cap.err
    assert "log2_m: 1 outside [0, 15]" in cap.err
    # Also when the predictions go to a file.
    assert main(["predict", "gemm-runtime", "--input", str(inp), "-o", str(tmp_path / "o.parquet")]) == 0
    assert "1 of 3 rows outside the training envelope" in capsys.readouterr().err


def test_elementwise_operator_inside_the_envelope_is_not_flagged(capsys):
    # log2_k is NaN for elementwise operators in training too: NaN there is not "outside".
    args = ["predict", "operator-runtime", "--gpu", "H100", "--op", "add", "--num-tokens", "512", "--n-embd", "4096",
            "--n-expanded-embd", "14336", "--n-head", "32", "--n-kv-head", "8", "--tensor-parallel", "1", "--gated",
            "--dtype", "bf16", "--format", "json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)[0]["out_of_domain"] is False

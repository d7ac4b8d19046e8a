"""`wattlas estimate` on serving-energy (issue 14): Little's-law batch, the default method, range, OOD, cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.ingest import ingest
from wattlas.predictors.serving_estimate import solve_batch

from .llm_fixtures import AZURE_2023_CODE, write

SHORT = (300, 20)  # output length below every measured configuration's mean (229 tokens)
CHAT = (300, 400)


def _azure_conv(rows: list[tuple[int, int]], step_s: float) -> bytes:
    lines = [b"TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i, (inp, out) in enumerate(rows):
        m, s = divmod(i * step_s, 60.0)
        lines.append(f"2023-11-16 10:{int(m):02d}:{s:010.7f},{inp},{out}".encode())
    return b"\r\n".join(lines)


def _estimate(tmp_path: Path, store: Path, capsys, rows, step_s: float, *extra: str) -> tuple[str, str]:
    raw = tmp_path / "raw"
    write(raw, "AzureLLMInferenceTrace_conv.csv", _azure_conv(rows, step_s))
    write(raw, "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    ingest("azure-llm-2023", [raw], store=store)
    capsys.readouterr()
    args = ["estimate", "--source", "azure-llm-2023", "--trace", "conv", "--gpu", "H100", "--model", "llama-3-8b",
            "--store", str(store), *extra]
    assert main(args) == 0
    cap = capsys.readouterr()
    return cap.out, cap.err


def test_littles_law_fixed_point_and_cap():
    # latency grows with the batch: 1 s + 0.01 s per request in flight; 5 req/s -> B = 5 (1 + 0.01 B).
    b, capped = solve_batch(5.0, lambda b: 1.0 + 0.01 * b, 256)
    assert b == pytest.approx(5.0 / 0.95, rel=1e-6) and not capped
    assert solve_batch(500.0, lambda b: 1.0 + 0.01 * b, 64) == (64.0, True)
    assert solve_batch(0.0, lambda b: 1.0, 64) == (0.0, False)


def test_estimate_defaults_to_serving_energy_with_range_and_ood_share(tmp_path: Path, store_dir: Path, capsys):
    rows = [CHAT] * 30 + [SHORT] * 10
    out, err = _estimate(tmp_path, store_dir, capsys, rows, 0.3, "--format", "json")
    summary = json.loads(out)
    assert summary["default_method"] == "serving-energy" and summary["selected_method"] == "serving-energy"
    methods = {m["method"]: m for m in summary["methods"]}
    assert set(methods) == {"serving-energy", "llm-energy", "operator-runtime"}
    (rng,) = summary["ranges"]
    energies = [m["traces"][0]["energy_kwh_est"] for m in methods.values()]
    assert rng["energy_kwh_est_min"] == min(energies) and rng["energy_kwh_est_max"] == max(energies)
    served = methods["serving-energy"]["traces"][0]
    # The 10 short answers lie below the shortest measured mean output length.
    assert served["out_of_domain_share"] == pytest.approx(10 / 40)
    assert served["out_of_domain_features"]["log2_output_tokens"] == 10
    (s,) = summary["serving"]
    assert s["gpus_needed"] == 1 and not s["capped"]
    assert s["energy_per_output_token_j_est"] > 0 and s["peak_power_w_est"] >= s["avg_power_w_est"]
    # 40 requests in 12 s: the busy engine draws more than idle, less than its TDP.
    assert 114.7 < s["avg_power_w_est"] <= 700.0
    trace_row = summary["traces"][0]
    assert trace_row["energy_per_output_token_j_est"] == s["energy_per_output_token_j_est"]

    out, err = _estimate(tmp_path, store_dir, capsys, rows, 0.3)
    assert "* serving-energy" in err and "llm-energy" in err and "operator-runtime" in err
    assert "J/output token" in err and "kWh/h" in err and "peak" in err
    assert "25.0% of the requests of trace conv" in err  # the OOD warning


def test_cap_message_and_gpus_needed(tmp_path: Path, store_dir: Path, capsys):
    rows = [CHAT] * 200
    out, err = _estimate(tmp_path, store_dir, capsys, rows, 0.05, "--max-num-seqs", "8", "--format", "json")
    (s,) = json.loads(out)["serving"]
    assert s["capped"] and s["max_num_seqs"] == 8 and s["gpus_needed"] > 1
    warnings = json.loads(out)["warnings"]
    assert any("more than --max-num-seqs 8" in w and "capped at 8" in w for w in warnings)
    assert "capped at 8" in err  # warnings also reach stderr with --format json

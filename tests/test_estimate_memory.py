"""A model must fit in the GPUs' memory before anything is estimated (issue 15, item 5).

Llama-3-70B (about 141 GB of bf16 weights) on one 80 GB H100 used to get 440 J per request and
no warning. `estimate` and `predict` now refuse it with the numbers and accept it with
``--tensor-parallel 2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from wattlas.cli import main
from wattlas.errors import WattlasError

from .test_estimate_domain import IN_DOMAIN, _store


def test_parameter_and_kv_counts_match_the_published_configs():
    from wattlas.predictors.memory import kv_bytes_per_token, memory_fit, params

    # Hugging Face model cards: 8.03B and 70.6B parameters; Llama-2-7B 6.74B.
    assert params("llama-3-8b") == pytest.approx(8.03e9, rel=2e-3)
    assert params("llama-3-70b") == pytest.approx(70.55e9, rel=2e-3)
    assert params("llama-2-7b") == pytest.approx(6.74e9, rel=2e-3)
    # 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes: 320 KiB a token.
    assert kv_bytes_per_token("llama-3-70b", "bf16") == 2 * 80 * 8 * 128 * 2
    # Past 8 GPUs the 8 KV heads are replicated: the cache grows with the degree.
    assert kv_bytes_per_token("llama-3-70b", "bf16", 16) == 2 * kv_bytes_per_token("llama-3-70b", "bf16", 8)
    fit = memory_fit("llama-3-70b", "H100", "bf16", tensor_parallel=1, batch=16, context_tokens=1000)
    assert not fit.fits and round(fit.weights_gb, 1) == 141.1 and fit.min_tensor_parallel == 2
    assert fit.available_gb == pytest.approx(0.9 * 80 * 2**30 / 1e9)


def _estimate(store: Path, capsys, model: str, *extra: str) -> int:
    args = ["estimate", "--source", "azure-llm-2023", "--trace", "conv", "--gpu", "H100", "--model", model,
            "--store", str(store), "--format", "json", *extra]
    return main(args)


def test_estimate_refuses_llama_3_70b_on_one_h100_and_takes_two(tmp_path: Path, store_dir: Path, capsys):
    store = _store(tmp_path, store_dir, [IN_DOMAIN] * 10, step_s=600.0)
    # The numbers of the decode batch (16) of operator-runtime; serving-energy's own refusal, at the
    # batch the trace's load implies, is in test_estimate_serving_physics.py.
    assert _estimate(store, capsys, "llama-3-70b", "--method", "operator-runtime") == 1
    cap = capsys.readouterr()
    assert cap.out == ""  # no estimate at all
    for number in ("weights 141.1 GB", "KV cache 3.0 GB", "batch 16 x 576 tokens", "available 77.3 GB",
                   "--tensor-parallel 2"):
        assert number in cap.err, number
    assert _estimate(store, capsys, "llama-3-70b", "--tensor-parallel", "2") == 0
    summary = json.loads(capsys.readouterr().out)
    mem = summary["memory"]
    assert mem["fits"] and mem["tensor_parallel"] == 2 and mem["available_gb"] == pytest.approx(154.6, abs=0.1)
    assert any(a.startswith("memory: weights 141.1 GB") for a in summary["assumptions"])


def test_estimate_refuses_a_batch_whose_kv_cache_does_not_fit(tmp_path: Path, store_dir: Path, capsys):
    store = _store(tmp_path, store_dir, [(8000, 2000)] * 4, step_s=600.0)
    # 256 x 10,000 tokens x 128 KiB = 335.5 GB of KV cache next to 16.1 GB of weights: 8 GPUs hold it.
    assert _estimate(store, capsys, "llama-3-8b", "--decode-batch", "256", "--method", "operator-runtime") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "KV cache 335.5 GB" in err and "--tensor-parallel 8 (or more) or a smaller batch" in err, err


def test_estimate_warns_about_requests_too_long_for_the_batch(tmp_path: Path, store_dir: Path, capsys):
    # The mean context fits at batch 64; the one 30k-token request's own batch does not.
    store = _store(tmp_path, store_dir, [IN_DOMAIN] * 30 + [(30000, 100)], step_s=600.0)
    assert _estimate(store, capsys, "llama-3-8b", "--decode-batch", "64", "--method", "operator-runtime") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["memory"]["requests_over_memory"] == 1
    assert any("1 requests (3.23%) have more than" in w for w in summary["warnings"])


def _predict(*extra: str) -> list[str]:
    return ["predict", "llm-energy", "--gpu", "H100", "--model", "llama-3-70b", "--phase", "e2e", "--batch-size",
            "16", "--input-tokens", "512", "--output-tokens", "64", "--format", "json", *extra]


def test_predict_refuses_llama_3_70b_on_one_h100(capsys):
    assert main(_predict()) == 1
    err = capsys.readouterr().err
    assert "llama-3-70b does not fit on 1 H100" in err and "weights 141.1 GB" in err and "--tensor-parallel 2" in err
    assert main(_predict("--tensor-parallel", "2")) == 0
    cap = capsys.readouterr()
    (row,) = json.loads(cap.out)
    # Accepted, and flagged: llm-energy was measured on one GPU.
    assert row["out_of_domain"] is True and "tensor_parallel: 1 outside [1, 1]" in cap.err


def test_predict_batch_names_the_row_that_does_not_fit(tmp_path: Path, capsys):
    inp = tmp_path / "in.csv"
    pl.DataFrame({"gpu": ["H100"] * 3, "model": ["llama-3-8b", "llama-3-70b", "llama-3-70b"], "phase": ["e2e"] * 3,
                  "batch_size": [16] * 3, "input_tokens": [512] * 3, "output_tokens": [64] * 3,
                  "tensor_parallel": [1, 1, 2]}).write_csv(inp)
    assert main(["predict", "llm-energy", "--input", str(inp), "--format", "csv"]) == 1
    err = capsys.readouterr().err
    assert "row 2 of 3: llama-3-70b does not fit" in err and "(1 of 3 rows do not fit)" in err


def test_memory_fit_error_is_a_wattlas_error():
    from wattlas.predictors.memory import MemoryFitError

    assert issubclass(MemoryFitError, WattlasError)

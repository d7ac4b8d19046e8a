"""The serving-energy predictor (issue 14): groups, physics anchor, training rows, CV table, a hand check.

The hand check takes one measured ML.ENERGY v3 configuration (Llama-3.1-8B-Instruct, lm-arena-chat,
one H100, max_num_seqs 16), turns it into a synthetic trace with the same request rate and output
length, and asks `estimate` for its energy per output token: it must come back within the
predictor's recorded leave-one-model-out error. The configuration's figures are quoted below
(ml-energy/leaderboard@0cd52da, public/data/models/meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json);
with ``WATTLAS_MLENERGY_DIR`` set to a copy of that repository the test reads them from the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import wattlas
import wattlas.predictors
from wattlas.predictors.serving import from_table, model_group, physics_frame

MODELS = Path(wattlas.predictors.__file__).parent / "models"
FIXTURES = Path(__file__).parent / "fixtures" / "mlenergy"

#: Llama-3.1-8B-Instruct, lm-arena-chat, 1 x H100, max_num_seqs 16 (rounded as in the module docstring).
HAND = {"max_num_seqs": 16, "avg_batch_size": 15.95, "avg_output_len": 404.2, "energy_per_token_joules": 0.2627,
        "output_throughput_tokens_per_sec": 1953.6}


def _hand_config() -> dict:
    root = os.environ.get("WATTLAS_MLENERGY_DIR")
    if not root:
        return HAND
    path = Path(root) / "public/data/models/meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
    doc = json.loads(path.read_text())
    (conf,) = [c for c in doc["configurations"] if c["gpu_model"] == "H100" and c["max_num_seqs"] == 16]
    for k, v in HAND.items():  # the quoted figures are the file's
        assert conf[k] == pytest.approx(v, rel=1e-3), k
    return conf


def test_model_groups_merge_precision_and_finetune_variants():
    names = ("Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
             "Qwen/Qwen3-235B-A22B-Thinking-2507-FP8")
    same = {model_group(m, 235, 22) for m in names}
    assert same == {"qwen3 235B/A22B"}
    assert model_group("meta-llama/Llama-3.1-70B-Instruct", 70, 70) == model_group("meta-llama/Llama-3.3-70B-Instruct",
                                                                                   70, 70)
    assert model_group("meta-llama/Llama-3.1-405B-Instruct-FP8", 405, 405) == "llama 405B"
    # Same size, other family: other groups.
    assert model_group("meta-llama/Llama-3.1-8B-Instruct", 8, 8) != model_group("Qwen/Qwen3-8B", 8, 8)


def _phys(**kw) -> pl.DataFrame:
    row = {"gpu": "H100", "num_gpus": 1, "total_params_b": 8.0, "activated_params_b": 8.0, "precision": "bf16",
           "batch_size": 1.0, "output_tokens": 2.0, **kw}
    return physics_frame(pl.DataFrame({k: [v] for k, v in row.items()}))


def test_physics_reads_weights_once_per_step_and_moe_touches_experts_by_batch():
    dense = _phys()
    assert dense["weight_bytes"][0] == pytest.approx(16e9)
    assert dense["t_mem_s"][0] == pytest.approx((16e9 + 131072.0) / 3.35e12)
    # fp8 halves the bytes; 2 GPUs halve them again per GPU.
    assert _phys(precision="fp8", num_gpus=2)["t_mem_s"][0] == pytest.approx(dense["t_mem_s"][0] / 4, rel=1e-3)
    # MoE: the activated weights at batch 1, nearly all of them at batch 256.
    moe1 = _phys(total_params_b=30.0, activated_params_b=3.0)
    moe256 = _phys(total_params_b=30.0, activated_params_b=3.0, batch_size=256.0)
    assert moe1["weight_bytes"][0] == pytest.approx(6e9)
    assert moe256["weight_bytes"][0] == pytest.approx(60e9, rel=1e-6)
    e = _phys(batch_size=16.0)
    assert e["energy_per_token_phys_j"][0] == pytest.approx(700.0 * e["itl_phys_s"][0] / 16.0)


def test_training_rows_are_text_llm_configurations_sorted(tmp_path: Path):
    from wattlas.ingest import ingest
    from wattlas.predictors.serving import training_frame
    from wattlas.store import Store

    store = tmp_path / "store"
    ingest("mlenergy-v3", [FIXTURES], store=store)
    rows = Store(store).sql("select * from serving_energy")
    frame = training_frame(Store(store))
    text = rows.filter(pl.col("task").is_in(["lm-arena-chat", "gpqa", "sourcegraph-fim"]))
    assert 0 < frame.height == text.height < rows.height  # the text-to-image rows are left out
    assert set(frame["task"]) <= {"lm-arena-chat", "gpqa", "sourcegraph-fim"}
    assert frame.equals(from_table(rows.reverse()))  # the same rows whatever order SQL returns
    assert {"y_energy_per_token_j", "y_avg_power_w", "y_median_itl_s", "model_group", "evaluate"} <= set(frame.columns)


def test_evaluate_prints_grouped_cv_table_with_baselines():
    import subprocess

    args = [sys.executable, "-m", "wattlas", "predictors", "evaluate", "serving-energy", "--format", "csv"]
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(wattlas.__file__).parents[1])})
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    cells = {(r["target"], r["scheme"], r["method"]) for r in rows}
    targets = {"energy_per_token_j", "avg_power_w", "median_itl_s"}
    schemes = {"leave-one-model-out", "leave-one-gpu-out", "leave-one-task-out"}
    methods = {"wattlas", "roofline", "roofline-cal", "linear-raw", "gbm-raw", "gbm-log"}
    assert cells == {(t, s, m) for t in targets for s in schemes for m in methods}
    lomo = {r["method"]: float(r["mape_pct"]) for r in rows
            if r["target"] == "energy_per_token_j" and r["scheme"] == "leave-one-model-out"}
    assert lomo["wattlas"] < min(v for m, v in lomo.items() if m != "wattlas")
    # The per-architecture breakdown (dense vs MoE) is recorded beside the table.
    meta = json.loads((MODELS / "serving-energy.json").read_text())
    row = next(m for m in meta["metrics"] if m["method"] == "wattlas" and m["target"] == "energy_per_token_j"
               and m["scheme"] == "leave-one-model-out")
    assert set(row["architecture_mape_pct"]) == {"dense", "moe", "hybrid"}


def test_hand_check_measured_configuration_as_a_trace():
    from wattlas.predictors.estimate import Assumptions, estimate_requests

    conf = _hand_config()
    out_tokens = round(conf["avg_output_len"])
    rate = conf["output_throughput_tokens_per_sec"] / conf["avg_output_len"]  # requests per second
    n = int(rate * 1200)  # 20 minutes
    reqs = pl.DataFrame({"trace": ["hand"] * n, "arrival_s": np.arange(n) / rate,
                         "input_tokens": [200] * n, "output_tokens": [out_tokens] * n})
    a = Assumptions(gpu="H100", model="llama-3-8b", max_num_seqs=conf["max_num_seqs"] * 16)
    _, info = estimate_requests(reqs, a, method="serving-energy")
    (summary,) = info["serving"]
    meta = json.loads((MODELS / "serving-energy.json").read_text())
    cv = next(m for m in meta["metrics"] if m["method"] == "wattlas" and m["target"] == "energy_per_token_j"
              and m["scheme"] == "leave-one-model-out")
    # Little's law puts about the measured batch in flight ...
    assert summary["batch_est_mean"] == pytest.approx(conf["avg_batch_size"], rel=0.10)
    assert not summary["capped"] and summary["idle_energy_kwh_est"] == 0.0
    # ... and the energy per output token comes back within the recorded cross-validation error
    # (leave-one-model-out MAPE of dense models; 0.274 J vs 0.2627 J measured when written).
    ape = abs(summary["energy_per_output_token_j_est"] / conf["energy_per_token_joules"] - 1) * 100
    tolerance = cv["architecture_mape_pct"]["dense"]
    assert ape <= tolerance, (summary["energy_per_output_token_j_est"], ape, tolerance)

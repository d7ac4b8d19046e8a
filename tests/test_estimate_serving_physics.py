"""serving-energy under issue 15's physics: the power-cap curve, the memory check at the Little's-law batch."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from wattlas.predictors.estimate import Assumptions, default_method, estimate_requests
from wattlas.predictors.memory import MemoryFitError, largest_batch


def _requests(n: int, step_s: float, inp: int = 300, out: int = 400) -> pl.DataFrame:
    return pl.DataFrame({"trace": ["t"] * n, "arrival_s": np.arange(n) * step_s,
                         "input_tokens": [inp] * n, "output_tokens": [out] * n})


def test_power_cap_slows_serving_energy_and_keeps_its_power_under_the_cap():
    reqs = _requests(400, 0.2)  # 5 req/s of 400 tokens: about 17 in flight on one H100
    a = Assumptions(gpu="H100", model="llama-3-8b")
    assert default_method(a)[0] == "serving-energy"
    full, fi = estimate_requests(reqs, a)
    capped, ci = estimate_requests(reqs, Assumptions(gpu="H100", model="llama-3-8b", power_limit_w=300))
    assert fi["method_name"] == ci["method_name"] == "serving-energy"
    # Uncapped, the engine draws well above 300 W per GPU.
    assert full["power_w_est"].min() > 450
    # Capped: every step slower (the cap curve), the per-GPU draw at or under the cap.
    assert capped["decode_s_est"].mean() > 1.3 * full["decode_s_est"].mean()
    assert capped["power_w_est"].max() <= 300.0
    assert ci["power_cap"]["binding"] and ci["power_cap"]["reference_limit_w"] == 700.0
    assert fi["power_cap"]["binding"] is False
    # A slower engine holds more requests in flight at the same arrival rate (Little's law).
    assert capped["batch_est"].mean() > 1.3 * full["batch_est"].mean()
    assert ci["memory"]["batch"] == math.ceil(capped["batch_est"].max())
    # Trace average power per GPU, idle included: 546 W uncapped, about the cap capped (the three
    # predicted figures, energy per token, power and ITL, agree within a few percent, not exactly).
    (sf,), (sc,) = fi["serving"], ci["serving"]
    assert sf["avg_power_w_est"] / sf["gpus_needed"] > 500
    assert sc["avg_power_w_est"] / sc["gpus_needed"] <= 300.0 * 1.05
    assert sc["energy_per_output_token_j_est"] < sf["energy_per_output_token_j_est"]


def test_idle_energy_is_not_scaled_by_the_cap():
    reqs = _requests(40, 10.0)  # one request every 10 s: the GPU is idle most of the time
    f, fi = estimate_requests(reqs, Assumptions(gpu="H100", model="llama-3-8b"))
    c, ci = estimate_requests(reqs, Assumptions(gpu="H100", model="llama-3-8b", power_limit_w=300))
    assert not any("idle" in col for col in c.columns)  # not a per-request *_j_est column
    (sf,), (sc,) = fi["serving"], ci["serving"]
    assert sc["idle_power_w_per_gpu"] == sf["idle_power_w_per_gpu"] == pytest.approx(114.7)
    # The capped requests take longer, so the GPU idles a little less, at the same idle power.
    busy_f, busy_c = f["decode_s_est"].sum() + f["prefill_s_est"].sum(), c["decode_s_est"].sum() + c[
        "prefill_s_est"].sum()
    span_s = 390.0
    idle_w = sf["idle_power_w_per_gpu"]
    assert sf["idle_energy_kwh_est"] * 3.6e6 == pytest.approx((span_s - busy_f) * idle_w, rel=0.02)
    assert sc["idle_energy_kwh_est"] * 3.6e6 == pytest.approx((span_s - busy_c) * idle_w, rel=0.02)


def test_llama_3_70b_on_one_h100_is_refused_by_the_default_method():
    reqs = _requests(10, 600.0)
    a = Assumptions(gpu="H100", model="llama-3-70b")
    assert default_method(a)[0] == "serving-energy"
    with pytest.raises(MemoryFitError) as e:
        estimate_requests(reqs, a)
    msg = str(e.value)
    # Not even one sequence fits beside 141 GB of weights: refused at batch 1, with the numbers.
    assert "weights 141.1 GB" in msg and "batch 1 x 700 tokens" in msg and "--tensor-parallel 2" in msg
    frame, info = estimate_requests(reqs, Assumptions(gpu="H100", model="llama-3-70b", tensor_parallel=2))
    assert info["method_name"] == "serving-energy" and info["memory"]["fits"]
    assert info["serving"][0]["gpus_needed"] == 2


def test_kv_memory_caps_the_littles_law_batch():
    # 100 req/s of 10,000-token contexts: far more in flight than fit in an H100's KV cache.
    reqs = _requests(2000, 0.01, inp=8000, out=2000)
    fits = largest_batch("llama-3-8b", "H100", "bf16", tensor_parallel=1, context_tokens=10000)
    assert fits == 46  # (77.3 GB - 16.1 GB of weights) / 1.31 GB per sequence
    frame, info = estimate_requests(reqs, Assumptions(gpu="H100", model="llama-3-8b"))  # --max-num-seqs 256
    (s,) = info["serving"]
    assert s["max_num_seqs"] == 46 and s["batch_cap_source"].startswith("KV-cache memory (46 sequences")
    assert s["capped"] and s["replicas"] > 1 and frame["batch_est"].max() <= 46
    # The memory check verified the batch Little's law gave, not the fixed --decode-batch.
    mem = info["memory"]
    assert mem["batch"] == 46 and mem["batch_source"] == "Little's law, busiest window" and mem["fits"]


def test_anchor_counts_two_all_reduces_per_layer_on_several_gpus():
    from wattlas.predictors.serving import ALLREDUCE_S, physics_frame

    rows = pl.DataFrame({"gpu": ["H100", "H100"], "num_gpus": [1, 8], "total_params_b": [405.0, 405.0],
                         "activated_params_b": [405.0, 405.0], "precision": ["fp8", "fp8"],
                         "batch_size": [64.0, 64.0], "output_tokens": [500.0, 500.0]})
    f = physics_frame(rows)
    layers = 32.0 * (405.0 / 8.0) ** 0.35
    assert round(layers) == 126  # Llama-3.1-405B's config.json
    assert f["t_comm_s"].to_list() == pytest.approx([0.0, 2 * layers * ALLREDUCE_S])
    itl = f["itl_phys_s"].to_numpy()
    assert itl[1] == pytest.approx(f["t_mem_s"][1] + f["t_comp_s"][1] + f["t_comm_s"][1])


def test_shipped_card_records_the_dense_leave_one_model_out_figures():
    import json
    from pathlib import Path

    import wattlas.predictors

    meta = json.loads((Path(wattlas.predictors.__file__).parent / "models" / "serving-energy.json").read_text())
    row = next(r for r in meta["metrics"] if r["target"] == "energy_per_token_j"
               and r["scheme"] == "leave-one-model-out" and r["method"] == "wattlas")
    # 12.4 % and 26.4 % for Llama-3.1-405B without the all-reduce term; the 10 % target is still missed.
    assert 10.0 < row["architecture_mape_pct"]["dense"] < 11.0
    assert row["group_mape_pct"]["llama 405B"] < 20.0

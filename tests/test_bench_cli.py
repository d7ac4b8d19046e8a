"""`wattlas bench ... --quick` end to end on the CPU: three tables written, energy honest."""

from __future__ import annotations

import json
import math

import pytest

from wattlas.bench.run import bench_gemm
from wattlas.cli import main
from wattlas.store import Store


def _rows(store_dir, query):
    return Store(store_dir).sql(query).to_dicts()


def _check_energy_columns(rows):
    for r in rows:
        if r["energy_source"] == "unavailable":
            # Never invented: null energy, with a reason.
            assert r["energy_j"] is None and r["energy_per_iter_j"] is None and r["avg_power_w"] is None
            assert r["energy_unavailable_reason"]
        else:
            assert r["energy_source"] in ("rapl", "nvml_counter") and r["energy_j"] > 0


def test_gemm_quick_writes_three_tables(store_dir, capsys):
    assert main(["bench", "gemm", "--quick", "--device", "cpu", "--store", str(store_dir), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed) == 2 and {r["dtype"] for r in printed} == {"fp32"}
    rows = _rows(store_dir, "select * from bench_results order by point_id")
    assert [r["point_id"] for r in rows] == [0, 1]
    for r in rows:
        assert r["kind"] == "gemm" and r["device_type"] == "cpu" and r["timer"] == "perf_counter"
        assert r["time_per_iter_s_p10"] <= r["time_per_iter_s_median"] <= r["time_per_iter_s_p90"]
        assert r["n_iters"] >= 10
        assert math.isclose(r["tflops"], 2 * r["m"] * r["n"] * r["k"] / r["time_per_iter_s_median"] / 1e12)
        assert r["window_too_short"] is True  # --quick windows are flagged
        assert r["window_iters"] >= 1 and r["window_s"] >= 0.25
    _check_energy_columns(rows)
    run = _rows(store_dir, "select * from bench_runs")
    assert len(run) == 1 and run[0]["status"] == "complete" and run[0]["points"] == 2
    assert run[0]["device_type"] == "cpu" and run[0]["quick"] is True
    assert run[0]["rapl_status"]  # 'available' or why not
    assert json.loads(run[0]["settings_json"])["dtypes"] == ["fp32"]
    samples = _rows(store_dir, "select * from power_samples")
    assert samples and {s["device"] for s in samples} == {"cpu"}
    assert {(s["run_id"], s["point_id"]) for s in samples} <= {(r["run_id"], r["point_id"]) for r in rows}


def test_ctrl_c_keeps_finished_points(store_dir):
    seen = []

    def stop_after_first(row):
        seen.append(row)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench_gemm(store=store_dir, device="cpu", quick=True, shapes=[(64, 64, 64), (96, 96, 96)],
                   on_point=stop_after_first)
    assert len(seen) == 1
    rows = _rows(store_dir, "select point_id, m from bench_results")
    assert rows == [{"point_id": 0, "m": 64}]
    run = _rows(store_dir, "select status, points, ended_at_utc from bench_runs")
    assert run[0]["status"] == "interrupted" and run[0]["points"] == 1 and run[0]["ended_at_utc"] is not None


def test_bad_options_are_clear_errors(store_dir, capsys):
    assert main(["bench", "gemm", "--device", "cpu", "--window-s", "0.2", "--store", str(store_dir)]) == 1
    assert "under 1 s" in capsys.readouterr().err
    assert main(["bench", "gemm", "--quick", "--device", "cpu", "--dtypes", "fp9", "--store", str(store_dir)]) == 1
    assert "unknown dtype" in capsys.readouterr().err
    assert main(["bench", "gemm", "--quick", "--device", "cpu", "--power-limits", "300",
                 "--store", str(store_dir)]) == 1
    assert "--allow-device-settings" in capsys.readouterr().err
    assert not (store_dir / "catalog.json").exists()


def test_colocate_quick_cpu(store_dir):
    assert main(["bench", "colocate", "--quick", "--device", "cpu", "--target-s", "0.15",
                 "--store", str(store_dir), "--format", "csv"]) == 0
    rows = _rows(store_dir, "select * from bench_results order by point_id, workload")
    solo = [r for r in rows if r["colocation_mode"] == "solo"]
    pairs = [r for r in rows if r["colocation_mode"] == "processes"]
    assert sorted(r["workload"] for r in solo) == ["cpu-gemm", "cpu-stream"]
    assert len(pairs) == 6  # (gemm,gemm), (gemm,stream), (stream,stream), two rows each
    for r in pairs:
        assert r["kind"] == "colocation" and r["partner_workload"] in ("cpu-gemm", "cpu-stream")
        assert r["slowdown"] > 0 and r["solo_time_per_iter_s"] > 0
        assert math.isclose(r["slowdown"], r["time_per_iter_s_mean"] / r["solo_time_per_iter_s"])
        assert r["energy_per_iter_j"] is None  # a pair's energy is not split per workload
    by_point = {}
    for r in pairs:
        by_point.setdefault(r["point_id"], []).append(r)
    for pr in by_point.values():
        assert len(pr) == 2
        assert math.isclose(pr[0]["combined_throughput"], sum(1 / r["slowdown"] for r in pr))
    _check_energy_columns(rows)
    assert _rows(store_dir, "select count(*) as n from power_samples")[0]["n"] > 0


def test_llm_quick_tiny_model(store_dir):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert main(["bench", "llm", "--quick", "--device", "cpu", "--store", str(store_dir), "--format", "csv"]) == 0
    rows = _rows(store_dir, "select * from bench_results order by point_id")
    assert [r["kind"] for r in rows] == ["prefill", "prefill", "decode", "decode", "e2e", "e2e"]
    for r in rows:
        assert r["model"] == "tiny-llama" and r["backend"] == "transformers" and r["dtype"] == "fp32"
        assert r["input_tokens"] == 16 and r["model_params"] > 0 and len(r["model_config_hash"]) == 16
        tokens = {"prefill": r["batch_size"] * 16, "decode": r["batch_size"], "e2e": r["batch_size"] * 4}[r["kind"]]
        assert math.isclose(r["tokens_per_s"], tokens / r["time_per_iter_s_median"])
    assert rows[0]["output_tokens"] is None and rows[2]["output_tokens"] == 4
    _check_energy_columns(rows)
    run = _rows(store_dir, "select transformers_version, torch_version from bench_runs")[0]
    assert run["transformers_version"] and run["torch_version"]


def test_decode_warms_up_over_a_whole_cache_cycle(monkeypatch):
    pytest.importorskip("transformers")
    from wattlas.bench import llm
    from wattlas.bench.harness import TimingProtocol, open_target

    seen = {}

    def fake_measure(step, target, proto, sampler=None, **kw):
        seen[step.__self__.kind] = proto.first_calls
        raise RuntimeError("stop")

    monkeypatch.setattr(llm, "measure_point", fake_measure)
    target = open_target("cpu")
    model, config = llm.build_model(llm.ARCHS["tiny-llama"], "fp32", target)
    for phase in ("decode", "prefill"):
        with pytest.raises(RuntimeError, match="stop"):
            llm.measure_llm(llm.LlmPoint(phase, 1, 8, 6), model, config, llm.ARCHS["tiny-llama"], "fp32", target,
                            TimingProtocol(first_calls=1))
    assert seen == {"decode": 7, "prefill": 1}

"""`predictors evaluate --store`: work announced up front, progress on stderr, --quick rows, parallel folds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from wattlas.bench.session import rows_to_table
from wattlas.cli import main
from wattlas.errors import WattlasError
from wattlas.predictors.definitions import get_definition
from wattlas.predictors.evaluation import cross_validate
from wattlas.store import Store

# stdout of `predictors evaluate interference --store S --format csv` on the store below, produced
# by the code before this change (commit 1022a35): the progress work must leave it byte-identical.
# (Issue 15 added the roofline-cal, roofline-cal-workload and gbm-log baseline rows; the four
# rows that were there are unchanged.)
BEFORE_CSV = """\
model,target,scheme,method,n,mape_pct,median_ape_pct,p90_ape_pct,r2_log,worst_group,worst_group_mape_pct
interference,slowdown,leave-one-workload-out,wattlas,12,5.202,4.57,9.667,0.7841,gemm,8.937
interference,slowdown,leave-one-workload-out,roofline,12,27.197,30.248,38.127,-6.0539,decode,37.156
interference,slowdown,leave-one-workload-out,roofline-cal,12,11.52,10.171,20.64,0.0945,gemm,14.094
interference,slowdown,leave-one-workload-out,roofline-cal-workload,12,11.52,10.171,20.64,0.0945,gemm,14.094
interference,slowdown,leave-one-workload-out,linear-raw,12,2.967,3.251,6.886,0.9044,decode,3.942
interference,slowdown,leave-one-workload-out,gbm-raw,12,11.795,10.246,19.584,0.0659,gemm,13.585
interference,slowdown,leave-one-workload-out,gbm-log,12,11.608,9.71,18.498,0.0825,gemm,12.697
"""


def _fill(root: Path) -> Store:
    """A co-location run (12 pairs, 4 workloads) and a `--quick` GEMM run of 3 points."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [{"run_id": r, "bench": b, "status": "complete", "started_at_utc": t0, "device_type": "cpu", "quick": q}
            for r, b, q in (("r1", "colocate", False), ("r2", "gemm", True))]
    rng = np.random.default_rng(3)
    loads = {"gemm": 0.010, "stream": 0.004, "decode": 0.002, "prefill": 0.008}
    res = [dict(kind="colocation", workload=w, colocation_mode="solo", solo_time_per_iter_s=t,
                time_per_iter_s_median=t, slowdown=1.0) for w, t in loads.items()]
    for w, t in loads.items():
        for p, tp in loads.items():
            if p != w:
                s = 1.0 + 0.8 * tp / (t + tp) + rng.normal(0, 0.02)
                res.append(dict(kind="colocation", workload=w, partner_workload=p, colocation_mode="processes",
                                time_per_iter_s_median=t * s, solo_time_per_iter_s=t, slowdown=s))
    for i, r in enumerate(res):
        r.update(run_id="r1", point_id=i, device_type="cpu", energy_source="unavailable")
    quick = [dict(run_id="r2", point_id=i, kind="gemm", device_type="cuda", gpu_name="NVIDIA H100 80GB HBM3",
                  dtype="bf16", m=n, n=n, k=n, time_per_iter_s_median=2 * n**3 / 5e14, window_too_short=True,
                  energy_source="nvml_counter") for i, n in enumerate((1024, 2048, 4096))]
    st = Store(root)
    with st.transaction("wattlas-bench") as tx:
        tx.put("bench_runs", "r", rows_to_table(runs))
        tx.put("bench_results", "r1.0", rows_to_table(res))
        tx.put("bench_results", "r2.0", rows_to_table(quick))
    return st


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate") / "store"
    _fill(root)
    return root


def test_work_is_announced_quick_rows_flagged_and_stdout_unchanged(bench_store: Path, capsys):
    # Every predictor is tried: only interference has data once the --quick GEMM points are left out.
    assert main(["predictors", "evaluate", "--store", str(bench_store), "--format", "csv", "--jobs", "1"]) == 0
    out, err = capsys.readouterr()
    assert out == BEFORE_CSV
    err = " ".join(err.split())  # rich wraps long lines at the console width
    assert "3 bench_results rows come from --quick runs or too-short windows: left out" in err
    # 1 scheme x 4 held-out workloads x (wattlas + linear-raw + gbm-raw + gbm-log) fits; the rooflines fit nothing.
    assert "evaluating 1 predictor, 1 scheme, 4 folds, 16 fits in all" in err
    assert "16/16 fits" in err and "ETA" in err


def test_quick_bench_rows_are_left_out_of_training_frames(bench_store: Path):
    from wattlas.predictors.definitions import quick_rows

    st = Store(bench_store)
    assert quick_rows(st) == 3 and quick_rows(st, ("colocation",)) == 0
    gemm = get_definition("gemm-runtime")
    # Before: the 3 quick GEMM points were training rows, silently.
    with pytest.raises(WattlasError, match="no GEMM measurements"):
        gemm.training_frame(st)
    assert gemm.training_frame(st, include_quick=True).height == 3


def test_parallel_folds_equal_sequential(bench_store: Path):
    from wattlas.predictors.evaluation import plan
    from wattlas.predictors.interference import from_bench

    st = Store(bench_store)
    defn = get_definition("interference")
    frame = from_bench(st.sql("select * from bench_results"))
    assert plan(defn, frame) == {"schemes": 1, "folds": 4, "fits": 16}
    seen = []
    sequential = cross_validate(defn, frame, n_jobs=1, on_fold=lambda fold, fits: seen.append((fold.group, fits)))
    parallel = cross_validate(defn, frame, n_jobs=2)
    assert parallel == sequential  # exact: every float, every worst group
    assert seen == [("decode", 4), ("gemm", 4), ("prefill", 4), ("stream", 4)]

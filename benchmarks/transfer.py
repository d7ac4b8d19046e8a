"""Cross-GPU transfer of the runtime predictors: train on some GPUs, score another.

Fits each model (the shipped settings of this checkout) on the training GPUs' rows of a store and
scores the held-out GPU's rows: MAPE overall, by operator, by M range and by tensor-parallel
degree (:func:`wattlas.predictors.transfer.transfer`). Prints one line per model, then one JSON
object (all results) as its last line.

How the shipped settings were chosen (so that the H100 figure is not tuned on H100): by
``--train A100-SXM4-80GB --test A40`` and ``--train A40 --test A100-SXM4-80GB`` (the mean of the
two MAPEs), then A100 + A40 -> H100 was run once.

    python benchmarks/transfer.py --store /work/data/train-store \\
        [--train A100-SXM4-80GB,A40] [--test H100-SXM] [--models gemm-runtime,operator-runtime]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--train", default="A100-SXM4-80GB,A40", help="comma-separated GPU spec keys")
    ap.add_argument("--test", default="H100-SXM", help="the held-out GPU's spec key")
    ap.add_argument("--models", default="gemm-runtime,operator-runtime")
    args = ap.parse_args()

    from wattlas.predictors.definitions import get_definition
    from wattlas.predictors.transfer import transfer
    from wattlas.store import Store

    load_start = os.getloadavg()[0]
    store = Store(args.store)
    results = []
    for name in args.models.split(","):
        defn = get_definition(name)
        t0 = time.perf_counter()
        row = transfer(defn, defn.training_frame(store), args.train.split(","), args.test)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(row)
        print(f"{name}: {', '.join(row['train_gpus'])} -> {row['test_gpu']}: MAPE {row['mape_pct']} % "
              f"(n {row['n']}); " + "; ".join(f"{k}: {v}" for k, v in row.items() if k.endswith("_mape_pct")))
    print(json.dumps({"benchmark": "transfer", "loadavg_1m_start": round(load_start, 2), "results": results}))


if __name__ == "__main__":
    main()

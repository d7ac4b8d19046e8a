"""Zeus NSDI'23 power traces: time per epoch and average GPU power vs power limit and batch size.

Four files, one per GPU (``summary_power_{a40,v100,p100,rtx6000}.csv``), six training workloads.
Each configuration was measured once (the Zeus README: "not stochastic"). Rows are kept as
measured; ``energy_per_epoch_j`` is derived from the two measured columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from ...schemas import get_table
from ..csvread import FLOAT, INT, STR, CsvLayout, convert_csv
from ..registry import Source, SourceFile

COMMIT = "43297f658bb9ba05e8b41e2d0cc85c91fff242c7"
BASE = (
    f"https://raw.githubusercontent.com/ml-energy/zeus/{COMMIT}/"
    "examples/research_reproducibility/zeus_nsdi23/trace"
)
SHARED = "byte-identical copy in ../shared/data/zeus_nsdi23 (ml-energy/zeus)"

#: GPU label of the file name -> GPU specification key (wattlas.predictors.gpus).
#: V100 and P100 are the PCIe boards: their highest settable power limit in the traces is
#: 250 W, the PCIe TDP (SXM2 V100 would allow 300 W).
GPUS = {"a40": "A40", "v100": "V100-PCIe", "p100": "P100-PCIe", "rtx6000": "RTX6000"}

_FILES = {
    "a40": (29_641, "f4ec111fc9b06b353182faab9160ecb1236a486b2741ed93383b80497332031e"),
    "p100": (18_163, "158e9a6784b6e2d26710529b132cf173b227dc8688f4931c19a637bce2b7503b"),
    "rtx6000": (27_704, "edccecc7f8b7a6102962b03f0f37767dd9cd2f03469ebccadc9805e82901bdc4"),
    "v100": (32_534, "f0b066dd1a451bd78f730e001ac3a7c411979bc7f0846f12c1a9fb604aa90628"),
}

SOURCES = (
    Source(
        id="zeus-nsdi23",
        title="Zeus NSDI'23 power traces: DNN training time and power vs power limit, 4 GPUs",
        tables=("training_power",),
        files=tuple(
            SourceFile(f"summary_power_{g}.csv", f"{BASE}/summary_power_{g}.csv", size, sha, SHARED)
            for g, (size, sha) in _FILES.items()
        ),
        licence="Apache-2.0",
        citation=(
            "You, Chung, Chowdhury. Zeus: Understanding and Optimizing GPU Energy Consumption of "
            "DNN Training. NSDI 2023."
        ),
        paper="https://www.usenix.org/conference/nsdi23/presentation/you",
        homepage="https://github.com/ml-energy/zeus/tree/master/examples/research_reproducibility/zeus_nsdi23/trace",
        description="1,609 measured (GPU, workload, batch size, optimizer, power limit) configurations: "
        "time per epoch (s) and average GPU power (W) on A40, V100, P100 and Quadro RTX 6000.",
        kind="measurement",
    ),
)

LAYOUT = CsvLayout(
    name="Zeus power trace",
    header=("dataset", "network", "batch_size", "optimizer", "power_limit", "time_per_epoch", "average_power"),
    raw_types={"dataset": STR, "network": STR, "batch_size": INT, "optimizer": STR, "power_limit": FLOAT,
               "time_per_epoch": FLOAT, "average_power": FLOAT},
    columns={"dataset": "dataset", "network": "network", "batch_size": "batch_size", "optimizer": "optimizer",
             "power_limit_w": "power_limit", "time_per_epoch_s": "time_per_epoch", "avg_power_w": "average_power"},
)

_NAME = re.compile(r"summary_power_([a-z0-9]+)\.csv$")


def accepts(source_id: str, path: Path) -> bool:
    m = _NAME.match(path.name)
    return bool(m) and m.group(1) in GPUS


def convert(source_id: str, path: Path, out_dir: Path) -> dict[str, list[Path]]:
    from ...errors import InputFormatError

    m = _NAME.match(path.name)
    label = m.group(1) if m else ""
    if label not in GPUS:
        raise InputFormatError(
            f"cannot tell the GPU from the file name; expected summary_power_<gpu>.csv with <gpu> one of "
            f"{', '.join(GPUS)}", file=path.name,
        )
    out = out_dir / f"training_power-{label}.parquet"
    extra = {
        "gpu_label": pl.lit(label, pl.String),
        "gpu": pl.lit(GPUS[label], pl.String),
        "batch_size": pl.col("batch_size").cast(pl.Int32),
        "energy_per_epoch_j": pl.col("time_per_epoch_s") * pl.col("avg_power_w"),
        "row": pl.col("request_id"),
    }
    convert_csv(path, [LAYOUT], out, display=path.name, extra=extra,
                select=get_table("training_power").column_names, table="training_power")
    return {"training_power": [out]}

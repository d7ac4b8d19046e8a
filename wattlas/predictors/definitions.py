"""What each predictor is: its inputs, features, physics base, training data and evaluation groups.

A :class:`ModelDef` is plain data plus three functions: ``features`` (user frame -> feature
frame, the model's column contract), ``raw_features`` (the same rows as untransformed inputs, for
the linear and raw gradient-boosting baselines) and ``training_frame`` (store -> rows with the
target ``y`` and the group columns). The fitted estimator never sees strings: GPU names and
dtypes become spec numbers here, through :mod:`wattlas.predictors.gpus`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import WattlasError
from . import features as F
from .serving import FEATURES as SERVING_FEATURES

log = logging.getLogger("wattlas.predictors")

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store


@dataclass(frozen=True)
class Input:
    """One input column a predictor reads (``kind``: str, float, int or bool)."""

    name: str
    kind: str
    description: str
    unit: str | None = None
    default: object = None


@dataclass(frozen=True)
class Scheme:
    """A grouped cross-validation: hold out each value of ``group`` in turn.

    For pairwise data ``partner`` names the other member's column: holding out a value then
    also removes from training every row whose partner is that value. Values that share a
    (GPU, feature vector) are always held out together (:mod:`wattlas.predictors.groups`).
    ``split_rows``: the evaluation table also gets one row per held-out value (trained on the
    others), e.g. ``cross-gpu A100-SXM4-80GB+A40 -> H100-SXM``.
    """

    name: str
    group: str
    description: str
    partner: str | None = None
    split_rows: bool = False


@dataclass(frozen=True)
class ModelDef:
    name: str
    title: str
    target: str
    target_unit: str
    inputs: tuple[Input, ...]
    base_feature: str
    features: Callable[[pl.DataFrame], pl.DataFrame]
    raw_features: Callable[[pl.DataFrame], pl.DataFrame]
    #: ``training_frame(store, include_quick=False)``: `--quick` bench rows are left out unless asked for.
    training_frame: Callable[..., pl.DataFrame]
    schemes: tuple[Scheme, ...]
    sources: tuple[str, ...]
    licence: str
    limits: tuple[str, ...]
    params: dict = field(default_factory=dict)
    feature_doc: tuple[tuple[str, str], ...] = ()
    targets_doc: str = ""
    #: Several targets: (output column, unit, base feature) each; the training frame then has a
    #: ``y_<output column>`` per target instead of ``y``.
    targets: tuple[tuple[str, str, str], ...] = ()
    #: A column whose values get their own MAPE in the evaluation (e.g. the operator).
    breakdown: str | None = None
    #: A column (operator, workload) per value of which the ``roofline-cal-<column>`` baseline
    #: scales the physics base by its own median measured/physics ratio.
    calibrate_by: str | None = None
    #: The column holding GEMM rows M (tokens): the evaluation reports MAPE per M range of it.
    size_column: str | None = None

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t[0] for t in self.targets) or (self.target,)

    @property
    def base_features(self) -> tuple[str, ...]:
        return tuple(t[2] for t in self.targets) or (self.base_feature,)

    def y(self, frame: pl.DataFrame) -> np.ndarray:
        """Target values: 1-D for one target, one column per target otherwise."""
        if not self.targets:
            return frame["y"].to_numpy().astype(np.float64)
        return np.column_stack([frame[f"y_{t[0]}"].to_numpy().astype(np.float64) for t in self.targets])

    def make_estimator(self):
        from .estimators import MultiTargetResidualRegressor, ResidualBoostingRegressor

        if self.targets:
            return MultiTargetResidualRegressor(self.base_features, **self.params)
        return ResidualBoostingRegressor(self.base_feature, **self.params)

    def check_inputs(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with defaults filled; a clear error naming missing columns."""
        import polars as pl

        missing = [i.name for i in self.inputs if i.name not in frame.columns and i.default is None]
        if missing:
            need = ", ".join(f"{i.name} ({i.description})" for i in self.inputs if i.name in missing)
            raise WattlasError(f"{self.name}: input is missing column(s) {missing}: {need}")
        add = [pl.lit(i.default).alias(i.name) for i in self.inputs if i.name not in frame.columns]
        frame = frame.with_columns(add) if add else frame
        for i in self.inputs:
            col = frame[i.name]
            if i.kind in ("float", "int") and not col.dtype.is_numeric():
                raise WattlasError(f"{self.name}: column {i.name!r} must be numeric, got {col.dtype}")
            if i.kind in ("float", "int") and col.null_count():
                raise WattlasError(f"{self.name}: column {i.name!r} has {col.null_count()} null value(s)")
            if i.kind in ("float", "int") and (col <= 0).any():
                raise WattlasError(f"{self.name}: column {i.name!r} must be > 0")
        return frame


def _frame(cols: dict[str, np.ndarray]):
    import polars as pl

    return pl.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in cols.items()})


def _specs(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return F.gpu_columns(frame["gpu"], frame["dtype"])


# ----------------------------------------------------------------------------- runtime models
def _gemm_features(frame: pl.DataFrame):
    spec = _specs(frame)
    m, n, k = (frame[c].to_numpy().astype(np.float64) for c in ("m", "n", "k"))
    w = F.gemm_work(m, n, k, spec["dtype_bytes"])
    cols = F.roofline_features(m, n, k, w["flops"], w["bytes"], spec)
    t_roof = cols.pop("t_roof_s")
    cols.update(F.tile_features(m, n, spec["sm_count"]))
    cols["t_roof_s"] = t_roof  # the base stays the last column
    return _frame(cols)


def _gemm_raw(frame: pl.DataFrame):
    spec = _specs(frame)
    cols = {c: frame[c].to_numpy() for c in ("m", "n", "k")}
    cols.update({c: spec[c] for c in ("dtype_bytes", "peak_tflops", "mem_bw_gbs", "sm_count")})
    return _frame(cols)


def _operator_arrays(frame: pl.DataFrame):
    spec = _specs(frame)
    m, n, k, flops, nbytes = F.operator_work(
        frame["op"].to_numpy(), frame["num_tokens"].to_numpy(), frame["tensor_parallel"].to_numpy(),
        frame["n_head"].to_numpy(), frame["n_kv_head"].to_numpy(), frame["n_embd"].to_numpy(),
        frame["n_expanded_embd"].to_numpy(), frame["use_gated_mlp"].to_numpy(), spec["dtype_bytes"],
    )
    return spec, m, n, k, flops, nbytes


def _op_onehot(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    op = frame["op"].to_numpy()
    return {f"op_{o}": (op == o).astype(np.float64) for o in F.OPERATOR_OPS}


def _operator_features(frame: pl.DataFrame):
    spec, m, n, k, flops, nbytes = _operator_arrays(frame)
    cols = F.roofline_features(m, n, k, flops, nbytes, spec)
    t_roof = cols.pop("t_roof_s")
    cols.update(_op_onehot(frame))
    cols["t_roof_s"] = t_roof
    return _frame(cols)


def _operator_raw(frame: pl.DataFrame):
    spec = _specs(frame)
    cols = {c: frame[c].cast(float).to_numpy() for c in
            ("num_tokens", "tensor_parallel", "n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp")}
    cols.update(_op_onehot(frame))
    cols.update({c: spec[c] for c in ("dtype_bytes", "peak_tflops", "mem_bw_gbs", "sm_count")})
    return _frame(cols)


def architecture_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``arch``: models with identical layer shapes (Llama-2-70B, Llama-3-70B) form one group.

    Different architectures still share operator shapes (layer norms, adds, RoPE, projections of
    the same hidden size), so holding out an ``arch`` leaves many of its exact feature vectors in
    training. ``arch`` labels training data; the evaluation holds out ``shape_group``
    (:func:`_shape_columns`, :mod:`wattlas.predictors.groups`).
    """
    import polars as pl

    key = pl.format("{}-{}-{}-{}-{}", "n_embd", "n_expanded_embd", "n_head", "n_kv_head", "use_gated_mlp")
    names = (frame.with_columns(_key=key).group_by("_key")
             .agg(arch=pl.col("model").unique().sort().str.join("+")))
    return frame.with_columns(_key=key).join(names, on="_key").drop("_key")


def _shape_columns(frame: pl.DataFrame, gemm_only: bool) -> pl.DataFrame:
    """What each row's operator costs per token, without GPU or M: the shape held out whole.

    GEMMs: the weight shape (K, N), which is all gemm-runtime sees besides M, GPU and dtype.
    Operators: the operator and its per-token N, K, FLOPs and elements moved
    (:func:`wattlas.predictors.features.operator_work` at one token and one byte per element).
    """
    import polars as pl

    if gemm_only:
        return frame.select("n", "k")
    ones = np.ones(frame.height)
    _, n, k, flops, nbytes = F.operator_work(
        frame["op"].to_numpy(), ones, frame["tensor_parallel"].to_numpy(), frame["n_head"].to_numpy(),
        frame["n_kv_head"].to_numpy(), frame["n_embd"].to_numpy(), frame["n_expanded_embd"].to_numpy(),
        frame["use_gated_mlp"].to_numpy(), ones)
    return pl.DataFrame({"op": frame["op"], "n": n, "k": k, "flops": flops, "bytes": nbytes})


def _vidur_rows(store: Store, gemm_only: bool) -> pl.DataFrame:
    import polars as pl

    from .groups import shape_groups

    where = "is_gemm" if gemm_only else f"op in ({', '.join(repr(o) for o in F.OPERATOR_OPS)})"
    # The mean is ordered: a float sum depends on the order of its terms, and tree fits on the
    # rows depend on every bit (six trainings once gave 13.68-14.00% on the same rows).
    df = store.sql(f"""
        select gpu, model, op, dtype, num_tokens, tensor_parallel, n_head, n_kv_head, n_embd, n_expanded_embd,
               use_gated_mlp, m, n, k, avg(time_median_s order by time_median_s) as y
        from operator_times where {where}
        group by all
        order by all
    """)
    if df.height == 0:
        return df
    df = architecture_groups(df)
    return _in_order(df.with_columns(shape_group=shape_groups(df, _shape_columns(df, gemm_only)),
                                     evaluate=pl.lit(True)))


def _in_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted on every column: one row order for one set of rows.

    SQL grouping and joins return rows in no fixed order, and tree fits sum in row order, so
    every training frame is sorted: the same store then gives the same model file, bit for bit.
    """
    return frame.sort(frame.columns, nulls_last=True, maintain_order=True) if frame.height else frame


def _bench_gemm_rows(store: Store, include_quick: bool) -> pl.DataFrame | None:
    """GEMM rows of our own ``bench_results`` (bench.md section 9 columns), when the store has any."""
    import polars as pl

    from ..schemas import TABLES

    if "bench_results" not in TABLES:
        return None
    rows = bench_results(store, include_quick=include_quick, kinds=("gemm",))
    df = rows.filter((pl.col("time_per_iter_s_median") > 0) & (pl.col("device_type") == "cuda")).group_by(
        "gpu_name", "dtype", "m", "n", "k", maintain_order=True).agg(y=pl.col("time_per_iter_s_median").median())
    if df.height == 0:
        return None
    from .gpus import get_gpu

    keys = {g: get_gpu(g).key for g in df["gpu_name"].unique().to_list()}
    return df.with_columns(
        gpu=pl.col("gpu_name").replace_strict(keys), model=pl.lit("bench"), arch=pl.lit("bench-sweep"),
        evaluate=pl.lit(True),
    ).drop("gpu_name")


def _gemm_training(store: Store, include_quick: bool = False) -> pl.DataFrame:
    import polars as pl

    from .groups import shape_groups

    cols = ("gpu", "dtype", "m", "n", "k", "y", "model", "arch", "evaluate")
    parts = []
    vidur = _vidur_rows(store, gemm_only=True)
    if vidur.height:
        parts.append(vidur.select(*cols, "tensor_parallel"))
    bench = _bench_gemm_rows(store, include_quick)
    if bench is not None:
        # Not a feature: kept for the evaluation's error by tensor-parallel degree (bench rows have none).
        parts.append(bench.select(cols).with_columns(tensor_parallel=pl.lit(None, pl.Int32)))
    if not parts:
        raise WattlasError("no GEMM measurements in the store: ingest vidur-profiling or bench results first")
    df = pl.concat(parts, how="vertical_relaxed")
    # Shapes are grouped over both sources: a bench shape that Vidur also measured is held out
    # with the Vidur models that have it (the bench GPU is one of Vidur's).
    return _in_order(df.with_columns(shape_group=shape_groups(df, _shape_columns(df, gemm_only=True))))


def _operator_training(store: Store, include_quick: bool = False) -> pl.DataFrame:
    df = _vidur_rows(store, gemm_only=False)
    if df.height == 0:
        raise WattlasError("no operator_times rows in the store: run `wattlas ingest vidur-profiling` first")
    return df


# base_offset: a 4-microsecond kernel floor added to the roofline. Elementwise operators are a
# few microseconds at any size, and a ratio to the bare roofline does not carry across GPUs.
# Chosen by leave-one-GPU-out between A100 and A40 only (mean MAPE 34.9 % without, 22.6 % with 4 us).
_RUNTIME_PARAMS = {"max_iter": 400, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                   "base_offset": 4e-6}
_RUNTIME_LIMITS = (
    "Trained on Vidur's fp16 profiles (one transformer layer, PyTorch/cuBLAS kernels of 2024) on A100 SXM4 80GB, "
    "A40 and H100 SXM; other dtypes (bf16, fp8) and GPUs are predicted through the spec features only "
    "(fp16 and bf16 share peaks and kernels; fp8 has no training rows).",
    "Times are GPU kernel time (Vidur's record_function sum of kernels), not wall time with launch gaps.",
    "Sub-10-microsecond operators are measured at 1-microsecond resolution, so their relative error is large.",
    "Rows outside the training envelope (larger M, unseen GPUs) are flagged `out_of_domain`; the roofline base "
    "keeps extrapolation bounded but untested.",
)

GEMM_RUNTIME = ModelDef(
    name="gemm-runtime",
    title="GEMM runtime from shape, dtype and GPU specification",
    target="time_s", target_unit="s",
    inputs=(
        Input("gpu", "str", "GPU name or spec key (`wattlas predictors gpus`)"),
        Input("m", "int", "rows of A and C"), Input("n", "int", "columns of B and C"),
        Input("k", "int", "reduction dimension"),
        Input("dtype", "str", "element type: fp16, bf16, fp8, tf32, fp32", default="bf16"),
    ),
    base_feature="t_roof_s",
    features=_gemm_features, raw_features=_gemm_raw, training_frame=_gemm_training,
    schemes=(
        Scheme("leave-one-shape-out", "shape_group",
               "hold out whole weight shapes (K x N) on every GPU and at every M; shapes are batched by the set "
               "of models that have them (a group `A+B`: the shapes models A and B share)"),
        Scheme("cross-gpu", "gpu", "for each GPU: train on the other GPUs' measurements, predict this GPU's",
               split_rows=True),
    ),
    sources=("vidur-profiling", "bench_results (kind = gemm), when present"),
    licence="MIT (Vidur profiles); wattlas bench measurements: Apache-2.0",
    limits=_RUNTIME_LIMITS + (
        "A compact ensemble (60 trees of up to 31 leaves) for batch prediction speed; operator-runtime uses 400.",
        "Settings (trees, the 6-microsecond kernel floor added to the roofline, the tile features) were chosen by "
        "training on A100 and scoring A40, and the reverse; H100 was then scored once (benchmarks/transfer.py).",),
    # Chosen by leave-one-GPU-out between A100 and A40 only (mean MAPE of A100->A40 and A40->A100:
    # floor 0/3/4/6/8 us gave 8.93/8.49/8.42/8.33/8.37 %), never on H100 rows; few, shallow trees for speed.
    params={"max_iter": 60, "learning_rate": 0.2, "max_leaf_nodes": 31, "min_samples_leaf": 40,
            "base_offset": 6e-6},
    feature_doc=F.RUNTIME_FEATURES + F.TILE_FEATURES,
    targets_doc="median GPU time of one GEMM (s); learned as log(time / (roofline time + kernel floor))",
    size_column="m",
)

OPERATOR_RUNTIME = ModelDef(
    name="operator-runtime",
    title="Transformer-layer operator runtime (Vidur operators) from model shape, tokens and GPU",
    target="time_s", target_unit="s",
    inputs=(
        Input("gpu", "str", "GPU name or spec key"),
        Input("op", "str", f"operator: {', '.join(F.OPERATOR_OPS)}"),
        Input("num_tokens", "int", "tokens in the batch (GEMM rows M)", "tokens"),
        Input("n_embd", "int", "hidden size h"), Input("n_expanded_embd", "int", "MLP intermediate size f"),
        Input("n_head", "int", "query heads"), Input("n_kv_head", "int", "key/value heads"),
        Input("use_gated_mlp", "bool", "gated (SiLU-and-mul) MLP", default=True),
        Input("tensor_parallel", "int", "tensor-parallel degree", default=1),
        Input("dtype", "str", "element type", default="fp16"),
    ),
    base_feature="t_roof_s",
    features=_operator_features, raw_features=_operator_raw, training_frame=_operator_training,
    schemes=(
        Scheme("leave-one-shape-out", "shape_group",
               "hold out whole operator shapes (operator, per-token N, K, FLOPs and bytes) on every GPU and at "
               "every token count; shapes are batched by the set of models that have them (`A+B`: shared by A, B)"),
        Scheme("cross-gpu", "gpu", "for each GPU: train on the other GPUs' profiles, predict this GPU's",
               split_rows=True),
    ),
    sources=("vidur-profiling",), licence="MIT (Vidur profiles)", limits=_RUNTIME_LIMITS,
    params=_RUNTIME_PARAMS,
    feature_doc=F.RUNTIME_FEATURES + tuple((f"op_{o}", f"1 if op is {o}") for o in F.OPERATOR_OPS),
    breakdown="op", calibrate_by="op",
    targets_doc="median GPU time of one operator (s); learned as log(time / (roofline time + kernel floor))",
    size_column="num_tokens",
)


# ----------------------------------------------------------------------------- training power / time
def _power_arrays(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    from .gpus import get_gpu

    gpus = frame["gpu"].to_numpy()
    tdp = np.empty(len(gpus))
    fp32 = np.empty(len(gpus))
    bw = np.empty(len(gpus))
    for g in set(gpus.tolist()):
        s = get_gpu(g)
        rows = gpus == g
        tdp[rows], fp32[rows], bw[rows] = (np.nan if v is None else v for v in (s.tdp_w, s.peak_fp32_tflops,
                                                                                  s.mem_bw_gbs))
    return F.power_features(frame["ref_power_w"].to_numpy(), frame["ref_time_s"].to_numpy(),
                            frame["power_limit_w"].to_numpy(), frame["batch_size"].to_numpy(), tdp, fp32, bw)


def _power_features(frame: pl.DataFrame):
    return _frame(_power_arrays(frame))


def _time_features(frame: pl.DataFrame):
    cols = _power_arrays(frame)
    cols["time_phys_s"] = cols.pop("time_phys_s")  # keep the base last, like the power model
    return _frame(cols)


def _power_raw(frame: pl.DataFrame):
    a = _power_arrays(frame)
    return _frame({"ref_power_w": frame["ref_power_w"].to_numpy(), "ref_time_s": frame["ref_time_s"].to_numpy(),
                   "power_limit_w": a["power_limit_w"], "batch_size": frame["batch_size"].to_numpy(),
                   "tdp_w": a["tdp_w"], "peak_fp32_tflops": a["peak_fp32_tflops"], "mem_bw_gbs": a["mem_bw_gbs"]})


def zeus_reference_runs(df: pl.DataFrame) -> pl.DataFrame:
    """Join each row with its workload's reference run: same GPU, dataset, network, batch size and
    optimizer at the GPU's highest power limit in the data (Zeus profiles this way)."""
    import polars as pl

    keys = ["gpu", "dataset", "network", "batch_size", "optimizer"]
    top = df.group_by("gpu").agg(pl.col("power_limit_w").max().alias("_max_pl"))
    ref = (df.join(top, on="gpu").filter(pl.col("power_limit_w") == pl.col("_max_pl"))
           .group_by(keys).agg(ref_power_w=pl.col("avg_power_w").mean(), ref_time_s=pl.col("time_per_epoch_s").mean()))
    out = df.join(ref, on=keys, how="inner").join(top, on="gpu")
    # The reference rows themselves are inputs, not predictions: never scored.
    return out.with_columns(evaluate=pl.col("power_limit_w") < pl.col("_max_pl")).drop("_max_pl")


def _zeus_training(store: Store, target: str) -> pl.DataFrame:
    import polars as pl

    df = store.sql("select gpu, dataset, network, batch_size, optimizer, power_limit_w, time_per_epoch_s, "
                   "avg_power_w from training_power order by all")
    if df.height == 0:
        raise WattlasError("no training_power rows in the store: run `wattlas ingest zeus-nsdi23` first")
    return _in_order(zeus_reference_runs(df).with_columns(y=pl.col(target)))


_ZEUS_INPUTS = (
    Input("gpu", "str", "GPU name or spec key"),
    Input("power_limit_w", "float", "power limit to predict at", "W"),
    Input("batch_size", "int", "training batch size", "samples"),
    Input("ref_power_w", "float", "average power of a reference run of the same job at the GPU's highest "
          "power limit", "W"),
    Input("ref_time_s", "float", "time per epoch of that reference run", "s"),
)
_ZEUS_SCHEMES = (
    Scheme("leave-one-network-out", "network", "hold out every run of one DNN (all its data sets, GPUs)"),
    Scheme("cross-gpu", "gpu", "for each GPU: train on the other GPUs' runs, predict this GPU's", split_rows=True),
)
_ZEUS_LIMITS = (
    "Needs one measured reference run of the same job on the same GPU at the GPU's highest power limit "
    "(Zeus profiles the same way); it cannot predict a job that was never run.",
    "Trained on six DNN training workloads on A40, V100 PCIe, P100 PCIe and Quadro RTX 6000 (2022); "
    "reference rows are inputs and are not scored.",
    "Single-GPU training only; power limits below the lowest profiled (100-125 W) are extrapolation.",
)

TRAINING_POWER = ModelDef(
    name="training-power",
    title="Average GPU power of a training job under a power limit, from a reference run",
    target="avg_power_w", target_unit="W", inputs=_ZEUS_INPUTS, base_feature="power_phys_w",
    features=_power_features, raw_features=_power_raw,
    training_frame=lambda store, include_quick=False: _zeus_training(store, "avg_power_w"),
    schemes=_ZEUS_SCHEMES, sources=("zeus-nsdi23",), licence="Apache-2.0 (Zeus traces)", limits=_ZEUS_LIMITS,
    params={"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 10},
    feature_doc=F.POWER_FEATURES, calibrate_by="network",
    targets_doc="average GPU power (W); learned as log(power / min(reference power, limit))",
)

TRAINING_TIME = ModelDef(
    name="training-time",
    title="Time per epoch of a training job under a power limit, from a reference run",
    target="time_per_epoch_s", target_unit="s", inputs=_ZEUS_INPUTS, base_feature="time_phys_s",
    features=_time_features, raw_features=_power_raw,
    training_frame=lambda store, include_quick=False: _zeus_training(store, "time_per_epoch_s"),
    schemes=_ZEUS_SCHEMES, sources=("zeus-nsdi23",), licence="Apache-2.0 (Zeus traces)", limits=_ZEUS_LIMITS,
    params={"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 10},
    feature_doc=F.POWER_FEATURES, calibrate_by="network",
    targets_doc="time per epoch (s); learned as log(time / (reference time * max(1, reference power / limit)))",
)

# ----------------------------------------------------------------------------- interference
# A row is "quick" when its run was a `bench --quick` smoke run (bench_runs.quick) or its energy
# window was flagged too short (what --quick windows are): not fit for training or scoring.
_QUICK_SQL = "(coalesce(r.window_too_short, false) or coalesce(b.quick, false))"


def bench_results(store: Store, *, include_quick: bool = False,
                  kinds: tuple[str, ...] | None = None) -> pl.DataFrame:
    """``bench_results`` rows of ``store``, without `--quick` rows unless ``include_quick``.

    Leaving rows out is logged (a warning with the count), never silent: see :func:`quick_rows`.
    """
    from ..schemas import TABLES

    if "bench_results" not in TABLES:
        raise WattlasError("this wattlas has no bench_results table (the bench module is not installed)")
    where = f"r.kind in ({', '.join(repr(k) for k in kinds)})" if kinds else "true"
    if not include_quick:
        n = quick_rows(store, kinds)
        if n:
            log.warning("%d bench_results rows from --quick runs or too-short windows left out "
                        "(include them with --include-quick)", n)
        where += f" and not {_QUICK_SQL}"
    # Ordered: the training frames built from these rows keep their order (group_by maintain_order).
    return store.sql(f"select r.* from bench_results r left join bench_runs b using (run_id) where {where} "
                     "order by all")


def quick_rows(store: Store, kinds: tuple[str, ...] | None = None) -> int:
    """How many ``bench_results`` rows (of ``kinds``) come from `--quick` runs or too-short windows."""
    where = f"r.kind in ({', '.join(repr(k) for k in kinds)})" if kinds else "true"
    return int(store.sql(f"select count(*) as n from bench_results r left join bench_runs b using (run_id) "
                         f"where {where} and {_QUICK_SQL}")["n"][0])


def _interference_training(store: Store, include_quick: bool = False) -> pl.DataFrame:
    from .interference import from_bench

    frame = from_bench(bench_results(store, include_quick=include_quick, kinds=("colocation",)))
    if frame.height == 0:
        raise WattlasError("no co-location pairs in bench_results: run `wattlas bench colocate` first")
    return _in_order(frame)


def _interference_features(frame: pl.DataFrame):
    from .interference import features

    return features(frame)


def _interference_raw(frame: pl.DataFrame):
    from .interference import raw_features

    return raw_features(frame)


_NAN = float("nan")
INTERFERENCE = ModelDef(
    name="interference",
    title="Slowdown of each member of a co-located pair, from the two solo profiles",
    target="slowdown", target_unit="x (co-located time / solo time)",
    inputs=(
        Input("workload_solo_time_s", "float", "solo time per iteration of the member predicted", "s"),
        Input("partner_solo_time_s", "float", "solo time per iteration of its partner", "s"),
        Input("workload_solo_power_w", "float", "solo average power of the member (NaN if unmeasured)", "W", _NAN),
        Input("partner_solo_power_w", "float", "solo average power of the partner (NaN if unmeasured)", "W", _NAN),
        Input("workload_tflops", "float", "solo achieved TFLOP/s of the member (NaN if unknown)", "TFLOP/s", _NAN),
        Input("partner_tflops", "float", "solo achieved TFLOP/s of the partner (NaN if unknown)", "TFLOP/s", _NAN),
        Input("colocation_mode", "str", "streams (one process) or processes", default="processes"),
        Input("device_type", "str", "cuda or cpu", default="cuda"),
    ),
    base_feature="slowdown_phys",
    features=_interference_features, raw_features=_interference_raw, training_frame=_interference_training,
    schemes=(
        Scheme("leave-one-workload-out", "workload",
               "hold out one workload: every pair that contains it leaves the training set",
               partner="partner_workload"),
    ),
    calibrate_by="workload",
    sources=("bench_results (kind = colocation)",),
    licence="Apache-2.0 (wattlas bench measurements)",
    limits=(
        "Trained on wattlas `bench colocate` measurements. The shipped model: 12 pair rows from one H100 SXM run "
        "(two workloads, bf16 8192^3 GEMM and a 1 GiB device copy, as CUDA streams and as processes; every pair "
        "with repetition), so leave-one-workload-out trains on the other workload's self-pairs only. It is a "
        "proof of the pipeline, not a general interference model: retrain it on your own `bench colocate` runs.",
        "Solo TFLOP/s is not recorded for co-location workloads (null); solo power is.",
        "Pairs only; three or more co-located jobs are not modelled.",
    ),
    params={"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 3},
    feature_doc=(),
    targets_doc="co-located time / solo time of the member; learned as log(slowdown / 1)",
)

# ----------------------------------------------------------------------------- LLM serving energy
def _llm_training(store: Store, include_quick: bool = False) -> pl.DataFrame:
    from .llm import PHASES, from_bench

    frame = from_bench(bench_results(store, include_quick=include_quick, kinds=PHASES))
    if frame.height == 0:
        raise WattlasError("no prefill/decode rows with measured energy in bench_results: run the LLM bench first")
    return _in_order(frame)


def _llm_features(frame: pl.DataFrame):
    from .llm import iteration_features

    return iteration_features(frame)


def _llm_raw(frame: pl.DataFrame):
    from .llm import raw_features

    return raw_features(frame)


LLM_ENERGY = ModelDef(
    name="llm-energy",
    title="Energy and time of one LLM serving iteration: a batch's prefill, one decode step, or prefill "
    "plus all decode steps (e2e)",
    target="energy_j", target_unit="J",
    targets=(("time_s", "s", "t_roof_s"), ("energy_j", "J", "e_roof_j")),
    inputs=(
        Input("gpu", "str", "GPU name or spec key"),
        Input("model", "str", "LLM architecture: llama-3-8b, llama-3-70b, llama-2-7b, llama-2-70b"),
        Input("phase", "str", "prefill, decode (one step) or e2e (prefill then output_tokens decode steps)"),
        Input("batch_size", "int", "sequences in the batch"),
        Input("input_tokens", "int", "prefill/e2e: prompt tokens per sequence; decode: context tokens per sequence",
              "tokens"),
        Input("output_tokens", "int", "e2e: generated tokens per sequence (ignored otherwise)", "tokens", 1),
        Input("dtype", "str", "weights/activations dtype", default="bf16"),
        Input("power_limit_w", "float", "GPU power limit (NaN: the TDP)", "W", _NAN),
    ),
    base_feature="e_roof_j",
    features=_llm_features, raw_features=_llm_raw, training_frame=_llm_training,
    schemes=(
        Scheme("leave-one-model-out", "arch", "hold out every iteration of one LLM"),
        Scheme("cross-gpu", "gpu", "for each GPU: train on the other GPUs' runs, predict this GPU's",
               split_rows=True),
        Scheme("leave-one-batch-size-out", "batch_size", "hold out every iteration of one batch size"),
    ),
    sources=("bench_results (kind = prefill, decode) with measured energy",),
    licence="Apache-2.0 (wattlas bench measurements)",
    limits=(
        "Per iteration of a synthetic batch (equal-length sequences); per-request figures divide by the batch.",
        "Energy is the GPU's own counter (NVML) over the timed iterations; host and network energy are not counted.",
        "The shipped model is trained on 9 measured iterations of one LLM (Llama-3-8B architecture, bf16) on one "
        "H100 SXM at 700 W: 6 prefills (batch 1/8/32 x 512/2048 tokens) and 3 e2e runs (batch 1/16/64, 512 in, "
        "64 out), transformers eager backend (no CUDA graphs, host-bound decode), so decode is far slower than "
        "in vLLM-class servers. Other LLMs, GPUs, power limits and the decode phase alone are extrapolation "
        "along the roofline base; leave-one-model-out and leave-one-GPU-out cannot be evaluated (one group each).",
    ),
    params={"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 3},
    calibrate_by="phase",
    targets_doc="time (s) and GPU energy (J) of one iteration; learned as log ratios to the roofline time and "
    "to that time at full board power",
)


def _serving_features(frame: pl.DataFrame):
    from .serving import features

    return features(frame)


def _serving_raw(frame: pl.DataFrame):
    from .serving import raw_features

    return raw_features(frame)


def _serving_training(store: Store, include_quick: bool = False) -> pl.DataFrame:
    from .serving import training_frame

    return training_frame(store)


SERVING_ENERGY = ModelDef(
    name="serving-energy",
    title="Energy per output token, average power and median inter-token latency of an LLM served by a "
    "continuous-batching engine (vLLM), from model size, precision, GPUs, parallelism, batch and output length",
    target="energy_per_token_j", target_unit="J per output token",
    targets=(("energy_per_token_j", "J", "energy_per_token_phys_j"), ("avg_power_w", "W", "power_phys_w"),
             ("median_itl_s", "s", "itl_phys_s")),
    inputs=(
        Input("gpu", "str", "GPU name or spec key"),
        Input("total_params_b", "float", "total parameters", "billions"),
        Input("activated_params_b", "float", "parameters active per token (MoE); NaN: all (dense)", "billions",
              _NAN),
        Input("precision", "str", "weight precision: bf16, fp8, mxfp4", default="bf16"),
        Input("architecture", "str", "dense, moe, hybrid (Mamba-Transformer) or auto (MoE if fewer active "
              "parameters)", default="auto"),
        Input("num_gpus", "int", "GPUs serving one deployment", default=1),
        Input("tensor_parallel", "int", "tensor-parallel degree", default=1),
        Input("expert_parallel", "int", "expert-parallel degree", default=1),
        Input("data_parallel", "int", "data-parallel degree (attention replicas)", default=1),
        Input("batch_size", "float", "average sequences decoded at once, whole deployment", "sequences"),
        Input("output_tokens", "float", "average output tokens per request", "tokens"),
    ),
    base_feature="energy_per_token_phys_j",
    features=_serving_features, raw_features=_serving_raw, training_frame=_serving_training,
    schemes=(
        Scheme("leave-one-model-out", "model_group", "hold out one base model with all its precision and "
               "fine-tune variants (e.g. Qwen3-235B-A22B Instruct, Thinking and their FP8 twins)"),
        Scheme("leave-one-gpu-out", "gpu", "train on the other GPU type (H100 <-> B200), predict this one"),
        Scheme("leave-one-task-out", "task", "hold out one benchmark task (lm-arena-chat, gpqa, sourcegraph-fim)"),
    ),
    sources=("mlenergy-v3 (serving_energy, text-LLM tasks lm-arena-chat, gpqa, sourcegraph-fim)",),
    licence="ML.ENERGY leaderboard data: no licence stated (not redistributable); cite Chung et al., The ML.ENERGY "
    "Benchmark, NeurIPS Datasets and Benchmarks 2025",
    limits=(
        "Trained on ML.ENERGY Benchmark v3 text-LLM configurations only (tasks lm-arena-chat, gpqa, "
        "sourcegraph-fim): vLLM with continuous batching, H100 SXM and B200, 1-8 GPUs, 8B-671B parameters, dense, "
        "MoE and Mamba-Transformer hybrid, bf16/fp8/mxfp4 weights. Multimodal and diffusion tasks are left out.",
        "Every configuration ran saturated (achieved batch within 15 % of max_num_seqs), so `batch_size` is the "
        "engine's average concurrency; power and energy at a lower load than the cap come from the configuration "
        "with that smaller batch, not from measurements of an under-loaded server.",
        "Energy per token is all GPUs' energy per output token, prefill included, at the benchmark's prompt "
        "lengths (not in the data): prompt-heavy work (sourcegraph-fim) costs more per output token.",
        "Task is not an input (a user's trace is no benchmark task): leave-one-task-out measures what that costs.",
        "GPU energy only (Zeus, NVML); host, network and cooling are not counted.",
        "H100 <-> B200: leave-one-GPU-out energy MAPE 30.9 % (roofline 45.7 %; dense 23.8 %): power transfers best "
        "(21.9 %), latency least (32.4 %; B200 runs small models far above their memory-bound ITL, so host and "
        "launch overheads that the physics does not see dominate). Train on both GPUs' rows for either.",
        "Dense leave-one-model-out energy MAPE 10.5 %: the 10 % target is missed by half a point (Llama-3.1-405B "
        "15.7 %, the only dense model above 70B). The all-reduce term of the anchor was chosen by nested "
        "leave-one-model-out (18 of 18 outer folds); the hyper-parameters were checked the same way against three "
        "alternatives (18 of 18 folds kept them), but they were first set on these folds, so the figure may "
        "still be slightly optimistic.",
        "Backend effect, measured (H100 SXM, Llama-3-8B class, GPU energy per output token, prefill included): our "
        "`wattlas bench llm` e2e runs (transformers eager, 512 prompt + 64 output tokens, train-store H100 release) "
        "0.615 J at batch 16 and 0.303 J at batch 64; ML.ENERGY vLLM lm-arena-chat at max_num_seqs 16 / 64: "
        "Llama-3.1-8B-Instruct 0.263 / 0.119 J, Qwen3-8B 0.259 / 0.119 J. Eager costs 2.34-2.38x (batch 16) and "
        "2.54-2.55x (batch 64) the serving engine's energy per token; its decode step is 36 ms vs vLLM's 7.9 ms "
        "ITL at batch 16 at 246 W vs 513 W. Our runs' 8 prompt tokens per output token (vs about 1 in chat) "
        "inflate the ratio; decode alone (e2e minus interpolated prefill) is 1.7x at batch 16.",
    ),
    # Small trees: 18 model groups, 565 rows. Parameter count and size enter through the physics
    # times only (raw parameter counts let the trees memorise models; leave-one-model-out was worse).
    # Nested leave-one-model-out kept these settings in 18 of 18 outer folds against min_samples_leaf
    # 20 / 4 leaves / l2 1.0 and against dropping the GPU spec columns (docs/predictors.md).
    params={"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 7, "min_samples_leaf": 10},
    feature_doc=SERVING_FEATURES,
    breakdown="architecture",
    targets_doc="energy per output token (J, all GPUs), average power (W, all GPUs) and median inter-token "
    "latency (s); each learned as the log ratio to its physics base (see wattlas.predictors.serving)",
)

DEFINITIONS: dict[str, ModelDef] = {d.name: d for d in (OPERATOR_RUNTIME, GEMM_RUNTIME, TRAINING_POWER,
                                                        TRAINING_TIME, INTERFERENCE, LLM_ENERGY, SERVING_ENERGY)}


def register(defn: ModelDef) -> None:
    DEFINITIONS[defn.name] = defn


def get_definition(name: str) -> ModelDef:
    """The definition of the predictor called ``name``; an error lists the known names."""
    try:
        return DEFINITIONS[name]
    except KeyError:
        raise WattlasError(f"unknown predictor {name!r}; known: {', '.join(DEFINITIONS)}") from None

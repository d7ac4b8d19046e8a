"""Predictor commands: `predictors list|evaluate|train|gpus|export-onnx`, `predict`, `estimate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    FormatOpt,
    OutputFormat,
    StoreOpt,
    err,
    eta_progress,
    open_store,
    print_frame,
    resolve_selection,
    say,
)

predictors_app = typer.Typer(help="Runtime, power and interference predictors: list, evaluate, train.",
                             no_args_is_help=True)

ModelsOpt = Annotated[
    Path | None,
    typer.Option("--models", help="Directory of model files (default: the models shipped with wattlas).",
                 show_default=False),
]


def register(app: typer.Typer) -> None:
    app.add_typer(predictors_app, name="predictors")
    app.command("predict")(predict_cmd)
    app.command("estimate")(estimate_cmd)


@predictors_app.command("list")
def list_cmd(models: ModelsOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
    """Predictors with model files, what they predict, and their headline grouped-CV error."""
    import polars as pl

    from ..predictors import available, get_definition
    from ..predictors.bundle import read_meta

    rows = []
    for name in available(models):
        meta = read_meta(name, models)
        # Pooled rows only: a per-GPU row of a split scheme is named "<scheme> <trained> -> <held out>".
        best = [m for m in meta.get("metrics", []) if m["method"] == "wattlas" and " " not in m["scheme"]]
        rows.append({
            "name": name, "predicts": ", ".join(meta.get("targets") or [meta["target"]]),
            "inputs": ", ".join(i.name for i in get_definition(name).inputs),
            "cv": "; ".join(f"{m.get('target', meta['target'])} {m['scheme']} MAPE {m['mape_pct']}%" for m in best),
            "trained_rows": meta["training_data"]["rows"],
        })
    print_frame(pl.DataFrame(rows), fmt, title="wattlas predictors")


@predictors_app.command("evaluate")
def evaluate_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Predictors (default: all).",
                                                      show_default=False)] = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Recompute the grouped CV on this store's data instead of printing the "
                     "table recorded when the model files were trained.", show_default=False),
    ] = None,
    models: ModelsOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Folds fitted at once with --store (-1: every core); "
                                      "the table does not depend on it.")] = -1,
    include_quick: Annotated[bool, typer.Option("--include-quick", help="With --store, also train and score "
                                                "bench rows from `--quick` runs or too-short windows (left "
                                                "out by default, with a count).")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Grouped cross-validation table (MAPE, median/p90 APE, R²) beside the baselines."""
    import polars as pl

    from ..predictors import available
    from ..predictors.bundle import read_meta

    rows: list[dict] = []
    if store is not None:
        rows = _evaluate_store(store, names, jobs=jobs, include_quick=include_quick)
        source = f"recomputed on {store}"
    else:
        from ..predictors.definitions import DEFINITIONS

        shown = names or available(models)
        for n in shown:
            rows += [{"model": n, **m} for m in read_meta(n, models).get("metrics", [])]
        source = "recorded when the shipped model files were trained"
        missing = [n for n in DEFINITIONS if n not in shown] if not names else []
        if missing:
            err.print(f"no model files for {', '.join(missing)}: no measurements to train them on yet "
                      "(they train from `wattlas bench` results: `wattlas predictors train NAME --store DIR`)")
    if not rows:
        err.print("no evaluation results")
        raise typer.Exit(1)
    cols = ["model", "target", "scheme", "method", "n", "mape_pct", "median_ape_pct", "p90_ape_pct", "r2_log",
            "worst_group", "worst_group_mape_pct"]
    df = pl.DataFrame([{c: r.get(c) for c in cols} for r in rows])
    print_frame(df, fmt, title=f"grouped cross-validation ({source}); r2 in log space")


def _evaluate_store(store: Path, names: list[str] | None, *, jobs: int, include_quick: bool) -> list[dict]:
    """Load every predictor's training rows, say how much work that is, then run it under a progress bar."""
    from joblib import effective_n_jobs

    from ..predictors import get_definition
    from ..predictors.definitions import DEFINITIONS, quick_rows
    from ..predictors.evaluation import cross_validate, plan

    st = open_store(store, write=False)
    n_quick = quick_rows(st)
    if n_quick:
        what = "included (--include-quick)" if include_quick else "left out (--include-quick scores them)"
        err.print(f"{n_quick:,} bench_results rows come from --quick runs or too-short windows: {what}",
                  markup=False, highlight=False)
    work = []
    for defn in [get_definition(n) for n in names or DEFINITIONS]:  # unknown names fail before any work
        try:
            frame = defn.training_frame(st, include_quick=include_quick)
        except Exception as e:  # a store without this model's data: say so, go on
            if names:
                raise
            err.print(f"{defn.name}: skipped ({e})", style="yellow", markup=False, highlight=False)
            continue
        work.append((defn, frame, plan(defn, frame)))
    totals = {k: sum(w[2][k] for w in work) for k in ("schemes", "folds", "fits")}
    n_jobs = effective_n_jobs(jobs)
    err.print(f"evaluating {_count(len(work), 'predictor')}, {_count(totals['schemes'], 'scheme')}, "
              f"{_count(totals['folds'], 'fold')}, {_count(totals['fits'], 'fit')} in all "
              f"({_count(n_jobs, 'fold')} at once)", markup=False, highlight=False)
    for defn, frame, p in work:
        err.print(f"  {defn.name}: {frame.height:,} rows, {_count(p['schemes'], 'scheme')}, "
                  f"{_count(p['folds'], 'fold')}, {_count(p['fits'], 'fit')}", markup=False, highlight=False)
    rows: list[dict] = []
    with eta_progress("fits") as progress:
        task = progress.add_task("grouped cross-validation", total=totals["fits"])
        for defn, frame, _ in work:
            def on_fold(fold, fits: int, model: str = defn.name) -> None:
                progress.update(task, advance=fits, description=f"{model} {fold.scheme}: held out {fold.group}")

            rows += cross_validate(defn, frame, n_jobs=jobs, on_fold=on_fold)
    return rows


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


@predictors_app.command("train")
def train_cmd(
    name: Annotated[str, typer.Argument(help="Predictor to train (see `wattlas predictors list`).")],
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory for the model files "
                                             "(default: <store>/models).", show_default=False)] = None,
    evaluate: Annotated[bool, typer.Option(help="Run the grouped cross-validation first (recorded in the "
                                           "card).")] = True,
    include_quick: Annotated[bool, typer.Option("--include-quick", help="Also train (and score) bench rows from "
                                                "`--quick` runs or too-short windows (left out by default, with "
                                                "a count), as `predictors evaluate --include-quick` does.")] = False,
) -> None:
    """Retrain a predictor on a store's measurements and write .skops, .json and card."""
    from ..predictors.bundle import save
    from ..predictors.train import train

    st = open_store(store, write=False)
    err.print(f"training {name} on {st.root} ...")
    predictor = train(name, st, evaluate=evaluate, include_quick=include_quick)
    dest = out or (st.root / "models")
    path = save(predictor, dest)
    err.print(f"wrote {path} (+ .json, .md); use it with `wattlas predict {name} --models {dest} ...`")
    for m in predictor.meta["metrics"]:
        if m["method"] == "wattlas":
            err.print(f"  {m['scheme']}: MAPE {m['mape_pct']}%  median APE {m['median_ape_pct']}%  "
                      f"p90 APE {m['p90_ape_pct']}%  (n={m['n']})")


@predictors_app.command("gpus")
def gpus_cmd(
    sources: Annotated[bool, typer.Option("--sources", help="One row per value with its source.")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The GPU specification table the predictors use (dense peaks), each value with its source."""
    from ..predictors.gpus import sources_frame, specs_frame

    print_frame(sources_frame() if sources else specs_frame(), fmt, title="GPU specifications")


@predictors_app.command("export-onnx")
def export_onnx_cmd(
    name: Annotated[str, typer.Argument(help="Predictor to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    models: ModelsOpt = None,
) -> None:
    """Export the trees as ONNX if the conversion is exact (checked to 1e-4 relative); refuse otherwise."""
    from ..predictors import load
    from ..predictors.onnx import export_onnx

    report = export_onnx(load(name, models), out)
    err.print(f"wrote {out}: max relative difference {report['max_rel_diff']:.2e} on {report['rows']} rows")


_POINT_OPTS = {
    "gpu": "gpu", "m": "m", "n": "n", "k": "k", "dtype": "dtype", "op": "op", "num_tokens": "num_tokens",
    "n_embd": "n_embd", "n_expanded_embd": "n_expanded_embd", "n_head": "n_head", "n_kv_head": "n_kv_head",
    "tensor_parallel": "tensor_parallel", "gated": "use_gated_mlp", "power_limit": "power_limit_w",
    "batch_size": "batch_size", "ref_power": "ref_power_w", "ref_time": "ref_time_s",
    "model": "model", "phase": "phase", "input_tokens": "input_tokens", "output_tokens": "output_tokens",
}


#: Largest batch `wattlas predict` evaluates with the numpy trees; larger ones use scikit-learn,
#: whose compiled trees take 0.6x the CPU per row on operator-runtime (400 trees, the slowest
#: model) and so repay their 1.3 s import from about 180,000 rows (at 100,000 rows: 2.2 s CPU in
#: all with numpy, 2.8 s with scikit-learn; gemm-runtime 0.5 s against 1.4 s).
FAST_MAX_ROWS = 100_000

#: --help panels of `predict`: one per predictor, so a user sees what each needs.
_ALL = "Point inputs: every predictor"
_GEMM = "Point inputs: gemm-runtime"
_OPERATOR = "Point inputs: operator-runtime"
_TRAINING = "Point inputs: training-power, training-time"
_LLM = "Point inputs: llm-energy"
_BATCH = "Batch (any predictor; interference takes batches only)"


def predict_cmd(
    name: Annotated[str, typer.Argument(help="Predictor (see `wattlas predictors list`).")],
    gpu: Annotated[str | None, typer.Option(help="GPU name (H100, A100, ...).", rich_help_panel=_ALL)] = None,
    dtype: Annotated[str | None, typer.Option(help="fp16, bf16, fp8, tf32, fp32 (gemm-runtime, "
                                              "operator-runtime, llm-energy).", rich_help_panel=_ALL)] = None,
    m: Annotated[int | None, typer.Option("--m", help="GEMM rows.", rich_help_panel=_GEMM)] = None,
    n: Annotated[int | None, typer.Option("--n", help="GEMM columns.", rich_help_panel=_GEMM)] = None,
    k: Annotated[int | None, typer.Option("--k", help="GEMM reduction size.", rich_help_panel=_GEMM)] = None,
    op: Annotated[str | None, typer.Option(help="Operator.", rich_help_panel=_OPERATOR)] = None,
    num_tokens: Annotated[int | None, typer.Option(help="Tokens in the batch.", rich_help_panel=_OPERATOR)] = None,
    n_embd: Annotated[int | None, typer.Option(help="Hidden size.", rich_help_panel=_OPERATOR)] = None,
    n_expanded_embd: Annotated[int | None, typer.Option(help="MLP intermediate size.",
                                                        rich_help_panel=_OPERATOR)] = None,
    n_head: Annotated[int | None, typer.Option(help="Query heads.", rich_help_panel=_OPERATOR)] = None,
    n_kv_head: Annotated[int | None, typer.Option(help="Key/value heads.", rich_help_panel=_OPERATOR)] = None,
    tensor_parallel: Annotated[int | None, typer.Option(help="Tensor-parallel degree (default 1); with --model, "
                                                        "the GPUs the memory check counts.",
                                                        rich_help_panel=_OPERATOR)] = None,
    gated: Annotated[bool | None, typer.Option("--gated/--not-gated", help="Gated MLP (default gated).",
                                               rich_help_panel=_OPERATOR)] = None,
    power_limit: Annotated[float | None, typer.Option(help="Power limit (W); llm-energy: optional, "
                                                      "default the TDP.", rich_help_panel=_TRAINING)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size; llm-energy: sequences in the "
                                                   "batch.", rich_help_panel=_TRAINING)] = None,
    ref_power: Annotated[float | None, typer.Option(help="Reference run power (W).",
                                                    rich_help_panel=_TRAINING)] = None,
    ref_time: Annotated[float | None, typer.Option(help="Reference run time per epoch (s).",
                                                   rich_help_panel=_TRAINING)] = None,
    model: Annotated[str | None, typer.Option("--model", help="LLM architecture: llama-3-8b, ... "
                                              "(also --batch-size, optional --power-limit).",
                                              rich_help_panel=_LLM)] = None,
    llm: Annotated[str | None, typer.Option("--llm", hidden=True, help="Old name of --model.")] = None,
    phase: Annotated[str | None, typer.Option(help="prefill, decode or e2e.", rich_help_panel=_LLM)] = None,
    input_tokens: Annotated[int | None, typer.Option(help="Prompt/context tokens.", rich_help_panel=_LLM)] = None,
    output_tokens: Annotated[int | None, typer.Option(help="Generated tokens (e2e).", rich_help_panel=_LLM)] = None,
    input_: Annotated[Path | None, typer.Option("--input", "-i", help="Parquet (or CSV) file of input rows.",
                                                rich_help_panel=_BATCH)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write predictions to this Parquet "
                                                "file instead of printing them.", rich_help_panel=_BATCH)] = None,
    models: ModelsOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Predict one point from options, or a batch with --input FILE [-o OUT.parquet]."""
    import polars as pl

    from .._imports import ONE_SHOT_UNUSED, hidden_imports
    from ..errors import WattlasError
    from ..predictors import get_definition, load
    from ..predictors.guards import domain_warning, predict_checked

    if llm is not None:  # --llm: the old spelling, kept hidden so that scripts keep working
        if model is not None and model != llm:
            raise WattlasError(f"--llm is the old name of --model: give one (got --model {model}, --llm {llm})")
        model = llm
    options = dict(locals())  # (a comprehension has its own locals())
    given = {col: options[opt] for opt, col in _POINT_OPTS.items() if options[opt] is not None}
    get_definition(name)  # an unknown predictor is the first thing to say
    if input_ is not None:
        if given:
            raise WattlasError(f"give either --input or point options ({', '.join(given)}), not both")
        frame = pl.read_csv(input_) if input_.suffix.lower() == ".csv" else pl.read_parquet(input_)
    else:
        frame = pl.DataFrame({c: [v] for c, v in given.items()})
    # fast: the trees in numpy, without importing scikit-learn (2 s of a one-point prediction). Past
    # FAST_MAX_ROWS rows scikit-learn's compiled trees repay that import. A model the numpy trees
    # do not cover, too, loads with skops, whose optional imports this process never uses.
    with hidden_imports(ONE_SHOT_UNUSED):
        predictor = load(name, models, fast=frame.height <= FAST_MAX_ROWS)
    # Memory fit, power caps and the out-of-domain flags: one shared path for points and batches.
    result, domain = predict_checked(predictor, frame)
    if input_ is not None:  # how far to trust a batch: N of M rows outside the envelope, on which features
        err.print(domain.line(), markup=False, highlight=False, soft_wrap=True)
    warning = domain_warning(domain, point=input_ is None)
    if warning:
        say(warning, label="warning:", style="yellow")
    if output is not None:
        result.write_parquet(output)
        err.print(f"wrote {result.height:,} predictions to {output}")
        return
    print_frame(result, fmt, title=f"{name} prediction ({predictor.definition.target_unit})")


def estimate_cmd(
    source: Annotated[str, typer.Option("--source", help="Source id of an ingested request trace.")],
    gpu: Annotated[str, typer.Option(help="GPU serving the trace (H100, A100, ...).")],
    model: Annotated[str, typer.Option(help="LLM served: " + "llama-3-8b, llama-2-7b, llama-2-70b, llama-3-70b.")],
    trace: Annotated[str | None, typer.Option(help="One trace of the source (default: all).")] = None,
    power_limit: Annotated[float | None, typer.Option(help="GPU power limit (W); default: TDP.")] = None,
    decode_batch: Annotated[int, typer.Option(help="llm-energy, operator-runtime: requests decoded together "
                                              "(continuous batching).")] = 16,
    max_num_seqs: Annotated[int, typer.Option(help="serving-energy: the engine's cap on requests in flight "
                                              "(vLLM max_num_seqs); the batch comes from the trace's load.")] = 256,
    tensor_parallel: Annotated[int, typer.Option(help="Tensor-parallel degree (GPUs per replica).")] = 1,
    dtype: Annotated[str, typer.Option(help="Weights/activations dtype.")] = "bf16",
    method: Annotated[str, typer.Option(help="auto (serving-energy when a model exists), serving-energy "
                                        "(ML.ENERGY vLLM measurements), llm-energy, or operator-runtime (layer "
                                        "operators + assumed board power).")] = "auto",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write per-request estimates "
                                                "(Parquet).")] = None,
    store: StoreOpt = None,
    models: ModelsOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """ESTIMATE per-request prefill/decode time and energy of a trace, and its energy per hour."""
    import polars as pl

    from ..predictors.estimate import Assumptions, estimate_trace, report_lines

    assumptions = Assumptions(gpu=gpu, model=model, power_limit_w=power_limit, decode_batch=decode_batch,
                              max_num_seqs=max_num_seqs,
                              tensor_parallel=tensor_parallel, dtype=dtype)
    st = open_store(store, write=False)
    source, trace = resolve_selection(st, "llm_requests", source, trace)
    per_request, summary = estimate_trace(st, source, trace, assumptions, models_dir=models,
                                          method=method)
    if output is not None:
        per_request.write_parquet(output)
        err.print(f"wrote {per_request.height:,} per-request estimates to {output}")
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        for w in summary["warnings"]:
            err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
        return
    rows = [{k: v for k, v in s.items() if k != "assumptions"} for s in summary["traces"]]
    print_frame(pl.DataFrame(rows), fmt, title="ESTIMATES (not measurements): " + summary["label"])
    # Estimates never travel without their assumptions (stderr, so csv on stdout stays clean).
    say(summary["method"], label="Method:", style="bold")
    say("", label="Assumptions:", style="bold")
    for a in summary["assumptions"]:
        err.print(f"  - {a}")
    # Every method side by side, out-of-domain shares and GPUs needed (stderr: stdout stays the table/CSV).
    for line in report_lines(summary):
        err.print(line, markup=False, highlight=False, soft_wrap=True)

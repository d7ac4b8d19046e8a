"""Analysis commands: ``report`` and ``workload export|synth``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ._common import StoreOpt, err, open_store, out


class WorkloadFormat(StrEnum):
    burstgpt = "burstgpt"
    vidur = "vidur"
    splitwise = "splitwise"
    jsonl = "jsonl"


OutOpt = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="Only rows of this source id.")]
TraceOpt = Annotated[str | None, typer.Option("--trace", help="Only rows of this trace (e.g. code, conv, BurstGPT_1).")]

workload_app = typer.Typer(
    help="Turn a trace into load for a load generator or simulator.", no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
    workload_app.command("export")(export_cmd)
    workload_app.command("synth")(synth_cmd)
    app.add_typer(workload_app, name="workload")


def report_cmd(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to report on (e.g. llm_requests).")],
    output: OutOpt = Path("report.html"),
    source: SourceOpt = None,
    trace: TraceOpt = None,
    store: StoreOpt = None,
) -> None:
    """Write a self-contained interactive HTML report (plotly, works offline) for TABLE."""
    import time

    from ..analysis.report import build_report

    started = time.perf_counter()
    path = build_report(table, output, store=open_store(store), source=source, trace=trace)
    err.print(f"report written in {time.perf_counter() - started:.1f} s")
    out.print(str(path.resolve()), highlight=False, soft_wrap=True)


def export_cmd(
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Only llm_requests can be exported.")],
    fmt: Annotated[WorkloadFormat, typer.Option("--format", "-f", help="burstgpt (vLLM's BurstGPT loader), "
                                                 "vidur/splitwise (arrived_at,num_prefill_tokens,"
                                                 "num_decode_tokens) or jsonl (Mooncake-style trace replay).")],
    output: OutOpt,
    source: Annotated[str, typer.Option("--source", help="Source id of the trace.")],
    trace: TraceOpt = None,
    start: Annotated[float, typer.Option("--start", help="Slice start, s after the trace's first request.")] = 0.0,
    duration: Annotated[float | None, typer.Option("--duration", help="Slice length, s (default: to the end).")] = None,
    rate_scale: Annotated[float, typer.Option("--rate-scale", help="Speed-up: 2 replays twice as fast.")] = 1.0,
    model: Annotated[str, typer.Option("--model", help="burstgpt only: Model written where the trace records "
                                       "none (vLLM keeps only GPT-4 rows).")] = "GPT-4",
    log_type: Annotated[str, typer.Option("--log-type", help="burstgpt only: Log Type where the trace records "
                                          "none.")] = "API log",
    store: StoreOpt = None,
) -> None:
    """Write a slice of a request trace in a format a load generator or simulator reads."""
    from ..analysis.workload import export_workload
    from ..errors import AnalysisError

    if table != "llm_requests":
        raise AnalysisError(f"only llm_requests can be exported as a workload, not {table!r}")
    f = export_workload(store=open_store(store), source=source, trace=trace, start_s=start, duration_s=duration,
                        rate_scale=rate_scale, fmt=fmt.value, path=output, model=model, log_type=log_type)
    err.print(f"{f.requests:,} requests over {f.duration_s:,.1f} s written as {f.format}")
    out.print(str(f.path.resolve()), highlight=False, soft_wrap=True)


def synth_cmd(
    like: Annotated[str, typer.Option("--like", help="SOURCE/TRACE to imitate, e.g. azure-llm-2023/conv.")],
    duration: Annotated[float, typer.Option("--duration", help="Length of the synthetic trace, s.")],
    output: OutOpt,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same trace).")] = 0,
    rate: Annotated[float | None, typer.Option("--rate", help="Mean rate, req/s (default: the original's).")] = None,
    fmt: Annotated[WorkloadFormat, typer.Option("--format", "-f", help="Output format, as for export.")] = (
        WorkloadFormat.jsonl),
    store: StoreOpt = None,
) -> None:
    """Generate a synthetic trace with the original's inter-arrival CV, rate shape and token mix."""
    from ..analysis.workload import parse_like, synthesize_workload, write_workload

    src, tr = parse_like(like)
    df = synthesize_workload(store=open_store(store), source=src, trace=tr, duration_s=duration,
                             rate_per_s=rate, seed=seed)
    f = write_workload(df, output, fmt.value)
    err.print(f"{f.requests:,} synthetic requests over {duration:,.0f} s written as {f.format} (seed {seed})")
    out.print(str(f.path.resolve()), highlight=False, soft_wrap=True)

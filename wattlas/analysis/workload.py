"""Turning a trace into load: exports in the formats real tools read, and synthetic look-alikes.

Formats (checked against each tool's own loader):

``burstgpt``
    ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`` -- the column
    order of BurstGPT releases 1 and 2. vLLM's ``BurstGPTDataset`` (``vllm/benchmarks/
    datasets.py``) reads it with ``pandas.read_csv``, keeps rows with ``Model == "GPT-4"`` and
    ``Response tokens > 0``, and takes the prompt and output lengths **by position** (columns
    2 and 3), so the order matters. It ignores ``Timestamp`` (it samples rows at random and
    arrivals come from ``--request-rate``): use ``jsonl`` for a timed replay. Traces that record
    no model get ``model`` (default ``GPT-4`` so that vLLM keeps them; a label, not a claim)
    and no log type ``log_type``.
``vidur`` (alias ``splitwise``)
    ``arrived_at,num_prefill_tokens,num_decode_tokens`` as in microsoft/vidur's
    ``data/processed_traces/splitwise_*.csv``, read by the ``TraceReplayRequestGenerator`` of
    the microsoft/vidur repository (``arrived_at`` in seconds; vidur clips token counts to
    >= 1 itself). Not for the ``vidur`` package on PyPI (0.0.26), a different code base whose
    trace reader wants ``Date,Time,PromptTokenCount,CompletionTokenCount``.
``jsonl`` (Mooncake trace)
    One JSON object per line, keys in Mooncake's order::

        {"timestamp": 1234, "input_length": 1100, "output_length": 52, "hash_ids": [7, 8, 9]}

    ``timestamp`` is an integer number of milliseconds from the start of the slice,
    ``round(arrival offset * 1000)`` (``time_unit="s"``: float seconds, rounded to the
    microsecond, for consumers that cannot scale milliseconds; AIPerf and SGLang read
    milliseconds). Lines are in arrival order, so timestamps never decrease.

    ``hash_ids`` holds ``ceil(input_length / hash_block)`` block ids (``hash_block`` = 512 tokens
    by default, Mooncake's; 16 is the Alibaba/Qwen traces' convention): replay tools build each
    prompt from one block of tokens per id (vLLM's ``timed_trace`` and SGLang's ``mooncake``
    build prompts from the ids only, so without them every prompt is empty or tiny), and
    equal ids mean an equal prefix (a KV-cache hit). A request with ``input_length`` 0 gets
    no id (``ceil(0 / block) = 0``) and so an empty prompt.

    **Prefix sharing.** The public traces record token counts, not prompt contents, so by
    default (``prefix_sharing="none"``) every id is used once in the whole file: the export
    claims no shared prefix, and a prefix cache will see no reuse. ``prefix_sharing=
    "sessions"`` models multi-turn chat where a trace records conversations (a non-null
    ``session_id``: BurstGPT release 3), see :func:`block_hash_ids` for the model and its
    limits.

Times in every export count from the start of the slice and are divided by ``rate_scale``
(2 plays the slice twice as fast). Every export reports what it wrote
(:meth:`WorkloadFile.summary`): requests, span, mean rate and inter-arrival CV, computed by
:func:`~wattlas.analysis.interarrival_stats` on the arrival times as written in the file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import AnalysisError
from ._data import Data, Input, as_input

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("wattlas.analysis.workload")

FORMATS = ("burstgpt", "vidur", "splitwise", "jsonl")
BURSTGPT_HEADER = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
VIDUR_HEADER = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
JSONL_KEYS = ("timestamp", "input_length", "output_length", "hash_ids")
HASH_BLOCK_TOKENS = 512
PREFIX_SHARING = ("none", "sessions")
TIME_UNITS = ("ms", "s")

__all__ = [
    "FORMATS", "HASH_BLOCK_TOKENS", "PREFIX_SHARING", "TIME_UNITS", "BlockIds", "SynthTarget", "WorkloadFile",
    "block_hash_ids", "export_workload", "synthesize_workload", "synthesize_workload_with_target",
    "workload_slice", "write_workload",
]


@dataclass(frozen=True)
class WorkloadFile:
    """What an export or synth wrote; the statistics are of the arrival times as written."""

    path: Path
    format: str
    requests: int
    duration_s: float
    """Span: last written arrival minus first, s."""
    mean_rate_per_s: float | None = None
    """``(requests - 1) / duration_s`` (:func:`~wattlas.analysis.interarrival_stats`)."""
    interarrival_cv: float | None = None
    """Population standard deviation / mean of the gaps between written arrivals."""
    time_unit: str | None = None
    hash_block: int | None = None
    prefix_sharing: str | None = None
    blocks: int = 0
    """``hash_ids`` written in all (jsonl)."""
    shared_blocks: int = 0
    """Of those, ids that repeat the previous turn's of the same conversation."""
    continued_turns: int = 0
    """Requests that continue a conversation seen earlier in the slice."""
    shorter_turns: int = 0
    """Of those, turns whose input is shorter than the previous turn's input plus output."""

    def summary(self) -> str:
        """What was written, in one or two lines (the CLI prints this to stderr)."""
        def num(v: float | None, spec: str) -> str:
            return "n/a" if v is None else format(v, spec)

        what = self.format
        if self.format == "jsonl":
            what += (f" ({self.time_unit} timestamps, {self.hash_block}-token hash blocks, "
                     f"prefix sharing {self.prefix_sharing})")
        lines = [f"wrote {self.requests:,} requests as {what}: span {self.duration_s:,.3f} s, "
                 f"mean rate {num(self.mean_rate_per_s, ',.4f')} req/s, "
                 f"inter-arrival CV {num(self.interarrival_cv, '.4f')}"]
        if self.prefix_sharing == "sessions":
            share = 100.0 * self.shared_blocks / self.blocks if self.blocks else 0.0
            lines.append(f"sessions: {self.continued_turns:,} turns continue a conversation "
                         f"({self.shorter_turns:,} shorter than the previous turn's input + output); "
                         f"{self.shared_blocks:,} of {self.blocks:,} hash blocks ({share:.1f} %) "
                         "repeat the previous turn's")
        return "\n".join(lines)


@dataclass(frozen=True)
class BlockIds:
    """The ``hash_ids`` of every request: request ``i`` has ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray
    offsets: np.ndarray
    shared_blocks: int = 0
    continued_turns: int = 0
    shorter_turns: int = 0

    def of(self, i: int) -> list[int]:
        return self.ids[self.offsets[i]:self.offsets[i + 1]].tolist()


def block_hash_ids(
    input_tokens: Sequence[int] | np.ndarray,
    *,
    block: int = HASH_BLOCK_TOKENS,
    sessions: Sequence[str | None] | None = None,
    output_tokens: Sequence[int] | np.ndarray | None = None,
) -> BlockIds:
    """Mooncake ``hash_ids`` for requests in arrival order: ``ceil(input / block)`` ids each.

    Without ``sessions`` every id is fresh: ids count up from 0 in order of first use and no
    id appears twice (no prefix sharing is claimed, as the traces record no prompt contents).

    With ``sessions`` (a conversation id per request, ``None`` for a request outside any
    conversation) the model is an idealized multi-turn chat: each prompt is the previous
    turn's prompt, plus its response, plus new user text. An id stands for the content of one
    complete block *and everything before it* (as a prefix-cache block hash does), so a turn
    reuses the previous turn's ids of the blocks that were complete in the previous prompt
    (``floor(prev_input / block)`` of them, at most as many as the turn's own complete blocks)
    and gets fresh ids for the rest: the blocks that now hold the previous response and the
    new text, and the one that was the previous prompt's partial last block (its content
    changed, so its id must too). Those fresh ids are in turn shared by the next turn, so a
    conversation's context is shared turn after turn. A turn always has
    ``ceil(input / block)`` ids.

    Limits: the traces hold token counts, not texts, so this is a model, not a measurement.
    Real clients may trim or summarize history, and BurstGPT does not say whether its
    ``Request tokens`` include the history. A turn whose input is shorter than the previous
    turn's input plus output (counted in ``shorter_turns``) breaks the model's assumption; it
    still shares its complete blocks with the previous prompt, as if the history had been cut
    at its end, which may overstate reuse (a client that drops the oldest turns shares
    nothing). A conversation whose earlier turns fall outside the exported slice starts
    fresh at its first turn inside it. The response blocks never appear in an earlier prompt,
    so a replay tool (which does not see the server's generated tokens) cannot hit them on
    the turn right after the response.

    Examples
    --------
    >>> b = block_hash_ids([1000, 1, 0], block=512)
    >>> [b.of(i) for i in range(3)]
    [[0, 1], [2], []]
    >>> b = block_hash_ids([1000, 1600], block=512, sessions=["a", "a"], output_tokens=[300, 10])
    >>> [b.of(i) for i in range(2)], b.shared_blocks
    ([[0, 1], [0, 2, 3, 4]], 1)
    """
    if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
        raise AnalysisError(f"the hash block must be a whole number of tokens >= 1, got {block!r}")
    inp = np.asarray(input_tokens, dtype=np.int64)
    if inp.size and inp.min() < 0:
        raise AnalysisError(f"input token counts must be >= 0; found {int(inp.min())}")
    counts = -(-inp // block)  # ceil(input / block), 0 for an empty prompt
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if sessions is None:
        return BlockIds(np.arange(offsets[-1], dtype=np.int64), offsets)
    if output_tokens is None:
        raise AnalysisError("prefix sharing by sessions needs the output token counts too")
    outp = np.asarray(output_tokens, dtype=np.int64)
    if len(sessions) != inp.size or outp.size != inp.size:
        raise AnalysisError(f"{inp.size} input counts but {len(sessions)} session ids and {outp.size} output counts")
    return _session_block_ids(inp, outp, counts, list(sessions), block)


def _session_block_ids(inp: np.ndarray, outp: np.ndarray, counts: np.ndarray, sessions: list[str | None],
                       block: int) -> BlockIds:
    full = (inp // block).tolist()
    counts_l, inp_l, outp_l = counts.tolist(), inp.tolist(), outp.tolist()
    # Per conversation: its last turn's ids, complete blocks and input + output tokens.
    last: dict[str, tuple[list[int], int, int]] = {}
    flat: list[int] = []
    next_id = shared = continued = shorter = 0
    for i, sess in enumerate(sessions):
        prefix: list[int] = []
        if sess is not None and sess in last:
            prev_ids, prev_full, prev_context = last[sess]
            prefix = prev_ids[:min(prev_full, full[i])]
            continued += 1
            shorter += inp_l[i] < prev_context
            shared += len(prefix)
        n_fresh = counts_l[i] - len(prefix)
        ids = prefix + list(range(next_id, next_id + n_fresh))
        next_id += n_fresh
        if sess is not None:
            last[sess] = (ids, full[i], inp_l[i] + outp_l[i])
        flat.extend(ids)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return BlockIds(np.asarray(flat, dtype=np.int64), offsets, shared, continued, shorter)


def _interarrival(times_s: np.ndarray) -> tuple[float, float | None, float | None]:
    """Span, mean rate and gap CV of arrival times, by the analysis module's own definitions."""
    import polars as pl

    from .arrivals import interarrival_stats

    if times_s.size == 0:
        return 0.0, None, None
    row = interarrival_stats(pl.DataFrame({"arrival_s": times_s})).row(0, named=True)
    return float(row["span_s"] or 0.0), row["mean_rate_per_s"], row["interarrival_cv"]


def workload_slice(
    data: Data = None,
    *,
    source: str | None = None,
    trace: str | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    rate_scale: float = 1.0,
    store=None,
) -> pl.DataFrame:
    """The requests of one trace between ``start_s`` and ``start_s + duration_s``.

    Times count from the trace's first arrival. Returns ``arrival_s`` (from the start of the
    slice, divided by ``rate_scale``), ``input_tokens``, ``output_tokens``, ``model``,
    ``log_type``, ``session_id`` (null where the trace records none), in arrival order.
    Raises when the selection spans several traces (give ``trace``) or is empty.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"arrival_s": [10.0, 11.0, 15.0], "input_tokens": [5, 6, 7], "output_tokens": [1, 2, 3]})
    >>> workload_slice(df, start_s=1.0, rate_scale=2.0)["arrival_s"].to_list()
    [0.0, 2.0]
    """
    if not rate_scale > 0:
        raise AnalysisError(f"rate_scale must be > 0, got {rate_scale}")
    inp = as_input(data, store=store, source=source, trace=trace)
    inp.require("arrival_s", "input_tokens", "output_tokens", what="workload export")
    if inp.has("trace"):
        traces = inp.sql("SELECT DISTINCT source, trace FROM _input ORDER BY 1, 2" if inp.has("source")
                         else "SELECT DISTINCT trace FROM _input ORDER BY 1")
        if traces.height > 1:
            names = ", ".join("/".join(str(v) for v in r) for r in traces.rows())
            raise AnalysisError(f"the selection holds {traces.height} traces ({names}); choose one with --trace "
                                "(and --source)")
    if inp.count() == 0:
        raise AnalysisError("no requests selected" + (f" for source {source!r}" if source else "")
                            + (f", trace {trace!r}" if trace else ""))
    _check_window(inp, start_s, duration_s)
    model = "model" if inp.has("model") else "NULL::VARCHAR"
    log_type = "log_type" if inp.has("log_type") else "NULL::VARCHAR"
    session = "session_id" if inp.has("session_id") else "NULL::VARCHAR"
    order = ", request_id" if inp.has("request_id") else ""
    end = "" if duration_s is None else "AND rel < $start + $dur"
    return inp.sql(
        f"""
        WITH r AS (SELECT *, arrival_s - min(arrival_s) OVER () AS rel FROM _input)
        SELECT (rel - $start) / $scale AS arrival_s, input_tokens, output_tokens,
               {model} AS model, {log_type} AS log_type, {session} AS session_id
        FROM r WHERE rel >= $start {end}
        ORDER BY rel{order}
        """,
        {"start": float(start_s), "scale": float(rate_scale),
         **({"dur": float(duration_s)} if duration_s is not None else {})},
    )


def _check_window(inp: Input, start_s: float, duration_s: float | None) -> None:
    """Refuse a slice that cannot hold a request, naming the trace's span (an empty file would not)."""
    span_s = float(inp.sql("SELECT max(arrival_s) - min(arrival_s) AS s FROM _input")["s"][0])
    where = f"the trace spans 0 to {span_s:,.3f} s (from its first request)"
    if duration_s is not None and not duration_s > 0:
        raise AnalysisError(f"--duration must be > 0 s, got {duration_s:g}; {where}")
    if not 0 <= start_s <= span_s:
        raise AnalysisError(f"--start {start_s:g} s is outside the trace: {where}")


def _jsonl_options(fmt: str, hash_block: int | None, prefix_sharing: str | None,
                   time_unit: str | None) -> tuple[int, str, str]:
    """The jsonl options with their defaults; refuses them for the other formats."""
    given = [f"{name}={v!r}" for name, v in (("hash_block", hash_block), ("prefix_sharing", prefix_sharing),
                                             ("time_unit", time_unit)) if v is not None]
    if fmt != "jsonl":
        if given:
            raise AnalysisError(f"{', '.join(given)} apply to the jsonl (Mooncake) format only, not to {fmt!r}")
        return HASH_BLOCK_TOKENS, "none", "ms"
    sharing = prefix_sharing or "none"
    unit = time_unit or "ms"
    if sharing not in PREFIX_SHARING:
        raise AnalysisError(f"unknown prefix sharing {sharing!r}; known: {', '.join(PREFIX_SHARING)}")
    if unit not in TIME_UNITS:
        raise AnalysisError(f"unknown time unit {unit!r}; known: {', '.join(TIME_UNITS)}")
    block = HASH_BLOCK_TOKENS if hash_block is None else hash_block
    if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
        raise AnalysisError(f"hash_block must be a whole number of tokens >= 1, got {hash_block!r}")
    return int(block), sharing, unit


def _session_ids(df: pl.DataFrame, what: str) -> list[str | None]:
    """The conversation id of every request; refuses a selection that records none."""
    if "session_id" not in df.columns or df["session_id"].null_count() == df.height:
        raise AnalysisError(
            f"prefix sharing by sessions needs conversation ids, and {what} has none (session_id is absent "
            f"or null on all {df.height:,} requests). Of the public traces only BurstGPT release 3 "
            "(BurstGPT_3.csv, BurstGPT_without_fails_3.csv) records them; use --prefix-sharing none")
    return df["session_id"].cast(str).to_list()


def _write_jsonl(tmp: Path, df: pl.DataFrame, times: list[int] | list[float], blocks: BlockIds) -> None:
    inp = df["input_tokens"].to_list()
    outp = df["output_tokens"].to_list()
    ids, offsets = blocks.ids, blocks.offsets
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for lo in range(0, df.height, 100_000):
            hi = min(lo + 100_000, df.height)
            base = int(offsets[lo])
            chunk = ids[base:int(offsets[hi])].tolist()
            fh.write("".join(
                # json.dumps keeps the dict's (Mooncake's) key order.
                json.dumps({"timestamp": times[i], "input_length": int(inp[i]), "output_length": int(outp[i]),
                            "hash_ids": chunk[int(offsets[i]) - base:int(offsets[i + 1]) - base]}) + "\n"
                for i in range(lo, hi)
            ))


def write_workload(df: pl.DataFrame, path: str | os.PathLike[str], fmt: str, *, model: str = "GPT-4",
                   log_type: str = "API log", hash_block: int | None = None, prefix_sharing: str | None = None,
                   time_unit: str | None = None, what: str = "the selection") -> WorkloadFile:
    """Write requests (``arrival_s``, ``input_tokens``, ``output_tokens`` [, ``model``,
    ``log_type``, ``session_id``]) in format ``fmt``, in arrival order (a stable sort when they
    are not); atomic (temporary file, then rename).

    ``hash_block`` (default 512), ``prefix_sharing`` (``none`` or ``sessions``, see
    :func:`block_hash_ids`) and ``time_unit`` (``ms`` or ``s``) apply to ``jsonl`` only;
    ``what`` names the selection in errors.
    """
    import polars as pl

    if fmt not in FORMATS:
        raise AnalysisError(f"unknown workload format {fmt!r}; known: {', '.join(FORMATS)}")
    block, sharing, unit = _jsonl_options(fmt, hash_block, prefix_sharing, time_unit)
    if df.height and not df["arrival_s"].is_sorted():
        # Replay tools send in file order (vLLM's timed_trace does not sort), and sessions
        # follow arrival order: a stable sort keeps ties in their given order.
        df = df.sort("arrival_s", maintain_order=True)
    arrival = df["arrival_s"].to_numpy().astype(np.float64)
    sessions = _session_ids(df, what) if fmt == "jsonl" and sharing == "sessions" else None
    path = Path(path)
    to_stdout = str(path) == "-"
    # "-": write a temporary file, then copy it to stdout whole (never half a file on a failure).
    scratch = tempfile.TemporaryDirectory(prefix="wattlas-workload-") if to_stdout else None
    if scratch is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(scratch.name) / "workload" if scratch else path.with_name(f".{path.name}.tmp")
    blocks: BlockIds | None = None
    # Arrival times as the consumer reads them back: CSV and float seconds keep 6 decimals.
    written = np.round(arrival, 6)
    if fmt == "burstgpt":
        cols = df.columns
        filled = df.with_columns(
            model=(pl.col("model") if "model" in cols else pl.lit(None, pl.String)).fill_null(model),
            log_type=(pl.col("log_type") if "log_type" in cols else pl.lit(None, pl.String)).fill_null(log_type),
        )
        n_filled = filled.height - (df["model"].drop_nulls().len() if "model" in cols else 0)
        if n_filled:
            log.warning("%d request(s) have no model in the trace: wrote Model=%r (vLLM's BurstGPT loader keeps "
                        "only GPT-4 rows)", n_filled, model)
        out = filled.select(
            pl.col("arrival_s").alias("Timestamp"), pl.col("model").alias("Model"),
            pl.col("input_tokens").alias("Request tokens"), pl.col("output_tokens").alias("Response tokens"),
            (pl.col("input_tokens") + pl.col("output_tokens")).alias("Total tokens"),
            pl.col("log_type").alias("Log Type"),
        )
        out.write_csv(tmp, float_precision=6)
    elif fmt in ("vidur", "splitwise"):
        df.select(
            pl.col("arrival_s").alias("arrived_at"), pl.col("input_tokens").alias("num_prefill_tokens"),
            pl.col("output_tokens").alias("num_decode_tokens"),
        ).write_csv(tmp, float_precision=6)
    else:
        blocks = block_hash_ids(df["input_tokens"].to_numpy(), block=block, sessions=sessions,
                                output_tokens=df["output_tokens"].to_numpy())
        if unit == "ms":
            ms = np.rint(arrival * 1000.0).astype(np.int64)
            written = ms / 1000.0
            times: list[int] | list[float] = ms.tolist()
        else:
            times = written.tolist()
        _write_jsonl(tmp, df, times, blocks)
    if scratch is not None:
        with scratch, open(tmp, "rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        os.replace(tmp, path)
    span, rate, cv = _interarrival(written)
    fmt_name = "vidur" if fmt == "splitwise" else fmt
    if blocks is None:
        return WorkloadFile(path, fmt_name, df.height, span, rate, cv)
    return WorkloadFile(
        path, fmt_name, df.height, span, rate, cv, time_unit=unit, hash_block=block, prefix_sharing=sharing,
        blocks=int(blocks.offsets[-1]), shared_blocks=blocks.shared_blocks,
        continued_turns=blocks.continued_turns, shorter_turns=blocks.shorter_turns,
    )


def export_workload(
    data: Data = None,
    *,
    path: str | os.PathLike[str],
    fmt: str,
    source: str | None = None,
    trace: str | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    rate_scale: float = 1.0,
    model: str = "GPT-4",
    log_type: str = "API log",
    hash_block: int | None = None,
    prefix_sharing: str | None = None,
    time_unit: str | None = None,
    store=None,
) -> WorkloadFile:
    """Write a slice of a trace (:func:`workload_slice`) in format ``fmt`` (see module docs).

    Examples
    --------
    >>> export_workload(source="azure-llm-2023", trace="conv", duration_s=600,
    ...                 fmt="vidur", path="conv.csv")                    # doctest: +SKIP
    >>> export_workload(source="burstgpt", trace="BurstGPT_3", duration_s=3600, fmt="jsonl",
    ...                 prefix_sharing="sessions", path="b3.jsonl")      # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown workload format {fmt!r}; known: {', '.join(FORMATS)}")
    _jsonl_options(fmt, hash_block, prefix_sharing, time_unit)  # refuse bad options before reading
    df = workload_slice(data, source=source, trace=trace, start_s=start_s, duration_s=duration_s,
                        rate_scale=rate_scale, store=store)
    what = "/".join(v for v in (source, trace) if v) or "the selection"
    return write_workload(df, path, fmt, model=model, log_type=log_type, hash_block=hash_block,
                          prefix_sharing=prefix_sharing, time_unit=time_unit, what=what)


@dataclass(frozen=True)
class SynthTarget:
    """What :func:`synthesize_workload` aims at."""

    interarrival_cv: float
    """The original's inter-arrival CV (real time, rate shape included)."""
    mean_rate_per_s: float
    """``rate_per_s``, or the original's ``(requests - 1) / span``."""
    shape_free_cv: float
    """The CV of the original's gaps in operational time (rate shape removed): the gamma
    renewal process's CV."""


def synthesize_workload(
    like: Data = None,
    *,
    duration_s: float,
    rate_per_s: float | None = None,
    seed: int = 0,
    source: str | None = None,
    trace: str | None = None,
    store=None,
    profile_bins: int | None = None,
) -> pl.DataFrame:
    """A synthetic request trace; see :func:`synthesize_workload_with_target`, which also
    returns what the synthesis aims at."""
    return synthesize_workload_with_target(like, duration_s=duration_s, rate_per_s=rate_per_s, seed=seed,
                                           source=source, trace=trace, store=store, profile_bins=profile_bins)[0]


def synthesize_workload_with_target(
    like: Data = None,
    *,
    duration_s: float,
    rate_per_s: float | None = None,
    seed: int = 0,
    source: str | None = None,
    trace: str | None = None,
    store=None,
    profile_bins: int | None = None,
) -> tuple[pl.DataFrame, SynthTarget]:
    """A synthetic request trace with the original's burstiness, rate shape and token mix.

    Method (all vectorized):

    1. **Rate shape.** The original's arrival counts per phase bin of a period -- one day
       (24 hourly bins) when the trace spans a day or more, else the trace's own span
       (``profile_bins`` bins, default one per minute up to 120) -- divided by how often each
       bin was observed, relative to the mean: ``s(phase)``. The synthetic trace starts at the
       original's starting phase and repeats the shape every period.
    2. **Burstiness.** Arrival times are mapped to operational time ``u = integral of s``,
       which removes the rate shape; the CV of the original's gaps in ``u`` is measured, and a
       gamma renewal process with that CV and mean rate ``rate_per_s`` (default: the
       original's) is drawn in ``u`` and mapped back to real time.
    3. **Tokens.** (input, output) pairs are drawn with replacement from the original, which
       keeps the joint distribution (including the correlation) exactly.

    Not modelled: correlation between consecutive gaps beyond the rate shape (e.g. long
    silent periods that recur), and dependence between tokens and arrival time. Use an export
    of the real trace when those matter.

    Returns the requests (``request_id``, ``arrival_s`` (from 0), ``input_tokens``,
    ``output_tokens``) and the :class:`SynthTarget`.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> orig = pl.DataFrame({"arrival_s": np.cumsum(rng.exponential(1.0, 5000)),
    ...                      "input_tokens": rng.integers(1, 100, 5000), "output_tokens": 10})
    >>> syn, target = synthesize_workload_with_target(orig, duration_s=1000, seed=1)
    >>> 900 < syn.height < 1100, round(target.interarrival_cv, 1)
    (True, 1.0)
    """
    import polars as pl

    if not duration_s > 0:
        raise AnalysisError(f"duration_s must be > 0, got {duration_s}")
    inp = as_input(like, store=store, source=source, trace=trace)
    inp.require("arrival_s", "input_tokens", "output_tokens", what="synthesize_workload")
    if inp.has("trace") and inp.sql("SELECT count(DISTINCT trace) AS n FROM _input")["n"][0] > 1:
        raise AnalysisError("the original selection holds several traces; give source/trace (SOURCE/TRACE)")
    clock = inp.non_null("arrival_time")
    phase_sql = "epoch(arrival_time) - epoch(date_trunc('day', arrival_time))" if clock else "NULL::DOUBLE"
    base = inp.sql(f"SELECT arrival_s AS t, {phase_sql} AS clock_phase FROM _input ORDER BY arrival_s")
    if base.height < 50:
        raise AnalysisError(f"need at least 50 requests to model a trace, got {base.height}")
    t = base["t"].to_numpy().astype(float)
    t0 = t[0]
    t = t - t0
    span = float(t[-1])
    if span <= 0:
        raise AnalysisError("all arrivals share one timestamp: no rate to model")
    if span >= 86400:
        period, nb = 86400.0, 24
        phase0 = float(base["clock_phase"][0]) if clock else float(t0 % 86400)
    else:
        period = span
        nb = profile_bins or int(min(120, max(1, span // 60)))
        phase0 = 0.0
    width = period / nb
    # Absolute phase-bin index of every arrival; exposure = how many times each phase bin was seen.
    b = np.floor((t + phase0) / width).astype(np.int64)
    b_lo, b_hi = int(b[0]), int(b[-1])
    observed = np.bincount(np.mod(np.arange(b_lo, b_hi + 1), nb), minlength=nb).astype(float)
    counts = np.bincount(np.mod(b, nb), minlength=nb).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(observed > 0, counts / (observed * width), np.nan)
    mean_rate_profile = np.nanmean(rate)
    shape_ = np.nan_to_num(rate / mean_rate_profile, nan=1.0)
    shape_ = np.maximum(shape_, 1e-3)  # a phase never seen busy still gets a trickle: keeps Lambda invertible

    def lam(x: np.ndarray, start_phase: float) -> np.ndarray:
        """Operational time: integral of the shape from 0 to x (piecewise linear)."""
        edges_u = np.concatenate([[0.0], np.cumsum(shape_) * width])  # one period
        pos = x + start_phase
        k = np.floor(pos / period)
        r = pos - k * period
        u = k * edges_u[-1] + np.interp(r, np.arange(nb + 1) * width, edges_u)
        r0 = start_phase
        u0 = np.interp(r0, np.arange(nb + 1) * width, edges_u)
        return u - u0

    u = lam(t, phase0)
    gaps_u = np.diff(u)
    cv = float(gaps_u.std() / gaps_u.mean()) if gaps_u.mean() > 0 else 1.0
    # Mean rate in real time equals the rate in operational time when the shape averages 1
    # over the period (time-weighted), which it does by construction on observed phases.
    target = float(rate_per_s) if rate_per_s else (t.size - 1) / span
    if not target > 0:
        raise AnalysisError(f"rate_per_s must be > 0, got {rate_per_s}")
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, duration_s, int(min(2_000_000, max(1000, duration_s / width * 50))) + 1)
    u_grid = lam(grid, phase0)
    u_end = u_grid[-1]
    k = 1.0 / max(cv, 1e-3) ** 2
    expected = u_end * target
    n_draw = int(expected + 10 * np.sqrt(expected * max(cv, 1.0) ** 2) + 100)
    gaps = rng.gamma(k, 1.0 / (target * k), n_draw)
    # Stationary start for a renewal process: the first arrival after a random (equilibrium) offset.
    first = rng.uniform(0, 1) * gaps[0]
    su = first + np.concatenate([[0.0], np.cumsum(gaps[1:])])
    while su[-1] < u_end:  # rare: draw more
        more = rng.gamma(k, 1.0 / (target * k), n_draw)
        su = np.concatenate([su, su[-1] + np.cumsum(more)])
    su = su[su < u_end]
    arrival = np.interp(su, u_grid, grid)
    # Sorted so that a seed gives the same pairs whatever order the scan returned rows in.
    tok = inp.sql("SELECT input_tokens, output_tokens FROM _input ORDER BY arrival_s, input_tokens, output_tokens")
    pick = rng.integers(0, tok.height, arrival.size)
    _, _, orig_cv = _interarrival(t)
    target_of = SynthTarget(interarrival_cv=float("nan") if orig_cv is None else float(orig_cv),
                            mean_rate_per_s=target, shape_free_cv=cv)
    return pl.DataFrame({
        "request_id": np.arange(arrival.size, dtype=np.int64),
        "arrival_s": arrival,
        "input_tokens": tok["input_tokens"].to_numpy()[pick],
        "output_tokens": tok["output_tokens"].to_numpy()[pick],
    }), target_of


def parse_like(like: str, known_sources: Sequence[str] = ()) -> tuple[str, str | None]:
    """``SOURCE/TRACE`` -> (source, trace); ``SOURCE`` alone -> (source, None).

    Examples
    --------
    >>> parse_like("azure-llm-2023/conv")
    ('azure-llm-2023', 'conv')
    """
    src, _, tr = like.partition("/")
    if not src:
        raise AnalysisError(f"--like wants SOURCE/TRACE (e.g. azure-llm-2023/conv), got {like!r}")
    return src, tr or None



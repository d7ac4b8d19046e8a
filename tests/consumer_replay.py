"""Load a Mooncake-style trace with a replay tool's own code and report what it would send.

Run as ``python -m tests.consumer_replay {aiperf|guidellm} TRACE.jsonl WORKDIR``; it writes
``WORKDIR/result.json`` with, per request in send order, the prompt length in tokens (the prompt
the tool built, re-encoded), the output length the tool asks for, and the send offset in seconds
from the first request. Each consumer runs in its own process because both keep global state
(AIPerf's random-generator registry and worker pool, GuideLLM's event loop and logger, the
Hugging Face cache paths read at import).

No network: the tokenizer is a word-level ``tokenizers`` model trained here on the consumer's own
prompt corpus, so that decoding and re-encoding a prompt gives back exactly its tokens. The
consumer modules are imported inside the functions: pytest's doctest collection imports this
file where they are not installed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# What a user types: the flags of the README's workloads table, checked by the tests through
# the tool's own command-line parser.
AIPERF_FLAGS = ("--custom-dataset-type", "mooncake_trace", "--fixed-schedule")
GUIDELLM_DATA = "kind=mooncake,source.kind=json_file,source.path={path},time_scale=0.001"
GUIDELLM_PROFILE = "kind=replay"
# A Hugging Face repository id whose snapshot we lay out in a private cache (AIPerf's decode
# workers load tokenizers by repository id in offline mode; a plain directory path fails there).
TOKENIZER_REPO = "wattlas/test-wordlevel"


def train_wordlevel(texts: Iterable[str]) -> Any:
    """A lowercase word-level tokenizer (words and punctuation runs) trained on ``texts``.

    Every token is a whole word or a whole punctuation run, and decoding joins tokens with
    spaces, so ``encode(decode(ids)) == ids`` for any ids drawn from the vocabulary.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", clean_up_tokenization_spaces=False)


def _hub_snapshot(fast: Any, hub: Path) -> None:
    """Lay ``fast`` out as a cached Hub snapshot of ``TOKENIZER_REPO`` under ``hub``."""
    repo = hub / ("models--" + TOKENIZER_REPO.replace("/", "--"))
    revision = "0" * 40
    fast.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)


def aiperf_replay(trace: Path, workdir: Path) -> dict[str, Any]:
    """Parse the CLI, build the dataset and the fixed schedule the way ``aiperf profile`` does."""
    import aiperf.dataset.generator.prompt as prompt_module
    from aiperf.cli_commands.profile import app
    from aiperf.cli_runner import _make_benchmark_run
    from aiperf.common import random_generator
    from aiperf.common.models import DatasetMetadata
    from aiperf.common.tokenizer import Tokenizer
    from aiperf.config.flags.resolver import resolve_config
    from aiperf.config.loader import build_benchmark_plan
    from aiperf.dataset.agentic_code_gen.reporting.trace import validate_mooncake_trace
    from aiperf.plugin import plugins
    from aiperf.plugin.enums import ComposerType, DatasetSamplingStrategy, PluginType
    from aiperf.timing.config import TimingConfig
    from aiperf.timing.conversation_source import ConversationSource
    from aiperf.timing.strategies.fixed_schedule import FixedScheduleStrategy

    corpus = Path(prompt_module.__file__).parent / prompt_module.DEFAULT_CORPUS_FILE
    _hub_snapshot(train_wordlevel([corpus.read_text(encoding="utf-8")]), workdir / "hub")

    # `aiperf validate mooncake-trace --input FILE`
    rows, errors = validate_mooncake_trace(trace)
    _, bound, _ = app.parse_args(["--model", "m", "--url", "127.0.0.1:9", "--tokenizer", TOKENIZER_REPO,
                                  "--input-file", str(trace), *AIPERF_FLAGS])
    plan = build_benchmark_plan(resolve_config(bound.arguments["cli_config"], None))
    run = _make_benchmark_run(plan.configs[0])
    # What bootstrap.py and DatasetManager._configure_tokenizer / _load_custom_dataset do.
    random_generator.reset()
    random_generator.init(run.random_seed)
    tc = run.cfg.tokenizer
    tokenizer = Tokenizer.from_pretrained(tc.get_tokenizer_name_for_model(run.cfg.get_model_names()[0]),
                                          trust_remote_code=tc.trust_remote_code, revision=tc.revision,
                                          resolve_alias=tc.should_resolve_alias)
    composer = plugins.get_class(PluginType.DATASET_COMPOSER, ComposerType.CUSTOM)(run=run, tokenizer=tokenizer)
    conversations = composer.create_dataset()
    turns = [c.turns[0] for c in conversations]
    meta = DatasetMetadata(conversations=[c.metadata() for c in conversations],
                           sampling_strategy=DatasetSamplingStrategy.SEQUENTIAL)
    sampler = plugins.get_class(PluginType.DATASET_SAMPLER, DatasetSamplingStrategy.SEQUENTIAL)
    source = ConversationSource(meta, sampler([c.conversation_id for c in meta.conversations]))
    phase = next(p for p in TimingConfig.from_run(run).phase_configs if p.phase_name == "profiling")
    send_at = _aiperf_schedule(FixedScheduleStrategy, phase, source)
    return {
        "validated_rows": rows, "validation_errors": errors, "dataset_type": str(composer.detected_dataset_type),
        "prompt_tokens": [len(tokenizer.encode(t.texts[0].contents[0])) for t in turns],
        "output_tokens": [t.max_tokens for t in turns],
        "send_offsets_s": send_at,
    }


def _aiperf_schedule(strategy_cls: Any, phase: Any, source: Any) -> list[float]:
    """Send times (s after the phase start) that FixedScheduleStrategy schedules."""
    start_s = 1000.0

    class Lifecycle:
        started_at_perf_sec = start_s
        started_at_perf_ns = int(start_s * 1e9)

    class Scheduler:
        at: list[float] = []

        def schedule_at_perf_sec(self, when: float, _credit: Any) -> None:
            self.at.append(when - start_s)

    class Issuer:
        def issue_credit(self, turn: Any) -> Any:
            return turn

    scheduler = Scheduler()
    strategy = strategy_cls(config=phase, conversation_source=source, scheduler=scheduler, credit_issuer=Issuer(),
                            lifecycle=Lifecycle(), stop_checker=None)

    async def plan() -> None:
        await strategy.setup_phase()
        await strategy.execute_phase()

    asyncio.run(plan())
    return scheduler.at


def guidellm_replay(trace: Path, workdir: Path) -> dict[str, Any]:
    """Parse ``guidellm run``'s options, then build its data loader and replay strategy."""
    import multiprocessing

    import guidellm.entrypoints as entrypoints
    from faker import Faker
    from guidellm.benchmark.entrypoints import resolve_to_single_benchmark
    from guidellm.benchmark.profiles.replay import ReplayProfile
    from guidellm.cli.run import run
    from guidellm.data import create_data_loader

    # GuideLLM draws block text from Faker's default-locale word list.
    train_wordlevel([" ".join(Faker().get_words_list()) + " . , ! ? ' -"]).save_pretrained(workdir / "tokenizer")
    captured: dict[str, Any] = {}

    async def capture(args: Any, **_kw: Any) -> None:
        captured["args"] = args

    entrypoints.benchmark_generative_text = capture  # stop before any request is sent
    run.main(["--backend", "kind=openai_http,target=http://127.0.0.1:9", "--profile", GUIDELLM_PROFILE,
              "--data", GUIDELLM_DATA.format(path=trace),
              "--tokenizer", f"kind=huggingface_auto,model={workdir / 'tokenizer'}", "--disable-console"],
             standalone_mode=False)
    args = resolve_to_single_benchmark(captured["args"].get_benchmarks())

    async def load() -> Any:
        return await create_data_loader(
            loader_config=args.data_loader, data_config=args.data, tokenizer_config=args.tokenizer,
            column_mapper_config=args.data_column_mapper, preprocessors_config=args.data_preprocessors,
            finalizer_config=args.data_finalizer, random_seed=args.seed.value)

    loader = asyncio.run(load())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tokenizer")
    nodes = [next(iter(graph.nodes.values())) for graph in loader]
    strategy = ReplayProfile(args.profile, random_seed=args.seed.value, constraints={}).next_strategy(None, None)
    strategy.init_processes_timings(1, 1, multiprocessing.get_context("spawn"))
    strategy.init_processes_start(1000.0)

    async def targets() -> list[float]:
        return [await strategy.resolve_dequeued_target_start(0, 0.0, n.settings, None) - 1000.0 for n in nodes]

    return {
        "prompt_tokens": [len(tokenizer.encode(n.request.columns["text_column"][0], add_special_tokens=False))
                          for n in nodes],
        "output_tokens": [n.request.columns["output_tokens_count_column"][0] for n in nodes],
        "send_offsets_s": asyncio.run(targets()),
    }


def main(argv: list[str]) -> None:
    consumer, trace, workdir = argv[0], Path(argv[1]), Path(argv[2])
    replay = {"aiperf": aiperf_replay, "guidellm": guidellm_replay}[consumer]
    result = replay(trace, workdir)
    (workdir / "result.json").write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])

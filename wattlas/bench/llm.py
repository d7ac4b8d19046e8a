"""LLM inference phases on real architectures with random weights (no weight download).

Architectures are built from their configuration with transformers' ``from_config`` and filled with
normal(0, 0.02) weights (the configs' ``initializer_range``): a dense transformer runs the same
kernels on the same shapes whatever the weights, so timings are representative; energy is
"synthetic-weights energy" (power depends on values), labelled by ``input_init``.

Phases (spec §4, phase-pure loops, each with its own energy window):

- ``prefill``: a forward pass over ``batch x input_tokens`` prompt tokens that fills a fresh KV cache
  (only the last position's logits are computed, as servers do).
- ``decode``: one token step for the whole batch against a KV cache of ``input_tokens`` (+ steps
  so far); after ``output_tokens`` steps the cache is cropped back to ``input_tokens``, so the
  window holds decode steps only and the context stays within ``[input, input + output)``.
- ``e2e``: prefill plus ``output_tokens - 1`` decode steps (greedy): one batch of requests from
  prompt to last token, forced length; ``energy_per_request_j`` = energy per iteration / batch.

Backend: transformers (eager PyTorch, ``sdpa`` attention, dynamic KV cache, no CUDA graphs). At
small batch its decode is bound by Python/kernel-launch overhead, unlike vLLM or TensorRT-LLM.

Examples
--------
>>> ARCHS["llama-3-8b"].params["num_key_value_heads"]
8
>>> len(config_hash(ARCHS["tiny-llama"]))
16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import WattlasError
from .harness import Target, TimingProtocol, measure_point

log = logging.getLogger("wattlas.bench")

WEIGHT_STD = 0.02


@dataclass(frozen=True)
class ArchSpec:
    """An architecture by its published configuration numbers.

    ``reference`` names the model card whose ``config.json`` the numbers come from.
    """

    name: str
    family: str  # transformers config family: llama | mistral | qwen2
    reference: str
    params: dict[str, Any] = field(hash=False)


ARCHS: dict[str, ArchSpec] = {
    a.name: a
    for a in (
        ArchSpec("llama-3-8b", "llama", "meta-llama/Meta-Llama-3-8B config.json", dict(
            hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=False)),
        ArchSpec("llama-2-7b", "llama", "meta-llama/Llama-2-7b-hf config.json", dict(
            hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rope_theta=10000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=False)),
        ArchSpec("mistral-7b", "mistral", "mistralai/Mistral-7B-v0.1 config.json", dict(
            hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768, rope_theta=10000.0,
            rms_norm_eps=1e-5, sliding_window=4096, tie_word_embeddings=False)),
        ArchSpec("qwen2-7b", "qwen2", "Qwen/Qwen2-7B config.json", dict(
            hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
            num_key_value_heads=4, vocab_size=152064, max_position_embeddings=131072, rope_theta=1000000.0,
            rms_norm_eps=1e-6, tie_word_embeddings=False)),
        # For CPU tests and CI: Llama layout, tiny sizes. Not a real model.
        ArchSpec("tiny-llama", "llama", "wattlas test configuration (not a published model)", dict(
            hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=512, max_position_embeddings=1024, rope_theta=10000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=False)),
    )
}

_CONFIG_CLASSES = {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config"}
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def config_hash(spec: ArchSpec) -> str:
    """First 16 hex digits of the SHA-256 of the architecture numbers (stable across runs)."""
    blob = json.dumps({"family": spec.family, **spec.params}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHS[name]
    except KeyError:
        raise WattlasError(f"unknown model {name!r}; known: {', '.join(ARCHS)}") from None


def _require_transformers():
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        raise WattlasError(
            f"`wattlas bench llm` needs torch and transformers ({e}). Install them with "
            "`pip install 'wattlas[bench]'` (on a CPU-only machine: `pip install torch==2.13.0 transformers`)."
        ) from None
    return transformers


def build_model(spec: ArchSpec, dtype: str, target: Target, seed: int = 0, attn_implementation: str = "sdpa"):
    """The architecture with random normal(0, 0.02) weights on the target device, in eval mode."""
    transformers = _require_transformers()
    import torch

    if dtype not in _TORCH_DTYPES:
        raise WattlasError(f"LLM dtype {dtype!r} not supported; use one of {', '.join(_TORCH_DTYPES)}")
    cfg_cls = getattr(transformers, _CONFIG_CLASSES[spec.family])
    config = cfg_cls(**spec.params, initializer_range=WEIGHT_STD, use_cache=True)
    torch_dtype = getattr(torch, _TORCH_DTYPES[dtype])
    device = torch.device("cuda", target.cuda_index) if target.is_cuda else torch.device("cpu")
    torch.manual_seed(seed)
    with device:
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=torch_dtype, attn_implementation=attn_implementation)
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        # Explicit, so the weights do not depend on a library's init defaults: matrices normal(0, 0.02);
        # norm scales stay at transformers' 1.0.
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, WEIGHT_STD, generator=gen)
    return model, config


def crop_cache(cache: Any, length: int) -> None:
    """Shrink a transformers KV cache back to ``length`` tokens (negative ``crop`` works in 4.x and 5.x)."""
    excess = cache.get_seq_length() - length
    if excess > 0:
        cache.crop(-excess)


class _Phase:
    def __init__(self, model: Any, batch: int, input_tokens: int, output_tokens: int, vocab: int, seed: int = 0):
        import torch

        self.model = model
        self.batch, self.input_tokens, self.output_tokens = batch, input_tokens, output_tokens
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        self.ids = torch.randint(0, vocab, (batch, input_tokens), device=device, generator=gen)

    def _prefill(self):
        out = self.model(input_ids=self.ids, use_cache=True, logits_to_keep=1)
        return out.past_key_values, out.logits[:, -1:].argmax(-1)

    def _decode(self, cache: Any, nxt: Any):
        out = self.model(input_ids=nxt, past_key_values=cache, use_cache=True)
        return out.logits[:, -1:].argmax(-1)


class Prefill(_Phase):
    kind = "prefill"

    def step(self) -> None:
        self._prefill()

    @property
    def tokens_per_iter(self) -> int:
        return self.batch * self.input_tokens


class Decode(_Phase):
    kind = "decode"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cache, self.next = self._prefill()
        self.pos = 0

    def step(self) -> None:
        if self.pos >= self.output_tokens:
            crop_cache(self.cache, self.input_tokens)
            self.pos = 0
        self.next = self._decode(self.cache, self.next)
        self.pos += 1

    @property
    def tokens_per_iter(self) -> int:
        return self.batch


class EndToEnd(_Phase):
    kind = "e2e"

    def step(self) -> None:
        cache, nxt = self._prefill()
        for _ in range(self.output_tokens - 1):
            nxt = self._decode(cache, nxt)

    @property
    def tokens_per_iter(self) -> int:
        return self.batch * self.output_tokens


PHASES = {"prefill": Prefill, "decode": Decode, "e2e": EndToEnd}

#: Samples per phase: prefill and e2e iterations are long, decode steps short.
MIN_ITERS = {"prefill": 5, "decode": 50, "e2e": 3}


@dataclass(frozen=True)
class LlmPoint:
    phase: str
    batch_size: int
    input_tokens: int
    output_tokens: int


def plan(phases: list[str], batch_sizes: list[int], input_tokens: list[int], output_tokens: list[int],
         max_prefill_tokens: int | None = None) -> list[LlmPoint]:
    """Grid of points; prefill ignores output length, prefill/e2e skip batches over ``max_prefill_tokens``."""
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise WattlasError(f"unknown phase(s) {unknown}; known: {', '.join(PHASES)}")
    points = []
    for ph in phases:
        for li in input_tokens:
            for b in batch_sizes:
                if ph in ("prefill", "e2e") and max_prefill_tokens and b * li > max_prefill_tokens:
                    continue
                for lo in ([0] if ph == "prefill" else output_tokens):
                    points.append(LlmPoint(ph, b, li, lo))
    return points


def measure_llm(point: LlmPoint, model: Any, config: Any, spec: ArchSpec, dtype: str, target: Target,
                proto: TimingProtocol, sampler: Any = None, seed: int = 0):
    """Measure one phase point; returns ``(PointMeasurement, workload columns)``."""
    import torch

    if point.input_tokens + point.output_tokens > config.max_position_embeddings:
        raise WattlasError(f"{spec.name}: {point.input_tokens}+{point.output_tokens} tokens exceed "
                           f"max_position_embeddings={config.max_position_embeddings}")
    if point.phase == "decode":
        # Warm up over a whole cycle (every cache length, then a crop). With a warm-up of a few
        # steps, decode steps on an H100 took ~90 ms against ~31 ms inside e2e iterations
        # (datasets/measurements/h100/2026-11-23/README.md); the likely cause is the CUDA caching
        # allocator meeting each new KV-cache size for the first time (cudaMalloc per layer).
        proto = dataclasses.replace(proto, first_calls=max(proto.first_calls, point.output_tokens + 1))
    with torch.inference_mode():
        work = PHASES[point.phase](model, point.batch_size, point.input_tokens, point.output_tokens,
                                   config.vocab_size, seed)
        pm = measure_point(work.step, target, proto, sampler)
    tokens = work.tokens_per_iter
    del work
    if target.is_cuda:
        torch.cuda.empty_cache()
    med = pm.median_s
    e_iter = pm.window.total_energy_j / pm.window_iters if pm.window.total_energy_j is not None else None
    n_params = sum(p.numel() for p in model.parameters())
    cols = {
        "kind": point.phase, "backend": "transformers", "dtype": dtype, "model": spec.name,
        "model_config_hash": config_hash(spec), "model_params": n_params,
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "batch_size": point.batch_size, "input_tokens": point.input_tokens,
        "output_tokens": None if point.phase == "prefill" else point.output_tokens,
        "input_init": f"normal(0,{WEIGHT_STD}) weights; uniform random token ids",
        "tokens_per_s": tokens / med if med > 0 else None,
        "energy_per_token_j": e_iter / tokens if e_iter is not None else None,
        "energy_per_request_j": e_iter / point.batch_size if e_iter is not None and point.phase == "e2e" else None,
    }
    return pm, cols

"""Does an LLM fit in the GPUs' memory? Weights plus the KV cache of the batch in flight.

- weights: every parameter (embeddings and LM head included, untied in all of :data:`LLMS`)
  times the dtype's bytes;
- KV cache: ``2 (K and V) x layers x kv_heads x head_dim x bytes`` per token, times the tokens in
  flight (batch x context). With tensor parallelism above the KV-head count the heads are
  replicated, so the cache grows by ``tp / kv_heads``;
- available: ``USABLE_FRACTION`` of each GPU's memory, times the tensor-parallel degree. NVIDIA's
  "GB" for HBM capacities are GiB (an H100 80GB shows 81,559 MiB in nvidia-smi). 0.9 is vLLM's
  default ``gpu_memory_utilization``; activations and the CUDA context are left to the rest.

Examples
--------
>>> fit = memory_fit("llama-3-70b", "H100", "bf16", tensor_parallel=1, batch=16, context_tokens=1000)
>>> round(fit.weights_gb, 1), fit.fits, fit.min_tensor_parallel
(141.1, False, 2)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import WattlasError
from .gpus import DTYPE_BYTES, get_gpu, normalize_dtype

#: Share of a GPU's memory a serving engine may use (vLLM's default gpu_memory_utilization).
USABLE_FRACTION = 0.9
_GIB = 2**30


class MemoryFitError(WattlasError):
    """The model's weights and KV cache do not fit in the GPUs given."""


def _config(model: str):
    from .estimate import LLMS

    if model not in LLMS:
        raise WattlasError(f"unknown model {model!r}; known: {', '.join(LLMS)}")
    return LLMS[model]


def params(model: str) -> float:
    """All parameters of ``model``: layers (QKV, O, gated MLP), input embedding and LM head."""
    cfg = _config(model)
    d = cfg.n_embd // cfg.n_head
    per_layer = (cfg.n_embd * (cfg.n_head + 2 * cfg.n_kv_head) * d + cfg.n_head * d * cfg.n_embd
                 + 3 * cfg.n_embd * cfg.n_expanded_embd + 2 * cfg.n_embd)  # + two RMSNorm weights
    return float(cfg.layers * per_layer + 2 * cfg.n_embd * cfg.vocab_size + cfg.n_embd)


def kv_bytes_per_token(model: str, dtype: str, tensor_parallel: int = 1) -> float:
    """KV-cache bytes one token holds over all GPUs of a replica (heads replicated past kv_heads)."""
    cfg = _config(model)
    d = cfg.n_embd // cfg.n_head
    replicas = max(1.0, tensor_parallel / cfg.n_kv_head)
    return 2.0 * cfg.layers * cfg.n_kv_head * d * DTYPE_BYTES[normalize_dtype(dtype)] * replicas


@dataclass(frozen=True)
class MemoryFit:
    """Memory needed against memory available for one replica (GB = 1e9 bytes)."""

    model: str
    gpu: str
    tensor_parallel: int
    batch: int
    context_tokens: float
    weights_gb: float
    kv_gb: float
    available_gb: float
    gpu_memory_gb: float
    min_tensor_parallel: int | None

    @property
    def needed_gb(self) -> float:
        return self.weights_gb + self.kv_gb

    @property
    def fits(self) -> bool:
        return self.needed_gb <= self.available_gb

    def numbers(self) -> str:
        return (f"weights {self.weights_gb:.1f} GB + KV cache {self.kv_gb:.1f} GB (batch {self.batch} x "
                f"{self.context_tokens:,.0f} tokens of context) = {self.needed_gb:.1f} GB; available "
                f"{self.available_gb:.1f} GB ({USABLE_FRACTION:g} x {self.gpu_memory_gb:.1f} GB x "
                f"{self.tensor_parallel} GPU{'s' if self.tensor_parallel > 1 else ''})")

    def refusal(self) -> str:
        if self.min_tensor_parallel is None:
            fix = "it does not fit even at the largest tensor-parallel degree tried; lower the batch"
        else:
            fix = f"give --tensor-parallel {self.min_tensor_parallel} (or more)"
            if self.weights_gb <= self.available_gb:
                fix += " or a smaller batch"
        return (f"{self.model} does not fit on {self.tensor_parallel} {self.gpu}: {self.numbers()}; {fix}. "
                "No estimate is made for a configuration that cannot run.")

    def as_dict(self) -> dict:
        return {**asdict(self), "needed_gb": self.needed_gb, "fits": self.fits, "usable_fraction": USABLE_FRACTION}


def memory_fit(model: str, gpu: str, dtype: str, *, tensor_parallel: int, batch: int,
               context_tokens: float) -> MemoryFit:
    """Weights and KV cache of ``batch`` sequences of ``context_tokens`` against ``tensor_parallel`` GPUs."""
    spec = get_gpu(gpu)
    if spec.memory_gb is None:
        raise WattlasError(f"{spec.name} has no published memory size: cannot check that {model} fits")
    per_gpu = spec.memory_gb * _GIB / 1e9
    weights = params(model) * DTYPE_BYTES[normalize_dtype(dtype)] / 1e9

    def need(tp: int) -> float:
        return weights + batch * context_tokens * kv_bytes_per_token(model, dtype, tp) / 1e9

    # Smallest power-of-two degree (what engines shard by) that fits, up to 64 GPUs.
    smallest = next((tp for tp in (2**i for i in range(7)) if need(tp) <= USABLE_FRACTION * per_gpu * tp), None)
    return MemoryFit(model, spec.name, tensor_parallel, batch, float(context_tokens), weights,
                     need(tensor_parallel) - weights, USABLE_FRACTION * per_gpu * tensor_parallel, per_gpu, smallest)


def largest_batch(model: str, gpu: str, dtype: str, *, tensor_parallel: int, context_tokens: float) -> int:
    """Most sequences of ``context_tokens`` whose KV cache fits beside the weights (0: not even one).

    A serving engine cannot hold more in flight than this, whatever its ``max_num_seqs``."""
    fit = memory_fit(model, gpu, dtype, tensor_parallel=tensor_parallel, batch=1, context_tokens=context_tokens)
    room = fit.available_gb - fit.weights_gb
    return max(0, math.floor(room / fit.kv_gb)) if fit.kv_gb > 0 else (1 if room >= 0 else 0)


def check_requests(requests, model: str, gpu: str, dtype: str, tensor_parallel: int, batch: int) -> dict:
    """Refuse (:class:`MemoryFitError`) when a batch of ``batch`` requests of the trace's mean context
    (prompt + output) does not fit; else the fit and the share of requests whose own batch would not."""
    inp = requests["input_tokens"].to_numpy().astype(np.float64)
    out = requests["output_tokens"].to_numpy().astype(np.float64)
    ctx = inp + out
    mean_ctx = float(ctx.mean()) if ctx.size else 0.0
    fit = memory_fit(model, gpu, dtype, tensor_parallel=tensor_parallel, batch=batch, context_tokens=mean_ctx)
    if not fit.fits:
        raise MemoryFitError(fit.refusal())
    kv_token = kv_bytes_per_token(model, dtype, tensor_parallel) / 1e9
    over = fit.weights_gb + batch * ctx * kv_token > fit.available_gb
    return {**fit.as_dict(), "requests_over_memory": int(over.sum()),
            "requests_over_memory_share": float(over.mean()) if ctx.size else 0.0,
            "longest_fitting_context_tokens": math.floor((fit.available_gb - fit.weights_gb) / kv_token / batch)}


def check_rows(frame, *, batch_col: str = "batch_size") -> None:
    """Refuse a frame of LLM iterations (``model``, ``gpu``, ``batch_size``, ``input_tokens``,
    optional ``output_tokens``, ``dtype``, ``tensor_parallel``) with a row that does not fit,
    naming the first such row and the count. Frames without ``model`` and ``gpu`` pass."""
    from .estimate import LLMS

    if not {"model", "gpu", batch_col, "input_tokens"} <= set(frame.columns):
        return
    from .llm import resolve_llm

    n = frame.height
    col = lambda c, d: frame[c].to_list() if c in frame.columns else [d] * n  # noqa: E731
    bad = []
    for i, (m, g, b, p, o, dt, tp) in enumerate(zip(
            col("model", None), col("gpu", None), col(batch_col, 1), col("input_tokens", 0),
            col("output_tokens", 0), col("dtype", "bf16"), col("tensor_parallel", 1), strict=True)):
        name = resolve_llm(m)
        if name not in LLMS:
            continue
        fit = memory_fit(name, g, dt or "bf16", tensor_parallel=int(tp or 1), batch=int(b),
                         context_tokens=float(p) + float(o or 0))
        if not fit.fits:
            bad.append((i, fit))
    if bad:
        i, fit = bad[0]
        where = f"row {i + 1} of {n}: " if n > 1 else ""
        more = f" ({len(bad):,} of {n:,} rows do not fit)" if n > 1 else ""
        raise MemoryFitError(where + fit.refusal() + more)

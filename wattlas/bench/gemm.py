"""GEMM sweeps: (M, N, K) x dtype with torch on CUDA, numpy on the CPU.

Inputs are random normal (never zeros: power, and under a cap time, depend on the values).
fp8 is e4m3 through ``torch._scaled_mm`` with unit scales and a bf16 output (Hopper/Ada and
newer); ``tf32`` is fp32 inputs with TF32 allowed for that point only (torch's setting is restored
afterwards); ``fp32`` rows run with TF32 disallowed.

Examples
--------
>>> gemm_flops(2, 3, 4)
48
>>> gemm_bytes(2, 3, 4, "bf16")      # A 2x4, B 4x3 read once, C 2x3 written once, 2 bytes each
52
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WattlasError
from .harness import Target, TimingProtocol, measure_point

log = logging.getLogger("wattlas.bench")

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp64")
_IN_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp64": 8}
_OUT_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 2, "fp64": 8}  # fp8 writes bf16

#: Default sweeps: square shapes, plus Llama-3-8B MLP shapes (hidden 4096, intermediate 14336)
#: at several token counts.
GPU_SIZES = (512, 1024, 2048, 4096, 8192, 16384)
GPU_LLM_SHAPES = tuple((m, 14336, 4096) for m in (16, 256, 4096)) + tuple((m, 4096, 14336) for m in (16, 256, 4096))
GPU_DTYPES = ("bf16", "fp16", "fp8", "tf32")
CPU_SIZES = (256, 512, 1024)
CPU_DTYPES = ("fp32",)
QUICK_GPU_SIZES = (1024, 4096)
QUICK_CPU_SIZES = (128, 256)


def gemm_flops(m: int, n: int, k: int) -> int:
    """Floating-point operations of C = A @ B with A m x k, B k x n: 2·m·n·k."""
    return 2 * m * n * k


def gemm_bytes(m: int, n: int, k: int, dtype: str) -> int:
    """Fewest bytes a GEMM must move: A and B read once, C written once."""
    return (m * k + k * n) * _IN_BYTES[dtype] + m * n * _OUT_BYTES[dtype]


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"4096"`` -> (4096, 4096, 4096); ``"16x14336x4096"`` -> (16, 14336, 4096).

    >>> parse_shape("16x14336x4096")
    (16, 14336, 4096)
    """
    parts = text.lower().replace("*", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise WattlasError(f"bad GEMM shape {text!r}: use N (square) or MxNxK, e.g. 16x14336x4096") from None
    if len(nums) == 1:
        nums = nums * 3
    if len(nums) != 3 or min(nums) < 1:
        raise WattlasError(f"bad GEMM shape {text!r}: use N (square) or MxNxK with positive integers")
    return nums[0], nums[1], nums[2]


def supported_dtypes(target: Target) -> dict[str, str | None]:
    """Each dtype -> ``None`` if supported on ``target``, else why not."""
    if not target.is_cuda:
        return {d: None if d in ("fp32", "fp64") else "numpy on CPU: only fp32 and fp64 use BLAS" for d in DTYPES}
    import torch

    major, minor = torch.cuda.get_device_capability(target.cuda_index)
    out: dict[str, str | None] = {d: None for d in DTYPES}
    if (major, minor) < (8, 0):
        out["bf16"] = out["tf32"] = "needs compute capability 8.0+"
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        out["fp8"] = "this torch has no float8/_scaled_mm"
    elif (major, minor) < (8, 9):
        out["fp8"] = "fp8 GEMMs need compute capability 8.9+ (Ada, Hopper)"
    return out


@contextlib.contextmanager
def tf32_mode(allowed: bool) -> Iterator[None]:
    """Allow or forbid TF32 for fp32 matmuls inside the block; restores torch's setting after.

    torch >= 2.9 refuses to mix its old (``allow_tf32``) and new (``fp32_precision``) switches,
    so the new one is used where it exists.
    """
    import torch

    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        before = m.fp32_precision
        m.fp32_precision = "tf32" if allowed else "ieee"
        try:
            yield
        finally:
            m.fp32_precision = before
    else:
        before = m.allow_tf32
        m.allow_tf32 = allowed
        try:
            yield
        finally:
            m.allow_tf32 = before


class TorchGemm:
    """C = A @ B on a CUDA device with random normal inputs (``step`` enqueues one GEMM)."""

    backend = "torch"

    def __init__(self, m: int, n: int, k: int, dtype: str, device_index: int = 0, seed: int = 0):
        import torch

        self.m, self.n, self.k, self.dtype = m, n, k, dtype
        dev = torch.device("cuda", device_index)
        gen = torch.Generator(device=dev).manual_seed(seed)
        if dtype == "fp8":
            f8 = torch.float8_e4m3fn
            self.a = torch.randn(m, k, device=dev, generator=gen).to(f8)
            # _scaled_mm wants B column-major: allocate (n, k) row-major and transpose the view.
            self.b = torch.randn(n, k, device=dev, generator=gen).to(f8).t()
            self.scale = torch.ones((), device=dev, dtype=torch.float32)
            self.c = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
            self._scaled_mm = torch._scaled_mm
        else:
            tdt = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                   "fp64": torch.float64}[dtype]
            self.a = torch.randn(m, k, device=dev, dtype=tdt, generator=gen)
            self.b = torch.randn(k, n, device=dev, dtype=tdt, generator=gen)
            self.c = torch.empty(m, n, device=dev, dtype=tdt)
        self._mm = torch.mm
        self._flush_buf: Any = None
        props = torch.cuda.get_device_properties(device_index)
        self._l2_bytes = int(getattr(props, "L2_cache_size", 50 * 2**20) or 50 * 2**20)
        self._dev = dev

    def step(self) -> None:
        if self.dtype == "fp8":
            self._scaled_mm(self.a, self.b, self.scale, self.scale, out_dtype=self.c.dtype, out=self.c)
        else:
            self._mm(self.a, self.b, out=self.c)

    def flush(self) -> None:
        """Write an L2-sized buffer so the next GEMM starts cold (outside the timed region)."""
        import torch

        if self._flush_buf is None:
            self._flush_buf = torch.empty(2 * self._l2_bytes, dtype=torch.int8, device=self._dev)
        self._flush_buf.zero_()

    def close(self) -> None:
        self.a = self.b = self.c = self._flush_buf = None


class NumpyGemm:
    """C = A @ B on the CPU with numpy (BLAS threads as numpy was configured)."""

    backend = "numpy"

    def __init__(self, m: int, n: int, k: int, dtype: str, seed: int = 0):
        import numpy as np

        if dtype not in ("fp32", "fp64"):
            raise WattlasError(f"dtype {dtype} is not supported on the CPU (numpy): use fp32 or fp64")
        self.m, self.n, self.k, self.dtype = m, n, k, dtype
        npdt = np.float32 if dtype == "fp32" else np.float64
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((m, k), dtype=npdt)
        self.b = rng.standard_normal((k, n), dtype=npdt)
        self.c = np.empty((m, n), dtype=npdt)
        self._matmul = np.matmul
        self._flush_buf: Any = None

    def step(self) -> None:
        self._matmul(self.a, self.b, out=self.c)

    def flush(self) -> None:
        import numpy as np

        if self._flush_buf is None:
            self._flush_buf = np.empty(64 * 2**20, dtype=np.int8)
        self._flush_buf.fill(1)

    def close(self) -> None:
        self.a = self.b = self.c = self._flush_buf = None


def make_gemm(target: Target, m: int, n: int, k: int, dtype: str, seed: int = 0) -> TorchGemm | NumpyGemm:
    if target.is_cuda:
        return TorchGemm(m, n, k, dtype, target.cuda_index or 0, seed)
    return NumpyGemm(m, n, k, dtype, seed)


@dataclass(frozen=True)
class GemmPoint:
    m: int
    n: int
    k: int
    dtype: str


def plan(shapes: Sequence[tuple[int, int, int]], dtypes: Sequence[str], target: Target) -> list[GemmPoint]:
    """The points to measure; unsupported dtypes are dropped with a warning (not measured, no row)."""
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown:
        raise WattlasError(f"unknown dtype(s) {unknown}; known: {', '.join(DTYPES)}")
    support = supported_dtypes(target)
    points = []
    for d in dtypes:
        if support[d] is not None:
            log.warning("skipping %s: %s", d, support[d])
            continue
        points += [GemmPoint(m, n, k, d) for (m, n, k) in shapes]
    return points


def measure_gemm(point: GemmPoint, target: Target, proto: TimingProtocol, sampler: Any = None,
                 peak_tflops: dict[str, float] | None = None, seed: int = 0):
    """Measure one GEMM point: returns ``(PointMeasurement, workload columns)``."""
    g = make_gemm(target, point.m, point.n, point.k, point.dtype, seed)
    try:
        ctx = tf32_mode(point.dtype == "tf32") if target.is_cuda and point.dtype in ("fp32", "tf32") else (
            contextlib.nullcontext())
        with ctx:
            pm = measure_point(g.step, target, proto, sampler, flush=g.flush)
    finally:
        g.close()
        if target.is_cuda:
            import torch

            torch.cuda.empty_cache()
    flops = gemm_flops(point.m, point.n, point.k)
    nbytes = gemm_bytes(point.m, point.n, point.k, point.dtype)
    tflops = flops / pm.median_s / 1e12 if pm.median_s > 0 else None
    peak = (peak_tflops or {}).get(point.dtype)
    cols = {
        "kind": "gemm", "backend": g.backend, "dtype": point.dtype,
        "tf32_allowed": (point.dtype == "tf32") if target.is_cuda and point.dtype in ("fp32", "tf32") else None,
        "m": point.m, "n": point.n, "k": point.k, "bytes_per_iter": float(nbytes),
        "arithmetic_intensity_flop_per_byte": flops / nbytes, "input_init": "normal(0,1)",
        "flops_per_iter": float(flops), "tflops": tflops, "peak_tflops": peak,
        "peak_fraction": tflops / peak if tflops is not None and peak else None,
    }
    return pm, cols

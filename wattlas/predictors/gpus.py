"""GPU specifications the predictors use as features, each value with the document it comes from.

Peak FLOP/s are NVIDIA's *dense* tensor-core figures (datasheets quote sparse figures at twice
these for Ampere and later; the dense ones are used here). A value NVIDIA does not publish is
``None`` and its source says so: the models accept missing spec values (gradient-boosted trees
route them natively) rather than an invented number.

Examples
--------
>>> spec = get_gpu("H100")
>>> spec.key, spec.sm_count, spec.mem_bw_gbs
('H100-SXM', 132, 3350.0)
>>> spec.peak_tflops("bf16")
989.4
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import WattlasError

_DS = {
    "V100": "NVIDIA Tesla V100 datasheet (nvidia.com/en-us/data-center/v100/) and Volta V100 whitepaper",
    "P100": "NVIDIA Tesla P100 PCIe datasheet and Pascal GP100 whitepaper",
    "RTX6000": "NVIDIA Quadro RTX 6000 datasheet and Turing architecture whitepaper",
    "A40": "NVIDIA A40 datasheet (nvidia.com/en-us/data-center/a40/) and Ampere GA102 whitepaper",
    "A100": "NVIDIA A100 Tensor Core GPU datasheet and Ampere GA100 whitepaper",
    "L4": "NVIDIA L4 datasheet and Ada Lovelace architecture whitepaper",
    "L40S": "NVIDIA L40S datasheet and Ada Lovelace architecture whitepaper",
    "H100": "NVIDIA H100 Tensor Core GPU datasheet and Hopper architecture whitepaper",
    "H200": "NVIDIA H200 Tensor Core GPU datasheet (compute as H100 SXM; memory per datasheet)",
    "B200": "NVIDIA HGX B200 / DGX B200 datasheet (per-GPU figures = system figures / 8)",
}
_UNPUBLISHED = "not published in NVIDIA's datasheet: left null rather than guessed"
_HGX = "NVIDIA HGX B200 specifications (nvidia.com/en-us/data-center/hgx/), individual Blackwell GPU column"
_DGX = "NVIDIA DGX B200 datasheet (8 GPUs per system)"
_B200 = {
    "peak_fp16_tflops": f"{_HGX}: FP16/BF16 Tensor Core 4.5 PFLOPS with sparsity, halved to dense",
    "peak_bf16_tflops": f"{_HGX}: FP16/BF16 Tensor Core 4.5 PFLOPS with sparsity, halved to dense",
    "peak_fp8_tflops": f"{_HGX}: FP8/FP6 Tensor Core 9 PFLOPS with sparsity, halved to dense",
    "peak_tf32_tflops": f"{_HGX}: TF32 Tensor Core 2.2 PFLOPS with sparsity, halved to dense",
    "peak_fp32_tflops": f"{_HGX}: FP32 75 TFLOPS",
    "mem_bw_gbs": f"{_DGX}: 64 TB/s HBM3e bandwidth / 8 GPUs (the HGX table lists 7.7 TB/s per GPU)",
    "memory_gb": f"{_DGX}: 1,440 GB GPU memory / 8 GPUs (HGX table: 180 GB HBM3E; the 2024 Blackwell "
                 "datasheet said up to 192 GB)",
    "tdp_w": f"{_HGX}: max TDP configurable up to 1,000 W",
}


@dataclass(frozen=True)
class GpuSpec:
    """Peak capabilities of one GPU model (dense tensor-core peaks).

    ``sources`` maps each field name to the document its value comes from.
    """

    key: str
    name: str
    architecture: str
    peak_fp16_tflops: float | None  # dense tensor-core FP16 (= BF16 where supported)
    peak_bf16_tflops: float | None
    peak_fp8_tflops: float | None
    peak_tf32_tflops: float | None
    peak_fp32_tflops: float | None  # non-tensor FP32
    mem_bw_gbs: float | None
    memory_gb: float | None
    sm_count: int | None
    l2_mb: float | None
    tdp_w: float | None
    boost_clock_mhz: float | None
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def peak_tflops(self, dtype: str) -> float:
        """Dense peak TFLOP/s for ``dtype`` (fp16, bf16, fp8, tf32, fp32); error if unsupported."""
        col = {"fp16": "peak_fp16_tflops", "bf16": "peak_bf16_tflops", "fp8": "peak_fp8_tflops",
               "tf32": "peak_tf32_tflops", "fp32": "peak_fp32_tflops"}.get(normalize_dtype(dtype))
        value = getattr(self, col)
        if value is None:
            raise WattlasError(f"{self.name} has no {dtype} peak ({self.sources.get(col, 'unsupported')})")
        return value

    def as_row(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}


def _spec(key, name, arch, doc, *, fp16, bf16, fp8, tf32, fp32, bw, mem, sm, l2, tdp, clock, notes=None):
    values = dict(peak_fp16_tflops=fp16, peak_bf16_tflops=bf16, peak_fp8_tflops=fp8, peak_tf32_tflops=tf32,
                  peak_fp32_tflops=fp32, mem_bw_gbs=bw, memory_gb=mem, sm_count=sm, l2_mb=l2, tdp_w=tdp,
                  boost_clock_mhz=clock)
    src = {k: (_DS[doc] if v is not None else f"{_DS[doc]}: {_UNPUBLISHED}") for k, v in values.items()}
    for k in ("peak_bf16_tflops", "peak_fp8_tflops", "peak_tf32_tflops"):
        if values[k] is None:
            src[k] = f"{arch} has no {k.split('_')[1]} tensor-core support"
    src.update(notes or {})
    return GpuSpec(key, name, arch, sources=src, **values)


SPECS: dict[str, GpuSpec] = {s.key: s for s in (
    _spec("P100-PCIe", "Tesla P100 PCIe 16GB", "Pascal", "P100", fp16=18.7, bf16=None, fp8=None, tf32=None,
          fp32=9.3, bw=732.0, mem=16.0, sm=56, l2=4.0, tdp=250.0, clock=1303.0,
          notes={"peak_fp16_tflops": "Tesla P100 PCIe datasheet: packed FP16 (no tensor cores)"}),
    _spec("V100-PCIe", "Tesla V100 PCIe", "Volta", "V100", fp16=112.0, bf16=None, fp8=None, tf32=None,
          fp32=14.0, bw=900.0, mem=32.0, sm=80, l2=6.0, tdp=250.0, clock=1380.0),
    _spec("V100-SXM2", "Tesla V100 SXM2", "Volta", "V100", fp16=125.0, bf16=None, fp8=None, tf32=None,
          fp32=15.7, bw=900.0, mem=32.0, sm=80, l2=6.0, tdp=300.0, clock=1530.0),
    _spec("RTX6000", "Quadro RTX 6000", "Turing", "RTX6000", fp16=130.5, bf16=None, fp8=None, tf32=None,
          fp32=16.3, bw=672.0, mem=24.0, sm=72, l2=6.0, tdp=260.0, clock=1770.0,
          notes={"tdp_w": "highest power limit settable in the Zeus RTX6000 trace (260 W); the datasheet "
                          "quotes 295 W total board power for the actively cooled card"}),
    _spec("A40", "NVIDIA A40", "Ampere", "A40", fp16=149.7, bf16=149.7, fp8=None, tf32=74.8, fp32=37.4,
          bw=696.0, mem=48.0, sm=84, l2=6.0, tdp=300.0, clock=1740.0),
    _spec("A100-SXM4-80GB", "A100 SXM4 80GB", "Ampere", "A100", fp16=312.0, bf16=312.0, fp8=None, tf32=156.0,
          fp32=19.5, bw=2039.0, mem=80.0, sm=108, l2=40.0, tdp=400.0, clock=1410.0),
    _spec("L4", "NVIDIA L4", "Ada Lovelace", "L4", fp16=121.0, bf16=121.0, fp8=242.5, tf32=60.0, fp32=30.3,
          bw=300.0, mem=24.0, sm=58, l2=48.0, tdp=72.0, clock=2040.0),
    _spec("L40S", "NVIDIA L40S", "Ada Lovelace", "L40S", fp16=362.05, bf16=362.05, fp8=733.0, tf32=183.0,
          fp32=91.6, bw=864.0, mem=48.0, sm=142, l2=96.0, tdp=350.0, clock=2520.0),
    _spec("H100-SXM", "H100 SXM5 80GB", "Hopper", "H100", fp16=989.4, bf16=989.4, fp8=1978.9, tf32=494.7,
          fp32=66.9, bw=3350.0, mem=80.0, sm=132, l2=50.0, tdp=700.0, clock=1980.0),
    _spec("H100-PCIe", "H100 PCIe 80GB", "Hopper", "H100", fp16=756.5, bf16=756.5, fp8=1513.0, tf32=378.0,
          fp32=51.2, bw=2000.0, mem=80.0, sm=114, l2=50.0, tdp=350.0, clock=1755.0),
    _spec("H200-SXM", "H200 SXM 141GB", "Hopper", "H200", fp16=989.4, bf16=989.4, fp8=1978.9, tf32=494.7,
          fp32=66.9, bw=4800.0, mem=141.0, sm=132, l2=50.0, tdp=700.0, clock=1980.0),
    _spec("B200", "B200 (HGX)", "Blackwell", "B200", fp16=2250.0, bf16=2250.0, fp8=4500.0, tf32=1100.0,
          fp32=75.0, bw=8000.0, mem=180.0, sm=None, l2=None, tdp=1000.0, clock=None, notes=_B200),
)}

#: Short names people type, and the labels raw data sets use.
ALIASES = {
    "P100": "P100-PCIe", "V100": "V100-SXM2", "RTX-6000": "RTX6000", "QUADRO-RTX-6000": "RTX6000",
    "A100": "A100-SXM4-80GB", "A100-80GB": "A100-SXM4-80GB", "A100-SXM": "A100-SXM4-80GB",
    "H100": "H100-SXM", "H100-SXM5": "H100-SXM", "H200": "H200-SXM", "L40-S": "L40S",
    # Names NVML reports (`nvidia-smi --query-gpu=name`).
    "NVIDIA-H100-80GB-HBM3": "H100-SXM", "NVIDIA-H100-PCIE": "H100-PCIe", "NVIDIA-H200": "H200-SXM",
    "NVIDIA-A100-SXM4-80GB": "A100-SXM4-80GB", "NVIDIA-A40": "A40", "NVIDIA-L4": "L4", "NVIDIA-L40S": "L40S",
    "NVIDIA-B200": "B200",
}

DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
_DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
                  "float8": "fp8", "fp8_e4m3": "fp8", "e4m3": "fp8"}


def normalize_dtype(dtype: str) -> str:
    """Canonical dtype name (``bf16``, ``fp16``, ``fp8``, ``tf32``, ``fp32``)."""
    d = str(dtype).strip().lower()
    d = _DTYPE_ALIASES.get(d, d)
    if d not in DTYPE_BYTES:
        raise WattlasError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
    return d


def _norm(name: str) -> str:
    return str(name).strip().upper().replace(" ", "-").replace("_", "-")


def get_gpu(name: str) -> GpuSpec:
    """The spec of GPU ``name`` (a key, an alias such as ``H100``, or an NVML name)."""
    n = _norm(name)
    by_key = {_norm(k): k for k in SPECS}
    key = by_key.get(n) or ALIASES.get(n)
    if key is None:
        raise WattlasError(
            f"unknown GPU {name!r}; known: {', '.join(SPECS)} (aliases: {', '.join(sorted(ALIASES)[:8])}, ...)"
        )
    return SPECS[key]


def specs_frame():
    """All GPU specs as a polars DataFrame, one row per GPU."""
    import polars as pl

    return pl.DataFrame([s.as_row() for s in SPECS.values()])


def sources_frame():
    """One row per (GPU, field): the value and the document it comes from."""
    import polars as pl

    rows = [
        {"gpu": s.key, "field": k, "value": None if v is None else float(v), "source": s.sources.get(k, "")}
        for s in SPECS.values() for k, v in s.as_row().items()
        if k not in ("key", "name", "architecture")
    ]
    return pl.DataFrame(rows)

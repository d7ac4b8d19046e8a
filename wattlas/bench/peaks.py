"""Datasheet peaks used for ``peak_fraction`` and the roofline: dense (no 2:4 sparsity) TFLOP/s per
dtype and memory bandwidth, for GPUs whose figures the methodology reference lists (spec §3.1,
NVIDIA datasheets). Unknown devices get ``None``: no peak is guessed.

Examples
--------
>>> peak_for("NVIDIA H100 80GB HBM3").tflops["bf16"]
989.4
>>> peak_for("NVIDIA GeForce RTX 4090") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "NVIDIA datasheets, dense (no sparsity); see shared/spec/bench.md section 3.1"


@dataclass(frozen=True)
class Peak:
    """Dense peak TFLOP/s per wattlas dtype name, and memory bandwidth in GB/s."""

    label: str
    tflops: dict[str, float]
    mem_bandwidth_gb_s: float


_H100_SXM = {"fp64": 66.9, "fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9}
_H100_PCIE = {"fp64": 51.2, "fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0, "fp8": 1513.0}
_A100 = {"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}

# (substrings that must all appear in the NVML name, peak); the first match wins.
_TABLE: tuple[tuple[tuple[str, ...], Peak], ...] = (
    (("H100", "PCIe"), Peak("H100 PCIe", _H100_PCIE, 2000.0)),
    (("H100", "HBM3"), Peak("H100 SXM", _H100_SXM, 3350.0)),
    (("H100", "SXM"), Peak("H100 SXM", _H100_SXM, 3350.0)),
    (("H200", "NVL"), None),  # type: ignore[arg-type]  # different clocks/TDP: not listed
    (("H200",), Peak("H200 SXM", _H100_SXM, 4800.0)),
    (("A100", "80GB", "PCIe"), Peak("A100 80GB PCIe", _A100, 1935.0)),
    (("A100", "SXM4-80GB"), Peak("A100 SXM4 80GB", _A100, 2039.0)),
    (("A100", "40GB"), Peak("A100 40GB", _A100, 1555.0)),
)


def peak_for(gpu_name: str | None) -> Peak | None:
    """The datasheet peak for an NVML/torch device name, or ``None`` when not listed."""
    if not gpu_name:
        return None
    name = gpu_name.upper()
    for parts, peak in _TABLE:
        if all(p.upper() in name for p in parts):
            return peak
    return None

"""ML.ENERGY Benchmark v3: serving-engine energy of 62 (model, task) pairs on H100 and B200.

The leaderboard repository ml-energy/leaderboard publishes, under ``public/data``, one JSON file
per (model, task) in ``models/`` (``<org>__<model>__<task>.json``, a list of measured
``configurations``) and ``index.json`` (the task families and each model's size, precision and
display name). This module reads those files at a pinned commit into ``serving_energy``, one row
per configuration. The layout is checked strictly: a value of the wrong type, a missing key or a
key the reader does not know is an :class:`~wattlas.errors.InputFormatError` naming the file and
the JSON path (``models/X.json: configurations[3].avg_power_watts: expected a number ...``), so
that a field the publisher adds is never dropped unseen.

``convert`` turns each file into an intermediate part (``_index``, ``_configs``); ``reduce``
joins the index into the configurations (task family, display name, update date) and checks
that the two agree on each model's size and precision.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

from ...errors import InputFormatError
from ...schemas import get_table
from ..parts import polars_type, sink_table
from ..registry import Source, SourceFile

COMMIT = "0cd52dab897c5d91a45f4d413038f3b8b4251b0f"
BASE = f"https://raw.githubusercontent.com/ml-energy/leaderboard/{COMMIT}/public/data"
ORIGIN = f"sha256 of public/data/<file> in a copy of ml-energy/leaderboard@{COMMIT[:7]}"
#: Every file of the source goes under this one store key: the index is joined into all of them.
KEY = "leaderboard-v3"
INDEX = "index.json"
TABLE = "serving_energy"

#: ``gpu_model`` of the leaderboard -> GPU specification key (wattlas.predictors.gpus).
GPUS = {"H100": "H100-SXM", "B200": "B200"}
#: The task families ``index.json`` may declare (its ``architectures``).
FAMILIES = ("llm", "mllm", "diffusion")

_INDEX_FILE = (11_052, "b638d291fc6a0588afeb0deccbcf8fa94e197fadf557614e8b978932d5e1ac65")
#: models/<stem>.json -> (size in bytes, sha256).
_MODEL_FILES = {
    "Efficient-Large-Model__SANA1.5_1.6B_1024px_diffusers__text-to-image":
        (35_130, "ca94b22c9e39ad16ca7981bd402c99f6bcb51b3688d4c1dec667f6fdf5a521ef"),
    "Efficient-Large-Model__SANA1.5_4.8B_1024px_diffusers__text-to-image":
        (32_912, "e64d16e45ea12119807669e1b6bfcb32c2e11f86b61e170b84801afdc10d2bdd"),
    "PixArt-alpha__PixArt-Sigma-XL-2-1024-MS__text-to-image":
        (47_819, "f65f4b42c332d2f7eedc50a335f08f8b7a669ef5d9aa5af8fe11fd1ea0819433"),
    "Qwen__Qwen3-14B__gpqa": (24_516, "2205fbb03251af3120b5b99e5c4ae0d5062f6a6c0540e18d45a767adf3f085ea"),
    "Qwen__Qwen3-14B__lm-arena-chat": (44_896, "a257c7c10b397d2271ce7c88ce39f2444bd987fbe95c6554d4049a6a3b7b09b8"),
    "Qwen__Qwen3-235B-A22B-Instruct-2507-FP8__lm-arena-chat":
        (60_188, "b048fd5f0635d4cf3fee63300e7377082b8436f6e1eb77cf01ef5f816ea2a705"),
    "Qwen__Qwen3-235B-A22B-Instruct-2507__lm-arena-chat":
        (80_824, "3f074a3cc4abc394db71f140440f31c2d08e2838d30a290baa99396ffb8a2a08"),
    "Qwen__Qwen3-235B-A22B-Thinking-2507-FP8__gpqa":
        (54_495, "4f7193fc72893748b9deb29e7c0e415813c47f957da5745f23e0bdf3d03e9e09"),
    "Qwen__Qwen3-235B-A22B-Thinking-2507__gpqa":
        (48_410, "9218626b0dc6eaf99dc8a99d3242e67dbecaa15f35e18b877ac6ddca2530af26"),
    "Qwen__Qwen3-30B-A3B-Instruct-2507__lm-arena-chat":
        (80_682, "3b8a304cf408f747f47c77203f147852b5d1fdd07e10607f2c9deeaa4e79d65a"),
    "Qwen__Qwen3-30B-A3B-Thinking-2507__gpqa":
        (39_333, "db62e2b13f9d612154a777fbd1fc43461fe7337dfbb6b8669ba7af710b637073"),
    "Qwen__Qwen3-32B__gpqa": (25_498, "8b94650154d0971b12e768f03e30ca12f0b9f31799adaabebc595fdb0cc3f3cd"),
    "Qwen__Qwen3-32B__lm-arena-chat": (57_595, "cc2ee97966d05837c5cf59c21e4d4f5825b5b938a71ab62d0a2a6038382e9eb1"),
    "Qwen__Qwen3-8B__gpqa": (26_361, "05244f6ebf5eea3b786c505f4da2530e1641bec2ef88accfb71819f65d188a93"),
    "Qwen__Qwen3-8B__lm-arena-chat": (50_014, "234266553646cebaee79af62ec1114b94c2473b15a92f8136f20a9c0ee6ddcbb"),
    "Qwen__Qwen3-Coder-30B-A3B-Instruct__sourcegraph-fim":
        (63_375, "345c2765c156148ee840785512bd2e111fb0195df14692a6c472b5012ca01cdd"),
    "Qwen__Qwen3-Coder-480B-A35B-Instruct-FP8__sourcegraph-fim":
        (43_325, "4f90c45524006514243f83a3a465204349bb31f94746cce951be04f86a496907"),
    "Qwen__Qwen3-Coder-480B-A35B-Instruct__sourcegraph-fim":
        (27_420, "4cb531c4180492a4fa1d195ff88f5afccc07807016987163848b975ab33f4eac"),
    "Qwen__Qwen3-Omni-30B-A3B-Instruct__image-chat":
        (44_867, "7c6d00f387fc6c694fe8d7d31ddea8f02be86236f36f766ac92c683ed1deed46"),
    "Qwen__Qwen3-Omni-30B-A3B-Instruct__video-chat":
        (27_139, "c3ce33bffee0a391283eb956251ed29cd43af2b476db9db4b5a97c74afa8d90e"),
    "Qwen__Qwen3-VL-235B-A22B-Instruct-FP8__image-chat":
        (80_954, "b778a2bc7ac3760f2e12806f15622e5cc965f3fcfc22178e1f0f431d8afac3d4"),
    "Qwen__Qwen3-VL-235B-A22B-Instruct-FP8__video-chat":
        (77_602, "09f5909820415ef5627318a27a6c0fc664d15a70f7cc3b7a7e18ada745a0eed1"),
    "Qwen__Qwen3-VL-235B-A22B-Instruct__image-chat":
        (71_053, "cf37d5aff5c256d018d410f47f9800d2d8e6b82ad53bc0ae18027669b8c68312"),
    "Qwen__Qwen3-VL-235B-A22B-Instruct__video-chat":
        (75_207, "0b99d53515cb2fc896879d8e4efea14da7091dc5604d26717d5171a6ffba2187"),
    "Qwen__Qwen3-VL-30B-A3B-Instruct__image-chat":
        (48_717, "e51ac8f64c69887f12d265e7bb0302e48c292a9fdc107a5343930a860ed20f82"),
    "Qwen__Qwen3-VL-30B-A3B-Instruct__video-chat":
        (28_510, "9f3f7ca9ba083de49460218573f3162bbe68fa19048e05f9bb6a5a0ccb5ef168"),
    "Qwen__Qwen3-VL-32B-Instruct__image-chat":
        (31_359, "984b053f814953e3d828e790341d7d35fd71e66f7ad74ba8dd804cbf7126fb86"),
    "Qwen__Qwen3-VL-32B-Instruct__video-chat":
        (33_050, "c4966bf9790692e97463cafa785e3c3e08d7e2918afa6110aaa5b3311e70fa22"),
    "Qwen__Qwen3-VL-8B-Instruct__image-chat":
        (38_809, "414012d1df809bfbe700894d2c6843858780f0939e310ca06ba440d32aebf7b1"),
    "Qwen__Qwen3-VL-8B-Instruct__video-chat":
        (24_658, "2b9d604a95999af46e04263f7a2a491494f9c19ba662f1fe9a6904ea17ec38d2"),
    "Tencent-Hunyuan__HunyuanDiT-v1.2-Diffusers__text-to-image":
        (47_402, "b29811d506bca1af0431039abc4c48f31c48a9f0b909477004249fa23b26be0f"),
    "Wan-AI__Wan2.1-T2V-1.3B-Diffusers__text-to-video":
        (50_576, "c1e90967a35b09f3a35305fd35a96e6655570b3791db3d664665c6b81cea6cf4"),
    "Wan-AI__Wan2.1-T2V-14B-Diffusers__text-to-video":
        (46_664, "6d448434f796e30bce81c878828c20410bb4e008ec7dce4b2ffbbd205553d320"),
    "black-forest-labs__FLUX.1-dev__text-to-image":
        (47_426, "5020ceb5839a4312788a4f049bddd5d7e76a6ccafc77add31ad5c62d6090148a"),
    "deepseek-ai__DeepSeek-R1-0528__gpqa":
        (13_946, "63ea496cc066401c50a13d293d746f6d5ed197774c39523182be3774ff490a90"),
    "deepseek-ai__DeepSeek-V3.1__gpqa": (16_430, "8c5d27eec8f671b56ad39d2029648b062312d07dfccf791261bf45e6fc397eb8"),
    "deepseek-ai__DeepSeek-V3.1__lm-arena-chat":
        (29_751, "15f5d693747fa1da47cc639403dddfa408af81e2cf215c304564b42ead28e6d0"),
    "google__gemma-3-12b-it__image-chat":
        (33_739, "07588412c8406d54da6afc12c4ccbca86c186e070c879a8d7c8b1fd26c4618cc"),
    "google__gemma-3-12b-it__lm-arena-chat":
        (34_763, "7af47e960e2da07a256c322d95e7c8b639a341ac5a85bfe7fda41ea3a02bc990"),
    "google__gemma-3-27b-it__image-chat":
        (41_154, "f1b8de8aca683818abc3fb7a118b79a80c475049205473ac69be713d90112d7d"),
    "google__gemma-3-27b-it__lm-arena-chat":
        (42_366, "6965a46bf18ae87e43f07059cf29f514eecad27555787202efeca9ef8fd7fecd"),
    "meta-llama__Llama-3.1-405B-Instruct-FP8__lm-arena-chat":
        (39_673, "bd40d59ec6685fbf0fc77ea6e7df7a0752df5e6c62572a4edbc0fe81c79b523f"),
    "meta-llama__Llama-3.1-405B-Instruct__lm-arena-chat":
        (32_164, "c7f65b60ff90d88d9cf536f9602267435e758e2121e7dfca47bedddac669af71"),
    "meta-llama__Llama-3.1-70B-Instruct__lm-arena-chat":
        (57_479, "bafc501076c3ad0c28640d0be931983074e8c5f6da7ed93178cd8a9edfe2fc90"),
    "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat":
        (52_495, "3db897caac1af5057fe2915a85c27cccaa5d734362f4c745d6f499cc308c0fe3"),
    "meta-llama__Llama-3.3-70B-Instruct__lm-arena-chat":
        (49_855, "dd500d14d758b6e10731a6dd198a3de310c9874495b15811f160954ecc00d63c"),
    "meta-llama__Llama-4-Maverick-17B-128E-Instruct-FP8__image-chat":
        (16_888, "7e3706ff8623d63de2e11ca89de172aba0c8d096242aa0df98ac75f4628932bc"),
    "meta-llama__Llama-4-Maverick-17B-128E-Instruct-FP8__lm-arena-chat":
        (23_478, "b5a1c41a68de34e18a751949fa30bd92c9ed3e3f597bab699db1ecf514260fb9"),
    "meta-llama__Llama-4-Scout-17B-16E-Instruct__image-chat":
        (32_085, "75b4a05cea8c6b59c750bbe3d64dda35892cda84156c08e993fe126ec20653a6"),
    "meta-llama__Llama-4-Scout-17B-16E-Instruct__lm-arena-chat":
        (53_989, "dfd8858ad4f848803f3530883bd2bb45b283cc5166fcdc70bbc2fa5c3d7e658d"),
    "nvidia__NVIDIA-Nemotron-Nano-12B-v2-VL-BF16__image-chat":
        (9_598, "3a534c78e34d80156f8cfd3bc1481f78ef13a3a29328c7ca0d6a8cd0c3ed4a64"),
    "nvidia__NVIDIA-Nemotron-Nano-12B-v2__gpqa":
        (36_695, "207c7e652c8b8281a3072270e694bc0a62e02c1ddfbb13a497a33556bc80c058"),
    "nvidia__NVIDIA-Nemotron-Nano-12B-v2__lm-arena-chat":
        (36_215, "e393e5575a9e5f28dc35ae9413e29493a95ed8506bf0dfe01def0c17f79d2128"),
    "nvidia__NVIDIA-Nemotron-Nano-9B-v2__gpqa":
        (41_952, "41d03ce86e1751bf50dde3ce2ffc280300a89aab8366009245708641655329ba"),
    "nvidia__NVIDIA-Nemotron-Nano-9B-v2__lm-arena-chat":
        (37_230, "4869d5f9f7b065c9e51fb8b0c5a2d17591e214704418b612071354cef2dd044d"),
    "openai__gpt-oss-120b__gpqa": (106_735, "9bd3d26b095e57d8bb159359035e0f78a7461ad82074cd737ac294d55edd7c45"),
    "openai__gpt-oss-20b__gpqa": (68_518, "4686bcb7689dfa20b465451151c60bc1b83be827667e2ba75009b01e70c3c925"),
    "stabilityai__stable-diffusion-3.5-large__text-to-image":
        (32_893, "1fe3dd0c95b8f217dd99da156d6d05ee7cc56c999ea22ecc3cb99d02a5ffae3e"),
    "stabilityai__stable-diffusion-3.5-medium__text-to-image":
        (47_401, "bf0265e36070e4e218b68c5e26647c70596c67e132722da53e50efd524a1c83a"),
    "tencent__HunyuanVideo__text-to-video":
        (34_025, "6610e78ecdd93b789614ce16f94b577f9e20b12f6d6bbc91399ebffcd6ba4dfa"),
    "zai-org__CogVideoX-2b__text-to-video":
        (15_997, "a165b2c5fb8992146a9aee491a91733a7e5f53038153d8d0b53ebf30e09d0787"),
    "zai-org__CogVideoX1.5-5B__text-to-video":
        (42_739, "3e6a0dcc7e693f5697e957b860a4c98cb6fae21ec14bafa77c0573ef4cd30e93"),
}


def source_files(base: str = BASE, index: tuple[int, str] = _INDEX_FILE,
                 models: dict[str, tuple[int, str]] | None = None) -> tuple[SourceFile, ...]:
    """The registry's file list: ``index.json`` and ``models/<stem>.json`` under ``base``."""
    models = _MODEL_FILES if models is None else models
    files = [SourceFile(INDEX, f"{base}/{INDEX}", index[0], index[1], ORIGIN)]
    files += [SourceFile(f"models/{stem}.json", f"{base}/models/{stem}.json", size, sha, ORIGIN)
              for stem, (size, sha) in models.items()]
    return tuple(files)


SOURCES = (
    Source(
        id="mlenergy-v3",
        title="ML.ENERGY Benchmark v3: serving energy of LLM, multimodal and diffusion models on H100 and B200",
        tables=(TABLE,),
        files=source_files(),
        licence="none stated (ml-energy/leaderboard has no licence file; all rights reserved by default)",
        citation=(
            "Jae-Won Chung, Jiachen Liu, Jeff J. Ma, Ruofan Wu, Oh Jun Kweon, Yuxuan Xia, Zhiyu Wu, Mosharaf "
            "Chowdhury. The ML.ENERGY Benchmark: Toward Automated Inference Energy Measurement and "
            "Optimization. NeurIPS 2025 Datasets and Benchmarks Track. arXiv:2505.06371"
        ),
        paper="https://arxiv.org/abs/2505.06371",
        homepage=f"https://github.com/ml-energy/leaderboard/tree/{COMMIT}/public/data",
        description=(
            "1,858 measured serving configurations of 62 (model, task) pairs (vLLM; diffusers/xDiT for "
            "diffusion; GPU energy by Zeus) on H100 and B200 with 1-8 GPUs: batch cap and achieved batch, "
            "average power, energy per request and per token, inter-token latency percentiles, throughput, "
            "parallelism and output-length histograms."
        ),
        redistributable=False,
        kind="measurement",
        notes=(
            "The repository states no licence: derived tables may be used locally but not redistributed, "
            "and `wattlas release build` refuses rows of this source.",
            "public/data/tasks/*.json repeat the configurations grouped by task and are not read.",
        ),
    ),
)

_MODEL_NAME = re.compile(r"^.+__.+__[A-Za-z0-9.-]+\.json$")


def accepts(source_id: str, path: Path | PurePosixPath) -> bool:
    return path.name == INDEX or bool(_MODEL_NAME.match(path.name))


def _display(path: Path | PurePosixPath) -> str:
    """The file's name as the repository lays it out (``index.json``, ``models/<file>``)."""
    return INDEX if path.name == INDEX else f"models/{path.name}"


def group(source_id: str, logical: PurePosixPath, path: Path) -> tuple[str, str]:
    """One key for the whole source; files are named as in the repository, whatever the layout."""
    return KEY, _display(logical)


# ------------------------------------------------------------------ the JSON layout
# JSON key -> (column, kind[, scale]). Kinds: number, int, str, notes (a string that may be
# empty), hist (an output-length histogram), par (the parallelization object).
_SERVING = {
    "avg_batch_size": ("avg_batch_size", "number"),
    "avg_output_len": ("avg_output_tokens", "number"),
    "avg_power_watts": ("avg_power_w", "number"),
    "energy_per_request_joules": ("energy_per_request_j", "number"),
    "energy_per_token_joules": ("energy_per_token_j", "number"),
    "gpu_model": ("gpu_label", "str"),
    "max_num_seqs": ("max_num_seqs", "int"),
    "median_itl_ms": ("median_itl_s", "number", 1e-3),
    "num_gpus": ("num_gpus", "int"),
    "output_length_distribution": ("output_length", "hist"),
    "output_throughput_tokens_per_sec": ("output_throughput_tokens_per_s", "number"),
    "p90_itl_ms": ("p90_itl_s", "number", 1e-3),
    "p95_itl_ms": ("p95_itl_s", "number", 1e-3),
    "p99_itl_ms": ("p99_itl_s", "number", 1e-3),
    "parallelization": ("", "par"),
}
_DIFFUSION = {
    "avg_power_watts": ("avg_power_w", "number"),
    "batch_latency_s": ("batch_latency_s", "number"),
    "batch_size": ("batch_size", "int"),
    "gpu_model": ("gpu_label", "str"),
    "inference_steps": ("inference_steps", "int"),
    "num_gpus": ("num_gpus", "int"),
    "parallelization": ("", "par"),
}
_IMAGE = _DIFFUSION | {
    "energy_per_image_joules": ("energy_per_image_j", "number"),
    "throughput_images_per_sec": ("throughput_images_per_s", "number"),
    "image_height": ("image_height_px", "int"),
    "image_width": ("image_width_px", "int"),
}
_VIDEO = _DIFFUSION | {
    "energy_per_video_joules": ("energy_per_video_j", "number"),
    "throughput_videos_per_sec": ("throughput_videos_per_s", "number"),
    "video_height": ("video_height_px", "int"),
    "video_width": ("video_width_px", "int"),
    "num_frames": ("num_frames", "int"),
    "fps": ("fps", "int"),
}
_SERVING_PAR = {
    "tensor_parallel": ("tensor_parallel", "int"),
    "expert_parallel": ("expert_parallel", "int"),
    "data_parallel": ("data_parallel", "int"),
    "notes": ("parallel_notes", "notes"),
}
_DIFFUSION_PAR = {"ulysses_degree": ("ulysses_degree", "int"), "ring_degree": ("ring_degree", "int")}
#: Configuration layouts: (the key that marks it, its keys, its parallelization keys). Every key is required.
_LAYOUTS = {
    "serving": ("max_num_seqs", _SERVING, _SERVING_PAR),
    "image": ("energy_per_image_joules", _IMAGE, _DIFFUSION_PAR),
    "video": ("energy_per_video_joules", _VIDEO, _DIFFUSION_PAR),
}
#: Top-level keys of a model file; ``None``: optional.
_TOP = {
    "model_id": ("model_id", "str"),
    "task": ("task", "str"),
    "total_params_billions": ("total_params_b", "number"),
    "activated_params_billions": ("activated_params_b", "number"),
    "weight_precision": ("weight_precision", "str"),
    "architecture": ("architecture", "str"),
    "nickname": ("nickname", "str"),
    "output_length_distribution": ("", "hist"),
    "configurations": ("", "list"),
}
_TOP_OPTIONAL = {"architecture", "nickname", "output_length_distribution"}
#: The keys of one model in index.json (nickname and architecture optional).
_INDEX_MODEL = {
    "activated_params_billions": ("activated_params_b", "number"),
    "total_params_billions": ("total_params_b", "number"),
    "weight_precision": ("weight_precision", "str"),
    "nickname": ("nickname", "str"),
    "architecture": ("architecture", "str"),
}
_INDEX_MODEL_OPTIONAL = {"nickname", "architecture"}
_INDEX_TOP = ("architectures", "last_updated", "models", "tasks")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Typed access to one parsed JSON file; every error names the file and the JSON path."""

    def __init__(self, display: str):
        self.display = display
        self.columns = {c.name: c for c in get_table(TABLE).columns}

    def fail(self, path: str, message: str) -> InputFormatError:
        return InputFormatError(f"{path}: {message}" if path else message, file=self.display)

    def obj(self, value: Any, path: str, keys: dict[str, Any] | tuple[str, ...],
            optional: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """``value`` as an object with exactly ``keys`` (less the ``optional`` ones it lacks)."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_show(value)}")
        for k in value:
            if k not in keys:
                raise self.fail(_join(path, k), (
                    f"unknown key (known here: {', '.join(keys)}); the reader follows the layout of "
                    f"ml-energy/leaderboard@{COMMIT[:7]} and refuses keys it would otherwise drop"
                ))
        for k in keys:
            if k not in value and k not in optional:
                raise self.fail(path or "(top level)", f"missing key {k!r}")
        return value

    def number(self, value: Any, path: str, column: str | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {_show(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value}")
        return self._bounded(value, path, column)

    def integer(self, value: Any, path: str, column: str | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_show(value)}")
        return int(self._bounded(value, path, column))

    def _bounded(self, value: float, path: str, column: str | None) -> float:
        col = self.columns.get(column or "")
        if col is not None and col.min is not None and value < col.min:
            raise self.fail(path, f"{value:g} is below the minimum {col.min:g}")
        if col is not None and col.max is not None and value > col.max:
            raise self.fail(path, f"{value:g} is above the maximum {col.max:g}")
        return value

    def string(self, value: Any, path: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not value.strip() and not empty):
            raise self.fail(path, f"expected a non-empty string, got {_show(value)}")
        return value

    def histogram(self, value: Any, path: str) -> tuple[list[float], list[int]]:
        self.obj(value, path, ("bins", "counts"))
        bins, counts = value["bins"], value["counts"]
        if not isinstance(bins, list) or len(bins) < 2:
            raise self.fail(f"{path}.bins", f"expected a list of at least 2 bin edges, got {_show(bins)}")
        edges = [self.number(b, f"{path}.bins[{i}]") for i, b in enumerate(bins)]
        for i in range(1, len(edges)):
            if edges[i] <= edges[i - 1]:
                raise self.fail(f"{path}.bins[{i}]", f"bin edges must increase ({edges[i - 1]:g} then {edges[i]:g})")
        if not isinstance(counts, list) or len(counts) != len(edges) - 1:
            raise self.fail(f"{path}.counts", f"expected a list of {len(edges) - 1} counts (one per bin), got "
                                              f"{_show(counts)}")
        n = []
        for i, c in enumerate(counts):
            n.append(self.integer(c, f"{path}.counts[{i}]"))
            if n[-1] < 0:
                raise self.fail(f"{path}.counts[{i}]", f"a count cannot be negative ({n[-1]})")
        return edges, n

    def fields(self, obj: dict[str, Any], path: str, spec: dict[str, tuple], row: dict[str, Any]) -> None:
        """Copy the scalar keys of ``spec`` from ``obj`` into ``row`` (converted, checked)."""
        for key, (column, kind, *scale) in spec.items():
            if key not in obj or kind in ("hist", "par", "list"):
                continue
            p = _join(path, key)
            if kind == "number":
                row[column] = self.number(obj[key], p, column) * (scale[0] if scale else 1.0)
            elif kind == "int":
                row[column] = self.integer(obj[key], p, column)
            else:
                row[column] = self.string(obj[key], p, empty=kind == "notes") or None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _loads(path: Path, display: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                raise InputFormatError(f"key {k!r} appears twice in one object", file=display)
            seen[k] = v
        return seen

    try:
        return json.loads(path.read_bytes(), object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise InputFormatError(f"not valid JSON: {e.msg} (column {e.colno})", file=display, line=e.lineno) from e
    except UnicodeDecodeError as e:
        raise InputFormatError(f"not UTF-8 text: {e.reason} at byte {e.start}", file=display) from e


# ------------------------------------------------------------------ model files
def _configuration(r: _Reader, c: Any, i: int) -> dict[str, Any]:
    path = f"configurations[{i}]"
    if not isinstance(c, dict):
        raise r.fail(path, f"expected an object, got {_show(c)}")
    layouts = [name for name, (marker, _, _) in _LAYOUTS.items() if marker in c]
    if len(layouts) != 1:
        markers = ", ".join(repr(m) for m, _, _ in _LAYOUTS.values())
        raise r.fail(path, f"expected exactly one of the keys {markers} (serving, image or video "
                           f"configuration), found {len(layouts)}")
    _, spec, par_spec = _LAYOUTS[layouts[0]]
    r.obj(c, path, spec)
    row: dict[str, Any] = {"configuration": i}
    r.fields(c, path, spec, row)
    par = r.obj(c["parallelization"], f"{path}.parallelization", par_spec)
    r.fields(par, f"{path}.parallelization", par_spec, row)
    label = row["gpu_label"]
    if label not in GPUS:
        raise r.fail(f"{path}.gpu_model", f"unknown GPU {label!r}; known: {', '.join(GPUS)}")
    row["gpu"] = GPUS[label]
    if "output_length_distribution" in c:
        row["output_length_bins"], row["output_length_counts"] = r.histogram(
            c["output_length_distribution"], f"{path}.output_length_distribution")
    return row


def _check_pooled(r: _Reader, doc: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The file-level histogram must be the configurations' summed: it is not stored again."""
    bins, counts = r.histogram(doc["output_length_distribution"], "output_length_distribution")
    for row in rows:
        if row.get("output_length_bins") != bins:
            raise r.fail(f"configurations[{row['configuration']}].output_length_distribution.bins",
                         "differ from the file's output_length_distribution.bins")
    summed = [sum(col) for col in zip(*(row["output_length_counts"] for row in rows), strict=True)]
    if summed != counts:
        raise r.fail("output_length_distribution.counts",
                     "are not the sum of the configurations' counts (the reader stores only the "
                     "configurations' histograms, so it refuses a file-level one it cannot derive)")


def read_model_file(path: Path, display: str) -> list[dict[str, Any]]:
    """The rows of one ``models/*.json`` file (index-derived columns left out); checks the layout."""
    r = _Reader(display)
    doc = r.obj(_loads(path, display), "", _TOP, _TOP_OPTIONAL)
    top: dict[str, Any] = {}
    r.fields(doc, "", _TOP, top)
    configs = doc["configurations"]
    if not isinstance(configs, list) or not configs:
        raise r.fail("configurations", f"expected a non-empty list, got {_show(configs)}")
    rows = [top | _configuration(r, c, i) for i, c in enumerate(configs)]
    if "output_length_distribution" in doc:
        if any("output_length_counts" not in row for row in rows):
            raise r.fail("output_length_distribution", "present, but not every configuration has one")
        _check_pooled(r, doc, rows)
    return rows


# ------------------------------------------------------------------ index.json
def read_index(path: Path, display: str = INDEX) -> dict[str, Any]:
    """``index.json`` checked and normalised: ``families`` (task -> family), ``models``, ``last_updated``."""
    r = _Reader(display)
    doc = r.obj(_loads(path, display), "", _INDEX_TOP)
    arch = r.obj(doc["architectures"], "architectures", FAMILIES, set(FAMILIES))
    families: dict[str, str] = {}
    for fam, tasks in arch.items():
        if not isinstance(tasks, list):
            raise r.fail(f"architectures.{fam}", f"expected a list of task names, got {_show(tasks)}")
        for j, t in enumerate(tasks):
            task = r.string(t, f"architectures.{fam}[{j}]")
            if task in families:
                raise r.fail(f"architectures.{fam}[{j}]", f"task {task!r} is already in family {families[task]!r}")
            families[task] = fam
    tasks = doc["tasks"]
    if not isinstance(tasks, list):
        raise r.fail("tasks", f"expected a list of task names, got {_show(tasks)}")
    named = {r.string(t, f"tasks[{j}]") for j, t in enumerate(tasks)}
    if named != set(families):
        raise r.fail("tasks", f"lists {sorted(named)} but architectures assign {sorted(families)}")
    updated = r.string(doc["last_updated"], "last_updated")
    try:
        date.fromisoformat(updated)
    except ValueError:
        raise r.fail("last_updated", f"expected a date YYYY-MM-DD, got {_show(updated)}") from None
    if not isinstance(doc["models"], dict):
        raise r.fail("models", f"expected an object keyed by model id, got {_show(doc['models'])}")
    models = {}
    for model_id, m in doc["models"].items():
        p = f"models.{model_id}"
        r.obj(m, p, _INDEX_MODEL, _INDEX_MODEL_OPTIONAL)
        row: dict[str, Any] = {}
        r.fields(m, p, _INDEX_MODEL, row)
        models[model_id] = row
    return {"families": families, "models": models, "last_updated": updated}


# ------------------------------------------------------------------ convert and reduce
def _schema(extra: dict[str, Any]) -> dict[str, Any]:
    return {c.name: polars_type(c.type) for c in get_table(TABLE).columns} | extra


def convert(source_id: str, path: Path, out_dir: Path, *, logical: PurePosixPath | None = None
            ) -> dict[str, list[Path]]:
    display = _display(logical or path)
    if display == INDEX:
        out = out_dir / "_index.parquet"
        pl.DataFrame({"index": [json.dumps(read_index(path, display))]}).write_parquet(out)
        return {"_index": [out]}
    rows = read_model_file(path, display)
    out = out_dir / "_configs.parquet"
    pl.DataFrame([row | {"file": display} for row in rows],
                 schema=_schema({"file": pl.String})).write_parquet(out)
    return {"_configs": [out]}


def reduce(source_id: str, key: str, parts: dict[str, list[Path]], out_dir: Path) -> dict[str, list[Path]]:
    """``_index`` + ``_configs`` -> ``serving_energy``: family, display name and date from the index."""
    if "_index" not in parts:
        raise InputFormatError(
            f"{INDEX} is needed with the model files: it gives each task's family and each model's "
            f"display name (pass the whole public/data folder, or {INDEX} beside models/*.json)", file=key,
        )
    if "_configs" not in parts:
        raise InputFormatError(f"only {INDEX} was given: pass the models/*.json files with it", file=key)
    index = json.loads(pl.read_parquet(parts["_index"][0]).item(0, "index"))
    configs = pl.concat([pl.read_parquet(p) for p in parts["_configs"]], how="vertical")
    _check_against_index(configs, index)
    nick = {m: v.get("nickname") for m, v in index["models"].items()}
    lf = configs.lazy().with_columns(
        architecture_family=pl.col("task").replace_strict(index["families"], return_dtype=pl.String),
        nickname=pl.coalesce("nickname", pl.col("model_id").replace_strict(nick, return_dtype=pl.String)),
        last_updated=pl.lit(date.fromisoformat(index["last_updated"])),
    ).sort("model_id", "task", "configuration")
    out = out_dir / f"{TABLE}.parquet"
    sink_table(lf, TABLE, out, display=key)
    return {TABLE: [out]}


def _check_against_index(configs: pl.DataFrame, index: dict[str, Any]) -> None:
    """Every model file's task, model and published sizes must agree with index.json."""
    seen: dict[tuple[str, str], str] = {}
    files = configs.group_by("file", maintain_order=True).agg(
        pl.col("model_id", "task", "total_params_b", "activated_params_b", "weight_precision", "architecture")
        .first(),
        diffusion=pl.col("batch_size").is_not_null().all(), serving=pl.col("max_num_seqs").is_not_null().all(),
    )
    for f in files.iter_rows(named=True):
        fail = _file_error(f["file"])
        pair = (f["model_id"], f["task"])
        if pair in seen:
            raise fail(f"model {pair[0]!r} task {pair[1]!r} is also in {seen[pair]}")
        seen[pair] = f["file"]
        family = index["families"].get(f["task"])
        if family is None:
            raise fail(f"task: {f['task']!r} is not in {INDEX}'s architectures "
                       f"(known: {', '.join(sorted(index['families']))})")
        if (family == "diffusion" and not f["diffusion"]) or (family != "diffusion" and not f["serving"]):
            kind = "image or video" if family == "diffusion" else "serving"
            raise fail(f"task {f['task']!r} is a {family} task in {INDEX}, but not every configuration "
                       f"is a {kind} configuration")
        model = index["models"].get(f["model_id"])
        if model is None:
            raise fail(f"model_id: {f['model_id']!r} is not in {INDEX}'s models")
        for col, key in (("total_params_b", "total_params_billions"),
                         ("activated_params_b", "activated_params_billions"),
                         ("weight_precision", "weight_precision"), ("architecture", "architecture")):
            if col in model and model[col] != f[col]:
                raise fail(f"{key}: {_show(f[col])} differs from {INDEX}'s {_show(model[col])} "
                           f"for model {f['model_id']!r}")


def _file_error(display: str):
    return lambda message: InputFormatError(message, file=display)

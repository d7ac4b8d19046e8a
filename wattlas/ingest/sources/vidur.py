"""Vidur operator profiles: per-operator GPU times of one transformer layer (``mlp.csv``).

Files live at ``data/profiling/compute/<gpu>/<org>/<model>/mlp.csv`` in microsoft/vidur; the GPU
and model come from that path, so inputs are keyed by it (``a100:meta-llama:Llama-2-7b-hf:mlp.csv``;
store keys hold no ``/``).
Times are converted from the raw milliseconds to seconds. The four projection operators are
GEMMs of one tensor-parallel shard; their shape follows from the model columns (Vidur's
``ColumnParallelLinear`` splits the output dimension, ``RowParallelLinear`` the input one):

========================  ======  ==========================
operator                  K       N
========================  ======  ==========================
attn_pre_proj (fused QKV)  h       (n_head + 2 n_kv_head) d / t
attn_post_proj (O)         n_head d / t   h
mlp_up_proj                h       2 f / t (gated), f / t
mlp_down_proj              f / t   h
========================  ======  ==========================

with M = ``num_tokens``, d = h / n_head, t = tensor-parallel degree.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import polars as pl

from ...errors import InputFormatError
from ...schemas import get_table
from ..csvread import FLOAT, INT, CsvLayout, RawType, check_bounds_by_row, convert_csv
from ..registry import Source, SourceFile

COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"
BASE = f"https://raw.githubusercontent.com/microsoft/vidur/{COMMIT}/data/profiling/compute"
SHARED = "byte-identical copy in ../shared/data/vidur_profiling (microsoft/vidur)"
GIT = f"git blob of microsoft/vidur@{COMMIT[:7]}"

#: GPU folder -> GPU specification key. Vidur's README: "A100 80GB DGX", "H100 DGX" (SXM),
#: "8xA40 Pairwise NVLink Node".
GPUS = {"a100": "A100-SXM4-80GB", "a40": "A40", "h100": "H100-SXM"}

_FILES = {
    "a100/Qwen/Qwen-72B": (689_936, "81a4a7b16a99e256f1f47cc25c3d098ecf4ff7ab2260e921759dd7c06e93cce9"),
    "a100/codellama/CodeLlama-34b-Instruct-hf": (
        692_374, "9ba6058c55b7c291ccdf9cd445655de93d3a3dfc0fdd8b08f654170413906dce"),
    "a100/internlm/internlm-20b": (697_551, "efdad580da6ecb50e3716543439a31fc71484de365e0f8cfe9430c5e4d5487c3"),
    "a100/meta-llama/Llama-2-70b-hf": (688_286, "d690ce601f94ab80586e1d5a6a92ea0d64114dc3e0895bf32b3bee270f3d9b7f"),
    "a100/meta-llama/Llama-2-7b-hf": (706_614, "2cfacca979f32e83257753cf6fd815a71af8ba9a7a9d0643b18d9f54e8a37688"),
    "a100/meta-llama/Meta-Llama-3-70B": (
        1_180_692, "6929c6f4afae67f7d91a7938ebdb350a47923b077a1b1c2a4e1911f5ec9e601f"),
    "a100/meta-llama/Meta-Llama-3-8B": (
        1_204_856, "98c26488298e324e89db7349e213f75c856ae83dc6b17548a68636d2cb5efff0"),
    "a100/microsoft/phi-2": (162_477, "98a16c552786c8dd3d935d1d8c06434d0ae7c628b9c23ac26fbde551b272bde6"),
    "a40/Qwen/Qwen-72B": (680_352, "103db51fecb0bdbb5be21b8274706d5700d0d68f3b6b63cd68967b12d839426f"),
    "a40/codellama/CodeLlama-34b-Instruct-hf": (
        678_375, "0e9b6468d8fb2d25c55c5d142b5314bb6ae56b6b2991f2de555cb8857389f480"),
    "a40/internlm/internlm-20b": (690_310, "754c48913b65eff1f7db9c8e4dcc45f92b27cccfd59e0309d617a3f07536d0fa"),
    "a40/meta-llama/Llama-2-70b-hf": (678_613, "a666d9463c0f6994f8103175cad6359bd738e6d4f8e66e56f1dcf88482f91485"),
    "a40/meta-llama/Llama-2-7b-hf": (689_225, "f8d0f455d0b72b7975be0ed8e1951dcbf2eabc083001b27f6ef8203c0a96962c"),
    "a40/microsoft/phi-2": (158_489, "a5708bd10ef825617c4cc82ce624a467a5aa87092765be41b1dcde72fb3248eb"),
    "h100/Qwen/Qwen-72B": (702_207, "8056ad93e8dec592de1cc253edb228d1c475646d98db0d113f96b4693f91bb22"),
    "h100/codellama/CodeLlama-34b-Instruct-hf": (
        693_809, "f5ddfd2ab5a8342c34866f53214a4a4f8f535369c29159da0be2d524bcaf00a5"),
    "h100/internlm/internlm-20b": (701_075, "8d2d37e685652600a4dfc2d91be74a1f197c01f0b41c532443479507446039aa"),
    "h100/meta-llama/Llama-2-70b-hf": (691_493, "fb3581ade7c02caab8a0f7d1ca1ad06a7b0fbac3d9f32a9ed46ae55d95fd6bb3"),
    "h100/meta-llama/Llama-2-7b-hf": (715_469, "b1a2def08857d10e5f66c3b5b2d046b6e8caed5c30b2bc920a0462598e3b2a59"),
    "h100/microsoft/phi-2": (159_147, "dfbf4965acfdd01a5f32f8326873df299a226e95bdd496dac99e766f952430fc"),
}

SOURCES = (
    Source(
        id="vidur-profiling",
        title="Vidur operator profiles: transformer-layer operator times on A100, A40 and H100",
        tables=("operator_times",),
        files=tuple(
            SourceFile(f"{k}/mlp.csv", f"{BASE}/{k}/mlp.csv", size, sha,
                       SHARED if not k.startswith("h100") else GIT)
            for k, (size, sha) in _FILES.items()
        ),
        licence="MIT",
        citation=(
            "Agrawal, Kedia, Mohan, Panwar, Kwatra, Gulavani, Ramjee, Tumanov. Vidur: A Large-Scale "
            "Simulation Framework for LLM Inference. MLSys 2024."
        ),
        paper="https://arxiv.org/abs/2405.05465",
        homepage="https://github.com/microsoft/vidur/tree/main/data/profiling/compute",
        description="Per-operator GPU time statistics (20 repetitions) of one transformer layer for "
        "Llama-2/3, CodeLlama, InternLM, Qwen and phi-2 shapes, 1-4096 tokens (Llama-3: 32768), "
        "tensor-parallel shards 1-8, fp16.",
        kind="measurement",
    ),
)

GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
OPS = ("emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
       "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
STATS = ("min", "max", "mean", "median", "std")
MODEL_COLS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp", "num_tokens",
              "num_tensor_parallel_workers")
BOOL = RawType(pl.Boolean, "True or False")


def _layout(ops: tuple[str, ...], name: str) -> CsvLayout:
    stats = tuple(f"time_stats.{op}.{s}" for op in ops for s in STATS)
    header = stats + MODEL_COLS
    types = {c: FLOAT for c in stats} | {c: INT for c in MODEL_COLS} | {"use_gated_mlp": BOOL}
    return CsvLayout(name=name, header=header, raw_types=types, columns={c: c for c in header})


# phi-2 has no post-attention layer norm (parallel attention and MLP).
LAYOUTS = [_layout(OPS, "Vidur mlp.csv"),
           _layout(tuple(o for o in OPS if o != "post_attention_layernorm"), "Vidur mlp.csv (no post-attention norm)")]


def _parts(path: Path) -> tuple[str, str] | None:
    """(gpu label, org/model) from ``.../<gpu>/<org>/<model>/mlp.csv``."""
    p = path.parts
    if path.name != "mlp.csv" or len(p) < 4 or p[-4] not in GPUS:
        return None
    return p[-4], f"{p[-3]}/{p[-2]}"


def input_key(source_id: str, path: Path) -> str:
    """Inputs are keyed ``<gpu>:<org>:<model>:mlp.csv``: every file is named ``mlp.csv``."""
    parts = _parts(path)
    return f"{parts[0]}:{parts[1].replace('/', ':')}:mlp.csv" if parts else path.name


def group(source_id: str, logical: PurePosixPath, path: Path) -> tuple[str, str]:
    """The engine's (store key, input name) of a raw file: both its :func:`input_key`."""
    key = input_key(source_id, Path(str(logical)))
    return key, key


def accepts(source_id: str, path: Path) -> bool:
    return _parts(path) is not None


def gemm_shapes(df: pl.DataFrame | pl.LazyFrame) -> dict[str, tuple[pl.Expr, pl.Expr]]:
    """(K, N) expressions per GEMM operator over Vidur's model columns (see the module docstring)."""
    h, t = pl.col("n_embd"), pl.col("tensor_parallel")
    d = h // pl.col("n_head")
    f = pl.col("n_expanded_embd")
    up = pl.when(pl.col("use_gated_mlp")).then(2 * f).otherwise(f) // t
    return {
        "attn_pre_proj": (h, (pl.col("n_head") + 2 * pl.col("n_kv_head")) * d // t),
        "attn_post_proj": (pl.col("n_head") * d // t, h),
        "mlp_up_proj": (h, up),
        "mlp_down_proj": (f // t, h),
    }


def convert(source_id: str, path: Path, out_dir: Path) -> dict[str, list[Path]]:
    parts = _parts(path)
    display = input_key(source_id, path)
    if parts is None:
        raise InputFormatError(
            "cannot tell GPU and model from the path; expected <gpu>/<org>/<model>/mlp.csv with <gpu> one of "
            f"{', '.join(GPUS)}", file=str(path),
        )
    label, model = parts
    from ..csvread import match_layout, read_header

    layout = match_layout(read_header(path, display), LAYOUTS, display)
    wide = out_dir / "wide.parquet"
    convert_csv(path, [layout], wide, display=display, extra={"row": pl.col("request_id")},
                select=["row", *layout.header])
    ops = [op for op in OPS if f"time_stats.{op}.median" in layout.header]
    base = pl.read_parquet(wide).rename({"num_tensor_parallel_workers": "tensor_parallel"})
    frames = []
    for op in ops:
        cols = {s: pl.col(f"time_stats.{op}.{s}") * 1e-3 for s in STATS}  # raw ms -> s
        frames.append(base.select(
            "row", "n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp",
            "num_tokens", "tensor_parallel", op=pl.lit(op), **{f"time_{s}_s": e for s, e in cols.items()},
        ))
    long = pl.concat(frames)
    shapes = gemm_shapes(long)
    k_expr = pl.lit(None, pl.Int64)
    n_expr = pl.lit(None, pl.Int64)
    for op, (k, n) in shapes.items():
        k_expr = pl.when(pl.col("op") == op).then(k.cast(pl.Int64)).otherwise(k_expr)
        n_expr = pl.when(pl.col("op") == op).then(n.cast(pl.Int64)).otherwise(n_expr)
    is_gemm = pl.col("op").is_in(GEMM_OPS)
    long = long.with_columns(
        gpu_label=pl.lit(label), gpu=pl.lit(GPUS[label]), model=pl.lit(model), dtype=pl.lit("fp16"),
        is_gemm=is_gemm,
        m=pl.when(is_gemm).then(pl.col("num_tokens").cast(pl.Int64)),
        n=n_expr, k=k_expr,
    )
    schema = get_table("operator_times").arrow_schema()
    out = out_dir / "operator_times.parquet"
    from ..._parquet import write_table

    write_table(long.select(schema.names).to_arrow().cast(schema), out)
    wide.unlink()
    check_bounds_by_row(path, out, "operator_times", display)
    return {"operator_times": [out]}

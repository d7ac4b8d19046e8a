"""Measurement sources (zeus-nsdi23, vidur-profiling) and the GPU specification table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wattlas.errors import InputFormatError
from wattlas.ingest import ingest
from wattlas.ingest.registry import get_source
from wattlas.predictors.gpus import SPECS, get_gpu, sources_frame
from wattlas.store import Store

ZEUS_HEADER = "dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"


def test_gpu_specs_every_value_has_a_source():
    df = sources_frame()
    assert df.height == len(SPECS) * 13  # 11 datasheet fields, measured bandwidth, launch cost
    assert df["source"].str.len_chars().min() > 10
    # Values NVIDIA does not publish are null and say so, never guessed.
    b200 = df.filter((df["gpu"] == "B200") & (df["field"] == "sm_count"))
    assert b200["value"].item() is None and "not published" in b200["source"].item()
    for name in ("V100", "P100", "RTX6000", "A40", "A100", "L4", "L40S", "H100", "H200", "B200"):
        assert get_gpu(name).tdp_w


def test_gpu_lookup_errors_list_known_names():
    from wattlas.errors import WattlasError

    with pytest.raises(WattlasError, match="H100-SXM"):
        get_gpu("Z9000")
    with pytest.raises(WattlasError, match="no fp8 peak"):
        get_gpu("A100").peak_tflops("fp8")


def test_zeus_ingest_real_files(shared_data: Path, store_dir: Path):
    report = ingest("zeus-nsdi23", [shared_data / "zeus_nsdi23"], Store(store_dir))
    assert report.rows["training_power"] == 1609
    df = Store(store_dir).sql(
        "select gpu, min(power_limit_w) lo, max(power_limit_w) hi, count(*) n from training_power group by 1 order by 1"
    )
    assert df.rows() == [("A40", 100.0, 300.0, 453), ("P100-PCIe", 125.0, 250.0, 270),
                         ("RTX6000", 100.0, 260.0, 410), ("V100-PCIe", 100.0, 250.0, 476)]
    # The pinned hashes are those of the real files.
    src = get_source("zeus-nsdi23")
    manifest = Store(store_dir).sql("select input_name, sha256 from ingest_manifest order by 1").rows()
    assert {n: s for n, s in manifest} == {f.name: f.sha256 for f in src.files}


def test_zeus_bad_value_names_file_line_column(tmp_path: Path, store_dir: Path):
    raw = tmp_path / "summary_power_a40.csv"
    raw.write_text(ZEUS_HEADER + "cifar100,shufflenetv2,1024,adadelta,100,27.1,106.8\n"
                   "cifar100,shufflenetv2,1024,adadelta,125,sixteen,118.9\n")
    with pytest.raises(InputFormatError) as e:
        ingest("zeus-nsdi23", [raw], Store(store_dir))
    assert (e.value.file, e.value.line, e.value.column) == ("summary_power_a40.csv", 3, "time_per_epoch")
    assert Store(store_dir).sql("select count(*) from training_power").item() == 0


def test_vidur_ingest_reconstructs_gemm_shapes(shared_data: Path, tmp_path: Path, store_dir: Path):
    # Two real files, copied under their Vidur path (GPU and model come from it).
    for rel in ("a100/meta-llama/Llama-2-7b-hf/mlp.csv", "a40/microsoft/phi-2/mlp.csv"):
        dest = tmp_path / "vidur" / rel
        dest.parent.mkdir(parents=True)
        shutil.copy(shared_data / "vidur_profiling" / rel, dest)
    report = ingest("vidur-profiling", [tmp_path / "vidur"], Store(store_dir))
    assert report.rows["ingest_manifest"] == 2
    st = Store(store_dir)
    keys = st.sql("select input_name from ingest_manifest order by 1")["input_name"].to_list()
    assert keys == ["a100:meta-llama:Llama-2-7b-hf:mlp.csv", "a40:microsoft:phi-2:mlp.csv"]
    shapes = st.sql("""select op, tensor_parallel, any_value(k) k, any_value(n) n from operator_times
                       where model = 'meta-llama/Llama-2-7b-hf' and is_gemm group by 1, 2 order by 1, 2""")
    got = {(op, t): (k, n) for op, t, k, n in shapes.rows()}
    # h=4096, f=11008, 32 heads of 128, no GQA; shards split N (column-parallel) or K (row-parallel).
    assert got[("attn_pre_proj", 1)] == (4096, 3 * 4096)
    assert got[("attn_pre_proj", 2)] == (4096, 3 * 4096 // 2)
    assert got[("attn_post_proj", 4)] == (1024, 4096)
    assert got[("mlp_up_proj", 1)] == (4096, 2 * 11008)
    assert got[("mlp_down_proj", 8)] == (11008 // 8, 4096)
    phi = st.sql("select any_value(n) from operator_times where op = 'mlp_up_proj' and gpu = 'A40'").item()
    assert phi == 10240  # phi-2's MLP is not gated: up_proj writes f, not 2f
    # Times are converted from ms and M equals the token count.
    row = st.sql("""select num_tokens, m, time_median_s from operator_times where gpu = 'A100-SXM4-80GB'
                    and op = 'mlp_up_proj' and tensor_parallel = 1 and num_tokens = 4096 limit 1""").row(0)
    assert row[0] == row[1] == 4096 and 1e-4 < row[2] < 1e-2
    # No post-attention norm in phi-2: the operator is absent, not zero.
    assert st.sql("select count(*) from operator_times where model = 'microsoft/phi-2' "
                  "and op = 'post_attention_layernorm'").item() == 0


def test_vidur_rejects_unknown_layout(tmp_path: Path, store_dir: Path):
    bad = tmp_path / "a100" / "org" / "m" / "mlp.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text("num_tokens,time\n1,2\n")
    with pytest.raises(InputFormatError) as e:
        ingest("vidur-profiling", [tmp_path], Store(store_dir))
    assert e.value.line == 1 and "a100:org:m:mlp.csv" in str(e.value)

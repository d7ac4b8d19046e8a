"""Source mlenergy-v3: the ML.ENERGY leaderboard JSON files -> serving_energy.

The fixtures (tests/fixtures/mlenergy/public/data) are hand-written in the repository's exact
layout: index.json and three model files, a dense LLM (3 configurations, no nickname in the file:
the index gives it), an MoE (2, one expert-parallel) and a text-to-image model (2). Their figures
are made up but keep the published relations (energy per token = power / throughput, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.errors import InputFormatError, ReleaseError
from wattlas.ingest import ingest, registry
from wattlas.ingest.sources import mlenergy
from wattlas.store import Store

from .conftest import FIXTURES, ROOT

DATA = FIXTURES / "mlenergy" / "public" / "data"
LLAMA = "models/meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
QWEN = "models/Qwen__Qwen3-30B-A3B-Instruct-2507__lm-arena-chat.json"
FLUX = "models/black-forest-labs__FLUX.1-dev__text-to-image.json"
FILES = ("index.json", LLAMA, QWEN, FLUX)


def _copy_fixtures(dest: Path, *, flat: bool = False) -> Path:
    for name in FILES:
        target = dest / (Path(name).name if flat else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / name, target)
    return dest


def _pinned(name: str) -> tuple[int, str]:
    data = (DATA / name).read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _point_registry_at(monkeypatch, base: str) -> None:
    """The registry entry of mlenergy-v3 with the fixtures' sizes and hashes, files under ``base``."""
    models = {Path(n).stem: _pinned(n) for n in FILES[1:]}
    files = mlenergy.source_files(base, _pinned("index.json"), models)
    real = registry.sources()
    monkeypatch.setattr(registry, "sources", lambda: [
        dataclasses.replace(s, files=files) if s.id == "mlenergy-v3" else s for s in real])


def _rows(store: Path) -> list[dict]:
    return Store(store).sql("select * from serving_energy order by model_id, configuration").to_dicts()


def test_ingest_downloads_from_a_local_server(http_root, tmp_path, monkeypatch, capsys):
    root, base = http_root
    _copy_fixtures(root / "pinned")
    _point_registry_at(monkeypatch, f"{base}/pinned")
    store = tmp_path / "store"
    assert main(["ingest", "mlenergy-v3", "--store", str(store)]) == 0, capsys.readouterr().err
    assert "serving_energy: 7 rows written" in capsys.readouterr().err
    # Files keep the repository's folders in the cache.
    assert (store / "cache" / "mlenergy-v3" / LLAMA).is_file()
    rows = _rows(store)
    assert [(r["model_id"].split("/")[1], r["configuration"]) for r in rows] == [
        ("Qwen3-30B-A3B-Instruct-2507", 0), ("Qwen3-30B-A3B-Instruct-2507", 1), ("FLUX.1-dev", 0),
        ("FLUX.1-dev", 1), ("Llama-3.1-8B-Instruct", 0), ("Llama-3.1-8B-Instruct", 1), ("Llama-3.1-8B-Instruct", 2),
    ]
    moe, _, image, _, dense, _, tp2 = rows
    # The dense file has no nickname: the index gives it; units are converted (ms -> s).
    assert dense["nickname"] == "Llama 3.1 8B" and dense["architecture_family"] == "llm"
    assert dense["architecture"] == "Dense Transformer" and dense["gpu"] == "H100-SXM" and dense["gpu_label"] == "H100"
    assert dense["median_itl_s"] == pytest.approx(0.0108) and dense["p99_itl_s"] == pytest.approx(0.027)
    assert dense["energy_per_token_j"] == pytest.approx(420.0 / 700.0)
    assert dense["energy_per_request_j"] == pytest.approx(420.0 / 700.0 * 390.5)
    assert dense["avg_output_tokens"] == 390.5 and dense["max_num_seqs"] == 8 and dense["avg_batch_size"] == 7.9
    assert dense["output_length_bins"] == [2.0, 512.5, 1023.0, 1533.5, 2044.0]
    assert dense["output_length_counts"] == [300, 150, 50, 12]
    assert dense["parallel_notes"] is None and dense["batch_size"] is None and dense["ulysses_degree"] is None
    assert str(dense["last_updated"]) == "2026-02-16"
    assert (tp2["gpu"], tp2["num_gpus"], tp2["tensor_parallel"]) == ("B200", 2, 2)
    assert (moe["architecture"], moe["total_params_b"], moe["activated_params_b"]) == ("MoE", 30.0, 3.0)
    assert rows[1]["expert_parallel"] == 2 and rows[1]["parallel_notes"] == "DP for attention, EP for MLP experts"
    # Diffusion: its own figures, the text-serving ones null.
    assert image["architecture_family"] == "diffusion" and image["architecture"] is None
    assert image["energy_per_image_j"] == pytest.approx(861.0 * 7.75) and image["image_width_px"] == 1024
    assert image["energy_per_token_j"] is None and image["output_length_bins"] is None
    assert (rows[3]["ulysses_degree"], rows[3]["ring_degree"], rows[3]["batch_size"]) == (2, 1, 4)


def test_checksum_mismatch_is_refused(http_root, tmp_path, monkeypatch, capsys):
    # The fixtures served under the official names, index.json padded with JSON whitespace to the
    # pinned size (a shorter file is cut off before its hash is checked): the pinned hash refuses it.
    root, base = http_root
    served = _copy_fixtures(root / "mlenergy-v3") / "index.json"
    pinned = registry.get_source("mlenergy-v3").file("index.json")
    served.write_bytes(served.read_bytes().ljust(pinned.size_bytes, b" "))
    monkeypatch.setenv("WATTLAS_MIRROR", base)
    store = tmp_path / "store"
    assert main(["ingest", "mlenergy-v3", "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert "index.json" in err and "does not match its pinned SHA-256" in err
    assert not (store / "cache" / "mlenergy-v3" / "index.json").exists()
    assert "serving_energy" not in Store(store).catalog()["tables"]


@pytest.mark.parametrize("flat", [False, True], ids=["repo-layout", "flat"])
def test_from_a_local_copy(tmp_path, flat):
    src = _copy_fixtures(tmp_path / "copy", flat=flat)
    if not flat:  # the repository's tasks/ views repeat the configurations: not read
        (src / "tasks").mkdir()
        (src / "tasks" / "lm-arena-chat.json").write_text('{"configurations": []}')
    report = ingest("mlenergy-v3", [src], store=tmp_path / "store")
    assert report.rows == {"serving_energy": 7, "ingest_manifest": 4}
    names = Store(tmp_path / "store").sql("select input_name from ingest_manifest order by 1")["input_name"]
    assert names.to_list() == sorted(FILES)
    assert _rows(tmp_path / "store")[4]["energy_per_token_j"] == pytest.approx(0.6)


def _edit(doc: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        doc = doc[k]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()
C1 = ("configurations", 1)


@pytest.mark.parametrize(("name", "path", "value", "message"), [
    (LLAMA, (*C1, "avg_power_watts"), "high",
     f"{LLAMA}: configurations[1].avg_power_watts: expected a number, got \"high\""),
    (LLAMA, (*C1, "avg_power_watts"), -5.0, f"{LLAMA}: configurations[1].avg_power_watts: -5 is below the minimum 0"),
    (LLAMA, (*C1, "max_num_seqs"), 8.5, f"{LLAMA}: configurations[1].max_num_seqs: expected an integer, got 8.5"),
    (LLAMA, (*C1, "joules_per_prompt"), 1.0, f"{LLAMA}: configurations[1].joules_per_prompt: unknown key"),
    (LLAMA, ("tokenizer",), "x", f"{LLAMA}: tokenizer: unknown key"),
    (LLAMA, (*C1, "p95_itl_ms"), _DELETE, f"{LLAMA}: configurations[1]: missing key 'p95_itl_ms'"),
    (LLAMA, (*C1, "gpu_model"), "MI300X", f"{LLAMA}: configurations[1].gpu_model: unknown GPU 'MI300X'"),
    (LLAMA, (*C1, "parallelization", "pipeline_parallel"), 2,
     f"{LLAMA}: configurations[1].parallelization.pipeline_parallel: unknown key"),
    (LLAMA, (*C1, "output_length_distribution", "counts"), [1, 2, 3],
     f"{LLAMA}: configurations[1].output_length_distribution.counts: expected a list of 4 counts"),
    (LLAMA, ("output_length_distribution", "counts"), [1, 2, 3, 4],
     f"{LLAMA}: output_length_distribution.counts: are not the sum of the configurations' counts"),
    (QWEN, ("total_params_billions",), 31.0,
     f"{QWEN}: total_params_billions: 31.0 differs from index.json's 30.0"),
    (FLUX, ("configurations", 0, "throughput_images_per_sec"), None,
     f"{FLUX}: configurations[0].throughput_images_per_sec: expected a number, got null"),
    ("index.json", ("models", "Qwen/Qwen3-30B-A3B-Instruct-2507", "total_params_billions"), "30B",
     "index.json: models.Qwen/Qwen3-30B-A3B-Instruct-2507.total_params_billions: expected a number"),
    ("index.json", ("architectures", "audio"), ["tts"], "index.json: architectures.audio: unknown key"),
])
def test_bad_values_name_the_file_and_json_path(tmp_path, name, path, value, message):
    src = _copy_fixtures(tmp_path / "copy")
    doc = json.loads((src / name).read_text())
    _edit(doc, path, value)
    (src / name).write_text(json.dumps(doc, indent=2))
    with pytest.raises(InputFormatError) as e:
        ingest("mlenergy-v3", [src], store=tmp_path / "store")
    assert str(e.value).startswith(message), str(e.value)


def test_invalid_json_and_missing_index_leave_the_store_as_it_was(tmp_path):
    src = _copy_fixtures(tmp_path / "copy")
    store = tmp_path / "store"
    ingest("mlenergy-v3", [src], store=store)
    (src / FLUX).write_text('{\n  "model_id": "x",\n  "task": }')
    with pytest.raises(InputFormatError, match=rf"^{FLUX} line 3: not valid JSON"):
        ingest("mlenergy-v3", [src], store=store)
    (src / FLUX).unlink()
    (src / "index.json").unlink()
    with pytest.raises(InputFormatError, match="index.json is needed with the model files"):
        ingest("mlenergy-v3", [src], store=tmp_path / "other")
    assert len(_rows(store)) == 7


def test_registry_entry_and_release_refusal(tmp_path):
    from wattlas.datasets import ReleaseDefinition, build_release

    src = registry.get_source("mlenergy-v3")
    assert not src.redistributable and "no licence" in src.licence
    assert "arXiv:2505.06371" in src.citation and src.paper == "https://arxiv.org/abs/2505.06371"
    assert len(src.files) == 63 and all(f.pinned for f in src.files)
    assert src.files[0].url == (
        "https://raw.githubusercontent.com/ml-energy/leaderboard/0cd52dab897c5d91a45f4d413038f3b8b4251b0f/"
        "public/data/index.json")
    assert all(f.name.startswith("models/") and f.url.endswith("/public/data/" + f.name) for f in src.files[1:])
    store = tmp_path / "store"
    ingest("mlenergy-v3", [_copy_fixtures(tmp_path / "copy")], store=store)
    out = tmp_path / "rel"
    with pytest.raises(ReleaseError, match=r"release refused: source 'mlenergy-v3' .*does not allow"):
        build_release(ReleaseDefinition(name="serving", tables=("serving_energy",)), out, Store(store))
    assert not out.exists()


def _real_copy() -> Path:
    env = os.environ.get("WATTLAS_MLENERGY_DIR")
    path = Path(env) if env else ROOT.parent / "shared" / "data" / "mlenergy_v3"
    if not path.is_dir():
        pytest.skip(f"{path} is absent (set WATTLAS_MLENERGY_DIR to a copy of ml-energy/leaderboard's public/data)")
    return path


def test_the_real_files(tmp_path):
    """The pinned commit's files: hashes match the registry; 1,858 configurations of 62 pairs."""
    path = _real_copy()
    found = {f.name: f for f in path.rglob("*.json") if mlenergy.accepts("mlenergy-v3", f)}
    for sf in registry.get_source("mlenergy-v3").files:
        data = found[Path(sf.name).name].read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (sf.size_bytes, sf.sha256), sf.name
    ingest("mlenergy-v3", [path], store=tmp_path / "store")
    counts = Store(tmp_path / "store").sql(
        "select architecture_family as f, count(*) as n, count(distinct (model_id, task)) as pairs "
        "from serving_energy group by all order by f").rows()
    assert counts == [("diffusion", 1020, 12), ("llm", 565, 33), ("mllm", 273, 17)]
    assert sum(n for _, n, _ in counts) == 1858 and sum(p for _, _, p in counts) == 62


def test_leaderboard_gpus_have_sourced_specs():
    from wattlas.predictors.gpus import get_gpu

    for label, key in mlenergy.GPUS.items():
        assert get_gpu(label).key == key
    b200 = get_gpu("NVIDIA B200")  # the name NVML reports
    assert (b200.key, b200.mem_bw_gbs, b200.memory_gb, b200.peak_bf16_tflops, b200.peak_fp8_tflops) == (
        "B200", 8000.0, 180.0, 2250.0, 4500.0)
    assert "64 TB/s" in b200.sources["mem_bw_gbs"] and "1,440 GB" in b200.sources["memory_gb"]
    assert "with sparsity, halved to dense" in b200.sources["peak_bf16_tflops"]
    assert b200.sm_count is None and "not published" in b200.sources["sm_count"]

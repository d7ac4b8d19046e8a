"""Loading a release: `wattlas ingest release` round trips, and mlcroissant / datasets read it."""

from __future__ import annotations

import re
import shutil
import warnings

import polars as pl
import pytest

from wattlas.datasets import ReleaseDefinition, build_release, load_release, verify_release
from wattlas.errors import ReleaseVerificationError
from wattlas.ingest import ingest
from wattlas.store import Store

from .release_helpers import expected_records, fixture_store, plain, table, utc, wattlas

TABLES = ("llm_requests", "ingest_manifest")


@pytest.fixture(scope="module")
def fixture_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    store = fixture_store(root / "store")
    build_release(ReleaseDefinition(name="mix", tables=TABLES), root / "rel", store)
    return store, root / "rel"


def assert_round_trip(old: Store, new: Store, tables, where: str | None = None):
    for t in tables:
        a, b = table(old, t, where), table(new, t)
        assert a.height > 0
        # Same rows in the same order (the views list sources, then keys, then files).
        assert a.equals(b), t
        assert a.schema == b.schema
    old_cat, new_cat = old.catalog()["tables"], new.catalog()["tables"]
    for t in tables:
        sources = {s for s in new_cat[t]}
        for s in sources:
            assert set(new_cat[t][s]) <= set(old_cat[t][s])  # rows keep their source and input key
            for key, entry in new_cat[t][s].items():
                if where is None:
                    assert entry["rows"] == old_cat[t][s][key]["rows"]


def test_round_trip_keeps_sources_keys_and_rows(fixture_release, tmp_path):
    store, rel = fixture_release
    new = Store(tmp_path / "new")
    report = load_release(rel, new)
    assert report.sources == ["azure-llm-2023", "azure-llm-2023-sample", "burstgpt"]
    assert report.rows == {"llm_requests": 25, "ingest_manifest": 3}
    assert_round_trip(store, new, TABLES)
    assert new.catalog()["tables"]["llm_requests"].keys() == store.catalog()["tables"]["llm_requests"].keys()
    # Loading again replaces the same keys: nothing is duplicated.
    load_release(rel, new)
    assert_round_trip(store, new, TABLES)


def test_loading_a_filtered_release_replaces_only_its_keys(fixture_release, tmp_path):
    store, _ = fixture_release
    rel = tmp_path / "rel"
    build_release(ReleaseDefinition(name="b", tables=("llm_requests",), where="source = 'burstgpt' AND failed"),
                  rel, store)
    new = fixture_store(tmp_path / "new")
    load_release(rel, new, replace=True)  # the store's burstgpt rows were written by an ingest
    after = table(new, "llm_requests")
    assert after.filter(pl.col("source") == "burstgpt").equals(
        table(store, "llm_requests", "source = 'burstgpt' AND failed"))
    assert after.filter(pl.col("source") != "burstgpt").equals(
        table(store, "llm_requests", "source <> 'burstgpt'"))


def test_a_damaged_release_loads_nothing(fixture_release, tmp_path):
    _, rel = fixture_release
    copy = tmp_path / "rel"
    shutil.copytree(rel, copy)
    data = copy / "data/ingest_manifest.parquet"
    raw = bytearray(data.read_bytes())
    raw[-40] ^= 0x10
    data.write_bytes(bytes(raw))
    new = Store(tmp_path / "new")
    with pytest.raises(ReleaseVerificationError, match="data/ingest_manifest.parquet: changed"):
        load_release(copy, new)
    assert new.catalog()["tables"] == {}


def test_cli_ingest_release(fixture_release, tmp_path):
    store, rel = fixture_release
    new = tmp_path / "new"
    r = wattlas("ingest", "release", "--from", str(rel), "--store", str(new))
    assert r.returncode == 0, r.stderr
    assert "llm_requests: 25 rows written" in r.stderr and r.stdout == ""
    assert_round_trip(store, Store(new), TABLES)
    r = wattlas("ingest", "release", "--store", str(new))
    assert r.returncode == 1 and "needs --from DIR" in r.stderr


def mlcroissant_records(rel, record_set):
    mlc = pytest.importorskip("mlcroissant")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = mlc.Dataset(jsonld=str(rel / "croissant.json"))
        return [{k: plain(v) for k, v in r.items()} for r in ds.records(record_set)]


def test_mlcroissant_loads_the_same_rows(fixture_release):
    store, rel = fixture_release
    for t in TABLES:
        assert mlcroissant_records(rel, t) == expected_records(table(store, t), t)


def hf_load(rel, config, tmp_path):
    datasets = pytest.importorskip("datasets")
    if not hasattr(datasets, "load_dataset"):  # only the repository's datasets/ folder was found
        pytest.skip("Hugging Face datasets is not installed")
    datasets.disable_progress_bars()
    by_config = datasets.load_dataset(str(rel), config, split="train", cache_dir=str(tmp_path / "hf"))
    by_files = datasets.load_dataset("parquet", data_files=str(rel / "data" / f"{config}.parquet"),
                                     split="train", cache_dir=str(tmp_path / "hf"))
    return [pl.from_arrow(d.data.table) for d in (by_config, by_files)]


def test_hugging_face_datasets_loads_the_same_rows(fixture_release, tmp_path):
    store, rel = fixture_release
    for t in TABLES:
        for df in hf_load(rel, t, tmp_path):
            assert df.equals(utc(table(store, t))), t


@pytest.mark.shared
def test_azure_llm_2023_release(shared_data, tmp_path):
    """Done-when: the Azure LLM 2023 trace validates, loads with mlcroissant and datasets, round-trips."""
    store = Store(tmp_path / "store")
    ingest("azure-llm-2023", [shared_data / "azure_llm_2023"], store)
    rel = tmp_path / "azure-llm-2023"
    d = ReleaseDefinition(name="azure-llm-2023", tables=("llm_requests",), where="source = 'azure-llm-2023'")
    build_release(d, rel, store)
    report = verify_release(rel)
    assert report.croissant_validated and report.tables == {"llm_requests": 28_185}

    expected = table(store, "llm_requests")
    records = mlcroissant_records(rel, "llm_requests")
    assert len(records) == 28_185
    assert records == expected_records(expected, "llm_requests")
    for df in hf_load(rel, "llm_requests", tmp_path):
        assert df.equals(utc(expected))

    new = Store(tmp_path / "new")
    load_release(rel, new)
    assert_round_trip(store, new, ("llm_requests",))
    assert new.input_keys("azure-llm-2023") == {"AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_conv.csv"}


def test_every_column_type_round_trips(tmp_path, monkeypatch):
    """A table with every schema type (dates, float32, zoned timestamps) through all loaders."""
    from datetime import UTC, date, datetime

    import pyarrow as pa

    from wattlas.schemas import TABLES, TYPE_NAMES, Column, TableSchema, arrow_type

    cols = tuple(Column("c_" + re.sub(r"\W+", "_", t).strip("_"), t, f"a {t} column",
                        required=(t == "int64")) for t in TYPE_NAMES)
    schema = TableSchema("all_types", "Every column type.", cols)
    monkeypatch.setitem(TABLES, "all_types", schema)
    values = {
        "string": ["a", None, "ü"], "bool": [True, None, False], "int32": [1, None, -3], "int64": [1, 2, 3],
        "float32": [0.5, None, -1.25], "float64": [1e-9, None, 3.0],
        "timestamp[us]": [datetime(2024, 1, 1, 0, 0, 0, 1), None, datetime(1999, 12, 31)],
        "timestamp[us, UTC]": [datetime(2024, 1, 1, tzinfo=UTC), None, datetime(2000, 2, 29, 12, tzinfo=UTC)],
        "date": [date(2024, 1, 1), None, date(1970, 1, 1)],
        "list<string>": [["r1-n1", "r2-n2"], None, []],
        "list<float64>": [[0.0, 2.5], None, []], "list<int64>": [[3, 0], None, []],
    }
    data = pa.table({c.name: pa.array(values[c.type], arrow_type(c.type)) for c in cols})
    store = Store(tmp_path / "store")
    with store.transaction("azure-llm-2023") as tx:
        tx.put("all_types", "k1", data)
    rel = tmp_path / "rel"
    build_release(ReleaseDefinition(name="types", tables=("all_types",)), rel, store)
    pytest.importorskip("mlcroissant")
    assert verify_release(rel).croissant_validated
    expected = table(store, "all_types")
    assert mlcroissant_records(rel, "all_types") == expected_records(expected, "all_types")
    for df in hf_load(rel, "all_types", tmp_path):
        assert df.equals(utc(expected))
    new = Store(tmp_path / "new")
    load_release(rel, new)
    assert table(new, "all_types").equals(expected)

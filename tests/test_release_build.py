"""`wattlas release build`: files, Croissant metadata, dataset card, checksums, licence rules."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wattlas.datasets import ReleaseDefinition, SourceTerms, build_release, load_definition
from wattlas.datasets.build import FOOTER_KEY, ROW_GROUP_MAX_ROWS
from wattlas.datasets.definitions import find_definition
from wattlas.errors import ReleaseError
from wattlas.ingest import registry

from .conftest import ROOT
from .release_helpers import fixture_store, table, wattlas

TABLES = ("llm_requests", "ingest_manifest")


@pytest.fixture
def store(tmp_path):
    return fixture_store(tmp_path / "store")


def test_build_writes_a_complete_release(store, tmp_path):
    d = ReleaseDefinition(name="mix", tables=TABLES, version="2.1.0", where="source <> 'burstgpt'",
                          keywords=("llm",), url="https://example.org/mix", caveats=("Hand-made fixture.",))
    out = tmp_path / "rel"
    report = build_release(d, out, store)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "README.md", "SHA256SUMS", "croissant.json", "data/ingest_manifest.parquet", "data/llm_requests.parquet",
    ]
    assert not list(tmp_path.glob(".rel.*")), "the temporary build directory was left behind"
    # SHA256SUMS covers every other file, in `sha256sum -c` format.
    sums = dict(reversed(line.split("  ", 1)) for line in (out / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"README.md", "croissant.json", "data/ingest_manifest.parquet", "data/llm_requests.parquet"}
    for rel, sha in sums.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    # Parquet: source first, declared types and nullability, zstd, provenance footer.
    f = pq.ParquetFile(out / "data/llm_requests.parquet")
    assert f.schema_arrow.names[0] == "source"
    assert not f.schema_arrow.field("input_tokens").nullable and f.schema_arrow.field("model").nullable
    assert f.metadata.row_group(0).column(1).compression == "ZSTD"
    footer = json.loads(f.metadata.metadata[FOOTER_KEY.encode()])
    assert footer["segments"] == [
        {"source": "azure-llm-2023", "key": "AzureLLMInferenceTrace_code.csv", "rows": 7},
        {"source": "azure-llm-2023", "key": "AzureLLMInferenceTrace_conv.csv", "rows": 5},
        {"source": "azure-llm-2023-sample", "key": "AzureLLMInferenceTrace_code.csv", "rows": 4},
    ]
    assert [t.rows for t in report.tables] == [16, 2]
    assert report.tables[0].sources == ["azure-llm-2023", "azure-llm-2023-sample"]
    rows = pq.read_table(out / "data/llm_requests.parquet").to_pylist()
    assert rows[0]["source"] == "azure-llm-2023" and rows[-1]["source"] == "azure-llm-2023-sample"


def test_croissant_describes_files_and_schema(store, tmp_path):
    d = ReleaseDefinition(name="mix", tables=TABLES, where="source <> 'burstgpt'", citation="Me. Mix. 2025.")
    out = tmp_path / "rel"
    build_release(d, out, store)
    doc = json.loads((out / "croissant.json").read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert doc["@type"] == "sc:Dataset" and doc["name"] == "mix" and doc["version"] == "1.0.0"
    assert doc["license"] == ["https://spdx.org/licenses/CC-BY-4.0.html", "https://spdx.org/licenses/CC0-1.0.html"]
    assert doc["citeAs"].startswith("Me. Mix. 2025.\nazure-llm-2023: Patel")
    dist = {x["@id"]: x for x in doc["distribution"]}
    data = (out / "data/llm_requests.parquet").read_bytes()
    assert dist["data/llm_requests.parquet"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert dist["data/llm_requests.parquet"]["contentSize"] == f"{len(data)} B"
    assert dist["data/llm_requests.parquet"]["encodingFormat"] == "application/x-parquet"
    rs = {r["@id"]: r for r in doc["recordSet"]}
    assert set(rs) == set(TABLES)
    fields = {f["name"]: f for f in rs["llm_requests"]["field"]}
    assert list(fields)[0] == "source"
    assert fields["arrival_s"]["dataType"] == "sc:Float"
    assert fields["arrival_s"]["description"].endswith("Unit: s. Never null.")
    assert fields["input_tokens"]["dataType"] == "sc:Integer"
    assert fields["failed"]["dataType"] == "sc:Boolean"
    assert fields["arrival_time"]["dataType"] == "sc:DateTime"
    assert fields["trace"]["source"] == {
        "fileObject": {"@id": "data/llm_requests.parquet"}, "extract": {"column": "trace"},
    }
    from wattlas.schemas import get_table

    assert fields["elapsed_s"]["description"].startswith(get_table("llm_requests").column("elapsed_s").description)


def test_card_front_matter_licences_and_caveats(store, tmp_path):
    d = ReleaseDefinition(name="mix", tables=TABLES, title="Mixed traces", caveats=("Hand-made fixture.",))
    out = tmp_path / "rel"
    build_release(d, out, store)
    card = (out / "README.md").read_text()
    front = card.split("\n---\n", 1)[0]
    assert 'pretty_name: "Mixed traces"' in front
    assert "license:\n- cc-by-4.0\n- cc0-1.0" in front
    assert ('- config_name: "llm_requests"\n  data_files:\n  - split: train\n'
            '    path: "data/llm_requests.parquet"\n  default: true') in front
    assert '- config_name: "ingest_manifest"' in front
    for sid in ("azure-llm-2023", "azure-llm-2023-sample", "burstgpt"):
        src = registry.get_source(sid)
        assert f"### `{sid}`: {src.title}" in card
        assert src.citation in card
    assert "Hand-made fixture." in card
    assert "Rows of `azure-llm-2023-sample` are synthetic" in card
    assert "| `arrival_s` | DOUBLE | s |" in card


def test_refuses_a_source_that_forbids_redistribution(store, tmp_path, monkeypatch):
    real = registry.sources()
    closed = [dataclasses.replace(s, redistributable=False, licence="Proprietary", notes=("Terms: no copies.",))
              if s.id == "burstgpt" else s for s in real]
    monkeypatch.setattr(registry, "sources", lambda: closed)
    out = tmp_path / "rel"
    with pytest.raises(ReleaseError, match=r"release refused: source 'burstgpt' .* Proprietary.*no copies") as e:
        build_release(ReleaseDefinition(name="mix", tables=("llm_requests",)), out, store)
    assert "source <> 'burstgpt'" in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".rel*"))
    # Leaving those rows out is fine.
    build_release(ReleaseDefinition(name="mix", tables=("llm_requests",), where="source <> 'burstgpt'"), out, store)


def test_unregistered_source_needs_terms_in_the_definition(tmp_path):
    store = fixture_store(tmp_path / "store", extra_source="lab-gpus")
    d = ReleaseDefinition(name="lab", tables=("llm_requests",), where="source = 'lab-gpus'")
    with pytest.raises(ReleaseError, match=r"\['lab-gpus'\].*registry does not know.*\[sources.lab-gpus\]"):
        build_release(d, tmp_path / "rel", store)
    terms = SourceTerms(licence="CC-BY-4.0", citation="Doe. Lab GPU runs. 2025.", title="Lab GPU runs")
    build_release(dataclasses.replace(d, sources={"lab-gpus": terms}), tmp_path / "rel", store)
    card = (tmp_path / "rel/README.md").read_text()
    assert "Doe. Lab GPU runs. 2025." in card and "stated by the release author" in card
    # A registered source's terms come from the registry only.
    d2 = ReleaseDefinition(name="x", tables=("llm_requests",), sources={"burstgpt": terms})
    with pytest.raises(ReleaseError, match="registry, whose licence and citation are authoritative"):
        build_release(d2, tmp_path / "rel2", store)


def test_selection_errors_are_clear(store, tmp_path):
    with pytest.raises(ReleaseError, match="'llm_requests' has no rows matching"):
        build_release(ReleaseDefinition(name="x", tables=("llm_requests",), where="source = 'nope'"),
                      tmp_path / "a", store)
    with pytest.raises(ReleaseError, match="does not apply to table 'ingest_manifest'.*input_tokens"):
        build_release(ReleaseDefinition(name="x", tables=TABLES, where="input_tokens > 0"), tmp_path / "b", store)
    with pytest.raises(ReleaseError, match="unknown table"):
        build_release(ReleaseDefinition(name="x", tables=("nope",)), tmp_path / "c", store)
    with pytest.raises(ReleaseError, match="MAJOR.MINOR.PATCH"):
        build_release(ReleaseDefinition(name="x", tables=TABLES, version="1.0"), tmp_path / "d", store)
    with pytest.raises(ReleaseError, match="holds no tables yet"):
        build_release(ReleaseDefinition(name="x", tables=TABLES), tmp_path / "e", tmp_path / "no-store")
    assert not any(tmp_path.glob("[abcde]")) and not (tmp_path / "no-store").exists()


def test_per_table_filters_and_force(store, tmp_path):
    d = ReleaseDefinition(name="x", tables=TABLES, where="source = 'burstgpt'",
                          filters={"llm_requests": "failed"})
    out = tmp_path / "rel"
    report = build_release(d, out, store)
    assert report.tables[0].rows == len(table(store, "llm_requests", "source = 'burstgpt' and failed"))
    with pytest.raises(ReleaseError, match="not empty.*--force"):
        build_release(d, out, store)
    build_release(d.with_overrides(version="1.0.1"), out, store, force=True)
    assert json.loads((out / "croissant.json").read_text())["version"] == "1.0.1"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="replaces only an earlier release"):
        build_release(d, tmp_path / "other", store, force=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_row_groups_are_bounded(store, tmp_path):
    report = build_release(ReleaseDefinition(name="x", tables=("llm_requests",)), tmp_path / "rel", store)
    t = report.tables[0]
    assert 0 < t.rows_per_group <= ROW_GROUP_MAX_ROWS
    f = pq.ParquetFile(tmp_path / "rel" / t.file)
    assert f.metadata.num_row_groups == 1  # 25 rows
    assert f.metadata.row_group(0).column(0).statistics.has_min_max


def test_definition_files(tmp_path):
    p = tmp_path / "demo" / "release.toml"
    p.parent.mkdir()
    p.write_text(
        'name = "demo"\nversion = "0.2.0"\ntables = ["llm_requests"]\nwhere = "source = \'x\'"\n'
        '[filters]\nllm_requests = "input_tokens > 0"\n'
        '[sources.x]\nlicence = "MIT"\ncitation = "X et al."\n'
    )
    d = load_definition(p.parent)
    assert (d.version, d.sources["x"].licence) == ("0.2.0", "MIT")
    assert d.filter_for("llm_requests") == "(source = 'x') AND (input_tokens > 0)"
    assert find_definition("demo", [tmp_path]) == p
    p.write_text('name = "demo"\ntables = ["llm_requests"]\nlicense = "MIT"\n')
    with pytest.raises(ReleaseError, match=r"release.toml: unknown key 'license' \(spelled 'licence'\)"):
        load_definition(p)
    p.write_text('name = "demo"\ntables = ["llm_requests"]\n[sources.x]\nlicence = "MIT"\n')
    with pytest.raises(ReleaseError, match=r"\[sources.x\] must state citation"):
        load_definition(p)
    p.write_text('name = "demo"\ntables = "llm_requests"\n')
    with pytest.raises(ReleaseError, match="'tables' must be a list"):
        load_definition(p)
    p.write_text("name = \n")
    with pytest.raises(ReleaseError, match="not valid TOML"):
        load_definition(p)


def test_repository_definitions_are_valid():
    defs = sorted((ROOT / "datasets").glob("*/release.toml"))
    assert defs, "datasets/ holds no release definitions"
    for path in defs:
        d = load_definition(path)
        assert d.name == path.parent.name
        assert d.description and d.tables


def test_cli_build_uses_the_repository_definition(tmp_path, shared_data):
    store = tmp_path / "store"
    r = wattlas("ingest", "azure-llm-2023", "--from", str(shared_data / "azure_llm_2023"), "--store", str(store))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "rel"
    r = wattlas("release", "build", "azure-llm-2023", "--store", str(store), "-o", str(out), "--format", "json",
                cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "definition: " in r.stderr and "azure-llm-2023 (CC-BY-4.0)" in r.stderr
    files = {row["file"]: row for row in json.loads(r.stdout)}
    assert files["data/llm_requests.parquet"]["rows"] == 28_185
    definition = load_definition(ROOT / "datasets/azure-llm-2023")
    doc = json.loads((out / "croissant.json").read_text())
    assert doc["version"] == definition.version and doc["description"] == definition.description
    # Flags override the definition; a bad flag is one clear line on stderr.
    r = wattlas("release", "build", "azure-llm-2023", "--store", str(store), "-o", str(tmp_path / "r2"),
                "--tables", "nope", cwd=ROOT)
    assert r.returncode == 1 and "unknown table(s) ['nope']" in r.stderr and "Traceback" not in r.stderr
    assert Path(tmp_path / "r2").exists() is False


def test_builds_are_reproducible(store, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    d = ReleaseDefinition(name="mix", tables=TABLES)
    build_release(d, tmp_path / "a", store)
    build_release(d, tmp_path / "b", store)
    assert (tmp_path / "a/SHA256SUMS").read_text() == (tmp_path / "b/SHA256SUMS").read_text()
    assert json.loads((tmp_path / "a/croissant.json").read_text())["datePublished"] == "2023-11-14"


def test_every_column_type_has_a_croissant_type():
    from wattlas.datasets.croissant import DATA_TYPES
    from wattlas.schemas import TYPE_NAMES

    assert set(DATA_TYPES) == set(TYPE_NAMES)


def test_cli_build_csv_output_is_pure(store, tmp_path):
    out = tmp_path / "rel"
    r = wattlas("release", "build", "burst", "--tables", "llm_requests", "--where", "source = 'burstgpt'",
                "--version", "0.3.1", "--store", str(store.root), "-o", str(out), "--format", "csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "file,bytes,sha256,rows"
    assert [line.split(",")[0] for line in lines[1:]] == ["README.md", "croissant.json", "data/llm_requests.parquet"]
    assert lines[-1].endswith(",9")
    assert "burstgpt (CC-BY-4.0)" in r.stderr
    assert json.loads((out / "croissant.json").read_text())["version"] == "0.3.1"

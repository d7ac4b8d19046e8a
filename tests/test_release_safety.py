"""Release loads touch only the rows they carry, and only files their checksums cover (issue 18).

Item 1: a release that carries some tables of a key replaces that key in those tables only, and
refuses (without ``--replace``) to replace rows that an ingest wrote. Item 13: every file a
release's metadata references is a checksummed file inside the release directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from wattlas.cli import main
from wattlas.datasets import ReleaseDefinition, build_release, load_release, verify_release
from wattlas.errors import ReleaseError, ReleaseVerificationError
from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import tar_xz
from .llm_fixtures import AZURE_2023_CODE, write
from .release_helpers import fixture_store, llm_rows, table
from .test_ingest_azure_functions_2019 import day_files

KEY_2019 = "azurefunctions-dataset2019"
COUNTS_2019 = {"app_memory": 1, "function_durations": 3, "function_invocations": 6, "functions": 3,
               "ingest_manifest": 4}


def tree(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, hidden ones too: equal trees prove a store untouched."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def counts(store: Store) -> dict[str, int]:
    return {t.name: t.rows for t in store.tables() if t.rows}


def refused(rel: Path, store: Store, match: str, **kw) -> str:
    """Load ``rel`` expecting a refusal that leaves every byte of the store as it was."""
    before = tree(store.root)
    with pytest.raises(ReleaseError, match=match) as e:
        load_release(rel, store, **kw)
    assert tree(store.root) == before
    return str(e.value)


# ------------------------------------------------------------------ item 1: partial releases
@pytest.fixture(scope="module")
def functions_2019(tmp_path_factory) -> tuple[Path, Path]:
    """(store ingested from the Azure Functions 2019 archive, release of its function_durations only)."""
    root = tmp_path_factory.mktemp("af2019")
    archive = tar_xz(root / f"{KEY_2019}.tar.xz", day_files())
    store = Store(root / "store")
    ingest("azure-functions-2019", [archive], store, workers=1)
    assert counts(store) == COUNTS_2019
    build_release(ReleaseDefinition(name="durations", tables=("function_durations",)), root / "rel", store)
    return store.root, root / "rel"


@pytest.fixture
def store_2019(functions_2019, tmp_path) -> Store:
    shutil.copytree(functions_2019[0], tmp_path / "store")
    return Store(tmp_path / "store")


def test_partial_release_over_ingested_rows_is_refused_without_replace(functions_2019, store_2019):
    msg = refused(functions_2019[1], store_2019, "--replace")
    assert f"function_durations azure-functions-2019/{KEY_2019}: 3 rows in the store, 3 in the release" in msg
    assert "function_invocations" not in msg  # only the table the release carries is replaced


def test_partial_release_replaces_only_the_tables_it_carries(functions_2019, store_2019):
    before = {t: table(store_2019, t) for t in COUNTS_2019}
    cat = store_2019.catalog()["tables"]
    report = load_release(functions_2019[1], store_2019, replace=True)
    assert report.rows == {"function_durations": 3}
    assert [(r.table, r.key, r.store_rows, r.release_rows, r.written_by) for r in report.replaced] == [
        ("function_durations", KEY_2019, 3, 3, None)]
    assert counts(store_2019) == COUNTS_2019  # was 3 / 0 / 0 / 0 / 0 for the other tables
    for t, rows in before.items():
        assert table(store_2019, t).equals(rows), t
    after = store_2019.catalog()["tables"]
    assert {t: after[t] for t in after if t != "function_durations"} == {
        t: cat[t] for t in cat if t != "function_durations"}  # the same committed files, untouched


def test_reloading_a_release_over_its_own_rows_needs_no_replace(functions_2019, store_2019):
    load_release(functions_2019[1], store_2019, replace=True)
    report = load_release(functions_2019[1], store_2019)  # now replaces rows a release load wrote
    assert [(r.key, r.written_by) for r in report.replaced] == [(KEY_2019, "durations 1.0.0")]
    assert counts(store_2019) == COUNTS_2019


def test_llm_release_loaded_back_keeps_the_ingest_manifest(tmp_path):
    store = Store(tmp_path / "store")
    ingest("azure-llm-2023", [write(tmp_path / "raw", "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)], store)
    build_release(ReleaseDefinition(name="llm", tables=("llm_requests",)), tmp_path / "rel", store)
    manifest, requests = table(store, "ingest_manifest"), table(store, "llm_requests")
    msg = refused(tmp_path / "rel", store, "written by an ingest")
    assert "llm_requests azure-llm-2023/AzureLLMInferenceTrace_code.csv: 4 rows in the store, 4 in" in msg
    load_release(tmp_path / "rel", store, replace=True)
    assert table(store, "ingest_manifest").equals(manifest) and manifest.height == 1
    assert table(store, "llm_requests").equals(requests)


def burstgpt_csv(rows: int) -> bytes:
    lines = [f"{i},ChatGPT,{100 + i},{i % 50},{100 + i + i % 50},Conversation log" for i in range(rows)]
    return ("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" + "\n".join(lines)
            + "\n").encode()


@pytest.fixture
def forged(tmp_path) -> tuple[Store, Path]:
    """(a store that ingested a 1,000-row BurstGPT_1.csv, a 1-row release claiming that key)."""
    store = Store(tmp_path / "store")
    ingest("burstgpt", [write(tmp_path / "raw", "BurstGPT_1.csv", burstgpt_csv(1000))], store)
    other = Store(tmp_path / "forger")
    with other.transaction("burstgpt") as tx:
        tx.put("llm_requests", "BurstGPT_1.csv", llm_rows("BurstGPT_1", 1, burst=True))
    with other.transaction("azure-llm-2023") as tx:  # a key the victim does not have
        tx.put("llm_requests", "AzureLLMInferenceTrace_conv.csv", llm_rows("conv", 2))
    build_release(ReleaseDefinition(name="forged", tables=("llm_requests",)), tmp_path / "rel", other)
    return store, tmp_path / "rel"


def test_forged_release_cannot_silently_replace_ingested_rows(forged):
    store, rel = forged
    msg = refused(rel, store, "written by an ingest")
    assert "llm_requests burstgpt/BurstGPT_1.csv: 1,000 rows in the store, 1 in the release" in msg
    assert store.input_keys("azure-llm-2023") == set()  # the harmless source was not loaded either
    assert table(store, "llm_requests").height == 1000


def test_cli_ingest_release_replace(forged, capsys):
    store, rel = forged
    args = ["ingest", "release", "--from", str(rel), "--store", str(store.root)]
    before = tree(store.root)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "BurstGPT_1.csv: 1,000 rows in the store, 1 in the release" in err and "--replace" in err
    assert tree(store.root) == before
    assert main([*args, "--replace"]) == 0
    err = capsys.readouterr().err
    assert "replaced llm_requests burstgpt/BurstGPT_1.csv: 1,000 rows (written by an ingest)" in err
    assert counts(store) == {"llm_requests": 3, "ingest_manifest": 1}
    assert main(["ingest", "burstgpt", "--replace", "--store", str(store.root)]) == 1
    assert "--replace applies only to `wattlas ingest release`" in capsys.readouterr().err


# ------------------------------------------------------------------ item 13: files outside a release
@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outside")
    build_release(ReleaseDefinition(name="mix", tables=("llm_requests",)), root / "rel",
                  fixture_store(root / "store"))
    return root / "rel"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inflated(src: Path, dest: Path) -> Path:
    """``src`` with every input_tokens value times 1000 and the same footer: rows no checksum covers."""
    t = pq.read_table(src)
    i = t.schema.get_field_index("input_tokens")
    t = t.set_column(i, t.schema.field(i), pc.multiply(t["input_tokens"], pa.scalar(1000, pa.int64())))
    footer = {k: v for k, v in pq.read_metadata(src).metadata.items() if k != b"ARROW:schema"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t.replace_schema_metadata(footer), dest)  # written as the file's key-value metadata
    return dest


def edit_distribution(rel: Path, url: str, fmt: str, target: Path, *, extra: bool = False) -> None:
    """Point the data file's FileObject (or, ``extra``, a new one) at ``url``, with ``target``'s checksum."""
    doc = json.loads((rel / "croissant.json").read_text())
    entry = dict(doc["distribution"][0]) if extra else doc["distribution"][0]
    entry.update({"contentUrl": url, "encodingFormat": fmt, "sha256": sha(target),
                  "contentSize": f"{target.stat().st_size} B"})
    if extra:
        entry["@id"] = entry["name"] = "extra.csv"
        doc["distribution"].append(entry)
    (rel / "croissant.json").write_text(json.dumps(doc, indent=2))
    resum(rel)


def resum(rel: Path) -> None:
    """Rewrite SHA256SUMS for the files it lists, as someone who edits a release would."""
    names = [line.split("  ", 1)[1] for line in (rel / "SHA256SUMS").read_text().splitlines()]
    (rel / "SHA256SUMS").write_text("".join(f"{sha(rel / n)}  {n}\n" for n in names))


CSV = "text/csv"
PARQUET = "application/x-parquet"
DATA = "data/llm_requests.parquet"


def hostile(kind: str, rel: Path, outside: Path) -> str:
    """Edit the release copy ``rel`` into a hostile variant; return the entry verify must name."""
    if kind in ("absolute", "absolute-csv"):
        edit_distribution(rel, str(outside), CSV if kind.endswith("csv") else PARQUET, outside)
        return str(outside)
    if kind in ("dotdot", "dotdot-csv"):
        edit_distribution(rel, "../other/data.parquet", CSV if kind.endswith("csv") else PARQUET, outside)
        return "../other/data.parquet"
    if kind in ("https", "file-url"):
        url = "https://example.invalid/data.parquet" if kind == "https" else outside.as_uri()
        edit_distribution(rel, url, CSV, outside)
        return url
    if kind == "extra-csv-outside":  # a second FileObject no record set reads, still referenced
        edit_distribution(rel, str(outside), CSV, outside, extra=True)
        return str(outside)
    if kind == "unlisted-inside":  # inside the directory but in no SHA256SUMS line
        shutil.copyfile(outside, rel / "data/extra.parquet")
        edit_distribution(rel, "data/extra.parquet", CSV, outside)
        return "data/extra.parquet"
    assert kind == "symlink"
    (rel / DATA).unlink()
    os.symlink(outside, rel / DATA)
    edit_distribution(rel, DATA, PARQUET, outside)
    return DATA


KINDS = ["absolute", "absolute-csv", "dotdot", "dotdot-csv", "https", "file-url", "extra-csv-outside",
         "unlisted-inside", "symlink"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_release_referencing_files_outside_itself_is_refused(kind, built, tmp_path):
    rel = tmp_path / "rel"
    shutil.copytree(built, rel)
    outside = inflated(built / DATA, tmp_path / "other" / "data.parquet")
    entry = hostile(kind, rel, outside)
    with pytest.raises(ReleaseVerificationError) as e:
        verify_release(rel, croissant=False)  # the checks must not rely on mlcroissant
    named = [p for p in e.value.problems if entry in p]
    assert named and all("missing" not in p for p in named), e.value.problems
    store = fixture_store(tmp_path / "store")
    tokens = store.sql("select sum(input_tokens) from llm_requests").item()
    refused(rel, store, "failed verification", replace=True)
    assert store.sql("select sum(input_tokens) from llm_requests").item() == tokens


def test_cli_verify_names_the_outside_file(built, tmp_path, capsys):
    pytest.importorskip("mlcroissant")
    rel = tmp_path / "rel"
    shutil.copytree(built, rel)
    outside = inflated(built / DATA, tmp_path / "other" / "data.parquet")
    edit_distribution(rel, str(outside), CSV, outside)
    assert main(["release", "verify", str(rel)]) == 1
    assert f"points outside the release: {outside} is an absolute path" in capsys.readouterr().err

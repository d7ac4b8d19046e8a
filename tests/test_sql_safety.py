"""Issue 18, items 2 and 3: user SQL cannot write the store or the filesystem, load code, or read
outside the store; a release filter is one condition, never a second statement."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import wattlas
from wattlas.datasets import ReleaseDefinition, build_release, load_definition
from wattlas.errors import QueryRefusedError, ReleaseError
from wattlas.ingest import ingest
from wattlas.sqlguard import guard_connection
from wattlas.store import Store

from .llm_fixtures import AZURE_2023_CODE, write
from .release_helpers import fixture_store


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # Inherits PYTHONPATH, so the subprocess runs this tree's wattlas.
    return subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True, text=True, timeout=120)


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (the store must be byte-identical after a refusal)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def ingested(tmp_path: Path) -> Store:
    write(tmp_path / "raw", "AzureLLMInferenceTrace_code.csv", AZURE_2023_CODE)
    store = Store(tmp_path / "store")
    ingest("azure-llm-2023", [tmp_path / "raw"], store, workers=1)
    return store


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text("token\nhunter2-secret\n")
    return path


# ------------------------------------------------------------------ item 2: wattlas sql
def attacks(store: Path, tmp: Path, secret: Path) -> dict[str, tuple[str, str]]:
    """Query -> (its name in the refusal, what the refusal says); each worked before the fix."""
    copy_parquet = f"COPY (SELECT * FROM llm_requests) TO '{store}/tables/llm_requests/source=evil/x.parquet'"
    return {
        "copy onto catalog.json": (f"COPY (SELECT 1) TO '{store}/catalog.json'", "COPY writes files"),
        "copy into tables/": (copy_parquet, "COPY writes files"),
        "copy after a select": (f"SELECT 1; COPY (SELECT 1) TO '{store}/catalog.json'", "COPY writes files"),
        "attach a new file": (f"ATTACH '{tmp}/new.db' AS n", "ATTACH is not a reading statement"),
        "install": ("INSTALL httpfs", "LOAD is not a reading statement"),
        "load": ("LOAD httpfs", "LOAD is not a reading statement"),
        "set external access": ("SET enable_external_access = true", "SET is not a reading statement"),
        "read_csv outside": (f"SELECT * FROM read_csv('{secret}')", "--allow-read PATH"),
        "read_text outside": (f"SELECT * FROM read_text('{secret}')", "--allow-read PATH"),
        "glob outside": (f"SELECT * FROM glob('{tmp}/*')", "--allow-read PATH"),
        "store files by path": (f"SELECT * FROM read_text('{store}/catalog.json')", "--allow-read PATH"),
    }


ATTACKS = list(attacks(Path("S"), Path("T"), Path("X")))


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_are_refused_and_the_store_is_unchanged(ingested, tmp_path, secret, name):
    query, says = attacks(ingested.root, tmp_path, secret)[name]
    before = tree_hashes(ingested.root)
    with pytest.raises(QueryRefusedError, match=f"refused.*{says}") as e:
        wattlas.sql(query, ingested.root)
    assert "hunter2" not in str(e.value)
    assert tree_hashes(ingested.root) == before
    assert not (tmp_path / "new.db").exists()
    assert not (ingested.tables_dir / "llm_requests" / "source=evil").exists()


def test_cli_refuses_copy_onto_the_catalog(ingested):
    before = tree_hashes(ingested.root)
    r = run_cli("sql", f"COPY (SELECT 1) TO '{ingested.catalog_path}'", "--store", str(ingested.root))
    assert tree_hashes(ingested.root) == before
    assert r.returncode == 1 and r.stdout == ""
    assert "COPY writes files" in r.stderr and "--allow-writes" in r.stderr and "Traceback" not in r.stderr


def test_the_connection_itself_is_closed(ingested, secret):
    """DuckDB's own guard, beneath the statement check: settings locked, outside files and the catalog shut."""
    con = ingested.connect()
    guard_connection(con, ingested.root)
    assert con.sql("SELECT count(*) FROM llm_requests").fetchall() == [(4,)]
    for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                "RESET lock_configuration", "SET autoinstall_known_extensions = true"):
        with pytest.raises(duckdb.Error, match="configuration has been locked"):
            con.execute(sql)
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"COPY (SELECT 1) TO '{ingested.catalog_path}'",
                f"ATTACH '{secret.parent}/x.db'", "INSTALL httpfs"):
        with pytest.raises(duckdb.PermissionException):
            con.execute(sql)
    con.close()
    assert not (secret.parent / "x.db").exists()


def test_queries_still_work_in_csv_and_json(ingested):
    query = "SELECT trace, count(*) AS n, sum(input_tokens) AS tokens FROM llm_requests GROUP BY trace"
    r = run_cli("sql", query, "--store", str(ingested.root), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["trace,n,tokens", "code,4,8647"]
    r = run_cli("sql", "SELECT request_id FROM llm_requests ORDER BY 1 LIMIT 2; DESCRIBE llm_requests",
                "--store", str(ingested.root), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "input_tokens" in {row["column_name"] for row in json.loads(r.stdout)}
    # The Python API: SHOW, SUMMARIZE, read_parquet of the store's own files.
    assert "llm_requests" in wattlas.sql("SHOW TABLES", ingested.root)["name"].to_list()
    files = ", ".join(f"'{f}'" for f in ingested.table_files("llm_requests"))
    assert wattlas.sql(f"SELECT count(*) AS n FROM read_parquet([{files}])", ingested.root).item() == 4


def test_allow_writes_writes_the_users_file_and_never_the_store(ingested, tmp_path):
    out = tmp_path / "out" / "by trace's.csv"
    out.parent.mkdir()
    query = "COPY (SELECT trace, count(*) AS n FROM llm_requests GROUP BY trace) TO '{}' (HEADER)"
    before = tree_hashes(ingested.root)
    r = run_cli("sql", query.format(str(out).replace("'", "''")), "--store", str(ingested.root), "--allow-writes")
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == ["trace,n", "code,4"]
    r = run_cli("sql", query.format(ingested.catalog_path), "--store", str(ingested.root), "--allow-writes")
    assert r.returncode == 1
    assert f"it writes {ingested.catalog_path.resolve()}, which is inside the store" in r.stderr
    # Every other way into the store: a folder below it, '..', a link, a partitioned folder holding it.
    link = tmp_path / "link.json"
    link.symlink_to(ingested.catalog_path)
    sneaky = {
        f"{ingested.tables_dir}/llm_requests/source=x/a.parquet": "inside the store",
        f"{tmp_path}/out/../store/catalog.json": "inside the store",
        str(link): "inside the store",
        str(tmp_path): "a folder holding the store",
    }
    for target, says in sneaky.items():
        with pytest.raises(QueryRefusedError, match=says):
            wattlas.sql(f"COPY (SELECT 1 AS a, 2 AS b) TO '{target}' (PARTITION_BY a)", ingested.root,
                        allow_writes=True)
    with pytest.raises(QueryRefusedError, match="COPY ... FROM"):
        wattlas.sql(f"COPY llm_requests FROM '{tmp_path}/x.csv'", ingested.root, allow_writes=True)
    with pytest.raises(QueryRefusedError, match="one quoted path"):
        wattlas.sql("COPY (SELECT 1) TO ('a' || '.csv')", ingested.root, allow_writes=True)
    assert tree_hashes(ingested.root) == before


def test_reading_other_files_is_an_opt_in(ingested, secret):
    with pytest.raises(QueryRefusedError, match="--allow-read"):
        wattlas.sql(f"SELECT * FROM read_csv('{secret}')", ingested.root)
    got = wattlas.sql(f"SELECT token FROM read_csv('{secret}')", ingested.root, allow_read=[secret])
    assert got["token"].to_list() == ["hunter2-secret"]
    got = wattlas.sql(f"SELECT count(*) AS n FROM glob('{secret.parent}/*.csv')", ingested.root,
                      allow_read=[secret.parent])
    assert got.item() == 1


# ------------------------------------------------------------ item 3: release `where`
@pytest.fixture
def store(tmp_path: Path) -> Store:
    return fixture_store(tmp_path / "store")


def test_a_where_with_a_second_statement_is_refused(store, tmp_path):
    pwned = tmp_path / "pwned.csv"
    toml = tmp_path / "evil" / "release.toml"
    toml.parent.mkdir()
    # Balanced for the builder's SQL: before the fix this ran the COPY during `release build`.
    where = f"source = 'burstgpt')); COPY (SELECT 1) TO '{pwned}'; SELECT ((1"
    toml.write_text(f'name = "evil"\ntables = ["llm_requests"]\nwhere = "{where}"\n')
    before = tree_hashes(store.root)
    r = run_cli("release", "build", "evil", "--definition", str(toml), "-o", str(tmp_path / "rel"),
                "--store", str(store.root))
    assert not pwned.exists() and not (tmp_path / "rel").exists()
    assert tree_hashes(store.root) == before
    assert r.returncode == 1
    assert f"{toml}: where" in r.stderr and "is not one SQL condition" in r.stderr, r.stderr
    where = f"source = 'x'; COPY (SELECT 1) TO '{pwned}'"
    toml.write_text(f'name = "evil"\ntables = ["llm_requests"]\nwhere = "{where}"\n')
    with pytest.raises(ReleaseError, match=f"{toml}: where .* is not one SQL condition"):
        load_definition(toml)
    assert not pwned.exists()


def test_cli_where_injection_is_refused(store, tmp_path, secret):
    # UNION BY NAME reads the file as `source`: before the fix its lines reached the error message.
    where = f"false) UNION ALL BY NAME (SELECT token AS source FROM read_csv('{secret}')"
    r = run_cli("release", "build", "x", "--tables", "llm_requests", "--where", where,
                "-o", str(tmp_path / "rel"), "--store", str(store.root))
    assert "hunter2" not in r.stderr and not (tmp_path / "rel").exists()
    assert r.returncode == 1
    assert "--where" in r.stderr and "is not one SQL condition" in r.stderr, r.stderr


@pytest.mark.parametrize("where, says", [
    ("1=1) UNION (SELECT * FROM llm_requests", "parentheses do not balance"),
    ("1=1 UNION SELECT 1", "syntax error"),
    ("source IN (SELECT token FROM read_csv('/etc/passwd'))", "subquery"),
    ("EXISTS (SELECT 1)", "subquery"),
    ("1=1) OR (1=1", "parentheses do not balance"),  # would escape the AND with [filters]
    ("1=1) ORDER BY (1", "parentheses do not balance"),
    ("input_tokens > ?", "parameter placeholder"),
    ("source = 'x'; SELECT 1", "syntax error"),
])
def test_where_must_be_one_condition(store, tmp_path, where, says):
    with pytest.raises(ReleaseError, match=f"where .* is not one SQL condition .*{says}"):
        build_release(ReleaseDefinition(name="x", tables=("llm_requests",), where=where), tmp_path / "rel", store)
    with pytest.raises(ReleaseError, match=rf"\[filters\] llm_requests .*{says}"):
        ReleaseDefinition(name="x", tables=("llm_requests",), filters={"llm_requests": where}).validate()
    assert not (tmp_path / "rel").exists()


def test_readme_conditions_still_build(store, tmp_path):
    d = ReleaseDefinition(name="mix", tables=("llm_requests",), where="source in ('burstgpt', 'azure-llm-2023')",
                          filters={"llm_requests": "input_tokens > 0 AND failed IS NOT TRUE"})
    report = build_release(d, tmp_path / "rel", store)
    assert report.tables[0].sources == ["azure-llm-2023", "burstgpt"]
    assert report.tables[0].rows == 7 + 5 + 6  # 3 of BurstGPT's 9 rows failed; the sample source is left out


def test_the_build_connection_reads_only_the_store(store, tmp_path, secret):
    from wattlas.datasets.build import _connect

    (tmp_path / "spill").mkdir()  # DuckDB may use its spill folder, so it must be a private one
    con = _connect(store, tmp_path / "spill")
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")
    con.close()

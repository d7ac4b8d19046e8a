"""The registry against the official READMEs: Huawei file lists, download locations, manual downloads.

The READMEs' link lists are kept as test data (tests/fixtures/serverless/sir_lab_readme_*.tsv, each
with the sir-lab/data-release commit it was taken from); the zips of item 2 are built here.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from wattlas.cli import main
from wattlas.errors import ManualDownloadError
from wattlas.ingest import get_source, ingest
from wattlas.ingest.download import require_automatic
from wattlas.store import Store

from ._ingest_helpers import FIXTURES, zip_file
from .test_ingest_huawei_2023 import wide

HUAWEI = {"README_data_release_2025.md": "huawei-2025", "README_data_release_2023.md": "huawei-2023"}


def _rows(name: str) -> list[list[str]]:
    text = (FIXTURES / "serverless" / name).read_text()
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def _local_name(readme: str, path: str) -> str:
    """The registry's name of a README file: Huawei 2025's shared names get their kind as prefix."""
    parts = path.split("/")
    if readme.endswith("2023.md") or parts[1] == "runtime_triggerType":
        return parts[-1]
    return f"{parts[1]}-{parts[-1]}"  # cold_start/R1.zip -> cold_start-R1.zip, per_request/R3/R3_... too


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def _sources_json(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    assert main(["sources", "--json"]) == 0
    return {s["id"]: s for s in json.loads(capsys.readouterr().out)}


# ------------------------------------------------------------------ item 1: file lists
@pytest.mark.parametrize("readme", sorted(HUAWEI))
def test_registry_lists_every_file_of_the_readme(readme: str, capsys):
    want = sorted(_local_name(r[0], r[3]) for r in _rows("sir_lab_readme_files.tsv") if r[0] == readme)
    listed = sorted(f["name"] for f in _sources_json(capsys)[HUAWEI[readme]]["files"])
    assert listed == want
    if readme.endswith("2025.md"):
        assert len(want) == 49
        per_request = [n for n in listed if n.startswith("per_request-")]
        assert len(per_request) == 38  # R1 20, R2 10, R3 5, R4 2, R5 1
        assert [n for n in per_request if "-R3_" in n] == [
            f"per_request-R3_{i:05d}_{i + 39:05d}.zip" for i in range(0, 200, 40)
        ]


def test_region_3_requests_are_accepted_and_grouped_by_region(tmp_path: Path, store_dir: Path):
    per_request = (FIXTURES / "serverless" / "huawei2025_per_request_R5.csv").read_bytes()
    archive = zip_file(tmp_path / "per_request-R3_00000_00039.zip", {"R3_00000.csv": per_request})
    ingest("huawei-2025", [archive], store_dir, workers=1)
    assert Store(store_dir).sql("select distinct trace from function_events").rows() == [("R3",)]


# ------------------------------------------------------------------ item 7: download locations
def test_drive_links_are_the_current_readmes(capsys):
    drive = {(r[0], r[1], r[2]): r[3] for r in _rows("sir_lab_readme_drive_links.tsv")}
    srcs = _sources_json(capsys)
    seen = set()
    for (readme, heading, link), file_id in drive.items():
        page = f"https://github.com/sir-lab/data-release/blob/main/{readme}#{_anchor(heading)}"
        hits = [f for f in srcs[HUAWEI[readme]]["files"] if f["url"] == f"https://drive.google.com/file/d/{file_id}/view"]
        assert len(hits) == 1, (readme, link)
        assert f"open {page}, follow the link '{link}'" in hits[0]["manual_download"]
        seen.add(hits[0]["name"])
    assert len(seen) == 61 == sum(len(srcs[s]["files"]) for s in HUAWEI.values())


def test_every_file_says_whether_it_downloads_automatically(capsys):
    srcs = _sources_json(capsys)
    for sid, src in srcs.items():
        for f in src["files"]:
            assert "manual_download" in f and "automatic" in f, (sid, f["name"])
            assert f["automatic"] is (f["manual_download"] is None), (sid, f["name"])
    manual = {sid for sid, s in srcs.items() if any(not f["automatic"] for f in s["files"])}
    assert manual == {"huawei-2023", "huawei-2025"}
    assert all(not f["automatic"] for sid in manual for f in srcs[sid]["files"])
    assert main(["sources"]) == 0
    assert "manual download" in capsys.readouterr().out


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every attempt to resolve a name or open a connection."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize("source_id", ["huawei-2025", "huawei-2023"])
def test_ingest_without_from_names_every_manual_file(source_id: str, store_dir: Path, no_network, capsys):
    assert main(["ingest", source_id, "--store", str(store_dir)]) == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert no_network == []
    assert f"wattlas ingest {source_id} --from DIR" in err and "nothing was downloaded" in err
    for f in get_source(source_id).files:
        assert f"- {f.name} from {f.url}: open https://github.com/sir-lab/data-release/" in err, f.name
    with pytest.raises(ManualDownloadError, match="--from DIR"):
        ingest(source_id, store=store_dir)
    assert no_network == []


def test_a_mirror_serves_manual_files(monkeypatch: pytest.MonkeyPatch):
    # WATTLAS_MIRROR serves every file by name: nothing needs a person then.
    monkeypatch.setenv("WATTLAS_MIRROR", "http://127.0.0.1:9")
    require_automatic(get_source("huawei-2025"))


# ------------------------------------------------------------------ item 2: Huawei 2023 zip layouts
CPU_LIMIT = wide(200, [(0, 0, {4: "0.3", 5: "1.0"}), (0, 60, {4: "0.3"})])


@pytest.mark.parametrize("member", ["day_000.csv", "cpu_limit_minute/day_000.csv"])
def test_per_metric_zip_with_or_without_its_folder(member: str, tmp_path: Path, store_dir: Path):
    zip_file(tmp_path / "cpu_limit_minute.zip", {member: CPU_LIMIT})
    report = ingest("huawei-2023", [tmp_path], store_dir, workers=1)
    assert report.rows["function_metrics"] == 3
    store = Store(store_dir)
    rows = store.sql("select trace, function_id, time_s, bin_s, metric, value, unit from function_metrics "
                     "order by time_s, function_id").rows()
    assert rows == [
        ("private", "4", 0, 60, "cpu_limit", 0.3, "cores"), ("private", "5", 0, 60, "cpu_limit", 1.0, "cores"),
        ("private", "4", 60, 60, "cpu_limit", 0.3, "cores"),
    ]
    # Both layouts are one store key: re-ingesting the other layout replaces these rows.
    assert store.sql("select distinct input_key from ingest_manifest").rows() == [("private-cpu_limit_minute",)]

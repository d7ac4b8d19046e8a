"""Bad input: a clear error naming file, line and column, and a store left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattlas.errors import InputFormatError
from wattlas.ingest import ingest

from .llm_fixtures import AZURE_2023_CODE, AZURE_LMM_2025, BURSTGPT_1, write


def snapshot(store_dir: Path) -> dict[str, bytes | int]:
    """The committed state: catalog bytes and every table file with its size."""
    state: dict[str, bytes | int] = {"catalog": (store_dir / "catalog.json").read_bytes()}
    for p in sorted((store_dir / "tables").rglob("*")):
        if p.is_file():
            state[str(p.relative_to(store_dir))] = p.stat().st_size
    return state


@pytest.fixture
def populated(tmp_path, store_dir) -> dict:
    """A store holding good BurstGPT_1 rows, and its snapshot."""
    good = write(tmp_path / "good", "BurstGPT_1.csv", BURSTGPT_1)
    ingest("burstgpt", [good], store=store_dir)
    return snapshot(store_dir)


def bad_burstgpt(tmp_path: Path, data: bytes, name: str = "BurstGPT_1.csv") -> Path:
    return write(tmp_path / "bad", name, data)


CASES = {
    "non-integer": (
        BURSTGPT_1.replace(b"118,GPT-4,417,", b"118,GPT-4,abc,"),
        "BurstGPT_1.csv line 4, column 'Request tokens': 'abc' is not an integer",
    ),
    "float-in-int": (
        BURSTGPT_1.replace(b",230,1317,", b",230.5,1317,"),
        "BurstGPT_1.csv line 3, column 'Response tokens': '230.5' is not an integer",
    ),
    "bad-timestamp": (
        BURSTGPT_1.replace(b"45,ChatGPT", b"4x5,ChatGPT"),
        "BurstGPT_1.csv line 3, column 'Timestamp': '4x5' is not a number",
    ),
    "empty-required-cell": (
        BURSTGPT_1.replace(b"5,ChatGPT,472,18,490", b"5,ChatGPT,472,,490"),
        "BurstGPT_1.csv line 2, column 'Response tokens': empty value (expected an integer)",
    ),
    "too-many-fields": (
        BURSTGPT_1.replace(b"118,GPT-4,417,276,693,Conversation log",
                           b"118,GPT-4,417,276,693,Conversation log,extra"),
        "BurstGPT_1.csv line 4: the row has more than 6 fields",
    ),
    "wrong-header": (
        BURSTGPT_1.replace(b"Request tokens", b"Request_tokens"),
        "BurstGPT_1.csv line 1: unexpected header",
    ),
    "empty-file": (b"", "BurstGPT_1.csv: the file is empty"),
    "header-only": (BURSTGPT_1.split(b"\n")[0] + b"\n", "BurstGPT_1.csv: the file has a header but no data rows"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_burstgpt_is_refused_and_store_unchanged(case, tmp_path, store_dir, populated):
    data, message = CASES[case]
    bad = bad_burstgpt(tmp_path, data)
    with pytest.raises(InputFormatError) as info:
        ingest("burstgpt", [bad], store=store_dir)
    assert str(info.value).startswith(message), str(info.value)
    assert snapshot(store_dir) == populated


def test_bad_azure_timestamp_names_line_and_column(tmp_path, store_dir):
    data = AZURE_2023_CODE.replace(b"2023-11-16 18:17:04.0781490", b"2023-11-16 18:17:04,0781490")
    path = write(tmp_path, "AzureLLMInferenceTrace_code.csv", data)
    with pytest.raises(InputFormatError) as info:
        ingest("azure-llm-2023", [path], store=store_dir)
    assert str(info.value).startswith("AzureLLMInferenceTrace_code.csv line 4")
    assert not (store_dir / "catalog.json").exists()


def test_timestamp_with_wrong_zone_style(tmp_path, store_dir):
    # a 2023-style naive timestamp inside a 2025 file is not silently given a zone
    data = AZURE_LMM_2025.replace(b"2024-10-15T12:00:05.819Z", b"2024-10-15 12:00:05.819")
    path = write(tmp_path, "AzureLMMInferenceTrace_multimodal.csv.gz", data, gz=True)
    with pytest.raises(InputFormatError, match=r"line 3, column 'TIMESTAMP': '2024-10-15 12:00:05.819' is not"):
        ingest("azure-lmm-2025", [path], store=store_dir)


def test_truncated_gzip(tmp_path, store_dir, populated):
    path = write(tmp_path, "AzureLMMInferenceTrace_multimodal.csv.gz", AZURE_LMM_2025, gz=True)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(InputFormatError, match="gzip stream is truncated"):
        ingest("azure-lmm-2025", [path], store=store_dir)
    assert snapshot(store_dir) == populated


def test_not_gzip(tmp_path, store_dir):
    path = write(tmp_path, "AzureLMMInferenceTrace_multimodal.csv.gz", AZURE_LMM_2025)
    with pytest.raises(InputFormatError, match="not a valid gzip file"):
        ingest("azure-lmm-2025", [path], store=store_dir)


def test_second_file_bad_commits_nothing(tmp_path, store_dir, populated):
    """A multi-file ingest is one transaction: a bad second file keeps the first file's old rows."""
    raw = tmp_path / "raw"
    write(raw, "BurstGPT_1.csv", BURSTGPT_1.replace(b"5,ChatGPT,472", b"6,ChatGPT,472"))
    write(raw, "BurstGPT_2.csv", BURSTGPT_1.replace(b"GPT-4,417", b"GPT-4,4.17"))
    with pytest.raises(InputFormatError, match="BurstGPT_2.csv line 4"):
        ingest("burstgpt", [raw], store=store_dir)
    assert snapshot(store_dir) == populated


def test_missing_path_and_empty_dir(tmp_path, store_dir):
    from wattlas.errors import WattlasError

    with pytest.raises(WattlasError, match="no such file or directory"):
        ingest("burstgpt", [tmp_path / "nope"], store=store_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WattlasError, match="holds no files of source 'burstgpt'"):
        ingest("burstgpt", [tmp_path / "empty"], store=store_dir)

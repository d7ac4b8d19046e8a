"""Values that are not data (issue 18, items 10-12 and its two "Also" points).

- declared column bounds (tokens >= 0, finite times, ...) refused at ingest with file/line/column;
- error lines counted as an editor counts them (blank lines and quoted newlines included);
- quoted input cut short in messages (a 20 MiB header line, a 10^6-column header);
- a full disk during conversion is a store error, not an input error;
- control characters in human table cells are escaped.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from wattlas.errors import InputFormatError, StoreDiskError, quote_input
from wattlas.ingest import ingest
from wattlas.schemas import TABLES, Column

from .llm_fixtures import AZURE_2023_CODE, BURSTGPT_1, write

ROOT = Path(__file__).resolve().parents[1]
HEADER = b"Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _row(t: int) -> bytes:
    return b"%d,ChatGPT,10,20,30,Conversation log\n" % t


def refused(tmp_path: Path, source: str, name: str, data: bytes) -> str:
    """Ingest ``data`` as file ``name`` of ``source``; return the refusal's message."""
    path = write(tmp_path / "in", name, data)
    with pytest.raises(InputFormatError) as e:
        ingest(source, [path], store=tmp_path / "store", workers=1)
    return str(e.value)


# ------------------------------------------------------------------ item 10: declared bounds
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (BURSTGPT_1.replace(b"118,GPT-4,417,", b"118,GPT-4,-5,"),
         "BurstGPT_1.csv line 4, column 'Request tokens': -5 is below the minimum 0"),
        (BURSTGPT_1.replace(b",230,1317,", b",-230,1317,"),
         "BurstGPT_1.csv line 3, column 'Response tokens': -230 is below the minimum 0"),
        (BURSTGPT_1.replace(b"45,ChatGPT", b"inf,ChatGPT"),
         "BurstGPT_1.csv line 3, column 'Timestamp': inf is not a finite number"),
        (BURSTGPT_1.replace(b"130,GPT-4", b"NaN,GPT-4"),
         "BurstGPT_1.csv line 6, column 'Timestamp': NaN is not a finite number"),
    ],
    ids=["negative-request-tokens", "negative-response-tokens", "inf-timestamp", "nan-timestamp"],
)
def test_burstgpt_out_of_bounds_values_are_refused(tmp_path, data, expected):
    assert refused(tmp_path, "burstgpt", "BurstGPT_1.csv", data) == expected


def test_azure_2023_negative_tokens_are_refused(tmp_path):
    bad = AZURE_2023_CODE.replace(b",4808,10", b",4808,-10")
    assert bad != AZURE_2023_CODE
    msg = refused(tmp_path, "azure-llm-2023", "AzureLLMInferenceTrace_code.csv", bad)
    assert msg == "AzureLLMInferenceTrace_code.csv line 2, column 'GeneratedTokens': -10 is below the minimum 0"
    assert not (tmp_path / "store" / "tables").exists() or not any((tmp_path / "store" / "tables").rglob("*.parquet"))


def test_zeus_negative_power_names_its_line(tmp_path):
    data = (b"dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
            b"imagenet,resnet50,64,adadelta,300,1800.5,250.25\n"
            b"imagenet,resnet50,64,adadelta,275,1850.5,-240.5\n")
    msg = refused(tmp_path, "zeus-nsdi23", "summary_power_a40.csv", data)
    assert msg == "summary_power_a40.csv line 3, column 'average_power': -240.5 is below the minimum 0"


def test_every_numeric_column_declares_finite_or_bounds_consistently():
    # Token counts, sizes and durations of the ingested tables carry min=0; every float is finite.
    llm = TABLES["llm_requests"]
    assert [llm.column(c).min for c in ("input_tokens", "output_tokens", "images", "elapsed_s")] == [0, 0, 0, 0]
    assert llm.column("arrival_s").must_be_finite and llm.column("arrival_s").min is None  # may be < 0
    assert TABLES["function_events"].column("start_s").min is None  # Azure 2021: negative near 0
    assert TABLES["gpu_samples"].column("utilization_gpu_pct").max == 100
    with pytest.raises(ValueError, match="bounds are for numeric columns"):
        Column("x", "string", "text", min=0)
    with pytest.raises(ValueError, match="above max"):
        Column("x", "int64", "n", min=2, max=1)


def test_real_shared_data_still_ingests(tmp_path, shared_data):
    """No false positives: the real traces in ../shared ingest with the bounds enforced."""
    store = tmp_path / "store"
    rows = {}
    for sid, folder in [("azure-llm-2023", "azure_llm_2023"), ("zeus-nsdi23", "zeus_nsdi23"),
                        ("vidur-profiling", "vidur_profiling")]:
        rows.update(ingest(sid, [shared_data / folder], store=store, workers=1).rows)
    assert (rows["llm_requests"], rows["training_power"], rows["operator_times"]) == (28_185, 1_609, 145_578)


# ------------------------------------------------------------------ item 11: physical lines
def test_trailing_extra_empty_field_names_its_line(tmp_path):
    data = HEADER + _row(1) + _row(2) + b"3,ChatGPT,10,20,30,Conversation log,\n" + _row(4)
    msg = refused(tmp_path, "burstgpt", "BurstGPT_1.csv", data)
    assert msg.startswith("BurstGPT_1.csv line 4: the row has more than 6 fields"), msg


def test_blank_line_2_then_bad_value_on_line_505(tmp_path):
    rows = b"".join(_row(i) for i in range(3, 505))  # lines 3..504
    data = HEADER + b"\n" + rows + b"505,ChatGPT,1x0,20,30,Conversation log\n"
    assert data.count(b"\n") == 505
    msg = refused(tmp_path, "burstgpt", "BurstGPT_1.csv", data)
    assert msg == "BurstGPT_1.csv line 505, column 'Request tokens': '1x0' is not an integer"


def test_bad_value_after_a_quoted_newline_names_the_physical_line(tmp_path):
    rows = b"".join(_row(i) for i in range(2, 501))  # lines 2..500
    quoted = b'501,"Chat\nGPT",10,20,30,Conversation log\n'  # lines 501-502
    data = HEADER + rows + quoted + b"503,ChatGPT,1x0,20,30,Conversation log\n"
    msg = refused(tmp_path, "burstgpt", "BurstGPT_1.csv", data)
    assert msg == "BurstGPT_1.csv line 503, column 'Request tokens': '1x0' is not an integer"


def test_ragged_row_after_a_quoted_newline_and_crlf_blank_line(tmp_path):
    # DuckDB numbers records; the line comes from the byte offset it reports.
    data = (HEADER + _row(1) + b"\r\n" + b'2,"Chat\r\nGPT",10,20,30,Conversation log\r\n'
            + b"3,ChatGPT,10,20,30,Conversation log,x\r\n")
    msg = refused(tmp_path, "burstgpt", "BurstGPT_1.csv", data)
    assert msg.startswith("BurstGPT_1.csv line 6: the row has more than 6 fields"), msg


def test_out_of_bounds_after_quoted_newline_names_the_physical_line(tmp_path):
    data = HEADER + b'1,"Chat\nGPT",10,20,30,Conversation log\n' + b"2,ChatGPT,-7,20,30,API log\n"
    msg = refused(tmp_path, "burstgpt", "BurstGPT_1.csv", data)
    assert msg == "BurstGPT_1.csv line 4, column 'Request tokens': -7 is below the minimum 0"


# ------------------------------------------------------------------ item 12: message size
def _child_refusal(tmp_path: Path, data_path: Path) -> tuple[str, int]:
    """Ingest ``data_path`` as BurstGPT in a child process; (its message, its peak RSS in bytes)."""
    code = (
        "import sys; from wattlas.ingest import ingest; from wattlas.errors import InputFormatError\n"
        "try:\n    ingest('burstgpt', [sys.argv[1]], store=sys.argv[2], workers=1)\n"
        "except InputFormatError as e:\n    sys.stdout.write(str(e))\n"
        # VmHWM, the peak of this process's own memory map: ru_maxrss would also count the
        # parent's pages that Linux charges to a vforked child before its exec.
        "import os, re, resource\n"
        "st = '/proc/self/status'\n"
        "hwm = (re.search(r'VmHWM:\\s+(\\d+)', open(st).read()).group(1) if os.path.exists(st)\n"
        "       else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.stderr.write(str(hwm))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(data_path), str(tmp_path / "store")],
                       capture_output=True, text=True, env=env, timeout=120, check=True)
    return r.stdout, int(r.stderr.strip().splitlines()[-1]) * 1024


def test_huge_header_line_gives_a_short_message_and_bounded_memory(tmp_path):
    size = 20 << 20
    path = tmp_path / "in" / "BurstGPT_1.csv"
    path.parent.mkdir()
    with open(path, "wb") as fh:
        fh.write(b"a" * size + b"\n" + _row(1))
    msg, peak = _child_refusal(tmp_path, path)
    assert msg.startswith("BurstGPT_1.csv line 1: unexpected header 'aaaa")
    assert f"({size} characters)" in msg and len(msg) < 2_000
    assert peak < 1 << 30, f"peak RSS {peak >> 20} MiB for a 20 MiB header"


def test_million_column_header_gives_a_short_message(tmp_path):
    path = tmp_path / "in" / "BurstGPT_1.csv"
    path.parent.mkdir()
    header = ",".join(f"c{i}" for i in range(1_000_000)).encode()
    path.write_bytes(header + b"\n" + _row(1))
    msg, _ = _child_refusal(tmp_path, path)
    assert "unexpected header 'c0,c1,c2," in msg and f"({len(header)} characters)" in msg
    assert len(msg) < 2_000


def test_quote_input_cuts_once_and_says_the_length():
    assert quote_input("abc") == "'abc'"
    cut = quote_input("x" * 10_000)
    assert cut == "'" + "x" * 200 + "…' (10000 characters)"


# ------------------------------------------------------------------ Also (a): the store's disk
def test_disk_full_during_conversion_is_a_store_error(tmp_path, monkeypatch):
    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    # Every converter writes through the shared Parquet writer (wattlas._parquet), some
    # multi-sink ones through polars itself: the disk fills under both.
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", full)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    path = write(tmp_path / "in", "BurstGPT_1.csv", BURSTGPT_1)
    with pytest.raises(StoreDiskError) as e:
        ingest("burstgpt", [path], store=tmp_path / "store", workers=1)
    msg = str(e.value)
    assert "could not be read as" not in msg and "No space left on device (errno 28)" in msg
    assert str(tmp_path / "store") in msg and "BurstGPT_1.csv" in msg


def test_real_enospc_from_polars_is_a_store_error(tmp_path):
    """A real ENOSPC (writing into /dev/full through a link), as polars reports it."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    from wattlas.ingest.csvread import convert_csv
    from wattlas.ingest.sources.burstgpt import LAYOUT_1_2

    src = write(tmp_path / "in", "BurstGPT_1.csv", BURSTGPT_1)
    out = tmp_path / "out" / "llm_requests.parquet"
    out.parent.mkdir()
    out.symlink_to("/dev/full")
    with pytest.raises(StoreDiskError, match=r"No space left on device \(errno 28\)"):
        convert_csv(src, [LAYOUT_1_2], out, display="BurstGPT_1.csv", select="llm_requests")


# ------------------------------------------------------------------ Also (b): control characters
def _sql(tmp_path: Path, fmt: str) -> bytes:
    query = "select 'a' || chr(27) || '[31mb' as x, '[red]z' || chr(10) || 'n' as y"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    (tmp_path / "S").mkdir(exist_ok=True)  # `sql` reads a store, even for a query that names no table
    (tmp_path / "S" / "catalog.json").write_text('{"format": 1, "generation": 0, "tables": {}}')
    r = subprocess.run([sys.executable, "-m", "wattlas", "sql", query, "--store", str(tmp_path / "S"), "-f", fmt],
                       capture_output=True, env=env, timeout=120, check=True)
    return r.stdout


def test_table_output_escapes_control_characters_and_markup(tmp_path):
    table = _sql(tmp_path, "table")
    assert b"\x1b" not in table
    assert b"a\\x1b[31mb" in table and b"[red]z\\nn" in table  # shown, escaped, not read as markup
    assert b"\x1b[31m" in _sql(tmp_path, "csv")  # machine output keeps the real value
    assert b"\\u001b[31mb" in _sql(tmp_path, "json")


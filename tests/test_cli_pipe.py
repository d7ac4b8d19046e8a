"""Tables through a pipe: every command that prints a table shows every value of its CSV form in full.

Each command runs as a subprocess with stdout a pipe and COLUMNS=80 (the case where rich used to cut
cells to ``0.000…`` and ``797…``), once as a table and once with ``--format csv``; each CSV row must
appear on one line of the table, its values whole and in order.

Commands not covered here, because they print no table: ``bench info`` (JSON), ``bench report`` and
``report`` (HTML files), ``release verify`` (one line in table mode), ``ingest``, ``workload``,
``predictors train`` / ``export-onnx`` (messages on stderr).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The table shows control characters as escapes (raw, they would drive the terminal).
_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0))}


def wattlas(*args: str, env_extra: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="80", PYTHONPATH=str(ROOT), **(env_extra or {}))
    r = subprocess.run([sys.executable, "-m", "wattlas", *args], capture_output=True,  # pipes
                       text=True, env=env, timeout=300)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def _whole_at(line: str, value: str, start: int) -> int:
    """Where ``value`` starts in ``line`` at or after ``start`` as a whole cell (spaces around it), or -1."""
    pos = line.find(value, start)
    while pos >= 0:
        before_ok = pos == 0 or line[pos - 1] == " "
        after = pos + len(value)
        if before_ok and (after == len(line) or line[after] == " "):
            return pos
        pos = line.find(value, pos + 1)
    return -1


def _on_line(values: list[str], line: str) -> bool:
    pos = 0
    for v in values:
        pos = _whole_at(line, v, pos)
        if pos < 0:
            return False
        pos += len(v)
    return True


def _row_on_a_line(values: list[str], lines: list[str]) -> bool:
    return any(_on_line(values, line) for line in lines)


def assert_csv_in_table(csv_text: str, table_text: str) -> int:
    """Every CSV row (header included) is on one table line, each value whole; returns the rows checked."""
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert len(rows) >= 2, csv_text
    lines = table_text.splitlines()
    assert "…" not in table_text
    at = 0  # rows are printed in CSV order: look for each one below the previous
    for row in rows:
        # A table shows null for an empty CSV field, and control characters as escapes.
        values = [v.translate(_CONTROL) for v in row if v != ""]
        while at < len(lines) and not _on_line(values, lines[at]):
            at += 1
        assert at < len(lines), f"row {values} not in full on one line of:\n{table_text}"
    return len(rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store filled by `quickstart` offline (the generated Azure LLM 2023 sample); also its output."""
    root = tmp_path_factory.mktemp("pipe") / "store"
    with socket.socket() as s:  # a port nothing listens on: the download fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"WATTLAS_MIRROR": f"http://127.0.0.1:{port}"}
    table = wattlas("quickstart", "--store", str(root), env_extra=env).stdout
    as_csv = wattlas("quickstart", "--store", str(root), "--format", "csv", env_extra=env).stdout
    (root.parent / "quickstart.txt").write_text(table)
    (root.parent / "quickstart.csv").write_text(as_csv)
    return root


def _check(*args: str) -> int:
    table = wattlas(*args).stdout
    return assert_csv_in_table(wattlas(*args, "--format", "csv").stdout, table)


def test_sql_table_shows_every_value(store):
    query = ("select *, 1/3 as third, 0.00001 as small, 79750 as n from llm_requests "
             "order by trace, arrival_s limit 60")
    assert _check("sql", query, "--store", str(store), "--all") == 61


def test_sql_table_limits_rows_and_says_how_many_are_left_out(store):
    query = "select * from range(100)"
    r = wattlas("sql", query, "--store", str(store))
    assert len(r.stdout.splitlines()) == 2 + 40  # header, rule, 40 rows
    assert "60 of 100 rows not shown" in r.stderr
    assert len(wattlas("sql", query, "--store", str(store), "--limit", "5").stdout.splitlines()) == 7


def test_quickstart_summary_shows_every_value(store):
    table = (store.parent / "quickstart.txt").read_text()
    rows = list(csv.DictReader(io.StringIO((store.parent / "quickstart.csv").read_text())))
    lines = table.splitlines()
    # The table has one column per trace and one row per statistic.
    assert _row_on_a_line(["statistic", *(r["trace"] for r in rows)], lines)
    for stat in rows[0]:
        if stat not in ("source", "trace"):
            assert _row_on_a_line([stat, *(r[stat] or "null" for r in rows)], lines), (stat, table)


def test_tables_shows_every_column_description(store):
    table = wattlas("tables", "--store", str(store)).stdout
    infos = json.loads(wattlas("tables", "--store", str(store), "--format", "json").stdout)
    lines = table.splitlines()
    for info in infos:
        assert any(line.startswith(f"{info['table']}: {info['rows']} rows") for line in lines), (info, table)
        for c in info["columns"]:
            values = [c["name"], c["type"], *([c["unit"]] if c["unit"] else []), c["description"]]
            assert _row_on_a_line(values, lines), values


#: Commands that need no store, each run as a table and as CSV.
NO_STORE = {
    "sources": ("sources",),
    "predictors list": ("predictors", "list"),
    "predictors gpus": ("predictors", "gpus"),
    "predictors gpus --sources": ("predictors", "gpus", "--sources"),
    "predictors evaluate": ("predictors", "evaluate"),  # the table recorded at training time
    "predict gemm-runtime": ("predict", "gemm-runtime", "--gpu", "H100", "--m", "4096", "--n", "4096",
                             "--k", "4096", "--dtype", "bf16"),
    "predict operator-runtime": ("predict", "operator-runtime", "--gpu", "A100", "--op", "mlp_up_proj",
                                 "--num-tokens", "512", "--n-embd", "4096", "--n-expanded-embd", "14336",
                                 "--n-head", "32", "--n-kv-head", "8"),
}
_BATCH = """
import json, sys
from wattlas.cli import main
for args in json.loads(sys.argv[1]):
    code = main(args)
    sys.stdout.flush()
    sys.stdout.write(f"\\n@@@ {code}\\n")
    sys.stdout.flush()
"""


@pytest.fixture(scope="module")
def no_store_outputs(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Table and CSV output of each NO_STORE command, from one process (model files load once) whose
    stdout is a pipe."""
    src = tmp_path_factory.mktemp("predict") / "shapes.csv"
    src.write_text("gpu,m,n,k,dtype\nH100,4096,4096,4096,bf16\nA100,128,4096,11008,fp16\nV100,7,3,5,fp32\n")
    commands = {**NO_STORE, "predict --input": ("predict", "gemm-runtime", "--input", str(src))}
    runs = [list(a) + extra for a in commands.values() for extra in ([], ["--format", "csv"])]
    r = subprocess.run([sys.executable, "-c", _BATCH, json.dumps(runs)], capture_output=True,  # pipes
                       text=True, timeout=300,
                       env=dict(os.environ, COLUMNS="80", PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    parts = re.split(r"\n@@@ (\d+)\n", r.stdout)
    outputs, codes = parts[0:-1:2], parts[1::2]
    assert codes == ["0"] * len(runs), r.stderr
    return {name: (outputs[2 * i], outputs[2 * i + 1]) for i, name in enumerate(commands)}


@pytest.mark.parametrize("name", [*NO_STORE, "predict --input"])
def test_table_command_shows_every_value(name, no_store_outputs):
    table, as_csv = no_store_outputs[name]
    assert assert_csv_in_table(as_csv, table) == (4 if name == "predict --input" else
                                                  len(as_csv.splitlines()))


def test_estimate_shows_every_value(store):
    _check("estimate", "--source", "azure-llm-2023-sample", "--trace", "code", "--gpu", "H100",
           "--model", "llama-3-8b", "--store", str(store))


def test_release_build_shows_every_value(store, tmp_path):
    args = ("release", "build", "pipe", "--tables", "llm_requests", "--store", str(store))
    table = wattlas(*args, "-o", str(tmp_path / "a")).stdout
    as_csv = wattlas(*args, "-o", str(tmp_path / "b"), "--format", "csv").stdout
    # The same release built twice; its card may differ in time stamps, the Parquet table may not.
    data = [r for r in csv.reader(io.StringIO(as_csv)) if r[0] in ("file", "llm_requests.parquet")
            or r[0].endswith(".parquet")]
    assert len(data) >= 2
    assert_csv_in_table("\n".join(",".join(r) for r in data) + "\n", table)


def test_bench_summary_shows_every_value(tmp_path, capsys):
    from wattlas.cli._common import OutputFormat
    from wattlas.cli.bench import print_summary

    # The summary of a real (quick, CPU) run; printed twice from the same rows, since a second run's
    # measurements would differ.
    rows = json.loads(wattlas("bench", "gemm", "--quick", "--device", "cpu", "--store", str(tmp_path / "s"),
                              "--format", "json").stdout)
    rows[0]["tflops"] = 0.00026236553489852996  # the kind of value the 4-digit formatter cut to 0.0002624
    run = SimpleNamespace(bench="gemm", run_id="r1", rows=rows, points=len(rows), store=SimpleNamespace(root=tmp_path))
    print_summary(run, OutputFormat.csv)
    as_csv = capsys.readouterr().out
    print_summary(run, OutputFormat.table)
    table = capsys.readouterr().out
    # Column labels differ from CSV field names; the values are the same text.
    body = "\n".join(as_csv.splitlines()[1:])
    assert_csv_in_table("x\n" + body + "\n", "x\n" + table)
    assert "0.00026236553489852996" in table


def test_terminal_hides_whole_columns_and_names_them():
    from wattlas.cli._common import layout_table

    headers = ["id", "value", "meaning", "count"]
    rows = [["a", "0.00001", "a long description that goes on and on and on for quite a while", "1"],
            ["bbbb", "123456789.0", "short", "79750"]]
    lines, hidden = layout_table(headers, rows, right=[False, True, False, True], width=60)
    assert hidden == ["count"]
    assert all(len(line) <= 60 for line in lines)
    text = "\n".join(lines)
    assert "0.00001" in text and "123456789.0" in text and "…" not in text
    # The text column is wrapped at word boundaries, not cut: all its words are there.
    assert " ".join(text.split()).count("goes on and on and on") == 1
    lines, hidden = layout_table(headers, rows, right=[False, True, False, True], width=None)
    assert hidden == [] and "79750" in lines[-1]


def test_terminal_render_says_which_columns_are_hidden():
    code = ("import polars as pl\nfrom wattlas.cli._common import print_frame, OutputFormat\n"
            "print_frame(pl.DataFrame({'a': ['x' * 30], 'b': ['y' * 30], 'c': [1], 'd': [2], 'e': [3]}), "
            "OutputFormat.table)\n")
    env = dict(os.environ, COLUMNS="40", FORCE_COLOR="1", TTY_COMPATIBLE="1", TTY_INTERACTIVE="1",
               PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "4 columns hidden (b, c, d, e): use --format csv" in r.stderr
    assert "x" * 30 in r.stdout


def test_error_hint_is_printed_verbatim(tmp_path):
    # A WattlasError whose hint names a config section: markup would swallow `[sources.wattlas-bench]`.
    code = ("import sys\nfrom wattlas.cli import main\nfrom wattlas.errors import WattlasError\n"
            "import wattlas.cli as c\n"
            "def boom(*a, **k):\n    raise WattlasError('add it under [sources.wattlas-bench] in [bold]x[/bold]')\n"
            "c.app = boom\nsys.exit(main(['sql', 'select 1']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200"))
    assert r.returncode == 1
    assert "error: add it under [sources.wattlas-bench] in [bold]x[/bold]" in r.stderr

"""Each command imports only what it uses (issue 16, item 5): structural checks, not timings.

`benchmarks/startup.py` times the commands; these tests check the imports behind the figures in a
fresh interpreter each: `wattlas --help` loads no data library and not even importlib.metadata,
and a single-point `wattlas predict` loads neither PyTorch nor pandas (which scikit-learn's
estimator discovery, run by skops, would import where installed), yet predicts the same number.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from wattlas._imports import hidden_imports

from .conftest import ROOT

#: Libraries that no command needs for --help.
HEAVY = ("polars", "duckdb", "pyarrow", "numpy", "scipy", "sklearn", "skops", "plotly", "pandas", "torch", "pooch")
POINT = ["predict", "gemm-runtime", "--gpu", "H100", "--m", "4096", "--n", "4096", "--k", "4096", "--dtype", "bf16"]


def run_cli(args: list[str], timeout_s: float = 120) -> tuple[str, set[str]]:
    """stdout of ``wattlas ARGS`` run by main() in a fresh interpreter, and the modules it left imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from wattlas.cli import main
        rc = main({args!r})
        print(json.dumps([rc, sorted(sys.modules)]), file=sys.stderr)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               COLUMNS="80")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=timeout_s)
    rc, modules = json.loads(r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0 and rc == 0, r.stderr
    return r.stdout, set(modules)


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules]


def test_help_lists_every_command_without_heavy_imports():
    out, modules = run_cli(["--help"])
    for command in ("ingest", "sql", "report", "predict", "estimate", "release", "bench", "predictors"):
        assert f" {command} " in out
    assert not loaded(modules, HEAVY), "wattlas --help imported " + ", ".join(loaded(modules, HEAVY))
    # The version is read from the package metadata only for --version; logging is set up with
    # rich only when a record comes.
    assert not loaded(modules, ("importlib.metadata", "rich.logging"))


def test_version_is_read_on_first_use():
    import wattlas

    code = "import sys, wattlas; assert 'importlib.metadata' not in sys.modules; print(wattlas.__version__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == wattlas.__version__ and wattlas.__version__ != ""
    assert "__version__" in wattlas.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wattlas.nope  # noqa: B018


@pytest.mark.skipif(importlib.util.find_spec("torch") is None and importlib.util.find_spec("pandas") is None,
                    reason="neither torch nor pandas is installed: nothing for predict to keep out")
def test_single_point_predict_imports_neither_torch_nor_pandas():
    from wattlas.predictors import load

    out, modules = run_cli(["--quiet", *POINT, "--format", "json"])
    unwanted = ("torch", "pandas", "pytest", "duckdb", "pyarrow", "plotly")
    assert not loaded(modules, unwanted), "wattlas predict imported " + ", ".join(loaded(modules, unwanted))
    (row,) = json.loads(out)
    # Same number as a model loaded the ordinary way in this process.
    expected = load("gemm-runtime").predict({"gpu": ["H100"], "m": [4096], "n": [4096], "k": [4096],
                                             "dtype": ["bf16"]})
    assert row["time_s"] == pytest.approx(float(expected[0]), rel=1e-12)


def test_skops_trusts_the_same_types_with_the_array_api_backends_hidden():
    """skops's default trusted types come from scikit-learn's estimator discovery; without torch they are the same."""
    dump = ("import json, sys; from skops.io import _trusted_types as t; print(json.dumps("
            "[t.SKLEARN_ESTIMATOR_TYPE_NAMES, t.SKLEARN_INTERNAL_TYPE_NAMES, 'torch' in sys.modules]))")
    plain = f"import skops.io; {dump}"
    hidden = f"from wattlas.predictors.bundle import _skops_io; _skops_io(); {dump}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env=env) for c in (plain, hidden)]
    (plain_names, plain_internal, _), (names, internal, torch_loaded) = [
        json.loads(p.communicate(timeout=180)[0].splitlines()[-1]) for p in procs]
    assert names == plain_names and internal == plain_internal
    assert len(names) > 100 and "sklearn.ensemble._hist_gradient_boosting.gradient_boosting." \
        "HistGradientBoostingRegressor" in names
    assert not torch_loaded


# ------------------------------------------------------------------ hidden_imports
@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package ``wattlas_fake_backend`` (with a submodule) that no test has imported yet."""
    pkg = tmp_path / "wattlas_fake_backend"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "sub.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "wattlas_fake_backend"
    for name in [m for m in sys.modules if m.startswith("wattlas_fake_backend")]:
        del sys.modules[name]


def test_hidden_package_fails_like_a_missing_one_only_inside_the_block(fake_package):
    with hidden_imports([fake_package]):
        with pytest.raises(ModuleNotFoundError) as e:
            importlib.import_module(f"{fake_package}.sub")
        assert e.value.name == fake_package  # the package itself is the first import refused
        assert fake_package not in sys.modules
    assert importlib.import_module(f"{fake_package}.sub").VALUE == 2


def test_other_threads_and_imported_packages_are_not_hidden(fake_package):
    got: list[int] = []
    with hidden_imports([fake_package]):
        t = threading.Thread(target=lambda: got.append(importlib.import_module(fake_package).VALUE))
        t.start()
        t.join()
    assert got == [1]
    with hidden_imports([fake_package]):  # already imported: left alone
        assert importlib.import_module(f"{fake_package}.sub").VALUE == 2

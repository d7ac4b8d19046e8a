"""The notebooks run top to bottom on quickstart data (offline: the generated sample) and are
committed without outputs. Executed with nbclient and a short per-cell timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def quickstart_store(tmp_path_factory) -> Path:
    from wattlas.ingest import ingest
    from wattlas.ingest.sources import sample

    root = tmp_path_factory.mktemp("nb")
    ingest(sample.SOURCE_ID, sample.generate(root / "raw"), store=root / "store", workers=1)
    return root / "store"


def test_expected_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"llm_request_traces", "serverless_cold_starts", "supercloud_gpu_usage", "bench_and_predictors"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, quickstart_store, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("WATTLAS_STORE", str(quickstart_store))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if path.stem == "llm_request_traces":
        assert "azure-llm-2023-sample (SYNTHETIC sample)" in text
        assert "SYNTHETIC BurstGPT-shaped frame" in text

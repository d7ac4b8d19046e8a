"""Shared fixtures: a fresh store per test and the real data in ../shared (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def shared_data() -> Path:
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"{data} is absent (real data lives beside the checkout in ../shared)")
    return data


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never touch the user's store or cache, never reach a real mirror.
    monkeypatch.setenv("WATTLAS_STORE", str(tmp_path / "default-store"))
    monkeypatch.delenv("WATTLAS_MIRROR", raising=False)
    monkeypatch.delenv("WATTLAS_CACHE", raising=False)

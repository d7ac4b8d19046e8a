"""The staging area is removed before the store's write lock is released.

A second ingest of the same source waits on the lock and, once it has it, claims the same
staging directory (``Store.staging_dir``). Removing it after releasing the lock raced that run:
it failed on its own ``.owner.json.tmp`` once under load (two concurrent-ingest tests).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from wattlas.ingest import ingest
from wattlas.store import Store

from ._ingest_helpers import supercloud_gpu_dir


def test_staging_is_gone_before_the_lock_is_released(tmp_path: Path, monkeypatch):
    store = Store(tmp_path / "store")
    staging = store.staging_dir("supercloud")
    seen_at_release: list[bool] = []
    original = Store.lock

    @contextlib.contextmanager
    def spying_lock(self):
        with original(self):
            yield
        seen_at_release.append(staging.exists())  # the first moment another writer may enter

    monkeypatch.setattr(Store, "lock", spying_lock)
    report = ingest("supercloud", [supercloud_gpu_dir(tmp_path / "in")], store, workers=1)
    assert report.rows["gpu_samples"] > 0
    assert seen_at_release == [False]
    assert not staging.exists()


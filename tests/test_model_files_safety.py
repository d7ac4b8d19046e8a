"""Crafted model files (issue 18, item 9): refused with exit code 1, fast and in bounded memory.

Each attack starts from a real shipped model, rewrites its zip, and rewrites the SHA-256 in the
``.json`` beside it too: a directory given with ``--models`` is untrusted as a whole. On the code
before the fix a reference cycle hung the loader, an out-of-range child index crashed
``wattlas predict`` with SIGSEGV, and a 1.5 MiB file of deflated zeros took 1 GiB and loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from wattlas.predictors import MODELS_DIR, UntrustedModelError, load

NAME = "training-power"
PREDICT = ["predict", NAME, "--gpu", "A40", "--power-limit", "300", "--batch-size", "128", "--ref-power", "250",
           "--ref-time", "100", "--format", "json"]
ROOT = Path(__file__).resolve().parent.parent
BOMB_MIB = 256

# Runs the CLI from a small process, so that wait4's peak RSS is the CLI's own (a child's
# peak starts from its parent's size at fork, and pytest is large).
_MEASURE = r"""
import json, os, signal, subprocess, sys, time
cmd, timeout_s, err_path = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
with open(err_path, "w") as err:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
deadline, timed_out = time.monotonic() + timeout_s, False
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if time.monotonic() > deadline:
        os.killpg(proc.pid, signal.SIGKILL)
        _, status, usage = os.wait4(proc.pid, 0)
        timed_out = True
        break
    time.sleep(0.02)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                  "peak_rss_mib": usage.ru_maxrss / 1024}))
"""


def _run_predict(models: Path, tmp_path: Path, timeout_s: float = 60.0) -> dict:
    """``wattlas predict --models DIR`` in a subprocess: exit code, stderr, seconds, peak RSS."""
    err_path = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "wattlas", *PREDICT, "--models", str(models)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(cmd), str(timeout_s), str(err_path)],
                         env=env, capture_output=True, text=True, check=True, timeout=timeout_s + 30)
    result = json.loads(out.stdout)
    result["seconds"] = time.monotonic() - started
    result["stderr"] = " ".join(err_path.read_text().split())  # rich wraps long lines
    return result


# ------------------------------------------------------------------------------ crafting
def _copy_model(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for ext in ("skops", "json", "md"):
        shutil.copy(MODELS_DIR / f"{NAME}.{ext}", d / f"{NAME}.{ext}")
    return d / f"{NAME}.skops"


def _nodes(state) -> Iterator[dict]:
    stack = [state]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            yield x
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def _first_tree(schema: dict) -> dict:
    """The attribute dict (a skops DictNode's content) of the schema's first TreePredictor."""
    tree = next(n for n in _nodes(schema) if n.get("__class__") == "TreePredictor")
    return tree["content"]["content"]


def _rehash(path: Path) -> None:
    """What an attacker who controls the directory does: record the new file's SHA-256."""
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))


def _rewrite(path: Path, edit: Callable[[dict, dict[str, bytes]], None]) -> None:
    """Rewrite the skops zip after ``edit(schema, members)``, then its recorded hash."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    schema = json.loads(members["schema.json"])
    edit(schema, members)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    _rehash(path)


def _edit_tree_nodes(change: Callable[[np.ndarray], None]) -> Callable[[dict, dict[str, bytes]], None]:
    def edit(schema: dict, members: dict[str, bytes]) -> None:
        member = _first_tree(schema)["nodes"]["file"]
        nodes = np.load(io.BytesIO(members[member])).copy()
        change(nodes)
        buf = io.BytesIO()
        np.save(buf, nodes)
        members[member] = buf.getvalue()
    return edit


def _cycle(schema: dict, members: dict[str, bytes], k: int = 16) -> None:
    """k lists that all refer to each other: skops' audit walks every simple path (k! of them)."""
    base = 7_000_000_000

    def node(i: int) -> dict:
        return {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": base + i}

    lists = [{**node(i), "content": [node(j) for j in range(k) if j not in (i, i + 1)]} for i in range(k)]
    for i in range(k - 1):
        lists[i]["content"].insert(0, lists[i + 1])
    tree = next(n for n in _nodes(schema) if n.get("__class__") == "TreePredictor")["content"]
    tree["content"]["extra"] = lists[0]
    tree["key_types"]["content"].append(tree["key_types"]["content"][0])


def _shared_blowup(schema: dict, members: dict[str, bytes], levels: int = 40) -> None:
    """No cycle: each list holds the next one twice, and skops' audit walks it 2**40 times."""
    base = 8_000_000_000
    inner: dict = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": base,
                   "content": []}
    for i in range(1, levels):
        ref = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": inner["__id__"]}
        inner = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": base + i,
                 "content": [inner, ref]}
    tree = next(n for n in _nodes(schema) if n.get("__class__") == "TreePredictor")["content"]
    tree["content"]["extra"] = inner
    tree["key_types"]["content"].append(tree["key_types"]["content"][0])


def _huge_header(schema: dict, members: dict[str, bytes]) -> None:
    """The tree's node array keeps its bytes but its header claims 10**9 records."""
    member = _first_tree(schema)["nodes"]["file"]
    nodes = np.load(io.BytesIO(members[member]))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(nodes.dtype),
                                                  "fortran_order": False, "shape": (10**9,)})
    members[member] = header.getvalue() + nodes.tobytes()


def _bomb(path: Path, mib: int = BOMB_MIB) -> None:
    """Replace a tree's empty bitset array by ``mib`` MiB of zeros, deflated to ~1.2 MiB."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    member = _first_tree(json.loads(members["schema.json"]))["raw_left_cat_bitsets"]["file"]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<u4", "fortran_order": False,
                                                  "shape": (mib * 2**20 // 32, 8)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in members.items():
            if name != member:
                z.writestr(name, data)
        with z.open(member, "w", force_zip64=True) as f:
            f.write(header.getvalue())
            zeros = bytes(2**20)
            for _ in range(mib):
                f.write(zeros)
    _rehash(path)


def _set_left(nodes: np.ndarray) -> None:
    nodes["left"][0] = 10**9


def _set_feature(nodes: np.ndarray) -> None:
    nodes["feature_idx"][0] = 4_000_000


ATTACKS = {
    # name: (craft(path), words the refusal must contain)
    "cycle": (lambda p: _rewrite(p, _cycle), "reference cycle"),
    "shared-reference-blowup": (lambda p: _rewrite(p, _shared_blowup), "expands to over 250,000 nodes"),
    "child-out-of-range": (lambda p: _rewrite(p, _edit_tree_nodes(_set_left)), "left child 1000000000"),
    "npy-header-claims-1e9": (lambda p: _rewrite(p, _huge_header), "declares shape (1000000000,)"),
    "deflate-bomb": (_bomb, "expand to"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_crafted_model_file_is_refused_with_exit_1(attack: str, tmp_path: Path):
    craft, words = ATTACKS[attack]
    models = tmp_path / "models"
    path = _copy_model(models)
    craft(path)
    r = _run_predict(models, tmp_path)
    # Before the fix: the cycle and the shared references ran until killed (60 s), the child
    # index crashed with SIGSEGV (-11), the header claim failed on allocating 52 GiB,
    # and the bomb (1.5 MiB on disk) peaked at 1,003 MiB and exited 0.
    assert not r["timed_out"], r
    assert r["code"] == 1, r
    assert str(path) in r["stderr"] and words in r["stderr"], r["stderr"]
    if attack == "deflate-bomb":
        assert path.stat().st_size < 2 * 2**20
        assert r["peak_rss_mib"] < BOMB_MIB, r  # refused before any member is decompressed


def test_tree_feature_index_out_of_range_is_refused(tmp_path: Path):
    """Native prediction would read column 4,000,000 of a 12-column row (on the old code this
    file loaded; only predicting read out of bounds)."""
    path = _copy_model(tmp_path)
    _rewrite(path, _edit_tree_nodes(_set_feature))
    with pytest.raises(UntrustedModelError, match="node 0 splits on feature 4000000, but the model has 12 features"):
        load(NAME, tmp_path)


# ------------------------------------------------------------------------ trial load in a child
def _start_trial(path: Path, **kwargs):
    from wattlas.predictors.modelfile import start_trial_load

    data = path.read_bytes()
    return start_trial_load(path, hashlib.sha256(data).hexdigest(), 10 * len(data), **kwargs)


def _trial_error(trial) -> str:
    try:
        trial.wait()
    except UntrustedModelError as e:
        return str(e)
    finally:
        trial.cancel()
    return "no error"


def test_trial_load_contains_crashes_memory_and_time(tmp_path: Path):
    """What the static checks might miss stays in the child process: a native crash (the bad
    child index, with the static checks bypassed), a memory blow-up (a bomb given 32 MiB), and
    a hang (a timeout shorter than the child's imports). The three run side by side."""
    crash, bomb = _copy_model(tmp_path / "crash"), _copy_model(tmp_path / "bomb")
    _rewrite(crash, _edit_tree_nodes(_set_left))
    _bomb(bomb, mib=128)
    started = time.monotonic()
    trials = [_start_trial(crash), _start_trial(bomb, memory_allowance_bytes=32 * 2**20),
              _start_trial(MODELS_DIR / f"{NAME}.skops", timeout_s=0.5)]
    slow = _trial_error(trials[2])
    assert "took over 0.5 s" in slow and time.monotonic() - started < 5, slow
    assert "killed that process with SIGSEGV" in _trial_error(trials[0])
    assert "over its 32 MiB memory allowance" in _trial_error(trials[1])


# ------------------------------------------------------------------------ shipped models unchanged
def _envelope_rows(meta: dict, names: list[str], n: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    cols = {}
    for name in names:
        lo, hi = meta["envelope"].get(name, [None, None])
        cols[name] = np.full(n, np.nan) if lo is None else rng.uniform(lo, hi, n)
    return cols


def test_shipped_models_predict_as_skops_loads_them(tmp_path: Path):
    """The checks change no model: every shipped one (and one from a user directory) predicts
    exactly as ``skops.io.load`` builds it."""
    import polars as pl
    import skops.io as sio

    from wattlas.predictors import TRUSTED_TYPES, available

    user_dir = tmp_path / "models"
    _copy_model(user_dir)
    cases = [(name, None) for name in available()] + [(NAME, user_dir)]
    for name, directory in cases:
        predictor = load(name, directory)
        plain = sio.load(MODELS_DIR / f"{name}.skops", trusted=list(TRUSTED_TYPES))
        names = list(plain.feature_names_in_)
        X = pl.DataFrame(_envelope_rows(predictor.meta, names))
        assert np.array_equal(predictor.estimator.predict(X), plain.predict(X)), name


def test_model_file_checks_keep_their_limits_on_shipped_files():
    """Headroom: the shipped files sit well inside every limit the checks enforce."""
    from wattlas.predictors import modelfile

    for path in sorted(MODELS_DIR.glob("*.skops")):
        data = path.read_bytes()
        expanded = modelfile.check_model_file(path, data)
        assert expanded < modelfile.EXPANSION_RATIO * len(data) / 4, path
        assert len(data) < modelfile.MAX_FILE_BYTES / 32, path

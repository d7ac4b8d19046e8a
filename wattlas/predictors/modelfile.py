"""Static checks of a skops model file, run before skops reads any of it.

skops' own loader trusts the file's shape: it decompresses every array member while it audits
types (a 1.5 MiB file of deflated zeros took 1 GiB), walks shared references without a visited
set (a 16-node cycle never finishes), and hands tree arrays to native code unchecked (a child
index of 10**9 crashes the process with SIGSEGV at predict time). :func:`check_model_file`
reads the zip directory, ``schema.json`` and the ``.npy`` headers only, and refuses a file

* larger than :data:`MAX_FILE_BYTES`, with more than :data:`MAX_MEMBERS` members, or whose
  members would expand to more than :data:`EXPANSION_RATIO` times the file (plus a floor, at
  most :data:`MAX_EXPANDED_BYTES`; zipfile stops each member at its declared size);
* whose node tree holds a node type that no wattlas model uses, a reference cycle, a reference
  to an unknown object, more than :data:`MAX_DEPTH` levels or more than :data:`MAX_NODES` nodes
  once shared references are expanded (which is what skops' audit walks);
* with an array whose header disagrees with its member size, or holds Python objects;
* with a boosted tree whose child indices leave the tree (or do not move forward), whose
  feature indices exceed the booster's feature count, or with categorical splits (wattlas
  models have none; their bitset arithmetic runs unchecked in native code).

Only the tree arrays and the binning's categorical flags (a few KiB each, after the size
checks) are read in full. :func:`start_trial_load` then loads a user's file once in a child
process with memory, CPU and wall-time limits, for whatever these checks miss.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import WattlasError

#: Largest model file read at all (the shipped ones are at most 1 MiB).
MAX_FILE_BYTES = 64 * 2**20
#: Most zip members (the shipped ones have at most 1,253).
MAX_MEMBERS = 20_000
#: The members may expand to this many times the file's size (shipped: at most 5.8 times) ...
EXPANSION_RATIO = 32
#: ... plus this much, so that tiny files are not refused for a large ``schema.json``.
EXPANSION_FLOOR_BYTES = 4 * 2**20
#: Most bytes all members together may expand to, whatever the file's size (shipped: 3 MB) ...
MAX_EXPANDED_BYTES = 256 * 2**20
#: ... and ``schema.json`` alone (shipped: at most 1.7 MB), parsed in full by ``json``.
MAX_SCHEMA_BYTES = 32 * 2**20
#: Deepest node nesting (shipped: 9 levels).
MAX_DEPTH = 64
#: Most nodes with shared references expanded, the work of skops' audit (shipped: at most 5,600).
MAX_NODES = 250_000

_SCALARS = {f"numpy.{t}" for t in ("uint64", "int64", "uint32", "int32", "uint8", "float64", "float32",
                                     "bool_")}
#: The node loaders and classes a wattlas model file may hold (skops' ``__loader__`` and
#: ``module.class``); ``CachedNode`` is a reference and is checked as one.
KNOWN_NODES: dict[str, frozenset[str]] = {
    "DictNode": frozenset({"builtins.dict"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool",
                           "builtins.NoneType"}),
    "TypeNode": frozenset({"builtins.str", "builtins.int"}),
    "NdArrayNode": frozenset({"numpy.ndarray", *_SCALARS}),
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
    "LossNode": frozenset({"sklearn._loss._loss.CyHalfSquaredError"}),
    "ObjectNode": frozenset({
        "wattlas.predictors.estimators.ResidualBoostingRegressor",
        "wattlas.predictors.estimators.MultiTargetResidualRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
    }),
}
_BOOSTER = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor"
_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_BIN_MAPPER = "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"


class UntrustedModelError(WattlasError):
    """A model file that is damaged, altered, or would build types outside the allow-list."""


def _refuse(path: Path, what: str) -> UntrustedModelError:
    return UntrustedModelError(f"{path}: {what}. Refusing to load this model file; retrain it with "
                               "`wattlas predictors train` or use the models shipped with wattlas.")


def read_model_bytes(path: Path) -> bytes:
    """The file's bytes, refused before reading when it is larger than :data:`MAX_FILE_BYTES`."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _refuse(path, f"the file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for model files")
    return path.read_bytes()


@dataclass
class _Frame:
    """One node being walked: its remaining children and what its subtree adds up to so far."""

    state: dict
    where: str
    children: Iterator[tuple[str, Any]]
    nodes: int = 1
    height: int = 1


@dataclass
class _Walk:
    """What the walk of ``schema.json`` found: every node by id, arrays, and the objects to check."""

    by_id: dict[int, dict] = field(default_factory=dict)
    open_ids: set[int] = field(default_factory=set)
    totals: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (nodes, height) expanded
    arrays: dict[str, str] = field(default_factory=dict)  # member -> where in the schema
    objects: dict[str, list[dict]] = field(default_factory=dict)  # class -> first occurrences
    root: dict = field(default_factory=dict)  # the top node


#: scikit-learn's ``PREDICTOR_RECORD_DTYPE`` (``ensemble/_hist_gradient_boosting/common.pyx``) on a
#: 64-bit platform, written out so that checking a file imports no scikit-learn (a test compares them).
PREDICTOR_RECORD_DTYPE = np.dtype([
    ("value", np.float64), ("count", np.uint32), ("feature_idx", np.intp), ("num_threshold", np.float64),
    ("missing_go_to_left", np.uint8), ("left", np.uint32), ("right", np.uint32), ("gain", np.float64),
    ("depth", np.uint32), ("is_leaf", np.uint8), ("bin_threshold", np.uint8), ("is_categorical", np.uint8),
    ("bitset_idx", np.uint32),
])


@dataclass(frozen=True)
class CheckedModelFile:
    """What :func:`inspect_model_file` read of a file it passed: for readers that build no objects."""

    expanded_bytes: int
    walk: _Walk
    headers: dict[str, _ArrayHeader]
    tree_nodes: dict[str, np.ndarray]  # member -> a tree's checked node records


def check_model_file(path: Path, data: bytes) -> int:
    """Refuse ``data`` (the bytes of ``path``) unless it is a well-formed wattlas skops file.

    Returns the bytes its members expand to. Raises :class:`UntrustedModelError` naming the file
    and the first problem found.
    """
    return inspect_model_file(path, data).expanded_bytes


def inspect_model_file(path: Path, data: bytes) -> CheckedModelFile:
    """:func:`check_model_file`, returning what the checks read (node tree, array headers, tree arrays)."""
    try:
        return _check(path, data)
    except UntrustedModelError:
        raise
    except Exception as e:  # any other failure to read untrusted bytes (zlib, zip, shapes): refuse
        raise _refuse(path, f"it is not a readable skops file ({type(e).__name__}: {e})") from e


def _check(path: Path, data: bytes) -> CheckedModelFile:
    _check_member_count(path, data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        expanded_bytes = _check_members(path, zf, len(data))
        try:
            schema = json.loads(zf.read("schema.json"))
        except KeyError:
            raise _refuse(path, "it is not a readable skops file (no schema.json)") from None
        walk = _walk_schema(path, schema)
        headers = {member: _check_array_header(path, zf, member, where) for member, where in walk.arrays.items()}
        tree_nodes = _check_boosters(path, zf, walk, headers)
    return CheckedModelFile(expanded_bytes, walk, headers, tree_nodes)


def _check_member_count(path: Path, data: bytes) -> None:
    """Count the members from the end record, before :mod:`zipfile` builds an object for each."""
    # zipfile has no public way to read the count first; _EndRecData is the function it uses itself.
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is not None:
        record = end_record(io.BytesIO(data))
        if record is not None and record[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS:
            raise _refuse(path, f"its zip directory lists {record[zipfile._ECD_ENTRIES_TOTAL]:,} members, "
                                f"over the limit of {MAX_MEMBERS:,}")


def _check_members(path: Path, zf: zipfile.ZipFile, file_bytes: int) -> int:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _refuse(path, f"it has {len(infos):,} members, over the limit of {MAX_MEMBERS:,}")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _refuse(path, "its zip directory names a member twice")
    schema = next((i for i in infos if i.filename == "schema.json"), None)
    if schema is not None and schema.file_size > MAX_SCHEMA_BYTES:
        raise _refuse(path, f"its schema.json expands to {schema.file_size:,} bytes, over the limit of "
                            f"{MAX_SCHEMA_BYTES:,}")
    limit = min(EXPANSION_RATIO * file_bytes + EXPANSION_FLOOR_BYTES, MAX_EXPANDED_BYTES)
    total = sum(i.file_size for i in infos)
    if total > limit:
        biggest = max(infos, key=lambda i: i.file_size)
        raise _refuse(path, f"its members expand to {total:,} bytes (the largest, {biggest.filename}, to "
                            f"{biggest.file_size:,} from {biggest.compress_size:,}), over the limit of "
                            f"{limit:,} bytes for a {file_bytes:,}-byte file ({EXPANSION_RATIO}x its size + "
                            f"{EXPANSION_FLOOR_BYTES // 2**20} MiB, at most {MAX_EXPANDED_BYTES // 2**20} MiB)")
    return total


def _walk_schema(path: Path, schema: Any) -> _Walk:
    """Walk the node tree as skops' ``get_tree`` does, with an explicit stack.

    skops memoizes a node by its ``__id__`` when it starts building it, and any later node with
    that id (whatever its content) is the same object. A later mention of an id whose node is
    still being built is a cycle; a mention of a finished node is a shared reference, whose
    subtree skops' audit walks again each time, so it counts again here.
    """
    walk = _Walk()
    stack: list[_Frame] = []
    root = _enter(path, walk, schema, "schema", depth=1)
    if not isinstance(root, _Frame):
        raise _refuse(path, "its schema.json does not start with a node")
    walk.root = root.state
    stack.append(root)
    while stack:
        top = stack[-1]
        child = next(top.children, None)
        if child is None:
            stack.pop()
            _leave(path, walk, top, stack[-1] if stack else None)
            continue
        entered = _enter(path, walk, child[1], child[0], depth=len(stack) + 1)
        if isinstance(entered, _Frame):
            stack.append(entered)
        else:
            _add_child(path, top, *entered, depth=len(stack))
    return walk


def _enter(path: Path, walk: _Walk, state: Any, where: str, depth: int) -> _Frame | tuple[int, int]:
    """A frame for a new node, or (nodes, height) of a reference to a finished one."""
    if not isinstance(state, dict) or not isinstance(state.get("__loader__"), str):
        raise _refuse(path, f"{where} in schema.json is not a skops node")
    node_id = state.get("__id__")
    if node_id is not None and (isinstance(node_id, bool) or not isinstance(node_id, int)):
        raise _refuse(path, f"{where} in schema.json has a non-integer __id__ {node_id!r}")
    if node_id in walk.open_ids:
        raise _refuse(path, f"{where} in schema.json refers back to object {node_id}, which contains it "
                            "(a reference cycle)")
    if node_id in walk.totals:
        return walk.totals[node_id]
    loader = state["__loader__"]
    if loader == "CachedNode":
        raise _refuse(path, f"{where} in schema.json refers to object {node_id!r}, which is not defined before it")
    kind = f"{state.get('__module__')}.{state.get('__class__')}"
    if kind not in KNOWN_NODES.get(loader, ()):
        raise _refuse(path, f"{where} in schema.json is a {loader} for {kind}: wattlas does not trust that "
                            "node type in model files")
    if depth > MAX_DEPTH:
        raise _refuse(path, f"{where} in schema.json is nested {depth} levels deep, over the limit of {MAX_DEPTH}")
    if node_id:  # skops memoizes only truthy ids
        walk.open_ids.add(node_id)
        walk.by_id[node_id] = state
    walk.objects.setdefault(kind, []).append(state)
    return _Frame(state, where, iter(_children(path, state, where, walk)))


def _leave(path: Path, walk: _Walk, frame: _Frame, parent: _Frame | None) -> None:
    node_id = frame.state.get("__id__")
    if node_id:
        walk.open_ids.discard(node_id)
        walk.totals[node_id] = (frame.nodes, frame.height)
    if parent is not None:
        _add_child(path, parent, frame.nodes, frame.height, depth=0)


def _add_child(path: Path, parent: _Frame, nodes: int, height: int, depth: int) -> None:
    parent.nodes += nodes
    parent.height = max(parent.height, height + 1)
    if parent.nodes > MAX_NODES:
        raise _refuse(path, f"{parent.where} in schema.json expands to over {MAX_NODES:,} nodes (counting each "
                            "shared reference where it is used), over the limit")
    if parent.height + depth > MAX_DEPTH:
        raise _refuse(path, f"{parent.where} in schema.json nests over {MAX_DEPTH} levels deep once shared "
                            "references are expanded")


def _children(path: Path, state: dict, where: str, walk: _Walk) -> list[tuple[str, Any]]:
    """A node's child nodes, in the order skops' loader for it visits them."""
    loader, content = state["__loader__"], state.get("content")
    try:
        if loader == "DictNode":
            return [(f"{where}.key_types", state["key_types"])] + [
                (f"{where}[{key!r}]", value) for key, value in _as(dict, content).items()]
        if loader in ("ListNode", "TupleNode"):
            return [(f"{where}[{i}]", value) for i, value in enumerate(_as(list, content))]
        if loader == "ObjectNode":
            return [] if content is None else [(f"{where}.content", content)]
        if loader == "LossNode":
            return [(f"{where}.content", content), (f"{where}.args", state["__reduce__"]["args"])]
        if loader == "RandomGeneratorNode":
            content = _as(dict, content)
            return [(f"{where}.bit_generator", content["bit_generator"]), (f"{where}.seed_seq", content["seed_seq"])]
        if loader == "NdArrayNode":
            if state.get("type") == "numpy":
                walk.arrays.setdefault(_as(str, state["file"]), where)
                return []
            if state.get("type") == "json":
                return [(f"{where}[{i}]", v) for i, v in enumerate(_as(list, content))] + [
                    (f"{where}.shape", state["shape"])]
            raise TypeError(f"array type {state.get('type')!r}")
        return []  # JsonNode, TypeNode: no children
    except (KeyError, TypeError) as e:
        raise _refuse(path, f"{where} in schema.json is a malformed {loader} ({type(e).__name__}: {e})") from e


def _as(kind: type, value: Any) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected a {kind.__name__}, found {type(value).__name__}")
    return value


@dataclass(frozen=True)
class _ArrayHeader:
    header_bytes: int
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype


def _check_array_header(path: Path, zf: zipfile.ZipFile, member: str, where: str) -> _ArrayHeader:
    """Read only the ``.npy`` header and compare the array it declares with the member's size."""
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise _refuse(path, f"{where} in schema.json names the array {member}, which the file does not have") from None
    try:
        with zf.open(info) as f:
            header = _read_npy_header(f)
    except Exception as e:  # numpy, zipfile and zlib each raise their own on damaged bytes
        raise _refuse(path, f"array {member} ({where}) has a damaged .npy header ({type(e).__name__}: {e})") from e
    if header.dtype.hasobject:
        raise _refuse(path, f"array {member} ({where}) holds Python objects (dtype {header.dtype})")
    data_bytes = math.prod(header.shape) * header.dtype.itemsize
    if header.header_bytes + data_bytes != info.file_size:
        raise _refuse(path, f"array {member} ({where}) declares shape {header.shape} of {header.dtype} "
                            f"({data_bytes:,} bytes) but its member holds {info.file_size - header.header_bytes:,} "
                            "bytes of data")
    return header


def _read_npy_header(f: IO[bytes]) -> _ArrayHeader:
    """The header at the start of ``f``: raw bytes read here, parsed by numpy (cached, as many repeat)."""
    prefix = f.read(np.lib.format.MAGIC_LEN)
    length_bytes = {b"\x01": 2, b"\x02": 4}.get(prefix[6:7]) if prefix[:6] == np.lib.format.MAGIC_PREFIX else None
    if length_bytes is None:
        raise ValueError(f"not a .npy version 1 or 2 header: {prefix!r}")
    length = f.read(length_bytes)
    raw = prefix + length + f.read(int.from_bytes(length, "little"))
    return _parse_npy_header(raw)


@functools.lru_cache(maxsize=4096)
def _parse_npy_header(raw: bytes) -> _ArrayHeader:
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(f)
    if f.tell() != len(raw):
        raise ValueError("truncated .npy header")
    return _ArrayHeader(len(raw), shape, fortran_order, dtype)


def _load_array(zf: zipfile.ZipFile, member: str, header: _ArrayHeader) -> np.ndarray:
    """A whole array member: only after :func:`_check_array_header` bounded its size."""
    data = zf.read(member)[header.header_bytes:]
    order = "F" if header.fortran_order else "C"
    return np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order=order)


def _attrs(walk: _Walk, obj: dict) -> dict[str, dict]:
    """The attribute nodes of an ObjectNode (references resolved to their definitions)."""
    content = _resolve(walk, obj.get("content") or {})
    attrs = content.get("content") if content.get("__loader__") == "DictNode" else None
    return {k: _resolve(walk, v) for k, v in attrs.items()} if isinstance(attrs, dict) else {}


def _items(walk: _Walk, state: dict | None) -> list[dict]:
    """The item nodes of a ListNode or TupleNode (resolved), none for anything else."""
    if not state or state.get("__loader__") not in ("ListNode", "TupleNode"):
        return []
    return [_resolve(walk, s) for s in state["content"]]


def _resolve(walk: _Walk, state: dict) -> dict:
    return walk.by_id.get(state.get("__id__"), state) if state.get("__id__") else state


def _json_int(walk: _Walk, state: dict | None) -> int | None:
    if not state or state.get("__loader__") != "JsonNode":
        return None
    value = json.loads(state["content"]) if isinstance(state.get("content"), str) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_boosters(path: Path, zf: zipfile.ZipFile, walk: _Walk,
                    headers: dict[str, _ArrayHeader]) -> dict[str, np.ndarray]:
    """Tree arrays that native prediction code indexes without bounds checks must stay in bounds.

    Returns the checked node arrays by member name.
    """
    checked: set[int] = set()
    tree_nodes: dict[str, np.ndarray] = {}
    for booster in walk.objects.get(_BOOSTER, []):
        attrs = _attrs(walk, booster)
        n_features = _json_int(walk, attrs.get("n_features_in_"))
        if n_features is None or n_features < 1:
            raise _refuse(path, "a gradient-boosted model in it has no integer n_features_in_")
        flags = attrs.get("is_categorical_", {})
        if flags.get("__loader__") != "JsonNode" or flags.get("content") != "null":
            raise _refuse(path, "a gradient-boosted model in it has categorical features, which wattlas models "
                                "never have")
        for iteration in _items(walk, attrs.get("_predictors")):
            for tree in _items(walk, iteration):
                if tree.get("__class__") != "TreePredictor":
                    raise _refuse(path, "a gradient-boosted model's _predictors holds something other than trees")
                member, nodes = _check_tree(path, zf, walk, tree, n_features, headers, PREDICTOR_RECORD_DTYPE)
                tree_nodes[member] = nodes
                checked.add(id(tree))
    if any(id(t) not in checked for t in walk.objects.get(_TREE, [])):
        raise _refuse(path, "it holds a tree outside any gradient-boosted model's _predictors")
    for mapper in walk.objects.get(_BIN_MAPPER, []):
        flags = _attrs(walk, mapper).get("is_categorical_")
        if flags is None:
            continue
        if flags.get("type") != "numpy" or np.any(_load_array(zf, flags["file"], headers[flags["file"]])):
            raise _refuse(path, "its feature binning marks categorical features, which wattlas models never have")
    return tree_nodes


def _check_tree(path: Path, zf: zipfile.ZipFile, walk: _Walk, tree: dict, n_features: int,
                headers: dict[str, _ArrayHeader], record_dtype: np.dtype) -> tuple[str, np.ndarray]:
    node_array = _attrs(walk, tree).get("nodes", {})
    if node_array.get("type") != "numpy":
        raise _refuse(path, "a tree in it has no node array")
    member = node_array["file"]
    nodes = _load_array(zf, member, headers[member])
    label = f"tree array {member}"
    if nodes.dtype != record_dtype or nodes.ndim != 1 or len(nodes) == 0:
        raise _refuse(path, f"{label} is not a non-empty 1-D array of scikit-learn's tree node records "
                            f"(dtype {nodes.dtype}, shape {nodes.shape})")
    inner = np.flatnonzero(nodes["is_leaf"] == 0)
    for side in ("left", "right"):
        child = nodes[side][inner].astype(np.int64)
        bad = np.flatnonzero((child <= inner) | (child >= len(nodes)))
        if bad.size:
            i = inner[bad[0]]
            raise _refuse(path, f"{label}: node {i} has {side} child {child[bad[0]]}, outside nodes {i + 1} to "
                                f"{len(nodes) - 1} of its {len(nodes)}-node tree")
    features = nodes["feature_idx"][inner]
    if features.size and int(features.max()) >= n_features:
        i = inner[int(np.argmax(features))]
        raise _refuse(path, f"{label}: node {i} splits on feature {int(features.max())}, but the model has "
                            f"{n_features} features")
    if np.any(nodes["is_categorical"][inner]):
        raise _refuse(path, f"{label} has categorical splits, which wattlas models never have")
    return member, nodes


#: The trial load of a user's model file in a child process may take this long (it imports
#: scikit-learn first: 3 s on an idle machine, the shipped models load in under 0.5 s) ...
TRIAL_TIMEOUT_S = 120
#: ... and map this much memory beyond what its imports mapped (the largest shipped model needs
#: about 60 MiB), plus :data:`TRIAL_MEMORY_PER_BYTE` times the file's expanded size.
TRIAL_MEMORY_FLOOR_BYTES = 512 * 2**20
TRIAL_MEMORY_PER_BYTE = 16


@dataclass
class TrialLoad:
    """A running trial load (see :func:`start_trial_load`); :meth:`wait` raises if it failed."""

    path: Path
    proc: subprocess.Popen
    timeout_s: float
    allowance_bytes: int
    started_s: float = field(default_factory=time.monotonic)

    def wait(self) -> None:
        left_s = max(0.0, self.timeout_s - (time.monotonic() - self.started_s))
        try:
            _, err = self.proc.communicate(timeout=left_s)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise _refuse(self.path, f"loading it in a separate process took over {self.timeout_s:g} s") from None
        code = self.proc.returncode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            raise _refuse(self.path, f"loading it in a separate process killed that process with {name}")
        if code != 0:
            last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:500]
            if "MemoryError" in last:
                last = f"{last} (over its {self.allowance_bytes // 2**20:,} MiB memory allowance)"
            raise _refuse(self.path, f"loading it in a separate process failed: {last}")

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def start_trial_load(path: Path, sha256: str, expanded_bytes: int, *, timeout_s: float = TRIAL_TIMEOUT_S,
                     memory_allowance_bytes: int | None = None) -> TrialLoad:
    """Start loading ``path`` (which must still hash to ``sha256``) in a limited child process.

    What the static checks miss can then crash, hang or exhaust only that child. The child
    exits 0 or not, nothing more; the caller loads the bytes it hashed itself afterwards.
    """
    if memory_allowance_bytes is None:
        memory_allowance_bytes = TRIAL_MEMORY_FLOOR_BYTES + TRIAL_MEMORY_PER_BYTE * expanded_bytes
    import wattlas

    # The child must import this same wattlas, and one thread per library is all it needs.
    root = str(Path(wattlas.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "wattlas.predictors._trial_load", str(path), sha256,
           str(memory_allowance_bytes), str(math.ceil(timeout_s) + 1)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    return TrialLoad(path, proc, timeout_s, memory_allowance_bytes)

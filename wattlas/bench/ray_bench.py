"""``wattlas bench ... --engine ray``: one actor per GPU of a Ray cluster (one per node without GPUs).

Each actor runs the same bench function a local ``wattlas bench`` runs (:mod:`wattlas.bench.run`)
on its own device, against a scratch store on its own node; after each point it sends that
point's rows (``bench_results``, ``power_samples``) back as a stream, and the driver commits them
to the real store as they arrive, one transaction per point, under the same keys
(``<run_id>.<point_id>``). So Ctrl-C on the driver keeps every point that has arrived, as a local
run keeps every point it measured. Each actor's run is one ``bench_runs`` row (its host, device and
Ray node), all tied by ``cluster_run_id``.

Which devices run: ``--gpus H100,A100`` keeps the GPUs whose Ray accelerator type
(``accelerator_type:<name>`` resource, set by Ray from the GPU model) contains one of the names;
every selected device runs the same points unless the sweep lists are split between devices of
the same type (:func:`split_points`). Without GPUs (``--device cpu``, or a CPU-only cluster)
there is one actor per node, running the CPU workloads (energy unavailable where no RAPL counter
is readable, with its reason, as locally).
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WattlasError
from .session import SOURCE

ACCEL_PREFIX = "accelerator_type:"
#: The sweep lists that :func:`split_points` deals out between devices of one type.
SPLITTABLE = {"gemm": "shapes", "llm": "batch_sizes"}


@dataclass(frozen=True)
class Slot:
    """One actor to start: a GPU on a node (``gpu`` set) or a whole node's CPU."""

    node_id: str
    node_ip: str
    gpu: str | None
    #: CPUs the actor reserves: 1 beside a GPU; the whole node for the CPU workloads, so that Ray
    #: gives BLAS every core (it sets OMP_NUM_THREADS to the actor's CPUs), as a local run has.
    cpus: int = 1

    @property
    def device_type(self) -> str:
        return self.gpu or "cpu"


def plan_slots(nodes: Sequence[dict[str, Any]], *, device: str = "auto",
               gpus: Sequence[str] | None = None) -> list[Slot]:
    """The actors for ``nodes`` (``ray.nodes()`` entries): one per GPU, or one per node for CPU.

    ``gpus`` keeps GPUs whose accelerator type contains one of the names (case-insensitive);
    naming GPUs the cluster lacks is an error listing the ones it has.
    """
    alive = [n for n in nodes if n.get("Alive", True)]
    found: list[Slot] = []
    for n in alive:
        res = n.get("Resources", {})
        kinds = [k.removeprefix(ACCEL_PREFIX) for k in res if k.startswith(ACCEL_PREFIX)]
        found += [Slot(n["NodeID"], n.get("NodeManagerAddress", ""), kinds[0] if kinds else "GPU")
                  for _ in range(int(res.get("GPU", 0)))]
    if gpus:
        wanted = [g.lower() for g in gpus]
        keep = [s for s in found if any(w in s.gpu.lower() for w in wanted)]
        if not keep:
            have = sorted({s.gpu for s in found}) or ["none"]
            raise WattlasError(f"--gpus {','.join(gpus)}: the cluster has no such GPU (it has: {', '.join(have)})")
        return keep
    if device == "cpu" or (device == "auto" and not found):
        return [Slot(n["NodeID"], n.get("NodeManagerAddress", ""), None,
                     max(1, int(n.get("Resources", {}).get("CPU", 1)))) for n in alive]
    if not found:
        raise WattlasError("--device cuda: the Ray cluster has no GPU resources")
    return found


def split_points(bench: str, kwargs: dict[str, Any], slots: Sequence[Slot]) -> list[dict[str, Any]]:
    """Per slot, its options: an explicit sweep list is dealt round-robin between the slots of one
    device type (each type runs the whole list, for cross-GPU comparisons); defaults are not split."""
    name = SPLITTABLE.get(bench)
    values = kwargs.get(name) if name else None
    if not values:
        return [dict(kwargs) for _ in slots]
    out = []
    rank: dict[str, int] = {}
    per_type = {t: sum(s.device_type == t for s in slots) for t in {s.device_type for s in slots}}
    for s in slots:
        i = rank.get(s.device_type, 0)
        rank[s.device_type] = i + 1
        share = list(values)[i::per_type[s.device_type]]
        out.append({**kwargs, name: share} if share else None)
    return out


# ------------------------------------------------------------------ the actor
class BenchActor:
    """Runs one bench function on this actor's device against a scratch store, streaming points."""

    def run(self, bench: str, kwargs: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        from ..store import Store
        from . import run as runs

        fn = {"gemm": runs.bench_gemm, "llm": runs.bench_llm, "colocate": runs.bench_colocate}[bench]
        scratch = tempfile.mkdtemp(prefix="wattlas-bench-")
        store = Store(scratch)
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        sent: set[str] = set()

        def on_point(_row: dict[str, Any]) -> None:
            events.put(("point", None))

        def work() -> None:
            try:
                fn(store=scratch, on_point=on_point, **kwargs)
                events.put(("done", None))
            except BaseException as e:  # sent to the driver after the run's row
                events.put(("error", e))

        threading.Thread(target=work, name="wattlas-bench", daemon=True).start()
        try:
            while True:
                kind, payload = events.get()
                for key, tables in _new_points(store, sent):
                    yield "point", key, tables
                    # The run's row (status `running`) with its points: a driver stopped
                    # half-way still has one bench_runs row per device for what it kept.
                    yield "run", "", _tables(store, "bench_runs")
                if kind == "error":
                    yield "run", "", _tables(store, "bench_runs")
                    raise payload
                if kind == "done":
                    yield "run", "", _tables(store, "bench_runs")
                    return
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _tables(store: Any, table: str, key: str | None = None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [pq.read_table(p) for _, k, p in store.committed_files(table) if key is None or k == key]
    return {table: pa.concat_tables(parts, promote_options="permissive")} if parts else {}


def _new_points(store: Any, sent: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    keys = sorted({k for _, k, _ in store.committed_files("bench_results")} - sent)
    for key in keys:
        sent.add(key)
        yield key, {**_tables(store, "bench_results", key), **_tables(store, "power_samples", key)}


# ------------------------------------------------------------------ the driver
@dataclass
class ClusterRun:
    """What the CLI summary prints: every committed row, across the cluster's runs."""

    store: Any
    bench: str
    run_id: str
    rows: list[dict[str, Any]]
    points: int = 0


def bench_on_ray(bench: str, *, address: str | None = None, gpus: Sequence[str] | None = None,
                 store: Any = None, device: str = "auto", on_start: Callable[[int | None], None] | None = None,
                 on_point: Callable[[dict[str, Any]], None] | None = None, command_line: Sequence[str] | None = None,
                 **kwargs: Any) -> ClusterRun:
    """Run ``bench`` (gemm, llm, colocate) on every selected device of the cluster at ``address``."""
    from ..ingest.ray_engine import require_ray
    from ..store import Store

    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        import logging

        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
    try:
        slots = plan_slots(ray.nodes(), device=device, gpus=gpus)
        target = Store(store)
        cluster_run_id = uuid.uuid4().hex[:12]
        run = ClusterRun(target, bench, cluster_run_id, [])
        if on_start:
            on_start(None)  # points arrive from every device: no total up front
        events: queue.Queue[tuple[Slot, str, str, dict[str, Any]] | tuple[Slot, BaseException]] = queue.Queue()
        threads = []
        actor_cls = ray.remote(BenchActor)
        opts = {"command_line": list(command_line) if command_line else None}
        for slot, kw in zip(slots, split_points(bench, kwargs, slots), strict=True):
            if kw is None:
                continue
            actor = actor_cls.options(**_placement(ray, slot)).remote()
            gen = actor.run.options(num_returns="streaming").remote(
                bench, {**kw, **opts, "device": "cuda" if slot.gpu else "cpu"})
            t = threading.Thread(target=_drain, args=(ray, gen, slot, events), daemon=True)
            t.start()
            threads.append(t)
        runs: dict[str, Any] = {}
        try:
            errors = _commit_as_they_come(events, len(threads), target, run, on_point, runs)
        except KeyboardInterrupt:
            _mark_interrupted(target, runs)
            raise
        if errors:
            slot, e = errors[0]
            raise WattlasError(f"bench on node {slot.node_ip} ({slot.device_type}) failed: {e}") from e
        return run
    finally:
        if started:
            ray.shutdown()


def _placement(ray: Any, slot: Slot) -> dict[str, Any]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    where = NodeAffinitySchedulingStrategy(slot.node_id, soft=False)
    if slot.gpu:
        return {"num_gpus": 1, "num_cpus": 1, "scheduling_strategy": where}
    return {"num_cpus": slot.cpus, "scheduling_strategy": where}


def _drain(ray: Any, gen: Any, slot: Slot, events: queue.Queue) -> None:
    try:
        for ref in gen:
            kind, key, tables = ray.get(ref)
            events.put((slot, kind, key, tables))
    except BaseException as e:
        cause = getattr(e, "cause", None)
        events.put((slot, cause if isinstance(cause, BaseException) else e))
    events.put((slot, "end", "", {}))


def _commit_as_they_come(events: queue.Queue, n_actors: int, store: Any, run: ClusterRun,
                         on_point: Callable[[dict[str, Any]], None] | None,
                         runs: dict[str, Any]) -> list[tuple[Slot, BaseException]]:
    """Commit points and run rows as actors send them; ``runs`` gets the last row of each run."""
    errors = []
    ended = 0
    while ended < n_actors:
        ev = events.get()
        if len(ev) == 2:
            errors.append(ev)
            continue
        slot, kind, key, tables = ev
        if kind == "end":
            ended += 1
        elif kind == "point":
            with store.transaction(SOURCE) as tx:
                for table, data in tables.items():
                    tx.put(table, key, data)
            rows = tables["bench_results"].to_pylist()
            run.rows += rows
            run.points += 1
            if on_point:
                for r in rows:
                    on_point(r)
        elif kind == "run" and "bench_runs" in tables:
            t = tables["bench_runs"]
            for name, value in (("cluster_run_id", run.run_id), ("ray_node_id", slot.node_id),
                                ("ray_node_ip", slot.node_ip)):
                # The scratch store conformed the row to the schema: these columns exist, null.
                i = t.schema.get_field_index(name)
                t = t.set_column(i, name, _repeat(value, t.num_rows)) if i >= 0 else \
                    t.append_column(name, _repeat(value, t.num_rows))
            with store.transaction(SOURCE) as tx:
                for run_id in t.column("run_id").to_pylist():
                    runs[run_id] = t.filter(_eq(t, "run_id", run_id))
                    tx.put("bench_runs", run_id, runs[run_id])
    return errors


def _mark_interrupted(store: Any, runs: dict[str, Any]) -> None:
    """Ctrl-C on the driver: each device's run row says `interrupted`, as a local run's does."""
    with store.transaction(SOURCE) as tx:
        for run_id, t in runs.items():
            i = t.schema.get_field_index("status")
            tx.put("bench_runs", run_id, t.set_column(i, "status", _repeat("interrupted", t.num_rows)))


def _repeat(value: str, n: int) -> Any:
    import pyarrow as pa

    return pa.array([value] * n, pa.string())


def _eq(t: Any, column: str, value: str) -> Any:
    import pyarrow.compute as pc

    return pc.equal(t.column(column), value)

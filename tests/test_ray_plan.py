"""Issue 17: which devices of a Ray cluster a `wattlas bench --engine ray` runs on (no Ray needed)."""

from __future__ import annotations

import pytest

from wattlas.bench.ray_bench import Slot, plan_slots, split_points
from wattlas.errors import WattlasError


def _node(node_id: str, gpus: int = 0, kind: str | None = None, alive: bool = True) -> dict:
    res = {"CPU": 8.0, f"node:10.0.0.{node_id}": 1.0}
    if gpus:
        res["GPU"] = float(gpus)
    if kind:
        res[f"accelerator_type:{kind}"] = 1.0
    return {"NodeID": node_id, "NodeManagerAddress": f"10.0.0.{node_id}", "Alive": alive, "Resources": res}


CLUSTER = [_node("1", 2, "H100"), _node("2", 1, "A100"), _node("3"), _node("4", 8, "H100", alive=False)]


def test_one_actor_per_gpu_and_gpus_filter_by_accelerator_type():
    assert [s.gpu for s in plan_slots(CLUSTER)] == ["H100", "H100", "A100"]
    assert [(s.node_id, s.gpu) for s in plan_slots(CLUSTER, gpus=["a100"])] == [("2", "A100")]
    assert len(plan_slots(CLUSTER, gpus=["H100", "A100"])) == 3


def test_unknown_gpu_type_is_refused_naming_what_the_cluster_has():
    with pytest.raises(WattlasError, match=r"--gpus B200: the cluster has no such GPU \(it has: A100, H100\)"):
        plan_slots(CLUSTER, gpus=["B200"])


def test_cpu_clusters_and_device_cpu_get_one_actor_per_live_node():
    cpu_only = [_node("1"), _node("2"), _node("3", alive=False)]
    # A CPU actor takes the node's every CPU: Ray sizes BLAS threads (OMP_NUM_THREADS) by them.
    assert [(s.node_id, s.gpu, s.cpus) for s in plan_slots(cpu_only)] == [("1", None, 8), ("2", None, 8)]
    assert {s.cpus for s in plan_slots(CLUSTER)} == {1}
    assert [s.node_id for s in plan_slots(CLUSTER, device="cpu")] == ["1", "2", "3"]
    with pytest.raises(WattlasError, match="no GPU resources"):
        plan_slots(cpu_only, device="cuda")


def test_explicit_sweep_lists_are_dealt_within_each_device_type():
    slots = [Slot("1", "a", "H100"), Slot("1", "a", "H100"), Slot("2", "b", "A100")]
    shares = split_points("gemm", {"shapes": [1, 2, 3], "quick": True}, slots)
    assert [s["shapes"] for s in shares] == [[1, 3], [2], [1, 2, 3]]
    assert split_points("colocate", {"workloads": ["a"]}, slots) == [{"workloads": ["a"]}] * 3
    # More devices than points: the extra device gets nothing to run.
    assert split_points("llm", {"batch_sizes": [4]}, slots[:2]) == [{"batch_sizes": [4]}, None]

"""Issue 17: ingest (and bench) on a real multi-node Ray cluster, with inputs on an S3 server.

The cluster is two ``ray start`` nodes on 127.0.0.1 (a head and a worker, separate raylets and
temp dirs, one CPU each), started once for this file (module scope: the rest of a full test run
does not share the machine with it) and stopped by killing the processes the fixture started
(``ray stop`` would kill every Ray process on the machine, other users' too). The S3 server is
moto's, on a free loopback port, started before the cluster so that the nodes see its endpoint
(``AWS_ENDPOINT_URL``) the way real nodes see their credentials. Tests skip only when Ray (or
moto) is missing or the cluster cannot start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattlas.store import Store

from ._ingest_helpers import snapshot, supercloud_gpu_dir
from ._ray_local import cluster_env, free_port, node_processes, start_command
from .llm_fixtures import AZURE_2023_CODE

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
#: Manifest columns that name the machine or the moment, not the data: the path the driver saw
#: (a local path or an s3:// URL) and the commit time.
HOST_FIELDS = ("input_path", "ingested_at")
BUCKET = "wattlas-test"

# The CLI with batches of 2 files, so that a few files make many tasks (as in test_cli_interrupts).
CLI_SMALL_BATCHES = textwrap.dedent("""
    import sys
    from wattlas.ingest import engine
    from wattlas.cli import main

    engine.BATCH_FILES = 2
    sys.exit(main(sys.argv[1:]))
""")


# ------------------------------------------------------------------ the S3 server
@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server_mod = pytest.importorskip("moto.server")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _s3_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "WATTLAS_S3_ANONYMOUS": "0"}


def _upload(endpoint: str, prefix: str, root: Path) -> str:
    """Put every file under ``root`` at ``s3://BUCKET/prefix/<relative path>``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.upload_file(str(f), BUCKET, f"{prefix}/{f.relative_to(root).as_posix()}")
    return f"s3://{BUCKET}/{prefix}/"


# ------------------------------------------------------------------ the cluster
class Node:
    """One ``ray start`` node: its temp dir and the processes it runs (found by that dir)."""

    def __init__(self, temp_dir: Path):
        self.temp_dir = temp_dir

    def pids(self) -> set[int]:
        return node_processes([self.temp_dir])

    def running(self, title: str) -> bool:
        """Does one of the node's processes carry ``title`` (a worker running that task)?"""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
                    return True
        return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class Cluster:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[Node] = []

    def start_node(self, head: bool = False) -> Node:
        node = Node(Path(tempfile.mkdtemp(prefix="wr", dir="/tmp")))  # short: unix socket paths
        self.nodes.append(node)
        cmd = start_command(node.temp_dir, self.port, head=head, cpus=1)
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return node

    def stop_node(self, node: Node) -> None:
        node.kill(signal.SIGTERM)
        deadline = time.monotonic() + 3  # then SIGKILL: idle workers may ignore SIGTERM
        while node.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        node.kill(signal.SIGKILL)
        shutil.rmtree(node.temp_dir, ignore_errors=True)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node)


@pytest.fixture(scope="module")
def cluster(s3_endpoint: str) -> Iterator[Cluster]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the fixture finds the nodes' processes in /proc")
    # Workers import this tree's wattlas, as an installed wattlas on a real node.
    env = cluster_env(**_s3_env(s3_endpoint),
                      PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    c = Cluster(env)
    try:
        c.start_node(head=True)
        c.start_node()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        c.stop()
        pytest.skip(f"Ray cannot start here: {e}")
    try:
        yield c
    finally:
        c.stop()


def _cli(cluster: Cluster, *argv: str, small_batches: bool = False, **kw) -> subprocess.CompletedProcess:
    code = ["-c", CLI_SMALL_BATCHES] if small_batches else ["-m", "wattlas"]
    return subprocess.run([sys.executable, *code, *argv], env=cluster.env, capture_output=True, text=True,
                          timeout=300, **kw)


def _ingest(cluster: Cluster, source: str, store: Path, *from_: str, engine: str = "ray",
            extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    argv = ["ingest", source, "--store", str(store), *(a for f in from_ for a in ("--from", f)), *extra]
    if engine == "ray":
        argv += ["--engine", "ray", "--address", cluster.address]
    done = _cli(cluster, *argv, small_batches=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _contents(store: Path, table: str) -> list[tuple]:
    """Every row of ``table`` (host-specific manifest fields left out), sorted."""
    drop = ", ".join(HOST_FIELDS) if table == "ingest_manifest" else "source"
    return sorted(Store(store).sql(f"select * exclude ({drop}) from {table}").rows(), key=repr)


def _multi_key_gpu_dir(root: Path, keys: int, files: int) -> Path:
    """Supercloud GPU files under ``keys`` folders (store keys) of ``files`` files each."""
    for k in range(keys):
        supercloud_gpu_dir(root / f"k{k}", n_files=files, power_w=40 + k)
        (root / f"k{k}" / "gpu" / "0007").rename(root / f"k{k}" / "gpu" / f"{k:04d}")
    return root


# ------------------------------------------------------------------ ingest
def test_ray_ingest_equals_local_ingest(cluster: Cluster, tmp_path: Path):
    data = _multi_key_gpu_dir(tmp_path / "data", keys=3, files=5)
    _ingest(cluster, "supercloud", tmp_path / "local", str(data), engine="local")
    done = _ingest(cluster, "supercloud", tmp_path / "ray", str(data))

    assert "gpu_samples: 75 rows written" in done.stderr
    for table in ("gpu_samples", "ingest_manifest"):
        assert _contents(tmp_path / "ray", table) == _contents(tmp_path / "local", table)
    assert len(_contents(tmp_path / "ray", "ingest_manifest")) == 15


def test_s3_inputs_on_ray_equal_a_local_ingest_of_the_same_files(cluster: Cluster, s3_endpoint: str,
                                                                 tmp_path: Path):
    gpu = _multi_key_gpu_dir(tmp_path / "gpu", keys=2, files=4)
    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "AzureLLMInferenceTrace_code.csv").write_bytes(AZURE_2023_CODE)
    gpu_url = _upload(s3_endpoint, "supercloud", gpu)
    llm_url = _upload(s3_endpoint, "azure", llm)

    for source, url, local, table in (("supercloud", gpu_url, gpu, "gpu_samples"),
                                      ("azure-llm-2023", llm_url, llm, "llm_requests")):
        _ingest(cluster, source, tmp_path / f"{source}-local", str(local), engine="local")
        _ingest(cluster, source, tmp_path / f"{source}-s3", url)
        assert _contents(tmp_path / f"{source}-s3", table) == _contents(tmp_path / f"{source}-local", table)
        manifest = _contents(tmp_path / f"{source}-s3", "ingest_manifest")
        assert manifest == _contents(tmp_path / f"{source}-local", "ingest_manifest") and manifest
        paths = Store(tmp_path / f"{source}-s3").sql("select input_path from ingest_manifest")["input_path"]
        assert all(p.startswith(f"s3://{BUCKET}/") for p in paths)


def test_s3_prefix_without_files_of_the_source_is_refused(cluster: Cluster, s3_endpoint: str, tmp_path: Path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello\n")
    url = _upload(s3_endpoint, "other", tmp_path / "other")
    done = _cli(cluster, "ingest", "supercloud", "--store", str(tmp_path / "s"), "--from", url)
    assert done.returncode != 0
    assert f"{url} holds no files of source 'supercloud'" in " ".join(done.stderr.split())


def test_a_malformed_file_fails_on_ray_as_locally_naming_file_line_and_column(cluster: Cluster, tmp_path: Path):
    data = _multi_key_gpu_dir(tmp_path / "data", keys=2, files=3)
    bad = data / "k1" / "gpu" / "0001" / "5002-r1-n2.csv"
    bad.write_text(bad.read_text().replace(",43.5,", ",43.5W,"))  # power 40 + key 1 + file 2
    store = tmp_path / "ray"
    done = _cli(cluster, "ingest", "supercloud", "--store", str(store), "--from", str(data), "--engine", "ray",
                "--address", cluster.address)
    assert done.returncode != 0
    text = " ".join(done.stderr.split())
    assert "0001/5002-r1-n2.csv" in text and "power_draw_W" in text and "Traceback" not in text, text
    assert not snapshot(store).get("gpu_samples")


def test_s3_inputs_on_the_local_engine(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from wattlas.ingest import ingest

    gpu = _multi_key_gpu_dir(tmp_path / "gpu", keys=2, files=2)
    url = _upload(s3_endpoint, "local-engine", gpu)
    for name, value in _s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    report = ingest("supercloud", [url], tmp_path / "s3", workers=1)
    ingest("supercloud", [gpu], tmp_path / "local", workers=1)
    assert report.rows["gpu_samples"] == 20 and report.bytes_read == sum(f.stat().st_size for f in gpu.rglob("*.csv"))
    for table in ("gpu_samples", "ingest_manifest"):
        assert _contents(tmp_path / "s3", table) == _contents(tmp_path / "local", table)


def _wait_for(cond, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert proc.poll() is None, f"finished before the condition: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_killed_driver_resumes_from_shared_staging(cluster: Cluster, tmp_path: Path):
    data = _multi_key_gpu_dir(tmp_path / "data", keys=4, files=6)
    _ingest(cluster, "supercloud", tmp_path / "local", str(data), engine="local")
    store, shared = tmp_path / "ray", tmp_path / "shared-staging"
    argv = ["ingest", "supercloud", "--store", str(store), "--from", str(data), "--engine", "ray",
            "--address", cluster.address, "--staging", str(shared)]
    proc = subprocess.Popen([sys.executable, "-c", CLI_SMALL_BATCHES, *argv], env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: bool(list((shared / "supercloud").glob("b-*/done.json"))), proc)
    proc.kill()
    proc.communicate()
    assert not snapshot(store).get("gpu_samples")  # nothing committed

    done = _cli(cluster, *argv, small_batches=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed" in done.stderr and "interrupted run" in done.stderr
    for table in ("gpu_samples", "ingest_manifest"):
        assert _contents(store, table) == _contents(tmp_path / "local", table)
    assert not (shared / "supercloud").exists()


# ------------------------------------------------------------------ bench
def test_cpu_bench_sweep_runs_on_both_nodes_with_a_bench_runs_row_each(cluster: Cluster, tmp_path: Path):
    store = tmp_path / "bench"
    done = _cli(cluster, "bench", "gemm", "--device", "cpu", "--quick", "--sizes", "64,96", "--engine", "ray",
                "--address", cluster.address, "--store", str(store), "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)) == 2  # stdout holds the summary only

    s = Store(store)
    runs = s.sql("select run_id, status, host, device_type, cluster_run_id, ray_node_id, ray_node_ip, points "
                 "from bench_runs order by ray_node_id").to_dicts()
    node_ids = sorted(n.node_id for n in _cluster_nodes(cluster))
    assert [r["ray_node_id"] for r in runs] == node_ids
    assert {r["status"] for r in runs} == {"complete"} and {r["device_type"] for r in runs} == {"cpu"}
    assert len({r["cluster_run_id"] for r in runs}) == 1 and all(r["ray_node_ip"] for r in runs)
    assert {r["host"] for r in runs} == {socket.gethostname()}
    results = s.sql("select r.ray_node_id, b.m, b.energy_source from bench_results b join bench_runs r "
                    "using (run_id) order by b.m").rows()
    # The two sizes were dealt between the two nodes, one point each, energy as a local CPU run says.
    assert sorted(r[0] for r in results) == node_ids and [r[1] for r in results] == [64, 96]
    assert [r["points"] for r in runs] == [1, 1]


def _cluster_nodes(cluster: Cluster) -> list:
    code = (f"import json, ray; ray.init(address={cluster.address!r}, log_to_driver=False); "
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))")
    done = subprocess.run([sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [type("N", (), {"node_id": n}) for n in json.loads(done.stdout.strip().splitlines()[-1])]


# Last in the file: the killed node stays listed as alive until Ray's health checks time out
# (seconds), and a bench planned meanwhile would place an actor on it.
def test_killing_a_worker_node_mid_ingest_still_gives_one_clean_run(cluster: Cluster, tmp_path: Path):
    data = _multi_key_gpu_dir(tmp_path / "data", keys=4, files=6)
    _ingest(cluster, "supercloud", tmp_path / "local", str(data), engine="local")
    doomed = cluster.start_node()  # a third node, so the session's two stay up
    try:
        store = tmp_path / "ray"
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI_SMALL_BATCHES, "ingest", "supercloud", "--store", str(store), "--from",
             str(data), "--engine", "ray", "--address", cluster.address],
            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        staging = store / ".staging" / "supercloud"
        # Kill while a batch runs on that node: Ray titles a worker by the task it runs.
        _wait_for(lambda: doomed.running("ray::in_worker"), proc)
        killed = doomed.pids()
        doomed.kill()
        _, err = proc.communicate(timeout=300)
    finally:
        cluster.stop_node(doomed)
    assert killed, "the third node ran no processes"
    assert proc.returncode == 0, err[-3000:]
    for table in ("gpu_samples", "ingest_manifest"):
        assert _contents(store, table) == _contents(tmp_path / "local", table)
    assert not staging.exists()

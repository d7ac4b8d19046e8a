"""Ingest on Ray vs the local process pool: N Supercloud-shaped GPU files, three ways, one run.

Generates ``--files`` GPU files in the Supercloud layout (``gpu/NNNN/<job>-r<rack>-n<node>.csv``,
``--files-per-folder`` per folder, ``--rows-per-file`` nvidia-smi rows each, ~50 bytes a row), then
ingests them, each in its own driver process, with

- ``local``: ``wattlas ingest supercloud --from DIR`` (the process pool, one worker per core);
- ``ray_1node``: ``--engine ray`` on a 1-node Ray cluster with every core;
- ``ray_2node``: ``--engine ray`` on a 2-node loopback cluster (two raylets, the cores split).

The clusters are started with ``ray start`` on 127.0.0.1 and stopped by killing the processes this
script started (never ``ray stop``, which would stop every Ray cluster on the machine). Also
measured: the driver's peak RSS (``wait4``) on the 2-node cluster at a quarter of the files and at
all of them (it should stay flat), and Ray's per-task scheduling overhead (no-op tasks submitted
and waited for in waves of the cluster's size). ``ray_vs_local`` = local_s / ray_1node_s (>= 0.9
is the target: Ray may cost at most 10% on the same cores). The last line printed is one JSON object.

    python benchmarks/scale_out.py [--files 2000] [--rows-per-file 50000] [--files-per-folder 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import run_child  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the loopback cluster is the tests' own
from tests._ray_local import cluster_env, free_port, node_processes, start_command  # noqa: E402

HEADER_FROM = ROOT / "tests" / "fixtures" / "hpc" / "409499185-r8939293-n208531.csv"


def generate(root: Path, files: int, rows: int, per_folder: int) -> int:
    header = HEADER_FROM.read_text().splitlines()[0]
    body = "\n".join(f"{1614556921 + k // 10}.{(k % 10) * 100:03d},{k % 2},{k % 80},{k % 100},32500,10,30,"
                     f"{'[N/A]' if k % 97 == 0 else k % 30},{40 + k % 200}.5,16" for k in range(rows))
    data = (header + "\n" + body + "\n").encode()
    for i in range(files):
        folder = root / "gpu" / f"{i // per_folder:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{10_000 + i}-r{i % 50}-n{i}.csv").write_bytes(data)
    return len(data) * files


class LoopbackCluster:
    """``ray start`` nodes on 127.0.0.1 with their own temp dirs; stopped by killing their processes."""

    def __init__(self, cpus_per_node: list[int]):
        self.env = cluster_env(PYTHONPATH=str(ROOT))
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.dirs: list[Path] = []
        for i, cpus in enumerate(cpus_per_node):
            d = Path(tempfile.mkdtemp(prefix="wrb", dir="/tmp"))  # short: unix socket paths
            self.dirs.append(d)
            cmd = start_command(d, port, head=i == 0, cpus=cpus)
            done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                self.stop()
                raise SystemExit(f"ray start failed: {done.stderr[-2000:]}")

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in node_processes(self.dirs):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(2)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


NOOP = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
n = int(sys.argv[2])
slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
noop = ray.remote(num_cpus=1)(lambda: None)
ray.get([noop.remote() for _ in range(slots)])  # workers up
t = time.perf_counter()
for start in range(0, n, slots):
    ray.get([noop.remote() for _ in range(min(slots, n - start))])
print((time.perf_counter() - t) / n * slots * 1000)
"""


def ingest(store: Path, data: Path, env: dict[str, str], address: str | None = None) -> tuple[float, float]:
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "wattlas", "ingest", "supercloud", "--from", str(data), "--store", str(store)]
    if address:
        cmd += ["--engine", "ray", "--address", address]
    old = dict(os.environ)
    os.environ.update(env)
    try:
        seconds, rss_mib, _ = run_child(cmd)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return seconds, rss_mib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--rows-per-file", type=int, default=50_000, help="~50 bytes a row (default ~2.5 MB a file)")
    ap.add_argument("--files-per-folder", type=int, default=100, help="files per gpu/NNNN folder (store key)")
    ap.add_argument("--noop-tasks", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1, help="best of N for each way, interleaved")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="wattlas-scale-out-"))
    try:
        data, small = work / "data", work / "small"
        total_bytes = generate(data, args.files, args.rows_per_file, args.files_per_folder)
        generate(small, max(1, args.files // 4), args.rows_per_file, args.files_per_folder)
        env = {"PYTHONPATH": str(ROOT)}
        # Both clusters stay up (idle raylets cost little) so the ways can be interleaved.
        one = LoopbackCluster([cpus])
        two = LoopbackCluster([max(1, cpus // 2), max(1, cpus - cpus // 2)])
        try:
            runs: dict[str, list[tuple[float, float]]] = {"local": [], "ray1": [], "ray2": []}
            for _ in range(args.repeat):
                runs["local"].append(ingest(work / "s-local", data, env))
                runs["ray1"].append(ingest(work / "s-ray1", data, one.env, one.address))
                runs["ray2"].append(ingest(work / "s-ray2", data, two.env, two.address))
            (local_s, local_rss), (ray1_s, ray1_rss), (ray2_s, ray2_rss) = (
                (min(t for t, _ in runs[k]), max(r for _, r in runs[k])) for k in ("local", "ray1", "ray2"))
            _, ray2_small_rss = ingest(work / "s-ray2-small", small, two.env, two.address)
            noop = subprocess.run([sys.executable, "-c", NOOP, two.address, str(args.noop_tasks)], env=two.env,
                                  capture_output=True, text=True, timeout=600)
            overhead_ms = float(noop.stdout.strip().splitlines()[-1]) if noop.returncode == 0 else None
        finally:
            one.stop()
            two.stop()
        keys = -(-args.files // args.files_per_folder)
        result = {
            "files": args.files, "bytes": total_bytes, "repeat": args.repeat, "rows_per_file": args.rows_per_file,
            "cpus": cpus,
            "keys": keys, "loadavg_1m": round(os.getloadavg()[0], 2),
            "local_s": round(local_s, 2), "ray_1node_s": round(ray1_s, 2), "ray_2node_s": round(ray2_s, 2),
            "ray_vs_local": round(local_s / ray1_s, 3), "ray2_vs_local": round(local_s / ray2_s, 3),
            "per_file_ms": {"local": round(local_s / args.files * 1000, 2),
                            "ray_2node": round(ray2_s / args.files * 1000, 2)},
            "per_task_overhead_ms": None if overhead_ms is None else round(overhead_ms, 2),
            "driver_peak_rss_mib": {"local": round(local_rss), "ray_1node": round(ray1_rss),
                                    "ray_2node": round(ray2_rss),
                                    f"ray_2node_{max(1, args.files // 4)}_files": round(ray2_small_rss)},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

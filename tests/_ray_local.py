"""Ray clusters of loopback nodes for the tests and ``benchmarks/scale_out.py``.

Each node is a ``ray start`` on 127.0.0.1 with its own short temp dir (unix socket paths must
stay under 108 bytes) and its own ports; its processes are found by that dir in their command
line and stopped by PID, never with ``ray stop`` (which would stop every Ray on the machine).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import sys
from pathlib import Path

from ._ingest_helpers import live_processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(**extra: str) -> dict[str, str]:
    """The environment of one cluster: its own token (other Ray users on the machine cannot join,
    nor we theirs), no usage statistics, no inherited ``RAY_ADDRESS``."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def start_command(temp_dir: Path, head_port: int, *, head: bool, cpus: int) -> list[str]:
    """``ray start`` of one node: the head on ``head_port``, or a node joining it."""
    if head:
        # A free Ray Client port where Ray Client is installed (it would take 10001); plain
        # `ray` starts no client server and refuses the option.
        client = ["--ray-client-server-port", str(free_port())] if importlib.util.find_spec("grpc") else []
        where = ["--head", "--port", str(head_port), "--include-dashboard=false",
                 "--dashboard-port", str(free_port()), *client]
    else:
        where = ["--address", f"127.0.0.1:{head_port}"]
    return [sys.executable, "-m", "ray.scripts.scripts", "start", *where, "--num-cpus", str(cpus),
            "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir), "--disable-usage-stats",
            "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port())]


def node_processes(temp_dirs: list[Path]) -> set[int]:
    """The live processes started with one of ``temp_dirs`` and every process below them (Ray
    workers are children of their raylet)."""
    markers = [str(d).encode() for d in temp_dirs]
    parents: dict[int, int] = {}
    roots: set[int] = set()

    def visit(proc: Path, fields: list[str]) -> bool:
        parents[int(proc.name)] = int(fields[1])
        if any(m in (proc / "cmdline").read_bytes() for m in markers):
            roots.add(int(proc.name))
        return False

    live_processes(visit)
    found, grew = set(roots), True
    while grew:
        new = {p for p, pp in parents.items() if pp in found} - found
        found |= new
        grew = bool(new)
    return found

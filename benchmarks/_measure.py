"""What the benchmark scripts share: time a command in its own process and read its peak RSS."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, the child's own peak RSS (MiB, from ``wait4``) and its stderr (see :func:`run_child_usage`)."""
    wall_s, _, rss_mib, err = run_child_usage(cmd)
    return wall_s, rss_mib, err


def run_child_usage(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MiB) and stderr of one run of ``cmd``.

    A child's peak counts from its parent's size at fork time: keep the calling process small
    (generate inputs in another child). stderr goes through a file so a chatty child cannot
    block on a full pipe while we wait for it. CPU seconds are the figure to compare on a loaded
    machine: waiting for a core adds wall time, not CPU time.
    """
    with tempfile.TemporaryFile("w+") as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
        err_file.seek(0)
        err = err_file.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed:\n{err}")
    return wall_s, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, err

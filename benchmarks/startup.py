"""Start-up of the command line: `wattlas --help` and one single-point `wattlas predict`, as whole processes.

Each command runs as its own process (wall time, peak RSS from ``wait4``), once to warm the
file cache and then ``--repeat`` times; the figure is the median. In the same run, as references:

- ``python -c pass``: the interpreter alone, the floor of any command;
- ``python -c "import wattlas.cli"``: the command-line package itself;
- the eager import: ``wattlas.cli`` plus every heavy library a command may use (polars, DuckDB,
  pyarrow, numpy, scikit-learn, skops, plotly), what one command would pay if the package
  imported them at the top;
- with ``--baseline-tree DIR`` (another checkout of wattlas, e.g. ``git worktree add
  /tmp/start-orig 08c722a``): the same two commands from that tree, after checking that its
  prediction prints the same number.

Targets (issue 16, item 5): ``help_s`` <= 0.3 s and ``predict_s`` <= 1 s. The last line printed
is one JSON object.

    python benchmarks/startup.py [--repeat 5] [--baseline-tree /tmp/start-orig]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _measure import run_child_usage  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
HELP_TARGET_S = 0.3
PREDICT_TARGET_S = 1.0
PREDICT_ARGS = ["predict", "gemm-runtime", "--gpu", "H100", "--m", "4096", "--n", "4096", "--k", "4096",
                "--dtype", "bf16", "--format", "csv"]
EAGER = "import wattlas.cli, polars, duckdb, pyarrow, numpy, sklearn.ensemble, skops.io, plotly.graph_objects"


def commands(py: str) -> dict[str, list[str]]:
    # -P: the current directory is not put first on sys.path, so PYTHONPATH picks the tree.
    return {
        "python": [py, "-P", "-c", "pass"],
        "import": [py, "-P", "-c", "import wattlas.cli"],
        "eager_import": [py, "-P", "-c", EAGER],
        "help": [py, "-P", "-m", "wattlas", "--help"],
        "predict": [py, "-P", "-m", "wattlas", *PREDICT_ARGS],
    }


def with_tree(tree: Path) -> None:
    """Run children against ``tree``'s wattlas (ahead of any installed copy)."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])


def run_child(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one run of ``cmd``."""
    wall_s, cpu_s, rss_mib, _ = run_child_usage(cmd)
    return wall_s, cpu_s, rss_mib


def median_run(cmd: list[str], repeat: int) -> tuple[float, float, float]:
    """Median wall seconds, CPU seconds and peak RSS (MiB) of ``repeat`` runs after one warm-up run."""
    run_child(cmd)
    runs = [run_child(cmd) for _ in range(repeat)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))


def prediction(py: str) -> str:
    """The CSV that the single-point predict prints (both trees must print the same)."""
    r = subprocess.run([py, "-P", "-m", "wattlas", "--quiet", *PREDICT_ARGS], capture_output=True, text=True,
                       check=True)
    return r.stdout


def measure(tree: Path, names: list[str], repeat: int) -> dict[str, tuple[float, float, float]]:
    saved = os.environ.get("PYTHONPATH")
    with_tree(tree)
    try:
        cmds = commands(sys.executable)
        return {name: median_run(cmds[name], repeat) for name in names}
    finally:
        os.environ.pop("PYTHONPATH", None)
        if saved is not None:
            os.environ["PYTHONPATH"] = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-tree", type=Path, help="another wattlas checkout to time the same commands from")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]  # the machine may be shared: say how busy it was

    names = ["python", "import", "eager_import", "help", "predict"]
    ours = measure(ROOT, names, args.repeat)
    result: dict = {f"{n}_s": round(ours[n][0], 3) for n in names}
    result["cpu_s"] = {n: round(ours[n][1], 3) for n in names}
    result["peak_rss_mib"] = {n: round(ours[n][2], 1) for n in names}
    if args.baseline_tree is not None:
        with_tree(ROOT)
        expected = prediction(sys.executable)
        os.environ.pop("PYTHONPATH")
        with_tree(args.baseline_tree)
        got = prediction(sys.executable)
        os.environ.pop("PYTHONPATH")
        if got != expected:
            raise SystemExit(f"the two trees predict differently:\n{expected}\n{got}")
        base = measure(args.baseline_tree, ["import", "help", "predict"], args.repeat)
        result["baseline"] = {"tree": str(args.baseline_tree), **{f"{n}_s": round(v[0], 3) for n, v in base.items()},
                              "cpu_s": {n: round(v[1], 3) for n, v in base.items()},
                              "peak_rss_mib": {n: round(v[2], 1) for n, v in base.items()}}
        result["speedup"] = {n: round(base[n][0] / ours[n][0], 2) for n in ("help", "predict")}
        result["cpu_speedup"] = {n: round(base[n][1] / ours[n][1], 2) for n in ("help", "predict")}
    result["targets"] = {"help_s": HELP_TARGET_S, "predict_s": PREDICT_TARGET_S}
    result["targets_met"] = ours["help"][0] <= HELP_TARGET_S and ours["predict"][0] <= PREDICT_TARGET_S
    result["repeat"] = args.repeat
    result["cpus"] = os.cpu_count()
    result["load_avg_start"] = round(load_start, 2)
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    for name in names:
        print(f"{name:>13}: {ours[name][0]:.3f} s wall, {ours[name][1]:.3f} s CPU, {ours[name][2]:.0f} MiB",
              file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Child process: load a model file under memory and CPU limits, then predict a few rows.

Run by :func:`wattlas.predictors.modelfile.start_trial_load` as
``python -m wattlas.predictors._trial_load FILE SHA256 MEMORY_ALLOWANCE_BYTES CPU_SECONDS``. It
exits 0 when the file still has that hash, loads, and its trees predict probe rows; any crash,
hang or memory blow-up stays in this process. It returns nothing but its exit status: the parent
loads the bytes it hashed itself (an object sent back by pickle would be its own risk).
"""

from __future__ import annotations

import sys
import warnings

try:
    import resource
except ImportError:  # not on Windows: the child still isolates crashes and the parent's timeout holds
    resource = None


def _vm_size_bytes() -> int:
    """This process's current address-space size (Linux), 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit(memory_allowance_bytes: int, cpu_s: int) -> None:
    """Cap CPU time, core dumps and (on top of what the imports already mapped) address space."""
    if resource is None:
        return
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base = _vm_size_bytes()
    if base:
        cap = base + memory_allowance_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _probe(est) -> None:
    """Predict a few extreme rows with every booster, the native code a crafted tree would crash."""
    import numpy as np

    for part in getattr(est, "estimators_", None) or [est]:
        booster = part.booster_
        n = booster.n_features_in_
        rows = np.array([np.zeros(n), np.full(n, -1e300), np.full(n, 1e300), np.full(n, np.nan),
                         np.random.default_rng(0).standard_normal(n)])
        booster.predict(rows)


def main(argv: list[str]) -> int:
    path, sha256, memory_allowance_bytes, cpu_s = argv[1], argv[2], int(argv[3]), int(argv[4])
    import hashlib

    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: F401  (import before the cap)

    from .bundle import TRUSTED_TYPES

    _limit(memory_allowance_bytes, cpu_s)
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        print(f"{path} changed while it was being checked", file=sys.stderr)
        return 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _probe(sio.loads(data, trusted=list(TRUSTED_TYPES)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

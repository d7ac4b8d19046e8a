"""The ingest's batch tasks on a Ray cluster: an :class:`~concurrent.futures.Executor` over Ray.

The engine (:mod:`wattlas.ingest.engine`) plans the batches, throttles how many are in flight and
commits; it maps its one batch function over whichever executor it is given. This module is the
Ray implementation of that map: each submit is a Ray task (``num_cpus=1``, retried by Ray when
its worker or node dies), and its result comes back as an ordinary future. Nothing about
batching, staging or the commit lives here.

Ray is an optional dependency (``pip install 'wattlas[ray]'``); it is imported when used.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from ..errors import WattlasError

log = logging.getLogger("wattlas.ingest")

#: Times Ray reruns a task whose worker process or node died (not one that raised).
MAX_RETRIES = 3
#: Tasks queued per cluster CPU: enough that a CPU never waits on the driver's next submit.
INFLIGHT_PER_CPU = 2


def require_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise WattlasError("--engine ray needs Ray: pip install 'wattlas[ray]'") from e
    return ray


class RayExecutor(Executor):
    """Run submitted functions as Ray tasks on the cluster at ``address``.

    ``address``: ``None`` finds a cluster the way ``ray.init`` does (``RAY_ADDRESS``, then the
    cluster last started on this machine) and otherwise starts a local one; ``"auto"`` requires a
    running cluster; ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` names one. Functions must be
    importable on every node (wattlas installed there), so they are sent by reference.
    """

    def __init__(self, address: str | None = None, *, max_retries: int = MAX_RETRIES,
                 max_inflight: int | None = None):
        self.address = address
        self.max_retries = max_retries
        self._max_inflight = max_inflight
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._pending: dict[Any, Future[Any]] = {}
        self._lock = threading.Lock()
        self._started = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> RayExecutor:
        ray = require_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise WattlasError(f"cannot reach a Ray cluster at {self.address or 'auto/local'}: {e}") from e
            self._started = True
        return self

    def __enter__(self) -> RayExecutor:
        return self.start()

    @property
    def cpus(self) -> int:
        ray = require_ray()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    @property
    def max_inflight(self) -> int:
        return self._max_inflight or INFLIGHT_PER_CPU * self.cpus

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        ray = require_ray()
        with self._lock:
            pending = dict(self._pending)
        if cancel_futures:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception as e:  # an already-finished task cannot be cancelled
                    log.debug("cancel %s: %s", ref, e)
        if self._started and ray.is_initialized():
            ray.shutdown()
            self._started = False

    # ------------------------------------------------------------ the map
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        ray = require_ray()
        remote = self._remotes.get(fn)
        if remote is None:
            # max_retries covers dead workers and nodes; an exception raised by the task is
            # the input's fault and is not retried (retry_exceptions=False).
            remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(in_worker)
            self._remotes[fn] = remote
        ref = remote.remote(fn, *args, **kwargs)
        out: Future[Any] = Future()
        out.set_running_or_notify_cancel()
        with self._lock:
            self._pending[ref] = out
        ref.future().add_done_callback(lambda f: self._settle(ref, f, out))
        return out

    def _settle(self, ref: Any, done: Future[Any], out: Future[Any]) -> None:
        from ray.exceptions import RayTaskError, WorkerCrashedError

        with self._lock:
            self._pending.pop(ref, None)
        try:
            out.set_result(done.result())
        except RayTaskError as e:
            # The task's own exception (an InputFormatError naming file and line) as if local.
            cause = e.cause if isinstance(e.cause, BaseException) else e
            out.set_exception(cause)
        except WorkerCrashedError as e:
            out.set_exception(WattlasError(
                f"a Ray worker died {self.max_retries + 1} times running one batch; giving up ({e})"))
        except BaseException as e:
            out.set_exception(e)


def in_worker(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a Ray worker with one polars thread per task (a task holds one CPU).

    Set here, before the task first imports polars, rather than through a ``runtime_env``: that
    would give the job its own workers instead of the ones Ray keeps started, seconds per node.
    """
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    os.environ.setdefault("WATTLAS_THREADS", "1")
    return fn(*args, **kwargs)

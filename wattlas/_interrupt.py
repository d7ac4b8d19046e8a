"""Ctrl-C handling shared by the ingest pool and the bench sampler.

A Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the parent and every
worker. Workers ignore it (the parent decides, and shuts them down); the parent turns it into
:class:`Interrupted`, whose message says what was kept, and the CLI prints that one line.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that says what the interrupted operation kept (``str(e)``)."""


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while child processes are started.

    The signal mask passes through fork and exec, so a child is born with SIGINT blocked and
    cannot die of a Ctrl-C before :func:`ignore_sigint` runs in it; a SIGINT that arrives here
    meanwhile stays pending and is delivered on leaving the block.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ignore_sigint() -> None:
    """In a worker: ignore SIGINT (the parent handles Ctrl-C), then lift the inherited block."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

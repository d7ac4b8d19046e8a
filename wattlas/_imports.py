"""Keep optional packages that a library would import but never use out of one import.

``import skops.io`` builds its list of trusted types from scikit-learn's ``all_estimators()``,
which imports every scikit-learn package on the way, ``sklearn.externals.array_api_compat.torch``
included: where PyTorch is installed, that alone is 1.3-2.6 s of ``import torch`` in a command
that predicts one point. That module is never a source of estimators (``all_estimators`` skips
``externals``), so hiding the package for the length of the import changes nothing skops trusts.
scikit-learn itself imports such packages in ``try: ... except ImportError``.

Only packages not imported yet are hidden, only in the thread that hides them, and only while
the ``with`` block runs: a later ``import torch`` works as usual (a failed import leaves nothing
behind in ``sys.modules``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder

#: Array-API backends that ``sklearn.externals.array_api_compat`` wraps: its estimator discovery
#: imports their wrappers (and so the packages), which skops's trusted-type list never uses.
ARRAY_API_BACKENDS = ("torch", "cupy", "dask")
#: What a process that only loads a model and predicts (``wattlas predict``) never uses, but
#: scikit-learn imports if it can: pandas (``sklearn.utils.fixes``, 0.3-0.5 s) and pytest
#: (``sklearn.utils._testing``, which ``all_estimators`` imports). Hidden for the whole process's
#: life (scikit-learn remembers their absence), so only for a command that exits afterwards.
ONE_SHOT_UNUSED = (*ARRAY_API_BACKENDS, "pandas", "pytest")


class _Hide(MetaPathFinder):
    """Answers ``import NAME`` (and its submodules) with ModuleNotFoundError in one thread."""

    def __init__(self, names: frozenset[str], thread_id: int):
        self.names = names
        self.thread_id = thread_id

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names and threading.get_ident() == self.thread_id:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by wattlas during an import that "
                                      "does not use it)", name=fullname)
        return None


@contextmanager
def hidden_imports(names: Iterable[str]) -> Iterator[None]:
    """Within the block, importing a top-level package in ``names`` not imported yet fails as if absent."""
    hide = frozenset(n for n in names if n not in sys.modules)
    if not hide:
        yield
        return
    finder = _Hide(hide, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)

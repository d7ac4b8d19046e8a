"""Resolve a name a person typed (source id, table, trace) among the names that exist.

One rule everywhere: an exact match wins; else a case-insensitive match that is unique; else the
error names the closest spellings (``did you mean``) and lists every name there is, so a typo never
turns into a silently empty selection.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .errors import WattlasError

#: How many names a did-you-mean offers, and how close (difflib ratio) they must be.
SUGGESTIONS = 3
CUTOFF = 0.6


def suggestions(name: str, choices: Iterable[str]) -> list[str]:
    """The choices closest to ``name``, best first, compared case-insensitively."""
    by_folded: dict[str, list[str]] = {}
    for c in sorted(set(choices)):
        by_folded.setdefault(c.casefold(), []).append(c)
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=SUGGESTIONS, cutoff=CUTOFF)
    return [c for f in close for c in by_folded[f]]


def resolve_name(
    name: str,
    choices: Iterable[str],
    *,
    what: str,
    where: str = "",
    here: str | None = None,
    error: type[WattlasError] = WattlasError,
    exact: bool = False,
) -> str:
    """``name`` as spelled in ``choices``, or raise ``error`` with a did-you-mean and the full list.

    ``what`` names the kind of thing ("source", "trace"); ``where`` ends the first sentence
    ("in store /x"); ``here`` labels the list ("traces here"; default "known {what}s").
    ``exact=True`` refuses case-insensitive matches (the name is only suggested), for callers
    that go on using the string they were given.
    """
    names = sorted(set(choices))
    if name in names:
        return name
    folded = [c for c in names if c.casefold() == name.casefold()]
    if len(folded) == 1 and not exact:
        return folded[0]
    message = f"unknown {what} {name!r}{' ' + where if where else ''}"
    close = suggestions(name, names)
    if close:
        message += f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    label = here or f"known {what}s"
    message += f"; {label}: {', '.join(names)}" if names else f"; there are no {what}s{' ' + where if where else ''}"
    raise error(message)

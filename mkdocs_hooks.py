"""MkDocs hooks (``hooks:`` in mkdocs.yml).

GitHub needs ``\\|`` for a pipe inside a code span in a table cell, and renders it as ``|``.
Python-Markdown's tables already keep pipes inside code spans in their cell, but print the
backslash, so table lines have it removed inside code spans before the page is converted.
"""

from __future__ import annotations

import re

_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _unescape_pipes(line: str) -> str:
    return _CODE_SPAN.sub(lambda m: m.group(0).replace("\\|", "|"), line)


def on_page_markdown(markdown: str, **_: object) -> str:
    """Table lines (starting with ``|``) of every page, with ``\\|`` in code spans as ``|``."""
    return "\n".join(_unescape_pipes(line) if line.lstrip().startswith("|") else line
                     for line in markdown.split("\n"))

"""Print the schema reference, or rewrite the documentation's copy of it (``--update-docs``).

The copy lives in ``docs/schemas.md`` between the ``schemas:start`` and ``schemas:end`` markers.
``--update-readme`` is kept as an alias: the reference moved from the README into the docs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from . import markdown

START, END = "<!-- schemas:start -->", "<!-- schemas:end -->"
#: The documentation page that holds the generated reference.
DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "schemas.md"
UPDATE_FLAGS = ("--update-docs", "--update-readme")


def update_docs(path: Path = DOCS_PAGE) -> bool:
    """Rewrite the block between ``START`` and ``END`` in ``path``; True if the file changed."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {START} ... {END} block to update")
    new = pattern.sub(lambda _: f"{START}\n{markdown()}{END}", text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


#: The old name, for callers of the README era.
update_readme = update_docs


def main(argv: list[str]) -> None:
    if any(flag in argv for flag in UPDATE_FLAGS):
        print("updated" if update_docs(DOCS_PAGE) else "already up to date", file=sys.stderr)
    else:
        sys.stdout.write(markdown())


if __name__ == "__main__":
    main(sys.argv[1:])

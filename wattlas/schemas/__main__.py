"""Print the schema reference, or rewrite the README's copy of it (``--update-readme``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from . import markdown

START, END = "<!-- schemas:start -->", "<!-- schemas:end -->"


def update_readme(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {START} ... {END} block to update")
    new = pattern.sub(lambda _: f"{START}\n{markdown()}{END}", text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    if "--update-readme" in sys.argv:
        readme = Path(__file__).resolve().parents[2] / "README.md"
        print("updated" if update_readme(readme) else "already up to date", file=sys.stderr)
    else:
        sys.stdout.write(markdown())

"""The README is the front door and the reference lives in docs/ (MkDocs): issue 13, section 6.

``mkdocs build --strict`` (run by .ci/run) checks the links between the docs pages and the
docstrings mkdocstrings renders; these tests check what it does not: the README itself, and that
the public API has docstrings to render.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from wattlas.schemas import __main__ as schemas_main
from wattlas.schemas import markdown

from .conftest import ROOT

README = ROOT / "README.md"
SETUP_COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && wattlas quickstart",
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && python -m pytest',
)
#: The modules whose API pages docs/api/ renders with mkdocstrings.
PUBLIC_MODULES = ("wattlas", "wattlas.store", "wattlas.ingest", "wattlas.analysis", "wattlas.datasets",
                  "wattlas.predictors", "wattlas.bench.meters", "wattlas.bench.sampler", "wattlas.bench.report",
                  "wattlas.sqlguard", "wattlas.schemas", "wattlas.errors")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference text into docs/"


def test_readme_keeps_the_two_setup_commands_in_its_quickstart():
    text = README.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    assert sections[1].startswith("Quickstart\n"), "the first section of the README is the Quickstart"
    for command in SETUP_COMMANDS:
        assert f"```bash\n{command}\n```" in sections[1], command


def test_every_readme_link_resolves():
    links = [link for link in _LINK.findall(README.read_text(encoding="utf-8")) if "://" not in link]
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(_LINK.findall(README.read_text(encoding="utf-8")))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
    assert not pages - linked, f"README.md's table of contents lacks {sorted(pages - linked)}"


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_api_has_docstrings(module: str):
    mod = importlib.import_module(module)
    assert inspect.getdoc(mod), f"{module} has no module docstring"
    names = getattr(mod, "__all__", None) or [
        name for name, obj in vars(mod).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == module
    ]
    objects = {name: getattr(mod, name) for name in names}
    undocumented = [name for name, obj in objects.items()
                    if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj)]
    assert not undocumented, f"{module}: no docstring for {undocumented} (the API reference renders them)"


@pytest.mark.parametrize("flag", ["--update-docs", "--update-readme"])
def test_schema_update_writes_the_docs_page(tmp_path, monkeypatch, flag: str):
    page = tmp_path / "schemas.md"
    page.write_text(f"# Table schemas\n\n{schemas_main.START}\nstale\n{schemas_main.END}\n", encoding="utf-8")
    monkeypatch.setattr(schemas_main, "DOCS_PAGE", page)
    schemas_main.main([flag])
    block = f"{schemas_main.START}\n{markdown()}{schemas_main.END}"
    assert page.read_text(encoding="utf-8") == f"# Table schemas\n\n{block}\n"
    assert not schemas_main.update_docs(page)  # a second run changes nothing


def test_readme_has_no_schema_block():
    assert schemas_main.START not in README.read_text(encoding="utf-8"), "the schema reference lives in docs/schemas.md"


def test_table_pipes_in_code_spans_render_as_on_github():
    import mkdocs_hooks

    page = "a `x\\|y` b\n| `--format table\\|csv` | plain \\| cell |\n"
    assert mkdocs_hooks.on_page_markdown(page) == "a `x\\|y` b\n| `--format table|csv` | plain \\| cell |\n"

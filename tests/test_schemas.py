import pytest

from wattlas.errors import UnknownTableError
from wattlas.schemas import TABLES, get_table, markdown
from wattlas.schemas.__main__ import END, START

from .conftest import ROOT


def test_docs_schema_section_is_current():
    text = (ROOT / "docs" / "schemas.md").read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == markdown().strip(), "run: python -m wattlas.schemas --update-docs"


def test_every_column_documented():
    for table in TABLES.values():
        assert table.description
        for col in table.columns:
            assert col.description, f"{table.name}.{col.name} has no description"
            table.arrow_schema()  # every type maps to Arrow


def test_unknown_table_lists_known():
    with pytest.raises(UnknownTableError, match="llm_requests"):
        get_table("nope")

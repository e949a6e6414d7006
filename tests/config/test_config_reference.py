"""docs/config-reference.md is what the models and the example's comments generate, and it
describes every key a config can have."""

from __future__ import annotations

import re

from agent.config import Config
from agent.config_reference import EXAMPLE, REFERENCE, render, tables

ROW = re.compile(r"^\| `(?P<key>[a-z_]+)` \| (?P<type>.+?) \| (?P<default>.+?) \| (?P<text>.*) \|$")


def test_the_committed_reference_is_current() -> None:
    expected = render(EXAMPLE.read_text(encoding="utf-8"))
    assert REFERENCE.read_text(encoding="utf-8") == expected, (
        "docs/config-reference.md is out of date: run python -m agent.config_reference --write"
    )


def test_every_key_of_every_table_is_in_the_reference_with_a_description() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    sections = text.split("\n## ")[1:]
    described = {}
    for section in sections:
        header = section.split("`", 2)[1]
        described[header] = {m["key"]: m["text"] for line in section.splitlines()
                             if (m := ROW.match(line))}
    for table in tables(EXAMPLE.read_text(encoding="utf-8")):
        rows = described[table.header]
        inherited = set(table.inherited.model_fields) - {"kind"} if table.inherited else set()
        for key in set(table.model.model_fields) - inherited:
            assert key in rows, f"{table.header} {key} missing from the reference"
            assert rows[key].strip(), f"{table.header} {key} has no description"


def test_every_table_of_the_config_has_a_section() -> None:
    covered = {t.header.strip("[]").split(".")[0].split(" ")[0] for t in tables(
        EXAMPLE.read_text(encoding="utf-8"))}
    assert set(Config.model_fields) <= covered, set(Config.model_fields) - covered

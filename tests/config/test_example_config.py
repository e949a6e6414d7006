"""config/storesync.example.toml loads, and documents every key the models accept.

The drift test walks the pydantic models for every key a config can have and fails when one is
missing from the example (live or as a `# key = value` comment), so adding a field without
documenting it breaks the build.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from agent.config import Config, Secret, format_summary, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "storesync.example.toml"

# A table header, live or commented out (`# [channels.reference]` documents an optional table).
HEADER_LINE = re.compile(r"^\s*(?:#\s*)?\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")
# A live `key = value` line, or a commented-out one: `# key = value`.
KEY_LINE = re.compile(r"^\s*(?P<comment>#\s*)?(?P<key>[A-Za-z0-9_-]+)\s*=")


# --- the models' side ------------------------------------------------------------------------


def unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif is_union(annotation) and type(None) in typing.get_args(annotation):
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def is_union(annotation: Any) -> bool:
    """`X | Y` or typing.Union."""
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a (possibly union) annotation stands for; [] for non-model types."""
    members = typing.get_args(annotation) if is_union(annotation) else (annotation,)
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    return models if len(models) == len(members) else []


def model_key_templates(models: list[type[BaseModel]], prefix: str = "") -> set[str]:
    """Every leaf key the models accept, as templates like "skus.*.channels.*.fixed_qty"."""
    templates: set[str] = set()
    for model in models:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            annotation = unwrap(field.annotation)
            origin, args = typing.get_origin(annotation), typing.get_args(annotation)
            if models_in(annotation):
                templates |= model_key_templates(models_in(annotation), f"{path}.")
            elif origin is dict and models_in(unwrap(args[1])):
                templates |= model_key_templates(models_in(unwrap(args[1])), f"{path}.*.")
            elif origin is list and models_in(unwrap(args[0])):
                templates |= model_key_templates(models_in(unwrap(args[0])), f"{path}[].")
            else:
                templates.add(path)
    return templates


def resolve_template(segments: list[str]) -> str | None:
    """Map a concrete key path from the example to its template, or None if no model has it."""
    current: Any = Config
    template = ""
    for position, segment in enumerate(segments):
        models = models_in(current)
        if models:
            fields = [m.model_fields[segment] for m in models if segment in m.model_fields]
            if not fields:
                return None
            template += f".{segment}" if template else segment
            current = unwrap(fields[0].annotation)
        elif typing.get_origin(current) is dict:
            template += ".*"
            current = unwrap(typing.get_args(current)[1])
        else:
            return None
        is_last = position == len(segments) - 1
        # A header [[locations]] names the newest element of an array of tables.
        if not is_last and typing.get_origin(current) is list:
            item = unwrap(typing.get_args(current)[0])
            if models_in(item):
                template += "[]"
                current = item
    return template


# --- the example's side ----------------------------------------------------------------------


class ExampleKey(typing.NamedTuple):
    """A key line of the example file."""

    line_number: int
    template: str | None
    commented: bool
    documented: bool


def example_keys(text: str) -> Iterator[ExampleKey]:
    """Every live or commented-out key line, with its template and whether a comment explains it."""
    lines = text.splitlines()
    table: list[str] = []
    for index, line in enumerate(lines):
        header = HEADER_LINE.match(line)
        if header:
            # [[x]] and [x] resolve alike: resolve_template steps into arrays of tables.
            table = header.group(1).split(".")
            continue
        key_line = KEY_LINE.match(line)
        if not key_line:
            continue
        template = resolve_template([*table, key_line["key"]])
        yield ExampleKey(
            index + 1, template, bool(key_line["comment"]), is_documented(lines, index)
        )


def is_documented(lines: list[str], index: int) -> bool:
    """A key is documented by a prose comment above it (keys may be grouped) or a trailing one."""
    line = lines[index]
    if not line.lstrip().startswith("#") and "#" in line.split("=", 1)[1]:
        return True
    for above in reversed(lines[:index]):
        stripped = above.strip()
        if not stripped.startswith("#"):
            return False
        if not KEY_LINE.match(stripped):
            return True
    return False


def secret_references(value: Any, form: str) -> Iterator[str]:
    """Every name used as `{ <form> = "name" }` anywhere in the parsed TOML."""
    if isinstance(value, dict):
        if set(value) == {form}:
            yield value[form]
        for child in value.values():
            yield from secret_references(child, form)
    elif isinstance(value, list):
        for child in value:
            yield from secret_references(child, form)


def iter_secrets(value: Any) -> Iterator[Secret]:
    """Every Secret in a loaded config."""
    if isinstance(value, Secret):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_secrets(getattr(value, name))
    elif isinstance(value, dict | list):
        for child in value.values() if isinstance(value, dict) else value:
            yield from iter_secrets(child)


# --- tests -----------------------------------------------------------------------------------


@pytest.fixture
def example_environ(tmp_path: Path) -> dict[str, str]:
    """An environment providing every env var and credential the example refers to."""
    data = tomllib.loads(EXAMPLE.read_text())
    environ = {name: f"example-value-of-{name}" for name in secret_references(data, "env")}
    for name in secret_references(data, "credential"):
        (tmp_path / name).write_text(f"example-credential-{name}\n")
    environ["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    return environ


def test_example_loads(example_environ: dict[str, str]) -> None:
    config = load_config(EXAMPLE, environ=example_environ)
    assert config.warnings == []
    assert {channel.kind for channel in config.channels.values()} == {
        "shopify",
        "woocommerce",
        "amazon",
        "ebay",
    }
    assert [location.name for location in config.locations] == ["main", "overflow"]
    assert config.agent.database == EXAMPLE.parent / "storesync.db"
    assert config.bundles and all(c in config.skus for c in config.bundles[0].components)
    assert any(override.channels for override in config.skus.values())

    secrets = list(iter_secrets(config))
    assert secrets and all(secret.source != "literal" for secret in secrets)
    summary = format_summary(config)
    for value in example_environ.values():
        if value.startswith("example-value-of-"):
            assert value not in summary


def test_example_documents_every_model_key() -> None:
    expected = model_key_templates([Config])
    documented = {key.template for key in example_keys(EXAMPLE.read_text()) if key.template}
    missing = sorted(expected - documented)
    assert not missing, f"keys missing from {EXAMPLE.name}: {missing}"


def test_example_has_no_unknown_keys_even_in_comments() -> None:
    # Live keys are also covered by load_config (extra="forbid"); commented-out ones are not.
    unknown = [key.line_number for key in example_keys(EXAMPLE.read_text()) if not key.template]
    assert not unknown, f"{EXAMPLE.name}: unknown keys on lines {unknown}"


def test_example_explains_each_key_where_it_first_appears() -> None:
    first_seen: dict[str, ExampleKey] = {}
    for key in example_keys(EXAMPLE.read_text()):
        if key.template and key.template not in first_seen:
            first_seen[key.template] = key
    undocumented = [
        f"line {key.line_number}: {template}"
        for template, key in first_seen.items()
        if not key.documented
    ]
    assert not undocumented, f"keys without an explaining comment: {undocumented}"


def test_drift_walk_sees_nested_and_per_kind_keys() -> None:
    # Guards the walker itself: if it stopped descending, the drift test would pass vacuously.
    templates = model_key_templates([Config])
    for template in [
        "agent.database",
        "channels.*.kind",
        "channels.*.shop",
        "channels.*.consumer_key",
        "channels.*.marketplace_ids",
        "channels.*.token_url",
        "skus.*.channels.*.fixed_qty",
        "bundles[].components",
        "locations[].name",
    ]:
        assert template in templates
    assert resolve_template(["skus", "X", "channels", "y", "fixed_qty"]) == (
        "skus.*.channels.*.fixed_qty"
    )
    assert resolve_template(["locations", "name"]) == "locations[].name"
    assert resolve_template(["channels", "x", "nope"]) is None

"""Validate a document (a listings feed, a processing report) against an Amazon JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from tests.specs.openapi import FORMATS
from tests.specs.violation import describe, raise_if_any


class FeedSchema:
    """One standalone JSON Schema file (its own `$schema` picks the dialect), compiled once."""

    def __init__(self, schema: Mapping[str, Any], *, name: str) -> None:
        self.name = name
        self.schema = schema
        cls = validator_for(schema)
        cls.check_schema(schema)
        self._validator: Validator = cls(schema, format_checker=FORMATS)

    def validate(self, instance: Any) -> None:
        """Raise SpecViolation listing every way `instance` misses the schema."""
        raise_if_any(describe(self.name, self._validator.iter_errors(instance)))

    def is_valid(self, instance: Any) -> bool:
        """Whether `instance` fits the schema."""
        return bool(self._validator.is_valid(instance))

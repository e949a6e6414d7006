"""The one error the spec checks raise, and how a jsonschema error reads inside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jsonschema import ValidationError

MESSAGE_LIMIT = 400  # characters of one jsonschema message (they repeat the whole instance)


class SpecViolation(AssertionError):
    """Something sent or answered does not match the official API model; `.errors` lists all."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"{len(self.errors)} spec violation(s):\n{lines}")


def describe(where: str, errors: Iterable[ValidationError]) -> list[str]:
    """jsonschema errors as `where: $.json.path: message` lines, in document order."""
    out = []
    for error in sorted(errors, key=lambda e: [str(part) for part in e.absolute_path]):
        message = error.message
        if len(message) > MESSAGE_LIMIT:
            message = message[:MESSAGE_LIMIT] + "..."
        out.append(f"{where}: {error.json_path}: {message}")
    return out


def raise_if_any(errors: Sequence[str]) -> None:
    """Raise one SpecViolation carrying every error, if there are any."""
    if errors:
        raise SpecViolation(errors)

"""Reading a stock count file (CSV: sku, location, qty) into rows or per-line errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent.engine.stock_math import MAX_UNITS


@dataclass(frozen=True, slots=True)
class CountRow:
    """One valid count: set `sku` at `location` to `qty`."""

    line: int
    sku: str
    location: str
    qty: int


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one line of the file cannot be applied."""

    line: int
    message: str


REQUIRED = ("sku", "qty")


def records(reader: Any, errors: list[RowError]) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank record after the header; an unreadable record
    is added to `errors` and ends the file (the csv module cannot resume after one)."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(RowError(reader.line_num, f"unreadable line: {exc}"))
            return
        if any(cell.strip() for cell in record):
            yield reader.line_num, record


def parse_counts(
    text: str, *, locations: Sequence[str], bundles: Collection[str] = ()
) -> tuple[list[CountRow], list[RowError]]:
    """Validate every line; a blank location means the first configured location."""
    rows: list[CountRow] = []
    errors: list[RowError] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [], [RowError(1, f"cannot read the header: {exc}")]
    if header is None:
        return [], [RowError(1, "the file is empty; expected a header line: sku,location,qty")]
    columns = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        return [], [
            RowError(
                1,
                f"the header lacks {', '.join(missing)}; expected sku,location,qty "
                f"(got {','.join(columns) or 'nothing'})",
            )
        ]
    at: dict[str, int] = {
        name: columns.index(name) for name in ("sku", "location", "qty") if name in columns
    }
    seen: dict[tuple[str, str], int] = {}
    for line_no, record in records(reader, errors):
        row, error = _parse_row(record, at, line_no, locations, bundles)
        if error is not None:
            errors.append(error)
            continue
        assert row is not None
        key = (row.sku, row.location)
        if key in seen:
            errors.append(
                RowError(
                    line_no,
                    f"{row.sku} at {row.location} is already counted on line "
                    f"{seen[key]}; keep one line per SKU and location",
                )
            )
            continue
        seen[key] = line_no
        rows.append(row)
    return rows, errors


def _parse_row(
    record: list[str],
    at: dict[str, int],
    line_no: int,
    locations: Sequence[str],
    bundles: Collection[str],
) -> tuple[CountRow | None, RowError | None]:
    def cell(name: str) -> str:
        index = at.get(name)
        return record[index].strip() if index is not None and index < len(record) else ""

    sku, location, qty_text = cell("sku"), cell("location"), cell("qty")
    if not sku:
        return None, RowError(line_no, "sku is empty")
    if sku in bundles:
        return None, RowError(line_no, f"{sku} is a bundle; count its components instead")
    if not location:
        location = locations[0]
    elif location not in locations:
        return None, RowError(
            line_no, f"unknown location {location!r} (known: {', '.join(locations)})"
        )
    try:
        qty = int(qty_text)
    except ValueError:
        return None, RowError(line_no, f"qty must be a whole number, got {shown_qty(qty_text)!r}")
    if qty < 0:
        return None, RowError(line_no, f"qty cannot be negative, got {qty}")
    if qty > MAX_UNITS:
        # Refused here, not by the engine: a later chunk failing would leave earlier ones applied.
        return None, RowError(
            line_no, f"qty cannot be more than {MAX_UNITS:,}, got {shown_qty(qty_text)}"
        )
    return CountRow(line_no, sku, location, qty), None


def shown_qty(text: str) -> str:
    """A qty cell as an error message quotes it: at most 20 characters."""
    return text if len(text) <= 20 else text[:20] + "..."

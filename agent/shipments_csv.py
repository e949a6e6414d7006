"""Reading a shipments file from a 3PL or shipping tool (CSV) into packages, or per-line errors.

Columns (header names are case-insensitive; spaces and dashes count as underscores):

    order         order_id, order, order_number, order_name, order_no   required
    carrier       carrier, carrier_name, shipping_carrier, courier      required
    tracking      tracking_number, tracking, tracking_no, tracking_code required
    sku           sku, item_sku, product_sku                            optional
    qty           qty, quantity, units, quantity_shipped                with sku
    channel       channel, store, sales_channel                         optional
    tracking_url  tracking_url, tracking_link, url                      optional

Lines with the same channel, order and tracking number are one package. A line without a SKU
ships everything the order still holds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.shipments import ShipmentInput
from agent.stock_csv import RowError, records

ALIASES: dict[str, tuple[str, ...]] = {
    "order": ("order_id", "order", "order_number", "order_name", "order_no"),
    "carrier": ("carrier", "carrier_name", "shipping_carrier", "courier"),
    "tracking": ("tracking_number", "tracking", "tracking_no", "tracking_code"),
    "sku": ("sku", "item_sku", "product_sku"),
    "qty": ("qty", "quantity", "units", "quantity_shipped"),
    "channel": ("channel", "store", "sales_channel"),
    "tracking_url": ("tracking_url", "tracking_link", "url"),
}
REQUIRED = ("order", "carrier", "tracking")


@dataclass(slots=True)
class Package:
    """One shipment to record, with the file lines it came from."""

    first_line: int
    order: str
    channel: str | None
    carrier: str
    tracking_number: str
    tracking_url: str
    whole_order: bool = False
    lines: dict[str, int] = field(default_factory=dict)
    line_of: dict[str, int] = field(default_factory=dict)  # SKU -> the line that named it

    def as_input(self) -> ShipmentInput:
        """The shipment, as POST /shipments would take it."""
        return ShipmentInput(
            order=self.order,
            channel=self.channel,
            carrier=self.carrier,
            tracking_number=self.tracking_number,
            tracking_url=self.tracking_url,
            lines=None if self.whole_order else dict(self.lines),
        )

    def line_for(self, key: str | None) -> int:
        """The file line to blame for a problem with `key` (a SKU), else the package's first."""
        return self.line_of.get(key or "", self.first_line)


def _normal(name: str) -> str:
    # A byte-order mark (spreadsheet exports) is not part of the first column's name.
    return name.lstrip("\ufeff").strip().lower().replace(" ", "_").replace("-", "_")


def parse_shipments(text: str) -> tuple[list[Package], list[RowError]]:
    """Validate every line and group them into packages; any error means apply nothing."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [], [RowError(1, f"cannot read the header: {exc}")]
    if header is None:
        return [], [RowError(1, "the file is empty; expected a header line such as "
                                "order_id,carrier,tracking_number,sku,qty")]
    columns = [_normal(name) for name in header]
    at: dict[str, int] = {}
    for field_name, names in ALIASES.items():
        for name in names:
            if name in columns:
                at[field_name] = columns.index(name)
                break
    missing = [f"{ALIASES[name][0]} (or {', '.join(ALIASES[name][1:])})"
               for name in REQUIRED if name not in at]
    if missing:
        return [], [RowError(1, f"missing column {'; '.join(missing)}; "
                                f"got {','.join(columns) or 'nothing'}")]
    if "sku" in at and "qty" not in at:
        return [], [RowError(1, "a sku column needs a qty (or quantity) column")]

    packages: dict[tuple[str, str, str], Package] = {}
    errors: list[RowError] = []
    for line_no, record in records(reader, errors):

        def cell(name: str, record: list[str] = record) -> str:
            index = at.get(name)
            return record[index].strip() if index is not None and index < len(record) else ""

        error = _add_line(packages, line_no, cell)
        if error is not None:
            errors.append(RowError(line_no, error))
    if not packages and not errors:
        errors.append(RowError(1, "the file has a header but no shipments"))
    return list(packages.values()), errors


def _add_line(
    packages: dict[tuple[str, str, str], Package], line_no: int, cell: Callable[[str], str]
) -> str | None:
    """Add one line to its package; the reason it cannot be, or None."""
    order, carrier, tracking = cell("order"), cell("carrier"), cell("tracking")
    channel, url, sku, qty_text = cell("channel"), cell("tracking_url"), cell("sku"), cell("qty")
    for name, value in (("order", order), ("carrier", carrier), ("tracking number", tracking)):
        if not value:
            return f"{name} is empty"
    qty = 0
    if sku:
        try:
            qty = int(qty_text)
        except ValueError:
            shown = qty_text if len(qty_text) <= 20 else qty_text[:20] + "..."
            return f"bad quantity for {sku}: expected a whole number, got {shown!r}"
        if qty <= 0:
            return f"bad quantity for {sku}: must be at least 1, got {qty}"
    elif qty_text:
        return f"a quantity ({qty_text}) without a SKU; give the SKU, or leave both empty " \
               "to ship the whole order"
    # "#1001" and "1001" name the same order: one package per tracking number either way.
    key = (channel, order.lstrip("#"), tracking)
    package = packages.get(key)
    if package is None:
        package = packages[key] = Package(line_no, order, channel or None, carrier, tracking, url)
    elif package.carrier != carrier:
        return f"carrier {carrier!r} differs from {package.carrier!r} on line " \
               f"{package.first_line} for the same tracking number"
    if not sku:
        if package.lines:
            return f"line {package.first_line} ships SKUs of this package; this line would " \
                   "ship the whole order"
        if package.whole_order and package.first_line != line_no:
            return f"line {package.first_line} already ships the whole order"
        package.whole_order = True
        return None
    if package.whole_order:
        return f"line {package.first_line} already ships the whole order with this tracking number"
    package.lines[sku] = package.lines.get(sku, 0) + qty
    package.line_of.setdefault(sku, line_no)
    return None

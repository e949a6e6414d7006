"""A merchant's shipment into the engine: one path for POST /shipments and drop-folder files.

A shipment names its order as the merchant sees it: the channel's order id or the order's name
("1001" or "#1001"). Without a channel, the order must be unique across channels; when several
channels have it, the caller is told which, so it can say `--channel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.engine import Engine, EngineError, ShipmentRequest, UnknownOrder
from agent.store import Tx


@dataclass(frozen=True, slots=True)
class ShipmentInput:
    """A shipment as a merchant gives it: order id or name, optional channel, what shipped."""

    order: str
    channel: str | None = None
    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    # SKU or line id -> units; None ships everything the order still holds.
    lines: Mapping[str, int] | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class ShipmentResult:
    """The shipment recorded, or found already recorded under its tracking number."""

    channel: str
    order_id: str
    shipment_id: int
    created: bool
    lines: Mapping[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The answer of POST /shipments."""
        return {
            "channel": self.channel,
            "order_id": self.order_id,
            "shipment_id": self.shipment_id,
            "created": self.created,
            "lines": dict(self.lines),
        }


class AmbiguousOrder(EngineError):
    """The order id or name exists on more than one channel; the caller must pick one."""

    def __init__(self, order: str, candidates: list[dict[str, str]]) -> None:
        channels = ", ".join(c["channel"] for c in candidates)
        super().__init__(
            f"order {order!r} exists on several channels ({channels}); name the channel"
        )
        self.candidates = candidates


def resolve_order(tx: Tx, order: str, channel: str | None) -> tuple[str, str]:
    """The (channel, order id) a merchant's reference means, or UnknownOrder / AmbiguousOrder."""
    found = tx.find_orders(order, channel)
    if not found:
        where = f" on channel {channel!r}" if channel else ""
        raise UnknownOrder(f"no order {order!r}{where}")
    if len(found) > 1:
        # Shipping the wrong buyer's order cannot be undone: never guess between channels.
        raise AmbiguousOrder(
            order, [{"channel": c, "order_id": i, "name": n} for c, i, n in found]
        )
    return found[0][0], found[0][1]


def record_shipment(engine: Engine, tx: Tx, item: ShipmentInput) -> ShipmentResult:
    """Resolve the order, then let the engine record it and queue it for the channel."""
    channel, order_id = resolve_order(tx, item.order, item.channel)
    outcome = engine.apply_shipment(
        tx,
        ShipmentRequest(
            channel=channel,
            order_id=order_id,
            carrier=item.carrier,
            tracking_number=item.tracking_number,
            tracking_url=item.tracking_url,
            lines=item.lines,
            location=item.location,
        ),
    )
    return ShipmentResult(channel, order_id, outcome.shipment_id, outcome.created,
                          dict(outcome.lines))


def parse_shipment_json(body: Mapping[str, Any]) -> ShipmentInput:
    """A POST /shipments body as a ShipmentInput; ValueError says what is wrong."""
    order = body.get("order_id")
    if not isinstance(order, str | int) or isinstance(order, bool) or not str(order).strip():
        raise ValueError("order_id is required (the channel's order id or the order's name)")
    texts: dict[str, str] = {}
    for key in ("channel", "carrier", "tracking_number", "tracking_url", "location"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        texts[key] = (value or "").strip()
    lines = body.get("lines")
    if lines is not None:
        if not isinstance(lines, dict) or not lines:
            raise ValueError('lines must be an object {"<SKU or line id>": units}')
        for key, units in lines.items():
            if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
                raise ValueError(f"lines[{key!r}] must be a positive whole number of units")
    return ShipmentInput(
        order=str(order).strip(),
        channel=texts["channel"] or None,
        carrier=texts["carrier"],
        tracking_number=texts["tracking_number"],
        tracking_url=texts["tracking_url"],
        lines={str(k): int(v) for k, v in lines.items()} if lines else None,
        location=texts["location"] or None,
    )

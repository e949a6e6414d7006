"""Normalized types every connector speaks, so the engine never sees a channel's own shapes.

A connector turns a channel's order (Shopify GraphQL, a WooCommerce REST body, an SP-API order)
into a `ChannelOrder`. The engine applies it; it knows nothing of where it came from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class OrderStatus(enum.StrEnum):
    """An order's state as storesync understands it, whatever the channel calls it."""

    PENDING = "pending"  # placed, not paid yet (reserves stock when [stock].unpaid_reserves)
    OPEN = "open"  # paid or otherwise due to ship
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of a channel order, with quantities as the channel reports them.

    `cancelled` counts units removed before they shipped (order edits, cancellations, refunds
    of unshipped units). `returned` counts shipped units refunded with restock. The engine
    decides what these mean for stock, under the merchant's rules.
    """

    line_id: str
    sku: str | None
    quantity: int
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0
    title: str = ""


@dataclass(frozen=True, slots=True)
class ChannelOrder:
    """An order as one channel reports it at one moment (`updated_at` is its version)."""

    channel: str
    external_id: str
    updated_at: datetime
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    created_at: datetime | None = None
    name: str = ""
    currency: str = ""
    total: str = ""
    customer: str = ""
    # Fulfilled by the channel itself (Amazon FBA): recorded, never touches the merchant's stock.
    fulfilled_by_channel: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

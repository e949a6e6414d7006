"""Plain records the store hands to the engine: no SQL, no connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class StoredLine:
    """One order line as stored, with what one unit takes from stock."""

    line_id: str
    channel_sku: str | None
    sku: str | None
    title: str
    qty: int
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0
    components: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        """Units still to ship: ordered, less shipped, less cancelled."""
        return self.qty - self.shipped - self.cancelled


@dataclass(slots=True)
class StoredOrder:
    """An order as stored: the newest version seen, normalized."""

    channel: str
    external_id: str
    name: str
    status: str
    reserves: bool
    fulfilled_by_channel: bool
    updated_at: datetime
    content_hash: str
    created_at: datetime | None
    customer: str
    currency: str
    total: str
    raw: str
    first_seen_at: datetime
    lines: dict[str, StoredLine] = field(default_factory=dict)


@dataclass(slots=True)
class Listing:
    """What storesync knows of one SKU on one channel."""

    channel: str
    sku: str
    status: str
    target_qty: int | None
    published_qty: int | None
    published_at: datetime | None
    channel_qty: int | None
    seen_at: datetime | None


@dataclass(slots=True)
class OutboxRow:
    """One queued push to a channel."""

    id: int
    channel: str
    kind: str
    key: str
    value: str
    expected: int | None
    revision: int
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    queued_at: datetime  # when this value was queued (or replaced an older pending one)


@dataclass(slots=True)
class InboxRow:
    """A stored webhook delivery waiting to be processed."""

    channel: str
    delivery_key: str
    topic: str
    headers: dict[str, str]
    body: bytes
    attempts: int

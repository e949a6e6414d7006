"""Order logic with no I/O: versions, normalized status, and what an order commits.

An order is versioned by (the channel's updated_at, a hash of its normalized content). A version
is applied only when it is newer; on equal timestamps the larger hash wins, so every replica that
sees the same set of versions ends on the same one, whatever order they arrived in.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from agent.store.records import StoredLine, StoredOrder
from connectors.base import ChannelOrder, OrderStatus

# Statuses whose open line remainders always commit stock; PENDING does when unpaid orders reserve.
_RESERVING = {OrderStatus.OPEN, OrderStatus.PARTIALLY_SHIPPED}
_CLOSED_BY_CHANNEL = {OrderStatus.CANCELLED, OrderStatus.REFUNDED}


def as_utc(moment: datetime) -> datetime:
    """A channel timestamp in UTC; a naive one is taken as UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def content_hash(order: ChannelOrder) -> str:
    """A digest of what the engine uses from an order, not of the channel's raw payload."""
    body = {
        "status": str(order.status),
        "fba": order.fulfilled_by_channel,
        "lines": sorted(
            (ln.line_id, ln.sku or "", ln.quantity, ln.shipped, ln.cancelled, ln.returned)
            for ln in order.lines
        ),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def compare_versions(updated_at: datetime, digest: str, stored: StoredOrder) -> int:
    """+1 when (updated_at, digest) is newer than the stored version, 0 if equal, -1 if older."""
    new = (as_utc(updated_at), digest)
    old = (stored.updated_at, stored.content_hash)
    return (new > old) - (new < old)


def derive_status(channel_status: OrderStatus, lines: Iterable[StoredLine]) -> OrderStatus:
    """The order's status from the channel's word and the lines' quantities."""
    if channel_status in _CLOSED_BY_CHANNEL:
        return channel_status
    lines = list(lines)
    shipped_any = any(line.shipped > 0 for line in lines)
    remaining = sum(line.remaining for line in lines)
    if lines and remaining == 0:
        return OrderStatus.SHIPPED if shipped_any else OrderStatus.CANCELLED
    if shipped_any:
        return OrderStatus.PARTIALLY_SHIPPED
    if channel_status == OrderStatus.PENDING:
        return OrderStatus.PENDING
    return OrderStatus.OPEN


def reserves_stock(status: str, *, unpaid_reserves: bool, fulfilled_by_channel: bool) -> bool:
    """Whether an order's open remainders commit the merchant's stock."""
    if fulfilled_by_channel:
        return False
    if status == OrderStatus.PENDING:
        return unpaid_reserves
    return status in _RESERVING


def commitment(order: StoredOrder | None) -> Counter[str]:
    """Units of each component SKU this order holds back from sale."""
    held: Counter[str] = Counter()
    if order is None or not order.reserves:
        return held
    for line in order.lines.values():
        if line.remaining <= 0:
            continue
        for comp, per_unit in line.components.items():
            held[comp] += line.remaining * per_unit
    return held


def clamp(value: int, low: int, high: int) -> int:
    """`value` kept within [low, high]."""
    return max(low, min(value, high))

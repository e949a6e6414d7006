"""An eBay Fulfillment API `Order` as a `ChannelOrder`: status, lines, version.

eBay describes an order on three axes (reference/channel-apis.md 4.2; enums from the OAS types
OrderFulfillmentStatus, OrderPaymentStatusEnum, CancelStateEnum):

- `cancelStatus.cancelState`: NONE_REQUESTED, IN_PROGRESS (a request is open), CANCELED;
- `orderPaymentStatus`: PENDING, PAID, FAILED, PARTIALLY_REFUNDED, FULLY_REFUNDED;
- `orderFulfillmentStatus` (and per line `lineItemFulfillmentStatus`): NOT_STARTED,
  IN_PROGRESS, FULFILLED.

They map, first match wins: CANCELED -> cancelled; FULLY_REFUNDED -> refunded; PENDING or
FAILED payment -> pending; FULFILLED -> shipped; IN_PROGRESS -> partially shipped; else open.
A line counts as shipped when eBay marks it FULFILLED (eBay ships a line item whole: "the seller
must include all components of a given line item in the same package"); the unshipped units of
a cancelled or fully refunded order count as cancelled. `lastModifiedDate` is the version.
"""

from __future__ import annotations

from typing import Any

from connectors.base import ChannelOrder, OrderLine, OrderStatus, RetryableError
from connectors.ebay.wire import parse_time

NONE_REQUESTED = "NONE_REQUESTED"
CANCELED = "CANCELED"


def cancel_state(data: dict[str, Any]) -> str:
    """The order's cancelStatus.cancelState (NONE_REQUESTED when eBay leaves it out)."""
    status = data.get("cancelStatus")
    state = status.get("cancelState") if isinstance(status, dict) else None
    return state if isinstance(state, str) and state else NONE_REQUESTED


def map_status(data: dict[str, Any]) -> OrderStatus:
    """The storesync status of an eBay order."""
    payment = data.get("orderPaymentStatus")
    fulfillment = data.get("orderFulfillmentStatus")
    if cancel_state(data) == CANCELED:
        return OrderStatus.CANCELLED
    if payment == "FULLY_REFUNDED":
        return OrderStatus.REFUNDED
    if payment in ("PENDING", "FAILED"):
        return OrderStatus.PENDING
    if fulfillment == "FULFILLED":
        return OrderStatus.SHIPPED
    if fulfillment == "IN_PROGRESS":
        return OrderStatus.PARTIALLY_SHIPPED
    return OrderStatus.OPEN


def parse_order(channel: str, data: dict[str, Any]) -> ChannelOrder:
    """A ChannelOrder from an eBay Order object; RetryableError for one missing its keys."""
    order_id = data.get("orderId")
    modified = data.get("lastModifiedDate")
    if not isinstance(order_id, str) or not order_id or not isinstance(modified, str):
        raise RetryableError(f"{channel}: an eBay order without orderId or lastModifiedDate")
    try:
        updated_at = parse_time(modified)
        created = data.get("creationDate")
        created_at = parse_time(created) if isinstance(created, str) else None
    except ValueError as exc:
        raise RetryableError(f"{channel}: order {order_id} has an unreadable date: {exc}") from exc
    status = map_status(data)
    closed = status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
    lines = tuple(_line(channel, order_id, item, closed) for item in _items(data))
    total = _dig(data, "pricingSummary", "total")
    buyer = _dig(data, "buyer", "username")
    return ChannelOrder(
        channel=channel,
        external_id=order_id,
        updated_at=updated_at,
        status=status,
        lines=lines,
        created_at=created_at,
        name=_text(data.get("salesRecordReference")) or order_id,
        currency=_text(total.get("currency")) if isinstance(total, dict) else "",
        total=_text(total.get("value")) if isinstance(total, dict) else "",
        customer=_text(buyer),
        raw=data,
    )


def _items(data: dict[str, Any]) -> list[dict[str, Any]]:
    items = data.get("lineItems")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _line(channel: str, order_id: str, item: dict[str, Any], closed: bool) -> OrderLine:
    line_id = item.get("lineItemId")
    quantity = item.get("quantity")
    if (
        not isinstance(line_id, str)
        or not line_id
        or isinstance(quantity, bool)
        or not isinstance(quantity, int)
    ):
        raise RetryableError(f"{channel}: order {order_id} has a line without id or quantity")
    sku = item.get("sku")
    shipped = quantity if item.get("lineItemFulfillmentStatus") == "FULFILLED" else 0
    return OrderLine(
        line_id=line_id,
        sku=sku if isinstance(sku, str) and sku else None,
        quantity=quantity,
        shipped=shipped,
        cancelled=quantity - shipped if closed else 0,
        title=_text(item.get("title")),
    )


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""

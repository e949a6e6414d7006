"""SP-API orders (ordersV0 `Order` plus its `OrderItem`s) as storesync's `ChannelOrder`.

Statuses (ordersV0.json `OrderStatus`; reference/channel-apis.md 3.2): `PendingAvailability`
(a pre-order) and `Pending` (payment not authorised yet) are PENDING, and Amazon already holds
the units for them; `Unshipped` is OPEN; `PartiallyShipped`; `Shipped` and `InvoiceUnconfirmed`
(shipped, invoice not confirmed yet) are SHIPPED; `Canceled` and `Unfulfillable` (MCF only) are
CANCELLED, with every unshipped unit counted as cancelled. An AFN (FBA) order is recorded but is
fulfilled from Amazon's own stock, never the merchant's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.amazon.client import parse_time
from connectors.base import ChannelOrder, OrderLine, OrderStatus, RetryableError

STATUSES: Mapping[str, OrderStatus] = {
    "PendingAvailability": OrderStatus.PENDING,
    "Pending": OrderStatus.PENDING,
    "Unshipped": OrderStatus.OPEN,
    "PartiallyShipped": OrderStatus.PARTIALLY_SHIPPED,
    "Shipped": OrderStatus.SHIPPED,
    "InvoiceUnconfirmed": OrderStatus.SHIPPED,
    "Canceled": OrderStatus.CANCELLED,
    "Unfulfillable": OrderStatus.CANCELLED,
}


def map_status(status: str) -> OrderStatus:
    """storesync's status for an Amazon OrderStatus (RetryableError for one we do not know)."""
    try:
        return STATUSES[status]
    except KeyError:
        raise RetryableError(f"unknown Amazon OrderStatus {status!r}") from None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def build_line(item: Mapping[str, Any], status: OrderStatus) -> OrderLine:
    """One OrderItem as an order line; a cancelled order's unshipped units are cancelled."""
    item_id = item.get("OrderItemId")
    if not isinstance(item_id, str) or not item_id:
        raise RetryableError("an OrderItem without an OrderItemId")
    quantity = _int(item.get("QuantityOrdered"))
    shipped = min(_int(item.get("QuantityShipped")), quantity)
    sku = item.get("SellerSKU")
    title = item.get("Title")
    return OrderLine(
        line_id=item_id,
        sku=sku if isinstance(sku, str) and sku else None,
        quantity=quantity,
        shipped=shipped,
        cancelled=quantity - shipped if status is OrderStatus.CANCELLED else 0,
        title=title if isinstance(title, str) else "",
    )


def build_order(
    channel: str, order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> ChannelOrder:
    """A `ChannelOrder` from an `Order` and all of its `OrderItem`s."""
    order_id = order.get("AmazonOrderId")
    status_text = order.get("OrderStatus")
    updated = order.get("LastUpdateDate")
    if not isinstance(order_id, str) or not isinstance(status_text, str):
        raise RetryableError("an Order without AmazonOrderId or OrderStatus")
    if not isinstance(updated, str):
        raise RetryableError(f"order {order_id} has no LastUpdateDate")
    status = map_status(status_text)
    try:
        updated_at = parse_time(updated)
        purchased = order.get("PurchaseDate")
        created_at = parse_time(purchased) if isinstance(purchased, str) else None
    except ValueError as exc:
        raise RetryableError(f"order {order_id}: unreadable date ({exc})") from exc
    total = order.get("OrderTotal")
    total = total if isinstance(total, dict) else {}
    buyer = order.get("BuyerInfo")
    email = buyer.get("BuyerEmail") if isinstance(buyer, dict) else None
    return ChannelOrder(
        channel=channel,
        external_id=order_id,
        updated_at=updated_at,
        status=status,
        lines=tuple(build_line(item, status) for item in items),
        created_at=created_at,
        name=order_id,
        currency=str(total.get("CurrencyCode") or ""),
        total=str(total.get("Amount") or ""),
        customer=email if isinstance(email, str) else "",
        fulfilled_by_channel=order.get("FulfillmentChannel") == "AFN",
        raw={"order": dict(order), "items": [dict(item) for item in items]},
    )

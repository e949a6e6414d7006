"""One order normalizer for both shapes Shopify shows an order in: GraphQL and REST (webhooks).

A poll reads an order through the GraphQL Admin API; a webhook delivers the same order as REST
JSON. Both are first reduced to the same plain facts per line (ordered units, units still on the
order, units fulfilled, refunded units by restock type), and one function turns those facts into
a `ChannelOrder`. So the poll version and the webhook version of one order are one order with
one content hash, and the engine never sees a change that is only a change of shape.

How Shopify's quantities map to storesync's, per line:

* `quantity` is what was ordered and never changes.
* `currentQuantity` (REST `current_quantity`) is "the number of units ordered, excluding refunded
  and removed units" (https://shopify.dev/docs/api/admin-graphql/latest/objects/LineItem), so
  it drops for order edits and for every refund, shipped units included.
* `unfulfilledQuantity` is currentQuantity minus fulfilled units: Shopify reports -1 for a
  fulfilled unit that was refunded afterwards (community.shopify.dev/t/27826), which only that
  reading explains. So fulfilled = currentQuantity - unfulfilledQuantity. REST orders carry the
  `fulfillments` themselves; successful ones are summed instead.
* Refund line items carry a restock type: CANCEL (unshipped units, restocked), RETURN (shipped
  units, restocked), NO_RESTOCK (either, not restocked) and LEGACY_RESTOCK (either, restocked).

storesync's `OrderLine` then reads: shipped = fulfilled units; cancelled = units removed before
they shipped (edits, CANCEL refunds, unshipped NO_RESTOCK/LEGACY refunds); returned = shipped
units refunded with restock (RETURN, and LEGACY_RESTOCK beyond the unshipped units).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import ChannelOrder, OrderLine, OrderStatus, PermanentError

GID_PREFIX = "gid://shopify/"

# Financial status (GraphQL enum and REST text alike, lower-cased) -> storesync's word.
# AUTHORIZED is OPEN: the payment is secured and merchants who capture on shipping ship these
# orders; Shopify commits their stock at creation like any paid order. EXPIRED and VOIDED
# authorizations never became money, so those orders wait like unpaid ones (PENDING) until the
# merchant cancels them (cancelledAt then wins) or collects payment.
_FINANCIAL_STATUS = {
    "pending": OrderStatus.PENDING,
    "expired": OrderStatus.PENDING,
    "voided": OrderStatus.PENDING,
    "authorized": OrderStatus.OPEN,
    "paid": OrderStatus.OPEN,
    "partially_paid": OrderStatus.OPEN,
    "partially_refunded": OrderStatus.OPEN,
    "refunded": OrderStatus.REFUNDED,
}

RESTOCK_TYPES = frozenset({"cancel", "return", "no_restock", "legacy_restock"})


def gid(kind: str, numeric_id: int | str) -> str:
    """Shopify's global id for a resource: gid://shopify/Order/123."""
    return f"{GID_PREFIX}{kind}/{numeric_id}"


def numeric_id(value: Any) -> str:
    """The numeric id in a gid (or an id that already is one), as text; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not an id: {value!r}")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"not an id: {value!r}")
    text = value.split("?", 1)[0]  # InventoryLevel gids carry a query string
    if text.startswith(GID_PREFIX):
        text = text.rsplit("/", 1)[-1]
    if not text.isdigit():
        raise ValueError(f"not a Shopify id: {value!r}")
    return text


@dataclass(frozen=True, slots=True)
class RefundedUnits:
    """Units of one line in one refund, and what happened to their stock."""

    line_id: str
    quantity: int
    restock_type: str  # one of RESTOCK_TYPES


@dataclass(frozen=True, slots=True)
class LineFacts:
    """What both shapes say about one order line, before storesync's reading of it."""

    line_id: str
    sku: str | None
    title: str
    quantity: int
    current: int | None  # None when the shape does not carry it (older REST versions)
    fulfilled: int


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What both shapes say about one order."""

    order_id: str
    name: str
    created_at: datetime | None
    updated_at: datetime
    cancelled: bool
    financial_status: str | None  # lower-case, REST spelling
    currency: str
    total: str
    customer: str
    lines: tuple[LineFacts, ...]
    refunds: tuple[RefundedUnits, ...]


def build_order(channel: str, facts: OrderFacts, raw: dict[str, Any]) -> ChannelOrder:
    """The ChannelOrder both shapes become."""
    by_line: dict[str, list[RefundedUnits]] = {}
    for units in facts.refunds:
        by_line.setdefault(units.line_id, []).append(units)
    return ChannelOrder(
        channel=channel,
        external_id=facts.order_id,
        updated_at=facts.updated_at,
        status=order_status(facts.cancelled, facts.financial_status),
        lines=tuple(build_line(line, by_line.get(line.line_id, ())) for line in facts.lines),
        created_at=facts.created_at,
        name=facts.name,
        currency=facts.currency,
        total=facts.total,
        customer=facts.customer,
        raw=raw,
    )


def order_status(cancelled: bool, financial_status: str | None) -> OrderStatus:
    """storesync's status from Shopify's cancellation and financial status."""
    if cancelled:
        return OrderStatus.CANCELLED
    if financial_status is None:
        # Orders created by apps without payment details show none: treat as awaiting payment.
        return OrderStatus.PENDING
    status = _FINANCIAL_STATUS.get(financial_status.lower())
    if status is None:
        raise PermanentError(f"unknown financial status {financial_status!r}")
    return status


def build_line(line: LineFacts, refunds: Iterable[RefundedUnits]) -> OrderLine:
    """One OrderLine from a line's facts and its refunded units (see the module docstring)."""
    ordered = line.quantity
    by_type = dict.fromkeys(RESTOCK_TYPES, 0)
    for units in refunds:
        by_type[units.restock_type] += units.quantity
    refunded = sum(by_type.values())
    current = line.current if line.current is not None else max(ordered - refunded, 0)
    shipped = min(max(line.fulfilled, 0), ordered)
    unshipped = ordered - shipped
    # Units gone from the order without any refund: order edits (removals, quantity cuts).
    edited_out = max(ordered - current - refunded, 0)
    cancelled = min(edited_out + by_type["cancel"], unshipped)
    # A refund that does not say shipped or unshipped takes unshipped units first: a unit that
    # never left cannot come back.
    either = by_type["no_restock"] + by_type["legacy_restock"]
    unshipped_either = min(either, unshipped - cancelled)
    cancelled += unshipped_either
    legacy_shipped = max(by_type["legacy_restock"] - unshipped_either, 0)
    returned = min(by_type["return"] + legacy_shipped, shipped)
    return OrderLine(
        line_id=line.line_id,
        sku=line.sku or None,
        quantity=ordered,
        shipped=shipped,
        cancelled=cancelled,
        returned=returned,
        title=line.title,
    )


# -- the GraphQL shape ---------------------------------------------------------------------------


def graphql_facts(
    node: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    refund_lines: Sequence[Mapping[str, Any]],
) -> OrderFacts:
    """Facts from an Order node, its complete line items and its refund line items."""
    total = _money(_dig(node, "totalPriceSet", "shopMoney", "amount"))
    return OrderFacts(
        order_id=numeric_id(node["id"]),
        name=_text(node.get("name")),
        created_at=parse_time(node["createdAt"]) if node.get("createdAt") else None,
        updated_at=parse_time(node["updatedAt"]),
        cancelled=node.get("cancelledAt") is not None,
        financial_status=_lower(node.get("displayFinancialStatus")),
        currency=_text(node.get("currencyCode")),
        total=total,
        customer=_text(node.get("email")),
        lines=tuple(_graphql_line(item) for item in lines),
        refunds=tuple(_graphql_refund(item) for item in refund_lines),
    )


def _graphql_line(item: Mapping[str, Any]) -> LineFacts:
    current = _count(item, "currentQuantity")
    # unfulfilledQuantity may go negative (a fulfilled unit refunded afterwards): not _count.
    unfulfilled = item["unfulfilledQuantity"]
    if isinstance(unfulfilled, bool) or not isinstance(unfulfilled, int):
        raise PermanentError("unfulfilledQuantity must be an integer")
    return LineFacts(
        line_id=numeric_id(item["id"]),
        sku=_optional_sku(item.get("sku")),
        title=_text(item.get("name")),
        quantity=_count(item, "quantity"),
        current=current,
        fulfilled=max(current - unfulfilled, 0),
    )


def _graphql_refund(item: Mapping[str, Any]) -> RefundedUnits:
    line = item["lineItem"]
    if not isinstance(line, Mapping):
        raise PermanentError("a refund line item has no lineItem")
    return RefundedUnits(
        line_id=numeric_id(line["id"]),
        quantity=_count(item, "quantity"),
        restock_type=_restock_type(item.get("restockType")),
    )


# -- the REST shape (webhook bodies) -------------------------------------------------------------


def rest_facts(order: Mapping[str, Any]) -> OrderFacts:
    """Facts from a REST order (a webhook body, or the `order` of a REST response)."""
    lines = order["line_items"]
    if not isinstance(lines, list):
        raise PermanentError("line_items must be a list")
    refunds = order.get("refunds") or []
    fulfillments = order.get("fulfillments")
    if not isinstance(refunds, list) or not (
        fulfillments is None or isinstance(fulfillments, list)
    ):
        raise PermanentError("refunds and fulfillments must be lists")
    shipped = _rest_fulfilled(fulfillments) if fulfillments is not None else None
    refund_lines: list[RefundedUnits] = []
    for refund in refunds:
        if not isinstance(refund, Mapping) or not isinstance(refund.get("refund_line_items"), list):
            raise PermanentError("a refund must carry refund_line_items")
        refund_lines.extend(_rest_refund(item) for item in refund["refund_line_items"])
    customer = order.get("email") or _dig(order, "customer", "email")
    return OrderFacts(
        order_id=numeric_id(order["id"]),
        name=_text(order.get("name")),
        created_at=parse_time(order["created_at"]) if order.get("created_at") else None,
        updated_at=parse_time(order["updated_at"]),
        cancelled=order.get("cancelled_at") is not None,
        financial_status=_lower(order.get("financial_status")),
        currency=_text(order.get("currency")),
        total=_money(order.get("total_price")),
        customer=_text(customer),
        lines=tuple(_rest_line(item, shipped) for item in lines),
        refunds=tuple(refund_lines),
    )


def _rest_fulfilled(fulfillments: list[Any]) -> dict[str, int]:
    """Units per line id in fulfillments that happened (status success)."""
    # Statuses pending/open belong to fulfillment services that have not shipped yet; cancelled,
    # error and failure never shipped (the fixture order's only fulfillment is a failure).
    shipped: dict[str, int] = {}
    for fulfillment in fulfillments:
        if not isinstance(fulfillment, Mapping) or not isinstance(
            fulfillment.get("line_items"), list
        ):
            raise PermanentError("a fulfillment must carry line_items")
        if fulfillment.get("status") != "success":
            continue
        for item in fulfillment["line_items"]:
            line_id = numeric_id(item["id"])
            shipped[line_id] = shipped.get(line_id, 0) + _count(item, "quantity")
    return shipped


def _rest_line(item: Any, shipped: dict[str, int] | None) -> LineFacts:
    if not isinstance(item, Mapping):
        raise PermanentError("a line item must be a JSON object")
    line_id = numeric_id(item["id"])
    quantity = _count(item, "quantity")
    current = _count(item, "current_quantity") if item.get("current_quantity") is not None else None
    if shipped is not None:
        fulfilled = shipped.get(line_id, 0)
    elif item.get("fulfillable_quantity") is not None:
        # No fulfillments in the payload (include_fields trimmed them): what is neither still
        # to fulfil nor gone from the order has shipped.
        fulfilled = max((quantity if current is None else current) - _count(
            item, "fulfillable_quantity"), 0)
    else:
        fulfilled = 0
    return LineFacts(
        line_id=line_id,
        sku=_optional_sku(item.get("sku")),
        title=_text(item.get("name") or item.get("title")),
        quantity=quantity,
        current=current,
        fulfilled=fulfilled,
    )


def _rest_refund(item: Any) -> RefundedUnits:
    if not isinstance(item, Mapping):
        raise PermanentError("a refund line item must be a JSON object")
    line_id = item.get("line_item_id")
    if line_id is None:
        line_id = _dig(item, "line_item", "id")
    return RefundedUnits(
        line_id=numeric_id(line_id),
        quantity=_count(item, "quantity"),
        restock_type=_restock_type(item.get("restock_type")),
    )


# -- small readers -------------------------------------------------------------------------------


def parse_time(text: Any) -> datetime:
    """A Shopify timestamp (`Z` or an offset) as an aware UTC datetime."""
    if not isinstance(text, str):
        raise PermanentError(f"not a timestamp: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise PermanentError(f"timestamp without a timezone: {text!r}")
    return moment.astimezone(UTC)


def _restock_type(value: Any) -> str:
    text = _lower(value)
    if text is None:
        # Refunds created before restock types existed: Shopify's `restock: true` era.
        return "legacy_restock"
    if text not in RESTOCK_TYPES:
        raise PermanentError(f"unknown restock type {value!r}")
    return text


def _money(value: Any) -> str:
    """An amount as two-decimal text, whichever way the shape printed it ("12.0", "12.00")."""
    if value is None or value == "":
        return ""
    try:
        return f"{Decimal(str(value)):.2f}"
    except InvalidOperation as exc:
        raise PermanentError(f"not an amount: {value!r}") from exc


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PermanentError(f"expected text, got {value!r}")
    return value


def _lower(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PermanentError(f"expected text, got {value!r}")
    return value.lower()


def _optional_sku(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PermanentError("a line's sku must be text or null")
    return value or None  # kept as typed: fetch_listings reads SKUs the same way


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PermanentError(f"{key} must be a non-negative integer")
    return value

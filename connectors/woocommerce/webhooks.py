"""WooCommerce webhooks and order mapping: verify a delivery on the raw bytes, key it, parse it.

What WooCommerce sends (core `includes/class-wc-webhook.php`, `deliver()`; summarised with sources
in reference/channel-apis.md section 2.3):

- a POST whose body is `trim(wp_json_encode(payload))`, with `X-WC-Webhook-Source`, `-Topic`,
  `-Resource`, `-Event`, `-Signature`, `-ID` and `-Delivery-ID` headers;
- `X-WC-Webhook-Signature` = base64(HMAC-SHA256(webhook secret, raw body));
- the payload is `GET /wc/v3/{resource}s/{id}` as it is *when the delivery runs*, not when the
  event happened; for `*.deleted` topics it is just `{"id": N}`; when the resource is gone by then,
  it is the REST error WooCommerce got back (`{"code", "message", "data": {"status": 404}}`);
- when a webhook is activated, an unsigned form-encoded ping `webhook_id=<n>` (`deliver_ping()`).

`X-WC-Webhook-Delivery-ID` is `wp_hash(webhook_id . time())`: two deliveries of one webhook in the
same second share it, and the same event delivered twice gets two. It is not an event id, so
deliveries are keyed on what they carry: resource, id and `date_modified_gmt` (the version), which
makes copies of one state share a key and every later state get a new one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors import payloads
from connectors.base import (
    ChannelEvent,
    ChannelOrder,
    EventKind,
    OrderLine,
    OrderStatus,
    PermanentError,
    WebhookDelivery,
    WebhookRejected,
)
from connectors.signatures import check_hmac_sha256, header, sign_hmac_sha256

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"
RESOURCE_HEADER = "X-WC-Webhook-Resource"
EVENT_HEADER = "X-WC-Webhook-Event"
SOURCE_HEADER = "X-WC-Webhook-Source"
WEBHOOK_ID_HEADER = "X-WC-Webhook-ID"
DELIVERY_ID_HEADER = "X-WC-Webhook-Delivery-ID"

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
ORDER_DELETED = "order.deleted"
PRODUCT_UPDATED = "product.updated"
PING_TOPIC = "ping"

_FORM_TYPE = "application/x-www-form-urlencoded"
_PING_BODY = re.compile(rb"webhook_id=(\d{1,20})")

# WooCommerce's order statuses (docs `_orders.md`) in storesync's words.
STATUS_MAP: Mapping[str, OrderStatus] = {
    "pending": OrderStatus.PENDING,  # awaiting payment; WooCommerce has not reduced stock yet
    "processing": OrderStatus.OPEN,  # paid, stock reduced, due to ship
    # Awaiting payment confirmation (bank transfer, cheque), but WooCommerce already reduced the
    # stock, so the units are spoken for exactly like a paid order's.
    "on-hold": OrderStatus.OPEN,
    # WooCommerce has no per-line shipment state: completed means everything shipped.
    "completed": OrderStatus.SHIPPED,
    "cancelled": OrderStatus.CANCELLED,
    "refunded": OrderStatus.REFUNDED,
    "failed": OrderStatus.CANCELLED,  # payment failed; no stock is held
    "trash": OrderStatus.CANCELLED,
    # Block checkout's draft orders are carts, not orders; they hold stock only as pending would.
    "checkout-draft": OrderStatus.PENDING,
}
# Plugins register their own statuses ("shipped", "awaiting-pickup"...): nearly always stages of a
# paid order. Refusing them would park every delivery and stop every poll at that order.
UNKNOWN_STATUS = OrderStatus.OPEN


def sign_payload(secret: str, raw_body: bytes) -> str:
    """The `X-WC-Webhook-Signature` value for `raw_body`: base64(HMAC-SHA256(secret, body))."""
    return sign_hmac_sha256(secret, raw_body)


def ping_webhook_id(headers: Mapping[str, str], raw_body: bytes) -> str | None:
    """The webhook id when this is WooCommerce's activation ping, else None.

    Exactly that shape and nothing else: a form-encoded body `webhook_id=<digits>`.
    """
    content_type = (header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != _FORM_TYPE:
        return None
    match = _PING_BODY.fullmatch(raw_body)
    return match.group(1).decode() if match else None


def verify_delivery(
    secret: str | None, headers: Mapping[str, str], raw_body: bytes
) -> WebhookDelivery:
    """Check the signature on the raw bytes and key the delivery; WebhookRejected on any flaw."""
    webhook_id = ping_webhook_id(headers, raw_body)
    if webhook_id is not None:
        # Unsigned by design (deliver_ping() sends no signature); it carries no data to store.
        return WebhookDelivery(delivery_key=f"ping:{webhook_id}", topic=PING_TOPIC, ping=True)
    check_hmac_sha256(
        secret,
        headers,
        raw_body,
        SIGNATURE_HEADER,
        no_secret="no webhook secret is configured for this channel",
    )
    topic = (header(headers, TOPIC_HEADER) or "").strip()
    if not topic:
        raise WebhookRejected(f"missing {TOPIC_HEADER}")
    resource = (header(headers, RESOURCE_HEADER) or "").strip() or topic.split(".", 1)[0]
    key, version = delivery_key(resource, topic, headers, raw_body)
    return WebhookDelivery(delivery_key=key, topic=topic, triggered_at=version)


def delivery_key(
    resource: str, topic: str, headers: Mapping[str, str], raw_body: bytes
) -> tuple[str, datetime | None]:
    """The key a verified delivery is deduplicated on, and the version time it carries."""
    body_digest = "sha256:" + hashlib.sha256(raw_body).hexdigest()
    try:
        data = payloads.loads(raw_body)
    except ValueError:
        # Signed by the shop but unreadable: still a delivery (parse_event refuses it later).
        return body_digest, None
    resource_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(resource_id, bool) or not isinstance(resource_id, int):
        return body_digest, None
    if topic.endswith(".deleted"):
        # `{"id": N}` carries no version. A trash, restore, trash again must not collapse into
        # one key, so the key takes the delivery id too; a duplicate it lets through costs one
        # re-fetch of the order, which is harmless.
        delivery = (header(headers, DELIVERY_ID_HEADER) or "").strip() or body_digest
        return f"{resource}:{resource_id}:deleted:{delivery}", None
    modified = data.get("date_modified_gmt")
    if not isinstance(modified, str) or not modified:
        return body_digest, None
    key = f"{resource}:{resource_id}:{modified}"
    if resource == "product":
        # Stock writes can land without moving date_modified (wc_update_product_stock updates
        # the meta directly), so the level is part of a product's version.
        key += f":{data.get('stock_quantity')}"
    try:
        version: datetime | None = parse_time(modified)
    except ValueError:
        version = None
    return key, version


def parse_delivery(channel: str, topic: str, raw_body: bytes) -> ChannelEvent:
    """Turn a verified delivery into an event; PermanentError for a body that cannot be read."""
    if topic not in ORDER_TOPICS and topic not in (ORDER_DELETED, PRODUCT_UPDATED):
        return ChannelEvent(kind=EventKind.IGNORE)
    try:
        data = payloads.loads(raw_body)
    except ValueError as exc:
        raise PermanentError(f"{topic}: the body is not JSON") from exc
    if is_rest_error(data):
        # The resource was gone when WooCommerce built the payload: nothing to apply here; the
        # order.deleted delivery or the next poll tells the rest.
        return ChannelEvent(kind=EventKind.IGNORE)
    if topic in ORDER_TOPICS:
        order = parse_order(channel, data)
        return ChannelEvent(kind=EventKind.ORDER, order=order, order_id=order.external_id)
    if topic == ORDER_DELETED:
        return ChannelEvent(kind=EventKind.ORDER_REF, order_id=str(_object_id(data, topic)))
    return _product_event(data)


def _product_event(data: Any) -> ChannelEvent:
    _object_id(data, PRODUCT_UPDATED)
    sku, managed, level = data.get("sku"), data.get("manage_stock"), data.get("stock_quantity")
    # manage_stock may be "parent" on a variation: its level is the parent's shared pool.
    if (
        isinstance(sku, str)
        and sku
        and managed is True
        and isinstance(level, int)
        and not isinstance(level, bool)
    ):
        return ChannelEvent(kind=EventKind.LEVEL, sku=sku, level=level)
    return ChannelEvent(kind=EventKind.IGNORE)


def _object_id(data: Any, topic: str) -> int:
    resource_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(resource_id, bool) or not isinstance(resource_id, int) or resource_id <= 0:
        raise PermanentError(f"{topic}: the body has no resource id")
    return resource_id


def is_rest_error(data: Any) -> bool:
    """Whether `data` is a WP REST error object rather than a resource."""
    return (
        isinstance(data, dict)
        and "id" not in data
        and isinstance(data.get("code"), str)
        and isinstance(data.get("data"), dict)
    )


# -- orders ----------------------------------------------------------------------------------------


def parse_order(channel: str, data: Any) -> ChannelOrder:
    """Map a `GET /orders/{id}` body to a ChannelOrder; PermanentError on any bad field."""
    try:
        return _order(channel, data)
    except PermanentError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise PermanentError(f"unreadable order: {type(exc).__name__}: {exc}") from exc


def map_status(status_text: str) -> OrderStatus:
    """storesync's status for a WooCommerce order status (plugin statuses count as open)."""
    return STATUS_MAP.get(status_text, UNKNOWN_STATUS)


def _order(channel: str, data: Any) -> ChannelOrder:
    if not isinstance(data, dict):
        raise PermanentError("an order must be a JSON object")
    order_id = data["id"]
    if isinstance(order_id, bool) or not isinstance(order_id, int):
        raise PermanentError("the order id must be an integer")
    status_text = _text(data, "status")
    status = map_status(status_text)
    items = data["line_items"]
    if not isinstance(items, list):
        raise PermanentError("line_items must be a list")
    # A full refund after completion is taken to return every unit (restocked only when the
    # merchant's refund_restocks rule says so). WooCommerce tells neither which units came back
    # nor whether they were restocked: GET /orders lists refunds as {id, reason, total} only, and
    # partial refunds leave the order's status and line quantities as they were.
    was_completed = bool(data.get("date_completed_gmt") or data.get("date_completed"))
    total = _text(data, "total", "")
    if total:
        Decimal(total)  # a malformed amount is a bad order, not something to store
    billing = data.get("billing")
    customer = billing.get("email") if isinstance(billing, dict) else None
    number = data.get("number")
    return ChannelOrder(
        channel=channel,
        external_id=str(order_id),
        updated_at=parse_time(_text(data, "date_modified_gmt")),
        status=status,
        lines=tuple(_line(item, status, was_completed) for item in items),
        created_at=parse_time(data["date_created_gmt"]) if data.get("date_created_gmt") else None,
        name=f"#{number}" if isinstance(number, str | int) and number != "" else f"#{order_id}",
        currency=_text(data, "currency", ""),
        total=total,
        customer=customer if isinstance(customer, str) else "",
        raw=data,
    )


def _line(data: Any, status: OrderStatus, was_completed: bool) -> OrderLine:
    if not isinstance(data, dict):
        raise PermanentError("a line item must be a JSON object")
    line_id = data["id"]
    if isinstance(line_id, bool) or not isinstance(line_id, int):
        raise PermanentError("a line item id must be an integer")
    sku = data.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise PermanentError("a line item's sku must be a string or null")
    quantity = data["quantity"]
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise PermanentError("a line item's quantity must be a non-negative integer")
    shipped = cancelled = returned = 0
    if status is OrderStatus.SHIPPED:
        shipped = quantity
    elif status is OrderStatus.REFUNDED and was_completed:
        shipped = returned = quantity
    elif status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        cancelled = quantity
    name = data.get("name")
    return OrderLine(
        line_id=str(line_id),
        sku=sku or None,
        quantity=quantity,
        shipped=shipped,
        cancelled=cancelled,
        returned=returned,
        title=name if isinstance(name, str) else "",
    )


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key)
    if value is None:
        if default is None:
            raise PermanentError(f"missing {key}")
        return default
    if not isinstance(value, str):
        raise PermanentError(f"{key} must be a string")
    return value


def parse_time(text: str) -> datetime:
    """A WooCommerce `*_gmt` timestamp (`2017-03-22T16:28:02`, no offset) as an aware UTC time."""
    moment = datetime.fromisoformat(text)
    # The *_gmt fields carry no offset: they are UTC by name.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """A time as WooCommerce writes and reads `*_gmt` values: UTC, whole seconds, no offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

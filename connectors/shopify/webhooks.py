"""Shopify webhooks: verify a delivery's HMAC on the raw bytes, then parse its REST-shaped body.

Shopify signs every delivery with `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(key = the app's
client secret, message = the raw body)) and the body is the REST resource for the topic, even
for subscriptions made through GraphQL
(https://shopify.dev/docs/apps/build/webhooks/delivery-structure). Duplicates share
`X-Shopify-Event-Id` ("the same value across more than one webhook indicates a duplicate",
https://shopify.dev/docs/apps/build/webhooks/ignore-duplicates); retries keep the original
payload and `X-Shopify-Triggered-At`
(https://shopify.dev/changelog/updates-to-webhook-retry-mechanism).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors import payloads
from connectors.base import (
    ChannelEvent,
    ChannelOrder,
    EventKind,
    PermanentError,
    WebhookDelivery,
    WebhookRejected,
)
from connectors.shopify.orders import build_order, numeric_id, parse_time, rest_facts
from connectors.signatures import check_hmac_sha256, header, sign_hmac_sha256

TOPIC_HEADER = "X-Shopify-Topic"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
SHOP_HEADER = "X-Shopify-Shop-Domain"
API_VERSION_HEADER = "X-Shopify-API-Version"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"

# Topics whose body is a complete order (https://shopify.dev/docs/api/webhooks, topic list).
ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/paid",
        "orders/partially_fulfilled",
        "orders/edited",
    }
)
REFUND_TOPIC = "refunds/create"
LEVEL_TOPIC = "inventory_levels/update"


def sign_payload(secret: str, raw_body: bytes) -> str:
    """The X-Shopify-Hmac-Sha256 value for `raw_body`: base64(HMAC-SHA256(secret, body))."""
    return sign_hmac_sha256(secret, raw_body)


def verify_delivery(
    secret: str | None, headers: Mapping[str, str], raw_body: bytes
) -> WebhookDelivery:
    """Check the HMAC on the raw bytes; WebhookRejected when anything is missing or wrong."""
    check_hmac_sha256(
        secret,
        headers,
        raw_body,
        HMAC_HEADER,
        no_secret="no webhook secret (the app's client secret) is configured",
    )
    # Event-Id names the event (duplicates share it); Webhook-Id names one subscription's
    # delivery and is what older deliveries and Shopify's own libraries key on.
    key = header(headers, EVENT_ID_HEADER) or header(headers, WEBHOOK_ID_HEADER)
    topic = header(headers, TOPIC_HEADER)
    if not key or not key.strip():
        raise WebhookRejected(f"missing {EVENT_ID_HEADER} and {WEBHOOK_ID_HEADER}")
    if not topic or not topic.strip():
        raise WebhookRejected(f"missing {TOPIC_HEADER}")
    return WebhookDelivery(
        delivery_key=key.strip(),
        topic=topic.strip().lower(),
        triggered_at=_optional_time(header(headers, TRIGGERED_AT_HEADER)),
    )


def read_body(topic: str, raw_body: bytes, resource: str) -> dict[str, Any]:
    """The delivery's JSON object; PermanentError when it is not one.

    Webhooks send the resource bare; REST responses (and the fixtures made from them) wrap it
    as {"<resource>": {...}}, which is unwrapped so both read alike.
    """
    try:
        data = payloads.loads(raw_body)
    except ValueError as exc:
        raise PermanentError(f"{topic}: the body is not JSON") from exc
    if isinstance(data, dict) and set(data) == {resource}:
        data = data[resource]
    if not isinstance(data, dict):
        raise PermanentError(f"{topic}: the body is not a JSON object")
    return data


def parse_rest_order(channel: str, data: Any) -> ChannelOrder:
    """A REST order (bare, as webhooks send it, or wrapped in {"order": ...}) as a ChannelOrder."""
    if isinstance(data, dict) and set(data) == {"order"}:
        data = data["order"]  # REST responses (and the fixtures) wrap the resource
    if not isinstance(data, dict):
        raise PermanentError("an order must be a JSON object")
    try:
        return build_order(channel, rest_facts(data), data)
    except PermanentError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PermanentError(f"unreadable order: {type(exc).__name__}: {exc}") from exc


def parse_delivery(
    channel: str,
    topic: str,
    raw_body: bytes,
    *,
    sku_for_item: Mapping[str, str],
    location_id: str | None,
) -> ChannelEvent:
    """Turn a verified delivery into an event; PermanentError for a body that cannot be read.

    `sku_for_item` maps numeric inventory item ids to SKUs (what the last listing read saw) and
    `location_id` is the numeric id of the location storesync sets: a level update can only be
    used when both say which SKU and which location it is about.
    """
    topic = topic.strip().lower()
    if topic in ORDER_TOPICS:
        order = parse_rest_order(channel, read_body(topic, raw_body, "order"))
        return ChannelEvent(kind=EventKind.ORDER, order=order, order_id=order.external_id)
    if topic == REFUND_TOPIC:
        # The refund alone does not say what the order looks like now: fetch the order.
        data = read_body(topic, raw_body, "refund")
        try:
            order_id = numeric_id(data.get("order_id"))
        except ValueError as exc:
            raise PermanentError(f"{topic}: no usable order_id") from exc
        return ChannelEvent(kind=EventKind.ORDER_REF, order_id=order_id)
    if topic == LEVEL_TOPIC:
        return _level_event(
            topic, read_body(topic, raw_body, "inventory_level"), sku_for_item, location_id
        )
    return ChannelEvent(kind=EventKind.IGNORE)


def _level_event(
    topic: str, data: dict[str, Any], sku_for_item: Mapping[str, str], location_id: str | None
) -> ChannelEvent:
    # Payload: {inventory_item_id, location_id, available, updated_at}; no SKU in it.
    try:
        item = numeric_id(data.get("inventory_item_id"))
        location = numeric_id(data.get("location_id"))
    except ValueError as exc:
        raise PermanentError(f"{topic}: no usable inventory_item_id/location_id") from exc
    available = data.get("available")
    if available is not None and (isinstance(available, bool) or not isinstance(available, int)):
        raise PermanentError(f"{topic}: available must be an integer or null")
    sku = sku_for_item.get(item)
    if sku is None or location_id is None or location != location_id or available is None:
        # Another location, an item never listed, or a level being deleted: nothing to use.
        return ChannelEvent(kind=EventKind.IGNORE)
    return ChannelEvent(kind=EventKind.LEVEL, sku=sku, level=available)


def _optional_time(text: str | None) -> datetime | None:
    # Not covered by the signature: a bad one costs the staleness check, nothing more.
    if not text:
        return None
    try:
        return parse_time(text.strip())
    except (ValueError, PermanentError):
        return None

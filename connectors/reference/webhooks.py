"""Reference channel webhooks: verify a delivery's signature on the raw bytes, then parse it.

A delivery carries `X-Reference-Topic`, `X-Reference-Delivery` (a UUID that stays the same across
retries and duplicates of one delivery), `X-Reference-Triggered-At` and `X-Reference-Signature`,
which is base64(HMAC-SHA256(webhook secret, raw body)) - Shopify's scheme, so the signature covers
the body only and replays are stopped by deduplicating on the delivery id. The body is the order
JSON as the API returns it, so the same `parse_order` maps both.
"""

from __future__ import annotations

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

TOPIC_HEADER = "X-Reference-Topic"
DELIVERY_HEADER = "X-Reference-Delivery"
SIGNATURE_HEADER = "X-Reference-Signature"
TRIGGERED_AT_HEADER = "X-Reference-Triggered-At"

ORDER_TOPICS = frozenset({"order.created", "order.updated"})

_STATUSES = {status.value: status for status in OrderStatus}


def sign_payload(secret: str, raw_body: bytes) -> str:
    """The signature header value for `raw_body`: base64(HMAC-SHA256(secret, body))."""
    return sign_hmac_sha256(secret, raw_body)


def verify_delivery(
    secret: str | None, headers: Mapping[str, str], raw_body: bytes
) -> WebhookDelivery:
    """Check the signature on the raw bytes; WebhookRejected when anything is missing or wrong."""
    check_hmac_sha256(
        secret,
        headers,
        raw_body,
        SIGNATURE_HEADER,
        no_secret="no webhook secret is configured for this channel",
    )
    delivery = header(headers, DELIVERY_HEADER)
    topic = header(headers, TOPIC_HEADER)
    if not delivery or not delivery.strip():
        raise WebhookRejected(f"missing {DELIVERY_HEADER}")
    if not topic or not topic.strip():
        raise WebhookRejected(f"missing {TOPIC_HEADER}")
    return WebhookDelivery(
        delivery_key=delivery.strip(),
        topic=topic.strip(),
        triggered_at=_parse_optional_time(header(headers, TRIGGERED_AT_HEADER)),
    )


def parse_delivery(channel: str, topic: str, raw_body: bytes) -> ChannelEvent:
    """Turn a verified delivery into an event; PermanentError for a body that cannot be read."""
    if topic not in ORDER_TOPICS:
        return ChannelEvent(kind=EventKind.IGNORE)
    try:
        data = payloads.loads(raw_body)
    except ValueError as exc:
        raise PermanentError(f"{topic}: the body is not JSON") from exc
    order = parse_order(channel, data)
    return ChannelEvent(kind=EventKind.ORDER, order=order, order_id=order.external_id)


def parse_order(channel: str, data: Any) -> ChannelOrder:
    """Map the reference order JSON to a ChannelOrder; PermanentError on any bad field."""
    try:
        return _order(channel, data)
    except PermanentError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        # Whatever shape arrived, the caller sees the one error that means "dead-letter this".
        raise PermanentError(f"unreadable order: {type(exc).__name__}: {exc}") from exc


def _order(channel: str, data: Any) -> ChannelOrder:
    if not isinstance(data, dict):
        raise PermanentError("an order must be a JSON object")
    status_text = _text(data, "status")
    status = _STATUSES.get(status_text)
    if status is None:
        raise PermanentError(f"unknown order status {status_text!r}")
    lines = data["lines"]
    if not isinstance(lines, list):
        raise PermanentError("lines must be a list")
    total = _text(data, "total", "")
    if total:
        Decimal(total)  # a malformed amount is a bad order, not something to store
    return ChannelOrder(
        channel=channel,
        external_id=_text(data, "id"),
        updated_at=_parse_time(_text(data, "updated_at")),
        status=status,
        lines=tuple(_line(line) for line in lines),
        created_at=_parse_time(_text(data, "created_at")) if data.get("created_at") else None,
        name=_text(data, "name", ""),
        currency=_text(data, "currency", ""),
        total=total,
        customer=_text(data, "customer", ""),
        raw=data,
    )


def _line(data: Any) -> OrderLine:
    if not isinstance(data, dict):
        raise PermanentError("an order line must be a JSON object")
    sku = data.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise PermanentError("a line's sku must be a string or null")
    line = OrderLine(
        line_id=_text(data, "id"),
        sku=sku or None,
        quantity=_count(data, "quantity"),
        shipped=_count(data, "shipped", 0),
        cancelled=_count(data, "cancelled", 0),
        returned=_count(data, "returned", 0),
        title=_text(data, "title", ""),
    )
    if line.shipped + line.cancelled > line.quantity:
        raise PermanentError(f"line {line.line_id}: more units shipped and cancelled than ordered")
    return line


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key)
    if value is None:
        if default is None:
            raise PermanentError(f"missing {key}")
        return default
    if not isinstance(value, str):
        raise PermanentError(f"{key} must be a string")
    return value


def _count(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PermanentError(f"{key} must be a non-negative integer")
    return value


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise PermanentError(f"timestamp without a timezone: {text!r}")
    return moment.astimezone(UTC)


def _parse_optional_time(text: str | None) -> datetime | None:
    # The header is not covered by the signature: a bad one costs the staleness check, nothing more.
    if not text:
        return None
    try:
        return _parse_time(text.strip())
    except (ValueError, PermanentError):
        return None

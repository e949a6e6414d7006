"""WooCommerce webhook verification, delivery keys and event parsing, without a network."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import EventKind, OrderStatus, PermanentError, WebhookRejected
from connectors.woocommerce.connector import WooCommerceConnector
from connectors.woocommerce.sandbox import wp_json_encode
from connectors.woocommerce.webhooks import parse_order, sign_payload

SECRET = "whsec-woo"


@pytest.fixture
async def woo() -> AsyncIterator[WooCommerceConnector]:
    conn = WooCommerceConnector(
        "woo",
        api_url="http://shop.test",
        consumer_key="ck",
        consumer_secret="cs",
        webhook_secret=SECRET,
        first_poll_window=timedelta(days=1),
        order_lookback=timedelta(minutes=5),
    )
    yield conn
    await conn.aclose()


def order(order_id: int = 1001, modified: str = "2026-03-01T10:00:00", **changes: Any) -> dict:
    data: dict[str, Any] = {
        "id": order_id,
        "number": str(order_id),
        "status": "processing",
        "currency": "USD",
        "total": "12.00",
        "date_created_gmt": "2026-03-01T09:00:00",
        "date_modified_gmt": modified,
        "date_completed_gmt": None,
        "billing": {"email": "buyer@example.com"},
        "line_items": [{"id": 5, "name": "Mug", "sku": "MUG", "quantity": 2,
                        "product_id": 20, "variation_id": 0}],
        "_links": {"self": [{"href": "https://shop.example/wp-json/wc/v3/orders/1001"}]},
    }
    data.update(changes)
    return data


def delivery(topic: str, payload: Any, *, secret: str = SECRET,
             delivery_id: str = "d1") -> tuple[dict[str, str], bytes]:
    """Headers and body as WooCommerce's deliver() sends them."""
    raw = payload if isinstance(payload, bytes) else wp_json_encode(payload)
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://shop.example/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": topic.split(".")[0],
        "X-WC-Webhook-Event": topic.split(".")[1],
        "X-WC-Webhook-Signature": sign_payload(secret, raw),
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }
    return headers, raw


# -- the activation ping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded",
                     "application/x-www-form-urlencoded; charset=UTF-8"])
def test_the_activation_ping_is_a_ping(woo: WooCommerceConnector, content_type: str) -> None:
    verified = woo.verify_webhook({"Content-Type": content_type}, b"webhook_id=42")
    assert verified.ping and verified.topic == "ping" and verified.delivery_key == "ping:42"


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/json", b"webhook_id=42"),
        ("application/x-www-form-urlencoded", b"webhook_id=42&x=1"),
        ("application/x-www-form-urlencoded", b"webhook_id=abc"),
        ("application/x-www-form-urlencoded", b'{"id": 42}'),
        ("", b"webhook_id=42"),
    ],
)
def test_nothing_else_passes_as_a_ping(
    woo: WooCommerceConnector, content_type: str, raw: bytes
) -> None:
    with pytest.raises(WebhookRejected):
        woo.verify_webhook({"Content-Type": content_type}, raw)


# -- signatures ------------------------------------------------------------------------------------


def test_a_signed_delivery_verifies_on_the_raw_bytes(woo: WooCommerceConnector) -> None:
    headers, raw = delivery("order.updated", order())
    assert b"\\/" in raw  # PHP escapes slashes: a re-dumped body would not match the signature
    verified = woo.verify_webhook(headers, raw)
    assert (verified.topic, verified.ping) == ("order.updated", False)
    assert verified.triggered_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    redumped = json.dumps(json.loads(raw)).encode()
    with pytest.raises(WebhookRejected):
        woo.verify_webhook(headers, redumped)


@pytest.mark.parametrize("secret", ["another-secret", ""])
def test_a_wrong_signature_is_rejected(woo: WooCommerceConnector, secret: str) -> None:
    headers, raw = delivery("order.updated", order(), secret=secret)
    with pytest.raises(WebhookRejected):
        woo.verify_webhook(headers, raw)


async def test_without_a_secret_or_a_topic_nothing_verifies(woo: WooCommerceConnector) -> None:
    headers, raw = delivery("order.updated", order())
    no_topic = {k: v for k, v in headers.items() if k != "X-WC-Webhook-Topic"}
    with pytest.raises(WebhookRejected, match="Topic"):
        woo.verify_webhook(no_topic, raw)
    unconfigured = WooCommerceConnector(
        "woo", api_url="http://shop.test", consumer_key="ck", consumer_secret="cs",
        webhook_secret=None, first_poll_window=timedelta(days=1),
        order_lookback=timedelta(minutes=5))
    try:
        with pytest.raises(WebhookRejected, match="no webhook secret"):
            unconfigured.verify_webhook(headers, raw)
    finally:
        await unconfigured.aclose()


# -- delivery keys ---------------------------------------------------------------------------------


def test_deliveries_of_one_state_share_a_key_and_a_later_state_gets_a_new_one(
    woo: WooCommerceConnector,
) -> None:
    created = woo.verify_webhook(*delivery("order.created", order(), delivery_id="a"))
    updated = woo.verify_webhook(*delivery("order.updated", order(), delivery_id="b"))
    later = woo.verify_webhook(*delivery("order.updated", order(modified="2026-03-01T10:00:01")))
    other = woo.verify_webhook(*delivery("order.updated", order(1002)))
    assert created.delivery_key == updated.delivery_key == "order:1001:2026-03-01T10:00:00"
    assert len({created.delivery_key, later.delivery_key, other.delivery_key}) == 3


def test_a_product_key_carries_its_level(woo: WooCommerceConnector) -> None:
    product = {"id": 20, "sku": "MUG", "manage_stock": True, "stock_quantity": 4,
               "date_modified_gmt": "2026-03-01T10:00:00"}
    first = woo.verify_webhook(*delivery("product.updated", product))
    sold = woo.verify_webhook(*delivery("product.updated", {**product, "stock_quantity": 3}))
    assert first.delivery_key == "product:20:2026-03-01T10:00:00:4"
    assert sold.delivery_key != first.delivery_key


def test_deletions_are_keyed_per_delivery(woo: WooCommerceConnector) -> None:
    first = woo.verify_webhook(*delivery("order.deleted", {"id": 1001}, delivery_id="x1"))
    again = woo.verify_webhook(*delivery("order.deleted", {"id": 1001}, delivery_id="x2"))
    assert first.delivery_key == "order:1001:deleted:x1" != again.delivery_key


def test_a_signed_body_that_is_not_json_is_a_delivery_that_parse_refuses(
    woo: WooCommerceConnector,
) -> None:
    headers, raw = delivery("order.updated", b"<html>oops</html>")
    verified = woo.verify_webhook(headers, raw)
    assert verified.delivery_key.startswith("sha256:")
    with pytest.raises(PermanentError):
        woo.parse_event(verified.topic, headers, raw)


# -- events ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["order.created", "order.updated", "order.restored"])
def test_order_topics_carry_the_order(woo: WooCommerceConnector, topic: str) -> None:
    headers, raw = delivery(topic, order())
    event = woo.parse_event(topic, headers, raw)
    assert event.kind is EventKind.ORDER and event.order is not None
    assert event.order_id == "1001" and event.order.channel == "woo"
    assert event.order.lines[0].sku == "MUG" and event.order.lines[0].quantity == 2
    assert event.order.raw["id"] == 1001


def test_a_deleted_order_is_a_reference_to_fetch(woo: WooCommerceConnector) -> None:
    event = woo.parse_event("order.deleted", *delivery("order.deleted", {"id": 1001}))
    assert (event.kind, event.order_id) == (EventKind.ORDER_REF, "1001")


def test_a_payload_built_after_the_order_vanished_is_ignored(woo: WooCommerceConnector) -> None:
    gone = {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
            "data": {"status": 404}}
    event = woo.parse_event("order.updated", *delivery("order.updated", gone))
    assert event.kind is EventKind.IGNORE


@pytest.mark.parametrize(
    ("product", "kind", "level"),
    [
        ({"sku": "MUG", "manage_stock": True, "stock_quantity": 4}, EventKind.LEVEL, 4),
        ({"sku": "MUG", "manage_stock": True, "stock_quantity": -1}, EventKind.LEVEL, -1),
        ({"sku": "MUG", "manage_stock": False, "stock_quantity": None}, EventKind.IGNORE, None),
        ({"sku": "TEE-M", "manage_stock": "parent", "stock_quantity": 7}, EventKind.IGNORE, None),
        ({"sku": "", "manage_stock": True, "stock_quantity": 4}, EventKind.IGNORE, None),
    ],
)
def test_product_updates_are_levels_when_stock_is_managed(
    woo: WooCommerceConnector, product: dict, kind: EventKind, level: int | None
) -> None:
    body = {"id": 20, "date_modified_gmt": "2026-03-01T10:00:00", **product}
    event = woo.parse_event("product.updated", *delivery("product.updated", body))
    assert (event.kind, event.level) == (kind, level)
    if kind is EventKind.LEVEL:
        assert event.sku == product["sku"]


@pytest.mark.parametrize("topic", ["coupon.created", "product.created", "action.wc_x"])
def test_other_topics_are_ignored(woo: WooCommerceConnector, topic: str) -> None:
    assert woo.parse_event(topic, {}, b"{}").kind is EventKind.IGNORE


@pytest.mark.parametrize(
    "payload", [[1, 2], {"id": 1001}, {"no": "id"}, order(line_items="nope"),
                order(date_modified_gmt=None), order(total="12,00")],
)
def test_garbage_is_a_permanent_error(woo: WooCommerceConnector, payload: Any) -> None:
    with pytest.raises(PermanentError):
        woo.parse_event("order.updated", *delivery("order.updated", payload))
    if isinstance(payload, list) or "id" not in payload:
        with pytest.raises(PermanentError):
            woo.parse_event("order.deleted", *delivery("order.deleted", payload))


# -- the order mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", OrderStatus.PENDING),
        ("processing", OrderStatus.OPEN),
        ("on-hold", OrderStatus.OPEN),
        ("completed", OrderStatus.SHIPPED),
        ("cancelled", OrderStatus.CANCELLED),
        ("refunded", OrderStatus.REFUNDED),
        ("failed", OrderStatus.CANCELLED),
        ("trash", OrderStatus.CANCELLED),
        ("checkout-draft", OrderStatus.PENDING),
        ("awaiting-pickup", OrderStatus.OPEN),  # a plugin's status
    ],
)
def test_statuses_map_to_storesyncs(status: str, expected: OrderStatus) -> None:
    assert parse_order("woo", order(status=status)).status is expected


def test_line_quantities_follow_the_status() -> None:
    def line(**changes: Any) -> tuple[int, int, int]:
        mapped = parse_order("woo", order(**changes)).lines[0]
        return mapped.shipped, mapped.cancelled, mapped.returned

    assert line(status="processing") == (0, 0, 0)
    assert line(status="completed", date_completed_gmt="2026-03-01T10:00:00") == (2, 0, 0)
    assert line(status="cancelled") == (0, 2, 0)
    assert line(status="refunded") == (0, 2, 0)  # refunded before it shipped
    assert line(status="refunded", date_completed_gmt="2026-03-01T10:00:00") == (2, 0, 2)


def test_order_fields() -> None:
    mapped = parse_order("woo", order(number="A-7", line_items=[
        {"id": 9, "name": "Gift card", "sku": "", "quantity": 1}]))
    assert (mapped.name, mapped.currency, mapped.total, mapped.customer) == (
        "#A-7", "USD", "12.00", "buyer@example.com")
    assert mapped.created_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert mapped.lines[0].sku is None and mapped.lines[0].title == "Gift card"

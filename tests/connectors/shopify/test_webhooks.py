"""Shopify webhooks: HMAC verification on raw bytes, REST payload parsing, one normalizer.

The real order fixture (fixtures/order.json, MIT, from Shopify/shopify_python_api) is signed
with a test secret, verified and parsed; tampered copies are rejected. The normalizer is fed the
same order in both of Shopify's shapes (GraphQL and REST) and must give the same lines.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import EventKind, OrderStatus, PermanentError, WebhookRejected
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.orders import build_order, graphql_facts, order_status, rest_facts
from connectors.shopify.webhooks import (
    EVENT_ID_HEADER,
    HMAC_HEADER,
    TOPIC_HEADER,
    TRIGGERED_AT_HEADER,
    WEBHOOK_ID_HEADER,
    parse_delivery,
    parse_rest_order,
    sign_payload,
    verify_delivery,
)

FIXTURE = Path(__file__).parent / "fixtures" / "order.json"
SECRET = "test-client-secret"


def headers_for(body: bytes, *, secret: str = SECRET, topic: str = "orders/updated") -> dict:
    return {
        "Content-Type": "application/json",
        TOPIC_HEADER: topic,
        HMAC_HEADER: sign_payload(secret, body),
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "X-Shopify-API-Version": "2026-07",
        WEBHOOK_ID_HEADER: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        EVENT_ID_HEADER: "98880550-7158-44d4-b7cd-2c97c8a091b5",
        TRIGGERED_AT_HEADER: "2026-03-01T10:00:00.123456Z",
    }


def connector(**options: Any) -> ShopifyConnector:
    settings: dict[str, Any] = {
        "shop": "example.myshopify.com",
        "api_url": None,
        "api_version": "2026-07",
        "access_token": "shpat_x",
        "client_id": None,
        "client_secret": None,
        "webhook_secret": SECRET,
        "location": None,
        "first_poll_window": timedelta(days=1),
        "order_lookback": timedelta(minutes=5),
    }
    settings.update(options)
    return ShopifyConnector("shopify", **settings)


@pytest.fixture
async def shop() -> Any:
    conn = connector()
    yield conn
    await conn.aclose()


# -- the real fixture ----------------------------------------------------------------------------


async def test_the_fixture_order_verifies_and_parses(shop: ShopifyConnector) -> None:
    body = FIXTURE.read_bytes()
    delivery = shop.verify_webhook(headers_for(body), body)
    assert delivery.delivery_key == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert delivery.topic == "orders/updated"
    assert delivery.triggered_at == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    event = shop.parse_event(delivery.topic, headers_for(body), body)
    assert event.kind is EventKind.ORDER and event.order is not None
    order = event.order
    assert order.external_id == event.order_id == "450789469"
    assert order.name == "#1001"
    assert order.updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)  # -05:00 in the file
    assert order.created_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert order.status is OrderStatus.OPEN  # financial_status "authorized"
    assert (order.currency, order.total, order.customer) == (
        "USD", "409.94", "bob.norman@hostmail.com"
    )
    # Its only fulfillment has status "failure": nothing shipped.
    assert [(ln.line_id, ln.sku, ln.quantity, ln.shipped, ln.cancelled, ln.returned)
            for ln in order.lines] == [
        ("466157049", "IPOD2008GREEN", 1, 0, 0, 0),
        ("518995019", "IPOD2008RED", 1, 0, 0, 0),
        ("703073504", "IPOD2008BLACK", 1, 0, 0, 0),
    ]
    assert order.lines[0].title == "IPod Nano - 8gb - green"


async def test_a_tampered_fixture_is_rejected(shop: ShopifyConnector) -> None:
    body = FIXTURE.read_bytes()
    headers = headers_for(body)
    tampered = body.replace(b'"quantity": 1', b'"quantity": 9', 1)
    assert tampered != body
    with pytest.raises(WebhookRejected, match="does not match"):
        shop.verify_webhook(headers, tampered)
    with pytest.raises(WebhookRejected):
        shop.verify_webhook(headers_for(body, secret="someone-else"), body)
    with pytest.raises(WebhookRejected):
        shop.verify_webhook({k: v for k, v in headers.items() if k != HMAC_HEADER}, body)
    with pytest.raises(WebhookRejected):
        shop.verify_webhook({**headers, HMAC_HEADER: "not base64 at all!"}, body)


async def test_a_successful_fulfillment_in_the_fixture_counts_as_shipped() -> None:
    data = json.loads(FIXTURE.read_bytes())
    data["order"]["fulfillments"][0]["status"] = "success"
    order = parse_rest_order("shopify", data)
    assert [ln.shipped for ln in order.lines] == [1, 0, 0]


# -- verification details ------------------------------------------------------------------------


def test_headers_are_read_case_insensitively_and_event_id_wins() -> None:
    body = b'{"id": 1}'
    lower = {k.lower(): v for k, v in headers_for(body).items()}
    delivery = verify_delivery(SECRET, lower, body)
    assert delivery.delivery_key == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    without_event = {k: v for k, v in lower.items() if k != EVENT_ID_HEADER.lower()}
    assert verify_delivery(SECRET, without_event, body).delivery_key == (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    )


@pytest.mark.parametrize("missing", [TOPIC_HEADER, (EVENT_ID_HEADER, WEBHOOK_ID_HEADER)])
def test_a_delivery_without_topic_or_any_id_is_rejected(missing: Any) -> None:
    body = b"{}"
    names = {missing} if isinstance(missing, str) else set(missing)
    headers = {k: v for k, v in headers_for(body).items() if k not in names}
    with pytest.raises(WebhookRejected):
        verify_delivery(SECRET, headers, body)


def test_no_secret_rejects_everything() -> None:
    body = b"{}"
    with pytest.raises(WebhookRejected, match="secret"):
        verify_delivery(None, headers_for(body), body)


def test_a_bad_triggered_at_costs_only_the_timestamp() -> None:
    body = b"{}"
    delivery = verify_delivery(SECRET, {**headers_for(body), TRIGGERED_AT_HEADER: "soon"}, body)
    assert delivery.triggered_at is None


async def test_the_client_secret_signs_webhooks_when_no_webhook_secret_is_set() -> None:
    shop = connector(webhook_secret=None, access_token=None, client_id="id", client_secret=SECRET)
    try:
        body = FIXTURE.read_bytes()
        assert shop.verify_webhook(headers_for(body), body).topic == "orders/updated"
    finally:
        await shop.aclose()


# -- topics --------------------------------------------------------------------------------------


def parse(topic: str, payload: Any, **options: Any) -> Any:
    settings: dict[str, Any] = {"sku_for_item": {}, "location_id": None}
    settings.update(options)
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_delivery("shopify", topic, raw, **settings)


@pytest.mark.parametrize(
    "topic",
    ["orders/create", "orders/updated", "orders/cancelled", "orders/fulfilled", "orders/paid",
     "orders/partially_fulfilled", "orders/edited", "Orders/Updated"],
)
def test_order_topics_carry_the_order(topic: str) -> None:
    bare = json.loads(FIXTURE.read_bytes())["order"]  # webhooks send the order unwrapped
    event = parse(topic, bare)
    assert event.kind is EventKind.ORDER
    assert event.order.external_id == "450789469"


def test_refunds_name_the_order_to_fetch() -> None:
    refund = {"id": 509562969, "order_id": 450789469, "restock": True, "refund_line_items": []}
    event = parse("refunds/create", refund)
    assert (event.kind, event.order_id) == (EventKind.ORDER_REF, "450789469")
    with pytest.raises(PermanentError):
        parse("refunds/create", {"id": 1})


def test_level_updates_map_known_items_at_our_location_only() -> None:
    payload = {"inventory_item_id": 808950810, "location_id": 905684977, "available": 6,
               "updated_at": "2018-05-07T15:51:26-04:00"}
    known = {"sku_for_item": {"808950810": "MUG"}, "location_id": "905684977"}
    event = parse("inventory_levels/update", payload, **known)
    assert (event.kind, event.sku, event.level) == (EventKind.LEVEL, "MUG", 6)
    assert parse("inventory_levels/update", payload).kind is EventKind.IGNORE  # never listed
    elsewhere = {**known, "location_id": "1"}
    assert parse("inventory_levels/update", payload, **elsewhere).kind is EventKind.IGNORE
    deleted = {**payload, "available": None}
    assert parse("inventory_levels/update", deleted, **known).kind is EventKind.IGNORE
    wrapped = {"inventory_level": payload}  # the REST fixture shape
    assert parse("inventory_levels/update", wrapped, **known).kind is EventKind.LEVEL


def test_other_topics_are_ignored() -> None:
    assert parse("products/update", {"id": 1}).kind is EventKind.IGNORE
    assert parse("app/uninstalled", b"not even json").kind is EventKind.IGNORE


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"id": 1}', b'{"id": "x", "updated_at": "2026-01-01T00:00:00Z",'
     b' "line_items": []}', b'{"id": 1, "updated_at": "2026-01-01T00:00:00", "line_items": []}'],
)
def test_an_unreadable_order_is_permanent(body: bytes) -> None:
    with pytest.raises(PermanentError):
        parse("orders/updated", body)


# -- one normalizer, two shapes ------------------------------------------------------------------


def rest_order(lines: list[dict[str, Any]], *, fulfillments: list[dict[str, Any]] = (),  # type: ignore[assignment]
               refunds: list[dict[str, Any]] = (), **changes: Any) -> dict[str, Any]:  # type: ignore[assignment]
    order = {
        "id": 7,
        "name": "#1007",
        "email": "a@example.com",
        "created_at": "2026-03-01T09:00:00-05:00",
        "updated_at": "2026-03-01T10:00:00-05:00",
        "cancelled_at": None,
        "financial_status": "paid",
        "currency": "EUR",
        "total_price": "30.00",
        "line_items": lines,
        "fulfillments": list(fulfillments),
        "refunds": list(refunds),
    }
    order.update(changes)
    return order


def graphql_order(**changes: Any) -> dict[str, Any]:
    node = {
        "id": "gid://shopify/Order/7",
        "name": "#1007",
        "email": "a@example.com",
        "createdAt": "2026-03-01T14:00:00Z",
        "updatedAt": "2026-03-01T15:00:00Z",
        "cancelledAt": None,
        "displayFinancialStatus": "PAID",
        "currencyCode": "EUR",
        "totalPriceSet": {"shopMoney": {"amount": "30.0"}},
    }
    node.update(changes)
    return node


# (ordered, current, fulfilled, refunds as [(units, restock type)]) -> (shipped, cancelled,
# returned), with both shapes built from the same facts.
SCENARIOS = {
    "untouched": (3, 3, 0, [], (0, 0, 0)),
    "edited down by one": (3, 2, 0, [], (0, 1, 0)),
    "one cancelled with restock": (3, 2, 0, [(1, "cancel")], (0, 1, 0)),
    "two shipped, one returned": (2, 1, 2, [(1, "return")], (2, 0, 1)),
    "shipped one, refunded the other unshipped without restock": (
        2, 1, 1, [(1, "no_restock")], (1, 1, 0)),
    "shipped and refunded without restock (kept by the buyer)": (1, 0, 1, [(1, "no_restock")],
                                                                  (1, 0, 0)),
    "legacy restock of a shipped unit": (1, 0, 1, [(1, "legacy_restock")], (1, 0, 1)),
    # 6 = 3 shipped (1 back) + 1 cancelled + 1 refunded unshipped + 1 still due.
    "mixed": (6, 3, 3, [(1, "cancel"), (1, "return"), (1, "no_restock")], (3, 2, 1)),
    # 5 = 3 shipped (1 back, 1 refunded and kept) + 1 cancelled + 1 edited out.
    "mixed with an edit": (5, 1, 3, [(1, "cancel"), (1, "return"), (1, "no_restock")],
                           (3, 2, 1)),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_both_shapes_of_one_order_normalize_alike(name: str) -> None:
    ordered, current, fulfilled, refunds, expected = SCENARIOS[name]
    rest = rest_order(
        [{"id": 70, "sku": "MUG", "name": "Mug", "quantity": ordered,
          "current_quantity": current, "fulfillable_quantity": max(current - fulfilled, 0)}],
        fulfillments=[{"status": "success", "line_items": [{"id": 70, "quantity": fulfilled}]}]
        if fulfilled else [],
        refunds=[{"refund_line_items": [
            {"line_item_id": 70, "quantity": units, "restock_type": kind}
            for units, kind in refunds
        ]}],
    )
    graph_lines = [{"id": "gid://shopify/LineItem/70", "sku": "MUG", "name": "Mug",
                    "quantity": ordered, "currentQuantity": current,
                    "unfulfilledQuantity": current - fulfilled}]
    graph_refunds = [
        {"quantity": units, "restockType": kind.upper(),
         "lineItem": {"id": "gid://shopify/LineItem/70"}}
        for units, kind in refunds
    ]
    from_rest = build_order("shopify", rest_facts(rest), rest)
    node = graphql_order()
    from_graphql = build_order("shopify", graphql_facts(node, graph_lines, graph_refunds), node)
    assert from_rest == from_graphql  # raw differs and is not compared
    (line,) = from_rest.lines
    assert (line.shipped, line.cancelled, line.returned) == expected
    assert line.shipped + line.cancelled <= line.quantity


def test_rest_without_fulfillments_falls_back_to_fulfillable_quantity() -> None:
    rest = rest_order([{"id": 1, "sku": "A", "quantity": 3, "current_quantity": 3,
                        "fulfillable_quantity": 1}])
    del rest["fulfillments"]
    (line,) = parse_rest_order("shopify", rest).lines
    assert line.shipped == 2


def test_a_sku_less_line_keeps_its_units() -> None:
    rest = rest_order([{"id": 1, "sku": "", "title": "Gift wrap", "quantity": 1}])
    (line,) = parse_rest_order("shopify", rest).lines
    assert (line.sku, line.title, line.quantity) == (None, "Gift wrap", 1)


@pytest.mark.parametrize(
    ("cancelled", "financial", "status"),
    [
        (True, "paid", OrderStatus.CANCELLED),
        (False, "refunded", OrderStatus.REFUNDED),
        (False, "pending", OrderStatus.PENDING),
        (False, "EXPIRED", OrderStatus.PENDING),
        (False, "voided", OrderStatus.PENDING),
        (False, "authorized", OrderStatus.OPEN),
        (False, "PAID", OrderStatus.OPEN),
        (False, "partially_paid", OrderStatus.OPEN),
        (False, "PARTIALLY_REFUNDED", OrderStatus.OPEN),
        (False, None, OrderStatus.PENDING),
    ],
)
def test_status_mapping(cancelled: bool, financial: str | None, status: OrderStatus) -> None:
    assert order_status(cancelled, financial) is status


def test_an_unknown_financial_status_is_permanent() -> None:
    with pytest.raises(PermanentError):
        order_status(False, "bartered")


def test_parsing_does_not_touch_the_payload() -> None:
    data = json.loads(FIXTURE.read_bytes())
    before = copy.deepcopy(data)
    parse_rest_order("shopify", data)
    assert data == before

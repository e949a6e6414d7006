"""The reference connector's exact requests (respx, strict) and its webhook edge cases.

respx runs with assert_all_called and assert_all_mocked: a request the test did not expect, or
an expected one that was never made, fails the test (Airbyte's strict HttpMocker idea).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import (
    AuthError,
    ChannelOrder,
    EventKind,
    ListingRef,
    OrderStatus,
    PermanentError,
    PushOutcome,
    RateLimited,
    RetryableError,
    ShipmentLine,
    ShipmentPush,
    StockPush,
    WebhookRejected,
)
from connectors.http import RetryPolicy
from connectors.reference.connector import ReferenceConnector
from connectors.reference.webhooks import parse_delivery, sign_payload

URL = "http://reference.test"
KEY = "api-key-1"
SECRET = "whsec-1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ONCE = RetryPolicy(attempts=1)


def order_json(order_id: str = "1001", updated_at: str = "2026-03-01T10:00:00.000000Z",
               **changes: Any) -> dict[str, Any]:
    """A reference order as the API returns it."""
    order: dict[str, Any] = {
        "id": order_id,
        "name": f"#{order_id}",
        "status": "open",
        "created_at": "2026-03-01T09:00:00.000000Z",
        "updated_at": updated_at,
        "currency": "USD",
        "total": "12.00",
        "customer": "buyer@example.com",
        "lines": [
            {"id": "1", "sku": "MUG", "title": "Mug", "quantity": 2, "shipped": 0,
             "cancelled": 0, "returned": 0}
        ],
    }
    order.update(changes)
    return order


def make(**options: Any) -> ReferenceConnector:
    """A connector on the fake clock NOW, with a small page size."""
    settings_: dict[str, Any] = {
        "api_url": URL,
        "api_key": KEY,
        "webhook_secret": SECRET,
        "first_poll_window": timedelta(days=1),
        "order_lookback": timedelta(minutes=5),
        "clock": lambda: NOW,
        "page_size": 2,
        "policy": ONCE,
    }
    settings_.update(options)
    return ReferenceConnector("ref", **settings_)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=URL, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def connector() -> Any:
    conn = make()
    yield conn
    await conn.aclose()


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def listing(sku: str, listing_id: str | None) -> ListingRef:
    return ListingRef(sku, {"listing_id": listing_id} if listing_id else {}, "listed", 0)


# -- orders ----------------------------------------------------------------------------------------


async def test_a_first_poll_reads_the_window_then_follows_cursors_to_the_end(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    calls: list[dict[str, str]] = []

    def orders(request: httpx.Request) -> httpx.Response:
        calls.append(params(request))
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        if "cursor" not in request.url.params:
            return httpx.Response(200, json={
                "orders": [order_json("1001"), order_json("1002")], "next_cursor": "c1"})
        return httpx.Response(200, json={
            "orders": [order_json("1003", "2026-03-01T11:00:00.123456Z")], "next_cursor": None})

    api.get("/orders").mock(side_effect=orders)
    pages = [page async for page in connector.fetch_orders(None)]
    # The run starts at NOW - first window, minus the look-back; later pages ride the cursor only.
    assert calls == [
        {"updated_since": "2026-02-28T11:55:00.000000Z", "limit": "2"},
        {"cursor": "c1", "limit": "2"},
    ]
    assert [len(p.orders) for p in pages] == [2, 1]
    assert [p.done for p in pages] == [False, True]
    assert json.loads(pages[0].cursor) == {"since": "2026-02-28T12:00:00.000000Z", "after": "c1"}
    assert json.loads(pages[1].cursor) == {"since": "2026-03-01T11:00:00.123456Z", "after": None}
    first = pages[0].orders[0]
    assert first.external_id == "1001" and first.channel == "ref"
    assert first.status is OrderStatus.OPEN


async def test_the_next_since_never_passes_the_runs_start(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    # The channel's clock runs ahead of ours: its updated_at is later than our start time.
    api.get("/orders").mock(return_value=httpx.Response(200, json={
        "orders": [order_json("1001", "2026-03-01T12:30:00.000000Z")], "next_cursor": None}))
    (page,) = [p async for p in connector.fetch_orders(None)]
    assert json.loads(page.cursor)["since"] == "2026-03-01T12:00:00.000000Z"


async def test_an_empty_poll_keeps_its_since_and_reads_the_look_back(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    route = api.get("/orders", params={"updated_since": "2026-03-01T09:55:00.000000Z"}).mock(
        return_value=httpx.Response(200, json={"orders": [], "next_cursor": None}))
    cursor = json.dumps({"since": "2026-03-01T10:00:00.000000Z", "after": None})
    (page,) = [p async for p in connector.fetch_orders(cursor)]
    assert route.call_count == 1
    assert page.done and page.orders == ()
    assert json.loads(page.cursor) == {"since": "2026-03-01T10:00:00.000000Z", "after": None}


async def test_a_run_resumed_mid_way_asks_for_the_cursor_only(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    seen: list[dict[str, str]] = []

    def orders(request: httpx.Request) -> httpx.Response:
        seen.append(params(request))
        return httpx.Response(200, json={"orders": [order_json()], "next_cursor": None})

    api.get("/orders").mock(side_effect=orders)
    cursor = json.dumps({"since": "2026-03-01T08:00:00.000000Z", "after": "tok"})
    pages = [p async for p in connector.fetch_orders(cursor)]
    assert seen == [{"cursor": "tok", "limit": "2"}]
    assert json.loads(pages[-1].cursor) == {"since": "2026-03-01T10:00:00.000000Z", "after": None}


@pytest.mark.parametrize("cursor", ["", "{", "[]", '{"since": "yesterday"}',
                                    '{"since": "2026-03-01T10:00:00"}',
                                    '{"since": "2026-03-01T10:00:00Z", "after": 5}'])
async def test_an_unreadable_cursor_is_a_permanent_error(
    connector: ReferenceConnector, cursor: str
) -> None:
    with pytest.raises(PermanentError):
        _ = [p async for p in connector.fetch_orders(cursor)]


async def test_a_malformed_orders_page_is_retryable(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.get("/orders").mock(return_value=httpx.Response(200, json={"orders": "nope"}))
    with pytest.raises(RetryableError):
        _ = [p async for p in connector.fetch_orders(None)]


async def test_a_truncated_body_is_retryable(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    body = json.dumps({"orders": [order_json()], "next_cursor": None}).encode()
    api.get("/orders").mock(return_value=httpx.Response(200, content=body[: len(body) // 2]))
    with pytest.raises(RetryableError):
        _ = [p async for p in connector.fetch_orders(None)]


async def test_fetch_order_maps_404_to_none_and_keeps_other_errors(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.get("/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get("/orders/404").mock(return_value=httpx.Response(404, json={"error": "not_found"}))
    api.get("/orders/bad").mock(return_value=httpx.Response(400, json={"error": "bad"}))
    api.get("/orders/a%2Fb").mock(return_value=httpx.Response(401, json={"error": "unauthorized"}))
    order = await connector.fetch_order("1001")
    assert isinstance(order, ChannelOrder) and order.lines[0].sku == "MUG"
    assert order.raw == order_json()
    assert await connector.fetch_order("404") is None
    with pytest.raises(PermanentError):
        await connector.fetch_order("bad")
    with pytest.raises(AuthError):
        await connector.fetch_order("a/b")  # the id is one path segment, escaped


# -- listings ------------------------------------------------------------------------------------


async def test_fetch_listings_reads_every_page(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.get("/listings", params={"page": "1", "per_page": "100"}).mock(
        return_value=httpx.Response(200, json={"listings": [
            {"id": "L1", "sku": "MUG", "quantity": 5, "tracked": True}], "next_page": 2}))
    api.get("/listings", params={"page": "2", "per_page": "100"}).mock(
        return_value=httpx.Response(200, json={"listings": [
            {"id": "L2", "sku": "CAP", "quantity": 0, "tracked": False}], "next_page": None}))
    refs = await connector.fetch_listings()
    assert refs == [
        ListingRef("MUG", {"listing_id": "L1"}, "listed", 5),
        ListingRef("CAP", {"listing_id": "L2"}, "untracked", 0),
    ]
    assert not refs[1].pushable


async def test_fetch_levels_returns_the_asked_listings_by_sku(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.get("/listings").mock(return_value=httpx.Response(200, json={"listings": [
        {"id": "L1", "sku": "MUG", "quantity": 5, "tracked": True},
        {"id": "L2", "sku": "CAP", "quantity": 3, "tracked": True}], "next_page": None}))
    assert await connector.fetch_levels([listing("MUG", "L1")]) == {"MUG": 5}


async def test_the_default_limiter_learns_the_servers_remaining_budget(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.get("/listings").mock(return_value=httpx.Response(
        200,
        json={"listings": [], "next_page": None},
        headers={"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "3"},
    ))
    await connector.fetch_listings()
    assert connector.limiter.snapshot()["available"] == pytest.approx(3, abs=0.5)


# -- stock pushes --------------------------------------------------------------------------------


async def test_push_stock_sends_one_idempotent_cas_batch(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    def batch(request: httpx.Request) -> httpx.Response:
        assert request.headers["Idempotency-Key"] == hashlib.sha256(b"k1\nk2").hexdigest()
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert json.loads(request.content) == {"items": [
            {"listing_id": "L1", "quantity": 5, "expected": 3},
            {"listing_id": "L2", "quantity": 0, "expected": None},
        ]}
        return httpx.Response(200, json={"results": [
            {"listing_id": "L1", "status": "ok", "quantity": 5},
            {"listing_id": "L2", "status": "stale", "quantity": 4},
        ]})

    route = api.post("/stock/batch").mock(side_effect=batch)
    results = await connector.push_stock([
        StockPush(listing("MUG", "L1"), 5, 3, "k1"),
        StockPush(listing("CAP", "L2"), 0, None, "k2"),
    ])
    assert route.call_count == 1
    assert [(r.key, r.outcome, r.observed) for r in results] == [
        ("MUG", PushOutcome.DONE, 5),
        ("CAP", PushOutcome.CONFLICT, 4),
    ]


async def test_push_stock_maps_every_item_status(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.post("/stock/batch").mock(return_value=httpx.Response(200, json={"results": [
        {"listing_id": "L1", "status": "not_found", "quantity": None},
        {"listing_id": "L2", "status": "untracked", "quantity": 9},
        {"listing_id": "L3", "status": "sideways", "quantity": 1},
        {"listing_id": "L9", "status": "ok", "quantity": 1},
    ]}))
    pushes = [StockPush(listing(s, i), 1, None, s) for s, i in
              [("A", "L1"), ("B", "L2"), ("C", "L3"), ("D", "L4")]]
    outcomes = [r.outcome for r in await connector.push_stock(pushes)]
    assert outcomes == [PushOutcome.PERMANENT, PushOutcome.PERMANENT, PushOutcome.RETRY,
                        PushOutcome.RETRY]


async def test_push_stock_splits_into_batches_of_50_each_with_its_own_key(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    keys: list[str] = []

    def batch(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["items"]
        keys.append(request.headers["Idempotency-Key"])
        return httpx.Response(200, json={"results": [
            {"listing_id": i["listing_id"], "status": "ok", "quantity": i["quantity"]}
            for i in items]})

    api.post("/stock/batch").mock(side_effect=batch)
    pushes = [StockPush(listing(f"S{n}", f"L{n}"), n, None, f"key-{n}") for n in range(120)]
    results = await connector.push_stock(pushes)
    assert [r.key for r in results] == [f"S{n}" for n in range(120)]
    assert all(r.outcome is PushOutcome.DONE for r in results)
    expected = [
        hashlib.sha256("\n".join(f"key-{n}" for n in chunk).encode()).hexdigest()
        for chunk in (range(50), range(50, 100), range(100, 120))
    ]
    assert keys == expected


async def test_a_later_batch_failing_keeps_the_earlier_results(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.post("/stock/batch").mock(side_effect=[
        httpx.Response(200, json={"results": [
            {"listing_id": f"L{n}", "status": "ok", "quantity": 1} for n in range(50)]}),
        httpx.Response(429, json={"error": "rate_limited"}, headers={"Retry-After": "4"}),
    ])
    pushes = [StockPush(listing(f"S{n}", f"L{n}"), 1, None, f"k{n}") for n in range(120)]
    results = await connector.push_stock(pushes)
    assert len(results) == 120
    assert {r.outcome for r in results[:50]} == {PushOutcome.DONE}
    # The third batch is held back too: the channel said to slow down.
    assert {(r.outcome, r.retry_after) for r in results[50:]} == {(PushOutcome.RETRY, 4.0)}


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, RateLimited), (503, RetryableError), (401, AuthError), (413, PermanentError)],
)
async def test_a_failed_first_batch_raises_its_error(
    api: respx.MockRouter, connector: ReferenceConnector, status: int, error: type[Exception]
) -> None:
    api.post("/stock/batch").mock(return_value=httpx.Response(status, json={"error": "x"}))
    with pytest.raises(error):
        await connector.push_stock([StockPush(listing("MUG", "L1"), 1, None, "k")])


async def test_a_push_without_a_listing_id_is_permanent_and_never_sent(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    (result,) = await connector.push_stock([StockPush(listing("MUG", None), 1, None, "k")])
    assert result.key == "MUG" and result.outcome is PushOutcome.PERMANENT


# -- shipments -----------------------------------------------------------------------------------


def shipment(*lines: ShipmentLine, order_id: str = "1001") -> ShipmentPush:
    return ShipmentPush(order_id, "ship-7", "UPS", "1Z999", "https://ups.test/1Z999", lines,
                        idempotency_key="idem-ship-7")


async def test_push_shipment_sends_the_exact_request(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    def create(request: httpx.Request) -> httpx.Response:
        assert request.headers["Idempotency-Key"] == "idem-ship-7"
        assert json.loads(request.content) == {
            "carrier": "UPS",
            "tracking_number": "1Z999",
            "tracking_url": "https://ups.test/1Z999",
            "lines": [{"line_id": "1", "quantity": 2}, {"line_id": "3", "quantity": 1}],
        }
        return httpx.Response(201, json={"id": "shp_1"})

    api.post("/orders/1001/shipments").mock(side_effect=create)
    result = await connector.push_shipment(
        shipment(ShipmentLine("1", "MUG", 2), ShipmentLine("3", None, 1))
    )
    assert (result.key, result.outcome) == ("ship-7", PushOutcome.DONE)


async def test_a_shipment_without_lines_ships_everything_left(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.post("/orders/1001/shipments").mock(side_effect=lambda r: (
        httpx.Response(201, json={"id": "shp_1"}) if "lines" not in json.loads(r.content)
        else httpx.Response(500)))
    assert (await connector.push_shipment(shipment())).outcome is PushOutcome.DONE


async def test_a_refused_shipment_is_permanent_with_the_channels_message(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.post("/orders/1001/shipments").mock(return_value=httpx.Response(422, json={
        "error": "too_many_units", "message": "line 1: 3 units requested, 1 left to ship"}))
    result = await connector.push_shipment(shipment(ShipmentLine("1", "MUG", 3)))
    assert result.outcome is PushOutcome.PERMANENT
    assert "3 units requested, 1 left to ship" in result.message


async def test_a_failing_shipment_push_raises_for_the_outbox(
    api: respx.MockRouter, connector: ReferenceConnector
) -> None:
    api.post("/orders/1001/shipments").mock(return_value=httpx.Response(503))
    with pytest.raises(RetryableError):
        await connector.push_shipment(shipment())


# -- webhooks ------------------------------------------------------------------------------------


def signed(body: bytes, **overrides: str) -> dict[str, str]:
    headers = {
        "X-Reference-Topic": "order.updated",
        "X-Reference-Delivery": "5f0c6c1e-7f6e-4c55-9d35-1b2b3c4d5e6f",
        "X-Reference-Signature": sign_payload(SECRET, body),
        "X-Reference-Triggered-At": "2026-03-01T10:00:01.000000Z",
    }
    headers.update(overrides)
    return headers


BODY = json.dumps(order_json()).encode()


def test_a_signed_delivery_verifies_with_any_header_case(connector: ReferenceConnector) -> None:
    lower = {k.lower(): v for k, v in signed(BODY).items()}
    delivery = connector.verify_webhook(lower, BODY)
    assert delivery.delivery_key == "5f0c6c1e-7f6e-4c55-9d35-1b2b3c4d5e6f"
    assert delivery.topic == "order.updated"
    assert delivery.triggered_at == datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "headers",
    [
        signed(BODY, **{"X-Reference-Signature": sign_payload("other-secret", BODY)}),
        signed(BODY, **{"X-Reference-Signature": "not base64!"}),
        signed(BODY, **{"X-Reference-Signature": ""}),
        {k: v for k, v in signed(BODY).items() if k != "X-Reference-Signature"},
        {k: v for k, v in signed(BODY).items() if k != "X-Reference-Delivery"},
        {k: v for k, v in signed(BODY).items() if k != "X-Reference-Topic"},
        signed(BODY, **{"X-Reference-Signature": "é"}),
    ],
    ids=["wrong-secret", "not-base64", "empty", "no-signature", "no-delivery", "no-topic",
         "non-ascii"],
)
def test_bad_deliveries_are_rejected(
    connector: ReferenceConnector, headers: dict[str, str]
) -> None:
    with pytest.raises(WebhookRejected):
        connector.verify_webhook(headers, BODY)


async def test_without_a_secret_every_delivery_is_rejected() -> None:
    conn = make(webhook_secret=None)
    try:
        with pytest.raises(WebhookRejected):
            conn.verify_webhook(signed(BODY), BODY)
    finally:
        await conn.aclose()


def test_an_unreadable_triggered_at_is_dropped_not_fatal(connector: ReferenceConnector) -> None:
    headers = signed(BODY, **{"X-Reference-Triggered-At": "yesterday"})
    assert connector.verify_webhook(headers, BODY).triggered_at is None


def test_order_topics_parse_to_order_events(connector: ReferenceConnector) -> None:
    event = connector.parse_event("order.created", signed(BODY), BODY)
    assert event.kind is EventKind.ORDER and event.order is not None
    assert event.order_id == "1001"
    assert event.order.updated_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert event.order.lines[0].quantity == 2


def test_other_topics_are_ignored(connector: ReferenceConnector) -> None:
    assert connector.parse_event("ping", {}, b"whatever").kind is EventKind.IGNORE


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b"null",
        json.dumps(order_json(status="lost")).encode(),
        json.dumps(order_json(lines="MUG")).encode(),
        json.dumps(order_json(lines=["MUG"])).encode(),
        json.dumps(order_json(id=1001)).encode(),
        json.dumps(order_json(updated_at="2026-03-01T10:00:00")).encode(),  # no zone
        json.dumps(order_json(updated_at="soon")).encode(),
        json.dumps(order_json(total="twelve")).encode(),
        json.dumps(order_json(lines=[{"id": "1", "sku": "MUG", "quantity": "2"}])).encode(),
        json.dumps(order_json(lines=[{"id": "1", "sku": "MUG", "quantity": True}])).encode(),
        json.dumps(order_json(lines=[{"id": "1", "sku": 5, "quantity": 1}])).encode(),
        json.dumps(order_json(lines=[{"id": "1", "quantity": 1, "shipped": 2}])).encode(),
        json.dumps({k: v for k, v in order_json().items() if k != "id"}).encode(),
    ],
)
def test_unreadable_bodies_are_permanent_errors(
    connector: ReferenceConnector, body: bytes
) -> None:
    with pytest.raises(PermanentError):
        connector.parse_event("order.updated", {}, body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(
    field=st.sampled_from(sorted(order_json()) + ["lines.0"]),
    value=JSON,
)
def test_any_corruption_of_an_order_is_parsed_or_refused_permanently(
    field: str, value: Any
) -> None:
    body = order_json()
    if field == "lines.0":
        body["lines"][0] = value
    else:
        body[field] = value
    try:
        # The connector's parse_event is this function with its name bound.
        event = parse_delivery("ref", "order.updated", json.dumps(body).encode())
    except PermanentError:
        return
    assert event.kind is EventKind.ORDER

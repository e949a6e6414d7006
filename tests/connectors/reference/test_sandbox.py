"""The reference sandbox's API as clients see it: the behaviour daemon tests and the demo rely on.

Real loopback sockets, a ManualClock for timestamps, webhooks captured by a local receiver and
waited for with the control API's flush.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.reference.connector import ReferenceConnector
from connectors.reference.sandbox import ReferenceSandbox
from connectors.sandbox import ManualClock, Served, serve
from tests.connectors.contract import WebhookReceiver

KEY = "sandbox-key"
SECRET = "sandbox-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Shop:
    sandbox: ReferenceSandbox
    clock: ManualClock
    served: Served
    http: httpx.AsyncClient
    receiver: WebhookReceiver

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, f"/_control{path}", json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def buy(self, **lines: int) -> dict[str, Any]:
        body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines.items()]}
        return await self.control("POST", "/orders", body)

    async def state(self) -> dict[str, Any]:
        return await self.control("GET", "/state")

    async def levels(self) -> dict[str, int]:
        return {sku: item["quantity"] for sku, item in (await self.state())["listings"].items()}

    async def deliveries(self) -> list[Any]:
        flushed = await self.control("POST", "/webhooks/flush", {"timeout_s": 5})
        assert flushed["idle"]
        return self.receiver.take()


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    clock = ManualClock()
    sandbox = ReferenceSandbox(clock=clock, api_key=KEY, seed=3)
    served = await serve(sandbox.build_app())
    receiver = await WebhookReceiver().start()
    async with httpx.AsyncClient(base_url=served.url, timeout=5) as http:
        result = Shop(sandbox, clock, served, http, receiver)
        await result.control("PUT", "/webhooks", {"url": receiver.url, "secret": SECRET,
                                                  "speed": 1000})
        await result.control("POST", "/listings", {"listings": [
            {"sku": "MUG", "quantity": 10}, {"sku": "CAP", "quantity": 4},
            {"sku": "GIFT", "quantity": 0, "tracked": False}]})
        yield result
    await receiver.close()
    await served.close()


async def test_auth_is_required(shop: Shop) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = await shop.http.get("/listings", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
    await shop.control("PUT", "/config", {"api_key": "rotated"})
    assert (await shop.api("GET", "/listings")).status_code == 401
    ok = await shop.http.get("/listings", headers={"Authorization": "Bearer rotated"})
    assert ok.status_code == 200


# -- orders ----------------------------------------------------------------------------------------


async def test_orders_page_by_updated_at_and_id_and_updates_move_to_the_end(shop: Shop) -> None:
    for _ in range(5):
        await shop.buy(MUG=1)
        shop.clock.advance(1)
    first = (await shop.api("GET", "/orders", params={"limit": 2})).json()
    assert [o["id"] for o in first["orders"]] == ["1001", "1002"]
    # Someone cancels 1001 while we page: it is updated, so it comes again at the end.
    await shop.control("POST", "/orders/1001/cancel")
    rest = (await shop.api("GET", "/orders", params={"limit": 10,
                                                      "cursor": first["next_cursor"]})).json()
    assert [o["id"] for o in rest["orders"]] == ["1003", "1004", "1005", "1001"]
    assert rest["next_cursor"] is None
    assert rest["orders"][-1]["status"] == "cancelled"


async def test_updated_since_is_inclusive(shop: Shop) -> None:
    order = await shop.buy(MUG=1)
    shop.clock.advance(1)
    await shop.buy(MUG=1)
    since = order["updated_at"]
    got = (await shop.api("GET", "/orders", params={"updated_since": since})).json()["orders"]
    assert [o["id"] for o in got] == ["1001", "1002"]
    later = since.replace("00.000000Z", "00.000001Z")
    got = (await shop.api("GET", "/orders", params={"updated_since": later})).json()["orders"]
    assert [o["id"] for o in got] == ["1002"]


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "garbage!"},
     {"updated_since": "tuesday"}],
)
async def test_bad_order_queries_are_400(shop: Shop, query: dict[str, Any]) -> None:
    assert (await shop.api("GET", "/orders", params=query)).status_code == 400


async def test_an_order_has_the_documented_shape(shop: Shop) -> None:
    order = await shop.buy(MUG=2)
    fetched = (await shop.api("GET", "/orders/1001")).json()
    assert fetched == order
    assert order == {
        "id": "1001",
        "name": "#1001",
        "status": "open",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
        "currency": "USD",
        "total": "12.00",
        "customer": "buyer@example.com",
        "lines": [{"id": "1", "sku": "MUG", "title": "Mug", "quantity": 2, "shipped": 0,
                   "cancelled": 0, "returned": 0}],
    }
    missing = await shop.api("GET", "/orders/999")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


# -- the shopper -----------------------------------------------------------------------------------


async def test_the_channel_never_oversells(shop: Shop) -> None:
    await shop.buy(CAP=3)
    refused = await shop.http.post("/_control/orders",
                                   json={"lines": [{"sku": "CAP", "quantity": 2}]})
    assert refused.status_code == 409
    assert (await shop.levels())["CAP"] == 1
    await shop.buy(GIFT=5)  # untracked: no stock to run out of
    assert (await shop.levels())["GIFT"] == 0


async def test_cancel_and_refund_restock_what_they_should(shop: Shop) -> None:
    await shop.buy(MUG=3)
    await shop.control("POST", "/orders/1001/cancel")
    assert (await shop.levels())["MUG"] == 10
    await shop.buy(MUG=4)  # 1002
    await shop.api("POST", "/orders/1002/shipments",
                   json={"lines": [{"line_id": "1", "quantity": 1}]})
    refunded = await shop.control("POST", "/orders/1002/refund", {"restock": True})
    assert refunded["status"] == "refunded"
    line = refunded["lines"][0]
    assert (line["shipped"], line["cancelled"], line["returned"]) == (1, 3, 1)
    assert (await shop.levels())["MUG"] == 10
    await shop.buy(MUG=2)  # 1003
    await shop.control("POST", "/orders/1003/refund", {"restock": False})
    assert (await shop.levels())["MUG"] == 8


async def test_a_pending_order_opens_when_paid(shop: Shop) -> None:
    order = await shop.control("POST", "/orders",
                               {"lines": [{"sku": "MUG", "quantity": 1}], "status": "pending"})
    assert order["status"] == "pending"
    shop.clock.advance(1)
    paid = await shop.control("POST", "/orders/1001/pay")
    assert paid["status"] == "open" and paid["updated_at"] > order["updated_at"]
    again = await shop.http.post("/_control/orders/1001/pay")
    assert again.status_code == 409


# -- shipments -------------------------------------------------------------------------------------


SHIP = {"carrier": "UPS", "tracking_number": "1Z1", "tracking_url": "https://ups.test/1Z1",
        "lines": [{"line_id": "1", "quantity": 1}]}


async def test_a_shipment_is_idempotent_per_key(shop: Shop) -> None:
    await shop.buy(MUG=2)
    key = {"Idempotency-Key": "ship-1"}
    first = await shop.api("POST", "/orders/1001/shipments", json=SHIP, headers=key)
    again = await shop.api("POST", "/orders/1001/shipments", json=SHIP, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and first.json()["id"] == "shp_1"
    state = await shop.state()
    assert len(state["shipments"]) == 1
    assert state["orders"]["1001"]["lines"][0]["shipped"] == 1
    assert state["orders"]["1001"]["status"] == "partially_shipped"
    other = {**SHIP, "tracking_number": "1Z2"}
    reused = await shop.api("POST", "/orders/1001/shipments", json=other, headers=key)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"


async def test_a_shipment_without_lines_ships_the_rest(shop: Shop) -> None:
    await shop.buy(MUG=2, CAP=1)
    body = {k: v for k, v in SHIP.items() if k != "lines"}
    shipped = await shop.api("POST", "/orders/1001/shipments", json=body)
    assert shipped.status_code == 201
    assert shipped.json()["lines"] == [{"line_id": "1", "quantity": 2},
                                       {"line_id": "2", "quantity": 1}]
    assert (await shop.state())["orders"]["1001"]["status"] == "shipped"
    nothing = await shop.api("POST", "/orders/1001/shipments", json=body)
    assert nothing.status_code == 422


async def test_impossible_shipments_are_422_with_a_reason(shop: Shop) -> None:
    await shop.buy(MUG=1)
    too_many = await shop.api("POST", "/orders/1001/shipments",
                              json={**SHIP, "lines": [{"line_id": "1", "quantity": 2}]})
    assert too_many.status_code == 422
    assert too_many.json()["message"] == "line 1: 2 units requested, 1 left to ship"
    unknown = await shop.api("POST", "/orders/1001/shipments",
                             json={**SHIP, "lines": [{"line_id": "9", "quantity": 1}]})
    assert unknown.status_code == 422
    await shop.control("POST", "/orders/1001/cancel")
    cancelled = await shop.api("POST", "/orders/1001/shipments", json=SHIP)
    assert cancelled.status_code == 422 and "cancelled" in cancelled.json()["message"]
    assert (await shop.api("POST", "/orders/999/shipments", json=SHIP)).status_code == 404


# -- stock -----------------------------------------------------------------------------------------


async def test_stock_batches_set_compare_and_count(shop: Shop) -> None:
    items = [
        {"listing_id": "L1", "quantity": 7, "expected": 10},  # MUG: ok
        {"listing_id": "L2", "quantity": 2, "expected": 3},  # CAP shows 4: stale
        {"listing_id": "L3", "quantity": 1, "expected": None},  # GIFT: untracked
        {"listing_id": "L9", "quantity": 1, "expected": None},  # not found
        {"listing_id": "L2", "quantity": 4, "expected": None},  # CAP: a write, no change
    ]
    response = await shop.api("POST", "/stock/batch", json={"items": items},
                              headers={"Idempotency-Key": "b-1"})
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"listing_id": "L1", "status": "ok", "quantity": 7},
        {"listing_id": "L2", "status": "stale", "quantity": 4},
        {"listing_id": "L3", "status": "untracked", "quantity": 0},
        {"listing_id": "L9", "status": "not_found", "quantity": None},
        {"listing_id": "L2", "status": "ok", "quantity": 4},
    ]
    state = await shop.state()
    assert (state["stock_writes"], state["effective_changes"]) == (2, 1)
    replay = await shop.api("POST", "/stock/batch", json={"items": items},
                            headers={"Idempotency-Key": "b-1"})
    assert replay.json() == response.json()
    assert (await shop.state())["stock_writes"] == 2


async def test_stock_batches_are_limited_to_50(shop: Shop) -> None:
    items = [{"listing_id": "L1", "quantity": 1, "expected": None}] * 51
    response = await shop.api("POST", "/stock/batch", json={"items": items})
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [{}, {"items": "x"}, {"items": [{"listing_id": 1, "quantity": 1}]},
     {"items": [{"listing_id": "L1", "quantity": -1}]},
     {"items": [{"listing_id": "L1", "quantity": True}]},
     {"items": [{"listing_id": "L1", "quantity": 1, "expected": "3"}]}],
)
async def test_malformed_stock_batches_are_400(shop: Shop, body: dict[str, Any]) -> None:
    assert (await shop.api("POST", "/stock/batch", json=body)).status_code == 400
    assert (await shop.state())["stock_writes"] == 0


async def test_listings_page(shop: Shop) -> None:
    first = (await shop.api("GET", "/listings", params={"per_page": 2})).json()
    assert first == {"listings": [
        {"id": "L1", "sku": "MUG", "quantity": 10, "tracked": True},
        {"id": "L2", "sku": "CAP", "quantity": 4, "tracked": True}], "next_page": 2}
    second = (await shop.api("GET", "/listings", params={"per_page": 2, "page": 2})).json()
    assert second == {"listings": [{"id": "L3", "sku": "GIFT", "quantity": 0, "tracked": False}],
                      "next_page": None}


# -- webhooks --------------------------------------------------------------------------------------


async def test_order_events_are_signed_webhooks_with_the_order_at_that_time(shop: Shop) -> None:
    connector = ReferenceConnector(
        "ref", api_url=shop.served.url, api_key=KEY, webhook_secret=SECRET,
        first_poll_window=timedelta(days=1), order_lookback=timedelta(0),
    )
    try:
        await shop.buy(MUG=2)
        shop.clock.advance(1)
        await shop.api("POST", "/orders/1001/shipments", json=SHIP)
        created, updated = await shop.deliveries()
        events = []
        for delivery, topic in ((created, "order.created"), (updated, "order.updated")):
            verified = connector.verify_webhook(delivery.headers, delivery.body)
            assert verified.topic == topic
            assert delivery.headers["X-Reference-Topic"] == topic
            events.append(connector.parse_event(topic, delivery.headers, delivery.body))
        assert created.headers["X-Reference-Delivery"] != updated.headers["X-Reference-Delivery"]
        first, second = (event.order for event in events)
        assert first is not None and second is not None
        assert first.lines[0].shipped == 0 and second.lines[0].shipped == 1
        assert second.updated_at > first.updated_at
    finally:
        await connector.aclose()


async def test_a_retried_webhook_keeps_its_delivery_id_and_body(shop: Shop) -> None:
    shop.receiver.statuses = [503, 500]
    await shop.buy(MUG=1)
    first, second, third = await shop.deliveries()
    assert first == second == third  # same headers (delivery id, signature), same bytes
    log = (await shop.control("GET", "/webhooks"))["attempts"]
    assert [a["status"] for a in log] == [503, 500, 200]
    assert {a["delivery_id"] for a in log} == {first.headers["X-Reference-Delivery"]}


async def test_the_state_has_every_documented_key(shop: Shop) -> None:
    state = await shop.state()
    assert {"listings", "orders", "shipments", "stock_writes", "effective_changes",
            "over_limit", "requests", "webhooks"} <= set(state)
    assert state["listings"]["MUG"] == {"id": "L1", "quantity": 10, "tracked": True}

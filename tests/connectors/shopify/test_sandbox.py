"""The Shopify sandbox as clients see it, and the connector against it over real sockets.

A ManualClock drives timestamps, token expiry and the cost bucket's refill, so nothing here waits
on real time; webhooks are captured by a local receiver and waited for with the control API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.base import (
    AuthError,
    EventKind,
    ListingRef,
    OrderStatus,
    PermanentError,
    PushOutcome,
    RateLimited,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)
from connectors.http import CostBucket, RetryPolicy
from connectors.sandbox import ManualClock, Served, serve
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.sandbox import (
    DEFAULT_API_KEY,
    SHOPIFY_RETRY_DELAYS,
    ShopifySandbox,
)
from connectors.shopify.webhooks import EVENT_ID_HEADER, HMAC_HEADER, TOPIC_HEADER, sign_payload
from tests.connectors.contract import Delivery, WebhookReceiver

TOKEN = "shpat_sandbox_test"
CLIENT_ID = "client-id"
CLIENT_SECRET = "client-secret"
SECRET = "webhook-secret"
VERSION = "2026-07"
ONCE = RetryPolicy(attempts=1)


@dataclass
class Shop:
    sandbox: ShopifySandbox
    clock: ManualClock
    served: Served
    http: httpx.AsyncClient
    receiver: WebhookReceiver

    @property
    def api_url(self) -> str:
        return f"{self.served.url}/admin/api/{VERSION}"

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, version: str = VERSION,
        token: str | None = TOKEN,
    ) -> httpx.Response:
        headers = {"X-Shopify-Access-Token": token} if token is not None else {}
        return await self.http.post(
            f"/admin/api/{version}/graphql.json",
            json={"query": query, "variables": variables or {}},
            headers=headers,
        )

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, f"/_control{path}", json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def buy(self, status: str = "open", **lines: int) -> dict[str, Any]:
        body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines.items()],
                "status": status}
        return await self.control("POST", "/orders", body)

    async def state(self) -> dict[str, Any]:
        return await self.control("GET", "/state")

    async def levels(self) -> dict[str, int | None]:
        return {sku: item["quantity"] for sku, item in (await self.state())["listings"].items()}

    async def deliveries(self) -> list[Delivery]:
        flushed = await self.control("POST", "/webhooks/flush", {"timeout_s": 5})
        assert flushed["idle"], flushed
        return self.receiver.take()

    def connector(self, **options: Any) -> ShopifyConnector:
        settings: dict[str, Any] = {
            "shop": "sandbox.myshopify.com",
            "api_url": self.api_url,
            "api_version": VERSION,
            "access_token": TOKEN,
            "client_id": None,
            "client_secret": None,
            "webhook_secret": SECRET,
            "location": None,
            "first_poll_window": timedelta(days=1),
            "order_lookback": timedelta(minutes=5),
            "clock": self.clock.now,
            "policy": ONCE,
            # The connector's bucket waits on the shop's clock: a wait for points moves time
            # for both sides instead of sleeping.
            "limiter": CostBucket(1000, 100, clock=self.clock.monotonic, sleep=self.sleep),
        }
        settings.update(options)
        return ShopifyConnector("shopify", **settings)

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    clock = ManualClock()
    sandbox = ShopifySandbox(
        clock=clock, api_key=TOKEN, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, seed=5
    )
    served = await serve(sandbox.build_app())
    receiver = await WebhookReceiver().start()
    async with httpx.AsyncClient(base_url=served.url, timeout=5) as http:
        result = Shop(sandbox, clock, served, http, receiver)
        await result.control("PUT", "/webhooks", {"url": receiver.url, "secret": SECRET,
                                                  "retry_delays": [1, 1], "speed": 1000})
        await result.control("POST", "/listings", {"listings": [
            {"sku": "MUG", "quantity": 10}, {"sku": "CAP", "quantity": 4},
            {"sku": "GIFT", "quantity": 0, "tracked": False}]})
        yield result
    await receiver.close()
    await served.close()


# -- the API's shape -----------------------------------------------------------------------------


async def test_the_access_token_is_required(shop: Shop) -> None:
    query = "{ locations(first: 1) { nodes { id } } }"
    for token in (None, "shpat_wrong", ""):
        response = await shop.graphql(query, token=token)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong "
            "password)"
        }
    assert (await shop.graphql(query)).status_code == 200


async def test_an_unknown_field_is_answered_like_shopify(shop: Shop) -> None:
    response = await shop.graphql("query {\n  orders(first: 1) { nodes { id bogus } }\n}")
    assert response.status_code == 200  # GraphQL errors are not HTTP errors
    body = response.json()
    assert "data" not in body
    (error,) = body["errors"]
    assert error["message"] == "Field 'bogus' doesn't exist on type 'Order'"
    assert error["extensions"] == {"code": "undefinedField", "typeName": "Order",
                                   "fieldName": "bogus"}
    assert error["locations"] == [{"line": 2, "column": 33}]
    assert set(body["extensions"]["cost"]["throttleStatus"]) == {
        "maximumAvailable", "currentlyAvailable", "restoreRate"
    }


async def test_the_connector_reads_an_unknown_field_error_as_permanent(shop: Shop) -> None:
    connector = shop.connector()
    try:
        with pytest.raises(PermanentError, match="doesn't exist"):
            await connector._api.execute("{ shop { name } }", {}, cost=1, what="probe")
    finally:
        await connector.aclose()


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("query($id: ID!) { order(id: $id) { id } }", {}, "INVALID_VARIABLE"),
        ("query($n: Int!) { orders(first: $n) { nodes { id } } }", {"n": "ten"},
         "INVALID_VARIABLE"),
        ("{ orders(first: 1, colour: RED) { nodes { id } } }", {}, "argumentNotAccepted"),
        ("{ order { id } }", {}, "missingRequiredArguments"),
        ("{ orders { nodes { id } } }", {}, "BAD_REQUEST"),  # first or last is required
        ("{ orders(first: 1) { nodes { id }", {}, "parseError"),
    ],
)
async def test_bad_queries_and_variables_fail_with_errors_not_statuses(
    shop: Shop, query: str, variables: dict[str, Any], code: str
) -> None:
    response = await shop.graphql(query, variables)
    assert response.status_code == 200
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert "cost" in body["extensions"]


async def test_a_query_over_the_single_query_limit_is_refused(shop: Shop) -> None:
    query = "{ orders(first: 250) { nodes { lineItems(first: 250) { nodes { id } } } } }"
    body = (await shop.graphql(query)).json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 250 * (1 + 250)
    assert body["extensions"]["cost"]["actualQueryCost"] is None


async def test_every_answer_reports_cost_and_unused_points_come_back(shop: Shop) -> None:
    body = (await shop.graphql("{ locations(first: 50) { nodes { id name } } }")).json()
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 50
    assert cost["actualQueryCost"] == 3  # the connection and two locations
    assert cost["throttleStatus"] == {
        "maximumAvailable": 1000.0, "currentlyAvailable": 997.0, "restoreRate": 100.0
    }


async def test_throttled_is_http_200_and_no_data(shop: Shop) -> None:
    await shop.control("POST", "/listings", {"listings": [
        {"sku": f"BULK-{n:02d}", "quantity": 1} for n in range(30)]})
    await shop.control("PUT", "/config", {"capacity": 100, "restore_rate": 10})
    query = "{ productVariants(first: 30) { nodes { id inventoryItem { id } } } }"
    first = (await shop.graphql(query)).json()
    assert first["extensions"]["cost"]["actualQueryCost"] == 60  # 30 variants, 30 items
    response = await shop.graphql(query)
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert body["errors"] == [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 60,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 100.0, "currentlyAvailable": 40.0,
                           "restoreRate": 10.0},
    }
    assert (await shop.state())["over_limit"] == 1
    shop.clock.advance(2)  # the bucket refills on the shop's clock: 40 + 2 x 10
    assert "data" in (await shop.graphql(query)).json()


async def test_the_connector_raises_rate_limited_with_the_time_to_refill(shop: Shop) -> None:
    await shop.control("PUT", "/config", {"capacity": 450, "restore_rate": 10})
    await shop.control("POST", "/listings", {"listings": [
        {"sku": f"BULK-{n:02d}", "quantity": 1} for n in range(45)]})
    connector = shop.connector()
    try:
        await connector.location_gid()  # 50 requested, 3 used: 447 left
        assert connector.limiter.snapshot()["available"] == pytest.approx(447, abs=1)
        # Another client of the same shop spends 96 points: 351 left.
        await shop.graphql("{ productVariants(first: 48) { nodes { id inventoryItem { id } } } }")
        with pytest.raises(RateLimited) as caught:
            await connector.fetch_listings()  # 401 requested
        assert caught.value.retry_after == pytest.approx((401 - 351) / 10)
        before = shop.clock.monotonic()
        # The bucket now knows: the next call waits for the points instead of being refused.
        assert len(await connector.fetch_listings()) == 48
        assert shop.clock.monotonic() - before == pytest.approx(5.0)
    finally:
        await connector.aclose()


# -- orders --------------------------------------------------------------------------------------


async def test_a_shopper_order_takes_stock_and_a_short_one_is_refused(shop: Shop) -> None:
    order = await shop.buy(MUG=3, CAP=1)
    assert order["status"] == "open" and order["financial_status"] == "paid"
    assert (await shop.levels())["MUG"] == 7
    response = await shop.http.post("/_control/orders", json={"lines": [
        {"sku": "CAP", "quantity": 4}]})
    assert response.status_code == 409
    assert (await shop.levels())["CAP"] == 3
    (created,) = await shop.deliveries()
    assert created.headers[TOPIC_HEADER] == "orders/create"


async def test_cancel_restocks_and_refunds_restock_only_when_asked(shop: Shop) -> None:
    first = await shop.buy(MUG=2)
    cancelled = await shop.control("POST", f"/orders/{first['id']}/cancel", {})
    assert cancelled["status"] == "cancelled"
    assert cancelled["lines"][0]["cancelled"] == 2
    assert (await shop.levels())["MUG"] == 10
    second = await shop.buy(MUG=2)
    refunded = await shop.control("POST", f"/orders/{second['id']}/refund", {"restock": False})
    assert refunded["status"] == "refunded"
    assert (await shop.levels())["MUG"] == 8  # not restocked
    topics = [d.headers[TOPIC_HEADER] for d in await shop.deliveries()]
    assert topics == ["orders/create", "orders/cancelled", "orders/create", "refunds/create",
                      "orders/updated"]


async def test_a_pending_order_is_pending_until_paid(shop: Shop) -> None:
    order = await shop.buy("pending", MUG=1)
    connector = shop.connector()
    try:
        fetched = await connector.fetch_order(order["id"])
        assert fetched is not None and fetched.status is OrderStatus.PENDING
        await shop.control("POST", f"/orders/{order['id']}/pay")
        fetched = await connector.fetch_order(order["id"])
        assert fetched is not None and fetched.status is OrderStatus.OPEN
    finally:
        await connector.aclose()


async def test_the_poll_and_the_webhook_of_one_order_are_one_order(shop: Shop) -> None:
    order = await shop.buy(MUG=3, CAP=1)
    mug, cap = (line["id"] for line in order["lines"])
    await shop.control("POST", f"/orders/{order['id']}/fulfill",
                       {"lines": [{"line_id": mug, "quantity": 2}], "tracking_number": "1Z1"})
    await shop.control("POST", f"/orders/{order['id']}/refund", {"restock": True, "lines": [
        {"line_id": mug, "quantity": 2},  # one unshipped (cancel) and one shipped (return)
        {"line_id": cap, "quantity": 1},
    ]})
    deliveries = await shop.deliveries()
    latest = [d for d in deliveries if d.headers[TOPIC_HEADER] == "orders/updated"][-1]
    connector = shop.connector()
    try:
        verified = connector.verify_webhook(latest.headers, latest.body)
        pushed = connector.parse_event(verified.topic, latest.headers, latest.body)
        polled = await connector.fetch_order(order["id"])
        (page,) = [p async for p in connector.fetch_orders(None)]
    finally:
        await connector.aclose()
    assert pushed.kind is EventKind.ORDER and pushed.order is not None and polled is not None
    assert pushed.order == polled == page.orders[0]  # raw payloads differ, content does not
    truth = (await shop.state())["orders"][order["id"]]
    assert [(ln.line_id, ln.sku, ln.quantity, ln.shipped, ln.cancelled, ln.returned)
            for ln in polled.lines] == [
        (ln["id"], ln["sku"], ln["quantity"], ln["shipped"], ln["cancelled"], ln["returned"])
        for ln in truth["lines"]
    ] == [(mug, "MUG", 3, 2, 1, 1), (cap, "CAP", 1, 0, 1, 0)]
    assert polled.status is OrderStatus.OPEN  # partially refunded
    assert (await shop.levels())["MUG"] == 7 + 2 and (await shop.levels())["CAP"] == 4


async def test_orders_with_many_lines_and_refunds_are_read_whole(shop: Shop) -> None:
    skus = {f"SKU-{n:02d}": 1 for n in range(60)}  # more lines than one order read returns
    await shop.control("POST", "/listings", {"listings": [
        {"sku": sku, "quantity": 5} for sku in skus]})
    order = await shop.buy(**skus)
    for line in order["lines"][:3]:
        await shop.control("POST", f"/orders/{order['id']}/refund", {
            "restock": True, "lines": [{"line_id": line["id"], "quantity": 1}]})
    connector = shop.connector()
    try:
        fetched = await connector.fetch_order(order["id"])
    finally:
        await connector.aclose()
    assert fetched is not None and len(fetched.lines) == 60
    assert [ln.cancelled for ln in fetched.lines[:4]] == [1, 1, 1, 0]


# -- stock ---------------------------------------------------------------------------------------


async def test_push_stock_sets_available_and_a_stale_item_conflicts_alone(shop: Shop) -> None:
    connector = shop.connector()
    try:
        refs = {ref.sku: ref for ref in await connector.fetch_listings()}
        assert refs["GIFT"].status == "untracked"
        await shop.buy(CAP=1)  # the shop sold one meanwhile: our view of CAP is stale
        batch = [
            StockPush(refs["MUG"], 12, 10, "s:MUG:1"),
            StockPush(refs["CAP"], 12, 4, "s:CAP:1"),
        ]
        results = await connector.push_stock(batch)
        assert [(r.key, r.outcome, r.observed) for r in results] == [
            ("MUG", PushOutcome.DONE, None),  # sent again on its own after CAP's refusal
            ("CAP", PushOutcome.CONFLICT, 3),
        ]
        assert await shop.levels() == {"MUG": 12, "CAP": 3, "GIFT": 0}
        retry = [StockPush(refs["CAP"], 12, 3, "s:CAP:2")]
        assert {r.outcome for r in await connector.push_stock(retry)} == {PushOutcome.DONE}
        assert await connector.fetch_levels(list(refs.values())) == {
            "MUG": 12, "CAP": 12, "GIFT": 0
        }
    finally:
        await connector.aclose()
    assert (await shop.state())["effective_changes"] == 2


SET = """
mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}
"""
SET_WITHOUT_KEY = """
mutation($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) { userErrors { code field message } }
}
"""


async def quantities_input(shop: Shop, *items: dict[str, Any]) -> dict[str, Any]:
    state = await shop.state()
    location = next(loc["id"] for loc in state["locations"] if loc["primary"])
    quantities = []
    for item in items:
        entry = {
            "inventoryItemId": "gid://shopify/InventoryItem/"
            + state["listings"][item.pop("sku")]["inventory_item_id"],
            "locationId": f"gid://shopify/Location/{location}",
        }
        entry.update(item)
        quantities.append(entry)
    return {"name": "available", "reason": "correction",
            "referenceDocumentUri": "gid://storesync/Push/1", "quantities": quantities}


async def test_the_idempotent_directive_replays_the_first_answer(shop: Shop) -> None:
    variables = {"input": await quantities_input(
        shop, {"sku": "MUG", "quantity": 15, "changeFromQuantity": 10}), "key": "k-1"}
    first = (await shop.graphql(SET, variables)).json()
    again = (await shop.graphql(SET, variables)).json()
    assert first["data"] == again["data"]
    assert first["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"]["changes"][0] == {
        "name": "available", "delta": 5, "quantityAfterChange": 15}
    state = await shop.state()
    assert state["effective_changes"] == 1 and state["listings"]["MUG"]["quantity"] == 15
    other = {"input": await quantities_input(
        shop, {"sku": "MUG", "quantity": 16, "changeFromQuantity": 15}), "key": "k-1"}
    reused = (await shop.graphql(SET, other)).json()
    assert "different arguments" in reused["errors"][0]["message"]


async def test_2026_04_rules_compare_and_set_and_idempotency_are_mandatory(shop: Shop) -> None:
    no_compare = await quantities_input(shop, {"sku": "MUG", "quantity": 1})
    body = (await shop.graphql(SET, {"input": no_compare, "key": "k-2"})).json()
    assert "changeFromQuantity is required" in body["errors"][0]["message"]
    explicit_null = await quantities_input(
        shop, {"sku": "MUG", "quantity": 1, "changeFromQuantity": None})
    body = (await shop.graphql(SET_WITHOUT_KEY, {"input": explicit_null})).json()
    assert "@idempotent directive is required" in body["errors"][0]["message"]
    assert (await shop.levels())["MUG"] == 10
    # The 2026-01 API took neither as mandatory.
    body = (await shop.graphql(SET_WITHOUT_KEY, {"input": no_compare}, version="2026-01")).json()
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert (await shop.levels())["MUG"] == 1


async def test_more_than_250_quantities_is_an_error(shop: Shop) -> None:
    many = await quantities_input(
        shop, *({"sku": "MUG", "quantity": 1, "changeFromQuantity": None} for _ in range(251)))
    body = (await shop.graphql(SET, {"input": many, "key": "k-3"})).json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"


async def test_items_not_stocked_at_the_location(shop: Shop) -> None:
    connector = shop.connector(location="Backroom")
    try:
        refs = {ref.sku: ref for ref in await connector.fetch_listings()}
        assert refs["MUG"].status == "not_stocked" and not refs["MUG"].pushable
        forced = ListingRef("MUG", refs["MUG"].ids, "listed", None)  # a stale listing read
        (result,) = await connector.push_stock([StockPush(forced, 5, None, "s:MUG:9")])
        assert result.outcome is PushOutcome.PERMANENT
        assert result.message.startswith("ITEM_NOT_STOCKED_AT_LOCATION")
    finally:
        await connector.aclose()


# -- shipments -----------------------------------------------------------------------------------


def shipment(order: dict[str, Any], *lines: tuple[int, int], number: str = "1Z42") -> ShipmentPush:
    return ShipmentPush(
        order_id=order["id"],
        shipment_id=f"ship-{number}",
        carrier="UPS",
        tracking_number=number,
        tracking_url=f"https://ups.example/{number}",
        lines=tuple(ShipmentLine(order["lines"][i]["id"], None, qty) for i, qty in lines),
        idempotency_key=f"ship-{number}",
    )


async def test_a_shipment_becomes_a_fulfillment_with_tracking(shop: Shop) -> None:
    order = await shop.buy(MUG=2, CAP=1)
    connector = shop.connector()
    try:
        first = await connector.push_shipment(shipment(order, (0, 1)))
        assert first.outcome is PushOutcome.DONE
        # The ack was lost and the outbox pushes the same shipment again.
        again = await connector.push_shipment(shipment(order, (0, 1)))
        assert again.outcome is PushOutcome.DONE and "already reported" in again.message
        rest = await connector.push_shipment(shipment(order, number="1Z43"))
        assert rest.outcome is PushOutcome.DONE
        fetched = await connector.fetch_order(order["id"])
    finally:
        await connector.aclose()
    state = await shop.state()
    assert [(f["tracking_number"], f["company"], f["url"], f["lines"])
            for f in state["fulfillments"]] == [
        ("1Z42", "UPS", "https://ups.example/1Z42",
         [{"line_id": order["lines"][0]["id"], "quantity": 1}]),
        ("1Z43", "UPS", "https://ups.example/1Z43",
         [{"line_id": order["lines"][0]["id"], "quantity": 1},
          {"line_id": order["lines"][1]["id"], "quantity": 1}]),
    ]
    assert fetched is not None and [ln.shipped for ln in fetched.lines] == [2, 1]
    assert state["orders"][order["id"]]["fulfillment_status"] == "fulfilled"


async def test_a_held_fulfillment_order_is_permanent_with_a_clear_message(shop: Shop) -> None:
    order = await shop.buy(MUG=1)
    held = await shop.control("PUT", f"/orders/{order['id']}/fulfillment_orders",
                              {"status": "ON_HOLD"})
    fo_id = held["fulfillment_orders"][0]["id"]
    connector = shop.connector()
    try:
        result = await connector.push_shipment(shipment(order, (0, 1)))
        assert result.outcome is PushOutcome.PERMANENT
        assert result.message == (
            f"fulfillment order {fo_id} is ON_HOLD: release it in Shopify admin"
        )
        await shop.control("PUT", f"/orders/{order['id']}/fulfillment_orders", {"status": "OPEN"})
        assert (await connector.push_shipment(shipment(order, (0, 1)))).outcome is (
            PushOutcome.DONE
        )
    finally:
        await connector.aclose()


async def test_a_third_party_fulfillment_order_is_left_to_its_service(shop: Shop) -> None:
    await shop.control("POST", "/locations", {"name": "ShipBob", "third_party": True})
    order = await shop.buy(MUG=1)
    await shop.control("PUT", f"/orders/{order['id']}/fulfillment_orders", {"location": "ShipBob"})
    connector = shop.connector()
    try:
        result = await connector.push_shipment(shipment(order, (0, 1)))
    finally:
        await connector.aclose()
    assert result.outcome is PushOutcome.PERMANENT
    assert "fulfillment service 'ShipBob'" in result.message
    assert (await shop.state())["fulfillments"] == []


async def test_fulfillment_create_refuses_held_orders_itself(shop: Shop) -> None:
    order = await shop.buy(MUG=1)
    held = await shop.control("PUT", f"/orders/{order['id']}/fulfillment_orders",
                              {"status": "ON_HOLD"})
    fo_gid = f"gid://shopify/FulfillmentOrder/{held['fulfillment_orders'][0]['id']}"
    body = (await shop.graphql(
        "mutation($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) {"
        " fulfillment { id } userErrors { field message } } }",
        {"f": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo_gid}]}},
    )).json()
    (error,) = body["data"]["fulfillmentCreate"]["userErrors"]
    assert "unfulfillable status= on_hold" in error["message"]


# -- webhooks ------------------------------------------------------------------------------------


async def test_deliveries_are_signed_and_carry_shopifys_headers(shop: Shop) -> None:
    await shop.buy(MUG=1)
    (delivery,) = await shop.deliveries()
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["x-shopify-hmac-sha256"] == sign_payload(SECRET, delivery.body)
    assert headers["x-shopify-topic"] == "orders/create"
    assert headers["x-shopify-shop-domain"] == "storesync-sandbox.myshopify.com"
    assert headers["x-shopify-api-version"] == VERSION
    assert headers["x-shopify-webhook-id"] and headers["x-shopify-event-id"]
    assert headers["x-shopify-triggered-at"].startswith("2026-01-01T")
    body = json.loads(delivery.body)
    assert body["line_items"][0]["sku"] == "MUG" and "order" not in body  # bare, like Shopify


async def test_a_failed_delivery_is_retried_with_the_original_payload(shop: Shop) -> None:
    shop.receiver.statuses = [500]
    await shop.buy(MUG=1)
    first, retry = await shop.deliveries()
    assert first.body == retry.body
    assert first.headers[EVENT_ID_HEADER] == retry.headers[EVENT_ID_HEADER]
    assert first.headers[HMAC_HEADER] == retry.headers[HMAC_HEADER]


def test_the_default_retry_schedule_is_eight_retries_over_four_hours() -> None:
    assert len(SHOPIFY_RETRY_DELAYS) == 8
    assert sum(SHOPIFY_RETRY_DELAYS) == 4 * 3600
    assert ShopifySandbox().sender.retry_delays == SHOPIFY_RETRY_DELAYS


async def test_level_webhooks_map_to_skus_once_listings_were_read(shop: Shop) -> None:
    await shop.control("PUT", "/config", {"topics": [
        "orders/create", "orders/updated", "inventory_levels/update"]})
    connector = shop.connector()
    try:
        refs = {ref.sku: ref for ref in await connector.fetch_listings()}
        await connector.push_stock([StockPush(refs["CAP"], 9, 4, "s:CAP:7")])
        (delivery,) = await shop.deliveries()
        verified = connector.verify_webhook(delivery.headers, delivery.body)
        event = connector.parse_event(verified.topic, delivery.headers, delivery.body)
    finally:
        await connector.aclose()
    assert verified.topic == "inventory_levels/update"
    assert (event.kind, event.sku, event.level) == (EventKind.LEVEL, "CAP", 9)


# -- tokens --------------------------------------------------------------------------------------


async def test_client_credentials_mint_and_refresh_against_the_sandbox(shop: Shop) -> None:
    connector = shop.connector(access_token=None, client_id=CLIENT_ID,
                               client_secret=CLIENT_SECRET)
    try:
        await connector.fetch_listings()
        assert (await shop.state())["tokens_minted"] == 1
        shop.clock.advance(86_399 - 200)  # inside the last five minutes
        await connector.fetch_listings()
        assert (await shop.state())["tokens_minted"] == 2
        await shop.control("POST", "/tokens/expire")  # revoked early: a 401, one re-mint
        await connector.fetch_listings()
        assert (await shop.state())["tokens_minted"] == 3
    finally:
        await connector.aclose()


async def test_the_token_endpoint_refuses_unknown_clients(shop: Shop) -> None:
    response = await shop.http.post("/admin/oauth/access_token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "nope"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"
    response = await shop.http.post("/admin/oauth/access_token", json={
        "grant_type": "client_credentials", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET})
    assert response.json()["expires_in"] == 86_399
    connector = shop.connector(access_token=None, client_id=CLIENT_ID, client_secret="nope")
    try:
        with pytest.raises(AuthError):
            await connector.fetch_listings()
    finally:
        await connector.aclose()


async def test_a_minted_token_expires_on_the_shops_clock(shop: Shop) -> None:
    token = (await shop.http.post("/admin/oauth/access_token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET})).json()["access_token"]
    query = "{ locations(first: 1) { nodes { id } } }"
    assert (await shop.graphql(query, token=token)).status_code == 200
    shop.clock.advance(86_400)
    assert (await shop.graphql(query, token=token)).status_code == 401


# -- running it the way `storesync sandbox shopify` does -----------------------------------------


async def test_the_sandbox_command_keywords_work() -> None:
    sandbox = ShopifySandbox(webhook_url=None, webhook_secret="", api_key="K")
    ids = sandbox.seed_catalog({"SKU-001": 25, "SKU-002": 25})
    assert set(ids) == {"SKU-001", "SKU-002"}
    assert ShopifySandbox().api_key == DEFAULT_API_KEY
    served = await serve(sandbox.build_app())
    try:
        async with httpx.AsyncClient(base_url=served.url) as http:
            state = (await http.get("/_control/state")).json()
            assert state["listings"]["SKU-001"]["quantity"] == 25
            await http.post("/_control/reset")
            assert (await http.get("/_control/state")).json()["listings"] == {}
    finally:
        await served.close()

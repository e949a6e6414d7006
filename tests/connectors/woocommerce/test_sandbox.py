"""The WooCommerce sandbox as clients see it: API shapes, auth, limits, webhooks, the shopper.

Real loopback sockets, a ManualClock for timestamps and limits, webhooks captured by a local
receiver and waited for with the control API's flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.base import EventKind, PushOutcome, ShipmentLine, ShipmentPush, StockPush
from connectors.http import RetryPolicy
from connectors.sandbox import ManualClock, Served, serve
from connectors.woocommerce.connector import WooCommerceConnector
from connectors.woocommerce.sandbox import DEFAULT_CONSUMER_KEY, WooCommerceSandbox
from tests.connectors.contract import Delivery, WebhookReceiver

KEY = "ck_shop"
SECRET = "cs_shop"
HOOK_SECRET = "hook-secret"
AUTH = httpx.BasicAuth(KEY, SECRET)
WC = "/wp-json/wc/v3"


def header(delivery: Delivery, name: str) -> str | None:
    return next((v for k, v in delivery.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Shop:
    sandbox: WooCommerceSandbox
    clock: ManualClock
    served: Served
    http: httpx.AsyncClient
    receiver: WebhookReceiver

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("auth", AUTH)
        return await self.http.request(method, f"{WC}{path}", **kwargs)

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

    async def deliveries(self) -> list[Delivery]:
        flushed = await self.control("POST", "/webhooks/flush", {"timeout_s": 5})
        assert flushed["idle"], flushed
        return self.receiver.take()

    def connector(self, **options: Any) -> WooCommerceConnector:
        settings: dict[str, Any] = {
            "api_url": self.served.url,
            "consumer_key": KEY,
            "consumer_secret": SECRET,
            "webhook_secret": HOOK_SECRET,
            "first_poll_window": timedelta(days=1),
            "order_lookback": timedelta(minutes=5),
            "policy": RetryPolicy(attempts=1),
            "clock": self.clock.now,
        }
        settings.update(options)
        return WooCommerceConnector("woo", **settings)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    clock = ManualClock()
    sandbox = WooCommerceSandbox(clock=clock, consumer_key=KEY, consumer_secret=SECRET, seed=3)
    served = await serve(sandbox.build_app())
    receiver = await WebhookReceiver().start()
    async with httpx.AsyncClient(base_url=served.url, timeout=5) as http:
        result = Shop(sandbox, clock, served, http, receiver)
        await result.control("PUT", "/webhooks", {"url": receiver.url, "secret": HOOK_SECRET,
                                                  "speed": 1000})
        await result.control("POST", "/listings", {"listings": [
            {"sku": "MUG", "quantity": 10}, {"sku": "CAP", "quantity": 4},
            {"sku": "GIFT", "quantity": 0, "tracked": False}]})
        await result.deliveries()  # the activation ping
        yield result
    await receiver.close()
    await served.close()


# -- auth and API shapes ---------------------------------------------------------------------------


async def test_basic_or_query_credentials_and_nothing_else(shop: Shop) -> None:
    assert (await shop.api("GET", "/products")).status_code == 200
    query = {"consumer_key": KEY, "consumer_secret": SECRET}
    assert (await shop.api("GET", "/products", auth=None, params=query)).status_code == 200
    missing = await shop.api("GET", "/products", auth=None)
    assert missing.status_code == 401
    assert missing.json() == {"code": "woocommerce_rest_cannot_view",
                              "message": "Sorry, you cannot list resources.",
                              "data": {"status": 401}}
    for auth in (httpx.BasicAuth(KEY, "cs_wrong"), httpx.BasicAuth("ck_wrong", SECRET)):
        wrong = await shop.api("GET", "/products", auth=auth)
        assert (wrong.status_code, wrong.json()["code"]) == (
            401, "woocommerce_rest_authentication_error")
    no_route = await shop.api("GET", "/nowhere")
    assert (no_route.status_code, no_route.json()["code"]) == (404, "rest_no_route")


async def test_lists_page_with_wp_headers_and_refuse_more_than_100_per_page(shop: Shop) -> None:
    for _ in range(12):
        await shop.control("POST", "/orders", {"lines": [{"sku": None, "quantity": 1}]})
    response = await shop.api("GET", "/orders", params={"per_page": 5, "page": 2,
                                                        "orderby": "id", "order": "asc"})
    assert response.headers["X-WP-Total"] == "12"
    assert response.headers["X-WP-TotalPages"] == "3"
    link = response.headers["Link"]
    assert 'rel="prev"' in link and 'rel="next"' in link and "page=3" in link
    assert "consumer_secret" not in link
    assert len(response.json()) == 5
    too_many = await shop.api("GET", "/orders", params={"per_page": 101})
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "rest_invalid_param"
    assert "per_page" in too_many.json()["data"]["params"]


async def test_products_variations_and_sku_lookup_have_woocommerce_shapes(shop: Shop) -> None:
    ids = shop.sandbox.seed_catalog({"A": 1, "B": 2, "TEE-S": 3, "TEE-M": 4})
    products = (await shop.api("GET", "/products", params={"per_page": 100})).json()
    by_type = {p["type"] for p in products}
    assert by_type == {"simple", "variable"}
    variable = next(p for p in products if p["type"] == "variable")
    assert sorted(variable["variations"]) == sorted([int(ids["TEE-S"]), int(ids["TEE-M"])])
    variations = (await shop.api("GET", f"/products/{variable['id']}/variations")).json()
    assert {(v["sku"], v["stock_quantity"]) for v in variations} == {("TEE-S", 3), ("TEE-M", 4)}
    found = (await shop.api("GET", "/products", params={"sku": "TEE-M"})).json()
    assert [(f["type"], f["parent_id"]) for f in found] == [("variation", variable["id"])]
    untracked = (await shop.api("GET", "/products", params={"sku": "GIFT"})).json()[0]
    assert (untracked["manage_stock"], untracked["stock_quantity"]) == (False, None)


# -- stock -----------------------------------------------------------------------------------------


async def test_a_batch_of_more_than_100_objects_is_refused_with_413(shop: Shop) -> None:
    updates = [{"id": 1, "stock_quantity": 1}] * 101
    response = await shop.api("POST", "/products/batch", json={"update": updates})
    assert response.status_code == 413
    assert response.json()["code"] == "woocommerce_rest_request_entity_too_large"
    assert (await shop.state())["stock_writes"] == 0


async def test_the_connector_never_sends_more_than_100_objects(shop: Shop) -> None:
    shop.sandbox.seed_catalog({f"BULK-{n:03d}": 1 for n in range(150)}, variations=0)
    async with asyncio.timeout(30):
        conn = shop.connector()
        try:
            refs = [r for r in await conn.fetch_listings() if r.sku.startswith("BULK-")]
            results = await conn.push_stock(
                [StockPush(r, 7, None, f"k{r.sku}") for r in refs])
        finally:
            await conn.aclose()
    assert {r.outcome for r in results} == {PushOutcome.DONE} and len(results) == 150
    state = await shop.state()
    assert state["requests"]["by_route"]["POST /wp-json/wc/v3/products/batch"] == 2
    assert "413" not in state["requests"]["by_status"]
    assert all(state["listings"][r.sku]["quantity"] == 7 for r in refs)


async def test_stock_writes_are_absolute_and_variations_take_them_too(shop: Shop) -> None:
    shop.sandbox.seed_catalog({"A": 1, "B": 2, "TEE-S": 3, "TEE-M": 4})
    conn = shop.connector()
    try:
        refs = {r.sku: r for r in await conn.fetch_listings()}
        assert refs["TEE-S"].ids["variation_id"] and refs["GIFT"].status == "untracked"
        pushes = [StockPush(refs[s], q, 999, f"k{s}") for s, q in
                  (("TEE-S", 9), ("TEE-M", 4), ("MUG", 2))]
        results = await conn.push_stock(pushes)
        levels = await conn.fetch_levels(list(refs.values()))
    finally:
        await conn.aclose()
    assert {r.key: r.outcome for r in results} == {s: PushOutcome.DONE for s in
                                                   ("TEE-S", "TEE-M", "MUG")}
    state = await shop.state()
    assert (state["stock_writes"], state["effective_changes"]) == (3, 2)  # TEE-M was already 4
    assert levels == {"A": 1, "B": 2, "TEE-S": 9, "TEE-M": 4, "MUG": 2, "CAP": 4}


# -- the shopper -----------------------------------------------------------------------------------


async def test_orders_take_stock_cancel_and_refund_give_it_back(shop: Shop) -> None:
    order = await shop.buy(MUG=3, CAP=1)
    assert order["status"] == "processing" and order["date_paid_gmt"]
    assert [i["sku"] for i in order["line_items"]] == ["MUG", "CAP"]
    assert await shop.levels() == {"MUG": 7, "CAP": 3, "GIFT": 0}
    short = await shop.http.post("/_control/orders",
                                 json={"lines": [{"sku": "CAP", "quantity": 9}]})
    assert short.status_code == 409
    await shop.control("POST", f"/orders/{order['id']}/cancel")
    assert await shop.levels() == {"MUG": 10, "CAP": 4, "GIFT": 0}
    pending = await shop.control("POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 2}],
                                                     "status": "pending"})
    assert (await shop.levels())["MUG"] == 10  # pending holds nothing
    await shop.control("POST", f"/orders/{pending['id']}/pay")
    assert (await shop.levels())["MUG"] == 8
    refunded = await shop.control("POST", f"/orders/{pending['id']}/refund", {"restock": True})
    assert refunded["status"] == "refunded" and refunded["refunds"][0]["total"] == "-12.00"
    assert (await shop.levels())["MUG"] == 10


async def test_state_has_the_reference_shape_plus_woocommerce_parts(shop: Shop) -> None:
    await shop.buy(MUG=1)
    state = await shop.state()
    assert {"listings", "orders", "notes", "trackings", "effective_changes", "over_limit",
            "webhook", "requests", "webhooks"} <= set(state)
    assert state["listings"]["MUG"] == {"id": state["listings"]["MUG"]["id"],
                                        "product_id": state["listings"]["MUG"]["id"],
                                        "variation_id": "", "type": "simple", "quantity": 9,
                                        "tracked": True}
    assert state["webhook"]["status"] == "active" and state["webhook"]["failure_count"] == 0
    assert state["over_limit"] == 0


async def test_the_command_line_key_is_the_consumer_secret() -> None:
    plain = WooCommerceSandbox(api_key="cs_from_cli", webhook_secret="s", webhook_url=None)
    both = WooCommerceSandbox(api_key="ck_a:cs_b")
    assert (plain.consumer_key, plain.consumer_secret) == (DEFAULT_CONSUMER_KEY, "cs_from_cli")
    assert (both.consumer_key, both.consumer_secret) == ("ck_a", "cs_b")
    assert plain.sender.retry_delays == ()  # WooCommerce never retries a delivery


async def test_a_webhook_url_given_at_start_is_pinged_when_serving() -> None:
    receiver = await WebhookReceiver().start()
    sandbox = WooCommerceSandbox(webhook_url=receiver.url, webhook_secret="s", api_key="cs_x")
    served = await serve(sandbox.build_app())
    try:
        assert await sandbox.sender.flush(5)
        (ping,) = receiver.take()
        assert ping.body == b"webhook_id=1"
    finally:
        await served.close()
        await receiver.close()


# -- webhooks --------------------------------------------------------------------------------------


async def test_setting_a_url_sends_the_unsigned_ping_which_is_never_stored(shop: Shop) -> None:
    await shop.control("PUT", "/webhooks", {"url": shop.receiver.url})
    (ping,) = await shop.deliveries()
    assert ping.body == b"webhook_id=1"
    assert header(ping, "Content-Type") == "application/x-www-form-urlencoded"
    assert header(ping, "X-WC-Webhook-Signature") is None
    conn = shop.connector()
    try:
        verified = conn.verify_webhook(ping.headers, ping.body)
    finally:
        await conn.aclose()
    assert verified.ping  # the receiver answers 200 and stores nothing
    assert (await shop.state())["webhook"]["pings"][-1]["status"] == 200


async def test_deliveries_carry_woocommerce_headers_and_verify(shop: Shop) -> None:
    order = await shop.buy(MUG=1)
    deliveries = await shop.deliveries()
    topics = sorted(header(d, "X-WC-Webhook-Topic") or "" for d in deliveries)
    assert topics == ["order.created", "order.updated", "product.updated"]
    conn = shop.connector()
    try:
        keys = {}
        for d in deliveries:
            assert header(d, "X-WC-Webhook-Source") == "http://localhost/"
            assert header(d, "X-WC-Webhook-ID") == "1"
            assert header(d, "X-WC-Webhook-Event") in ("created", "updated")
            assert (header(d, "User-Agent") or "").startswith("WooCommerce/")
            verified = conn.verify_webhook(d.headers, d.body)
            keys[verified.topic] = verified.delivery_key
            event = conn.parse_event(verified.topic, d.headers, d.body)
            assert event.kind in (EventKind.ORDER, EventKind.LEVEL)
    finally:
        await conn.aclose()
    # Checkout's created and updated deliveries carry one state: one key, stored once.
    assert keys["order.created"] == keys["order.updated"]
    assert keys["order.created"].startswith(f"order:{order['id']}:")
    # wp_hash(id . time()): every delivery of this second shares the "delivery id".
    assert len({header(d, "X-WC-Webhook-Delivery-ID") for d in deliveries}) == 1


async def test_the_payload_is_built_when_sent_and_pending_deliveries_coalesce(
    shop: Shop,
) -> None:
    order = shop.sandbox.place_order([("MUG", 2)])
    shop.clock.advance(3)
    shop.sandbox.cancel_order(order.id)  # before the sender ran: its order.updated is pending
    deliveries = await shop.deliveries()
    orders = [d for d in deliveries if header(d, "X-WC-Webhook-Resource") == "order"]
    assert sorted(header(d, "X-WC-Webhook-Topic") or "" for d in orders) == [
        "order.created", "order.updated"]
    assert all(b'"status":"cancelled"' in d.body for d in orders)  # the state when sent
    state = await shop.state()
    assert state["webhook"]["coalesced"] == 2  # order.updated and product.updated for MUG
    # A later change, once nothing is pending, is delivered again with its new version.
    shop.clock.advance(1)
    shop.sandbox.upsert_product("MUG", 50)
    (product,) = await shop.deliveries()
    assert b'"stock_quantity":50' in product.body


async def test_a_failed_delivery_is_not_retried(shop: Shop) -> None:
    shop.receiver.statuses = [500]
    shop.sandbox.upsert_product("MUG", 11)
    (failed,) = await shop.deliveries()
    log = await shop.control("GET", "/webhooks")
    attempts = [a for a in log["attempts"] if a["topic"] == "product.updated"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500)]
    assert (await shop.state())["webhook"]["failure_count"] == 1
    assert header(failed, "X-WC-Webhook-Topic") == "product.updated"


async def test_the_webhook_is_disabled_after_more_than_five_consecutive_failures(
    shop: Shop,
) -> None:
    shop.receiver.statuses = [500] * 20

    async def change(level: int) -> dict[str, Any]:
        shop.clock.advance(1)
        shop.sandbox.upsert_product("MUG", level)
        await shop.deliveries()
        return (await shop.state())["webhook"]

    for n in range(1, 7):
        hook = await change(100 + n)
        assert (hook["status"], hook["failure_count"]) == ("active", n)
    hook = await change(200)  # failed_delivery(): 6 > 5, so this failure disables it
    assert (hook["status"], hook["failure_count"]) == ("disabled", 6)
    hook = await change(201)
    assert hook["not_active"] == 1 and shop.receiver.take() == []
    shop.receiver.statuses = []
    hook = await shop.control("PUT", "/webhook", {"status": "active"})
    assert (hook["status"], hook["failure_count"]) == ("active", 0)
    (ping,) = await shop.deliveries()  # re-activation pings again
    assert ping.body == b"webhook_id=1"


async def test_a_redirect_counts_as_delivered(shop: Shop) -> None:
    shop.receiver.statuses = [500, 302]
    shop.sandbox.upsert_product("MUG", 12)
    await shop.deliveries()
    shop.clock.advance(1)
    shop.sandbox.upsert_product("MUG", 13)
    await shop.deliveries()
    assert (await shop.state())["webhook"]["failure_count"] == 0


async def test_trash_sends_order_deleted_and_a_deleted_order_is_gone(shop: Shop) -> None:
    order = await shop.buy(MUG=1)
    await shop.deliveries()
    await shop.control("POST", f"/orders/{order['id']}/trash")
    (deleted,) = await shop.deliveries()
    assert deleted.body == f'{{"id":{order["id"]}}}'.encode()
    conn = shop.connector()
    try:
        verified = conn.verify_webhook(deleted.headers, deleted.body)
        event = conn.parse_event(verified.topic, deleted.headers, deleted.body)
        assert (event.kind, event.order_id) == (EventKind.ORDER_REF, str(order["id"]))
        trashed = await conn.fetch_order(str(order["id"]))
        assert trashed is not None and trashed.status.value == "cancelled"
        listed = [o.external_id async for p in conn.fetch_orders(None) for o in p.orders]
        assert str(order["id"]) not in listed  # status=any leaves the trash out
        await shop.control("POST", f"/orders/{order['id']}/delete")
        assert await conn.fetch_order(str(order["id"])) is None
    finally:
        await conn.aclose()


async def test_an_update_queued_for_an_order_deleted_before_sending_carries_the_error(
    shop: Shop,
) -> None:
    order = shop.sandbox.place_order([("MUG", 1)])
    shop.sandbox.delete_order(order.id)
    deliveries = [d for d in await shop.deliveries()
                  if header(d, "X-WC-Webhook-Resource") == "order"]
    assert deliveries and all(b"woocommerce_rest_shop_order_invalid_id" in d.body
                              for d in deliveries)
    conn = shop.connector()
    try:
        for d in deliveries:
            verified = conn.verify_webhook(d.headers, d.body)
            assert conn.parse_event(verified.topic, d.headers, d.body).kind is EventKind.IGNORE
    finally:
        await conn.aclose()


# -- shipments -------------------------------------------------------------------------------------


def _shipment(order: dict[str, Any], **changes: Any) -> ShipmentPush:
    values: dict[str, Any] = {
        "order_id": str(order["id"]),
        "shipment_id": "1",
        "carrier": "UPS",
        "tracking_number": "1Z999",
        "tracking_url": "",
        "lines": tuple(ShipmentLine(str(i["id"]), i["sku"], i["quantity"])
                       for i in order["line_items"]),
        "idempotency_key": "ship-1",
    }
    values.update(changes)
    return ShipmentPush(**values)


async def test_a_retried_shipment_adds_its_tracking_once(shop: Shop) -> None:
    order = await shop.buy(MUG=2)
    conn = shop.connector(shipment_tracking=True)
    try:
        first = await conn.push_shipment(_shipment(order))
        again = await conn.push_shipment(_shipment(order))
    finally:
        await conn.aclose()
    state = await shop.state()
    (tracking,) = state["trackings"][str(order["id"])]
    assert (tracking["tracking_provider"], tracking["tracking_number"]) == ("UPS", "1Z999")
    assert tracking["tracking_link"].startswith("https://www.ups.com/")
    assert state["orders"][str(order["id"])]["status"] == "completed"
    assert (first.outcome, again.outcome) == (PushOutcome.DONE, PushOutcome.DONE)


async def test_without_the_extension_a_note_is_added_once_and_partials_wait(shop: Shop) -> None:
    order = await shop.buy(MUG=2, CAP=1)
    mug, cap = order["line_items"]
    conn = shop.connector()
    try:
        part = _shipment(order, lines=(ShipmentLine(str(mug["id"]), "MUG", 2),))
        await conn.push_shipment(part)
        await conn.push_shipment(part)
        state = await shop.state()
        assert state["orders"][str(order["id"])]["status"] == "processing"
        rest = _shipment(order, shipment_id="2", tracking_number="1Z998",
                         lines=(ShipmentLine(str(cap["id"]), "CAP", 1),))
        done = await conn.push_shipment(rest)
    finally:
        await conn.aclose()
    state = await shop.state()
    notes = [n["note"] for n in state["notes"][str(order["id"])]]
    assert notes == ["Shipped with UPS, tracking 1Z999", "Shipped with UPS, tracking 1Z998"]
    assert all(n["customer_note"] for n in state["notes"][str(order["id"])])
    assert state["orders"][str(order["id"])]["status"] == "completed"
    assert done.outcome is PushOutcome.DONE


async def test_a_store_without_the_extension_answers_no_route(shop: Shop) -> None:
    await shop.control("PUT", "/config", {"shipment_tracking": False})
    order = await shop.buy(MUG=1)
    conn = shop.connector(shipment_tracking=True)
    try:
        result = await conn.push_shipment(_shipment(order))
    finally:
        await conn.aclose()
    assert result.outcome is PushOutcome.PERMANENT and "extension" in result.message


# -- limits and paging over a changing set ---------------------------------------------------------


async def test_the_host_rate_limit_is_off_unless_configured(shop: Shop) -> None:
    for _ in range(30):
        assert (await shop.api("GET", "/products")).status_code == 200
    await shop.control("PUT", "/config", {"rate_per_s": 1, "burst": 1})
    assert (await shop.api("GET", "/products")).status_code == 200
    limited = await shop.api("GET", "/products")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert (await shop.state())["over_limit"] == 1
    shop.clock.advance(1)
    assert (await shop.api("GET", "/products")).status_code == 200
    await shop.control("PUT", "/config", {"rate_per_s": None})
    assert (await shop.api("GET", "/products")).status_code == 200


async def test_an_order_trashed_mid_poll_keeps_the_window_for_the_next_poll(shop: Shop) -> None:
    ids = [str((await shop.buy(MUG=1))["id"]) for _ in range(5)]
    shop.clock.advance(60)
    conn = shop.connector(page_size=2)
    try:
        pages = conn.fetch_orders(None)
        first = await anext(pages)
        await shop.control("POST", f"/orders/{ids[0]}/trash")  # slides the rest back a page
        rest = [p async for p in pages]
        missed = set(ids[1:]) - {o.external_id for p in [first, *rest] for o in p.orders}
        assert missed  # page numbers over a changing set skipped one...
        again = [p async for p in conn.fetch_orders(rest[-1].cursor)]
    finally:
        await conn.aclose()
    # ...and the next poll, whose window did not move, reads it.
    assert missed <= {o.external_id for p in again for o in p.orders}

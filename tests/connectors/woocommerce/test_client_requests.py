"""The WooCommerce connector's exact requests (respx, strict): paths, query params and bodies.

respx runs with assert_all_called and assert_all_mocked: a request the test did not expect, or
an expected one that was never made, fails the test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from connectors.base import (
    AuthError,
    ListingRef,
    OrderStatus,
    PushOutcome,
    RateLimited,
    RetryableError,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)
from connectors.http import RetryPolicy
from connectors.woocommerce.connector import SHIPPED_META_KEY, WooCommerceConnector

URL = "http://shop.test"
WC = "/wc/v3"
TRACK = "/wc-shipment-tracking/v3"
KEY = "ck_123"
SECRET = "cs_456"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ONCE = RetryPolicy(attempts=1)
BASIC = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()


def order_json(order_id: int = 1001, modified: str = "2026-03-01T10:00:00", **changes: Any) -> dict:
    """A WooCommerce order as `GET /orders/{id}` returns it (the fields storesync reads)."""
    order: dict[str, Any] = {
        "id": order_id,
        "number": str(order_id),
        "status": "processing",
        "currency": "EUR",
        "total": "18.00",
        "date_created_gmt": "2026-03-01T09:00:00",
        "date_modified_gmt": modified,
        "date_completed_gmt": None,
        "billing": {"email": "buyer@example.com"},
        "meta_data": [],
        "line_items": [
            {"id": 11, "name": "Mug", "product_id": 20, "variation_id": 0, "sku": "MUG",
             "quantity": 2},
            {"id": 12, "name": "Tee - M", "product_id": 30, "variation_id": 32, "sku": "TEE-M",
             "quantity": 1},
        ],
        "refunds": [],
    }
    order.update(changes)
    return order


def page(items: list[Any], total: int | None = None, pages: int = 1) -> httpx.Response:
    """A WP list response with its X-WP-* headers."""
    return httpx.Response(
        200,
        json=items,
        headers={"X-WP-Total": str(len(items) if total is None else total),
                 "X-WP-TotalPages": str(pages)},
    )


def make(**options: Any) -> WooCommerceConnector:
    """A connector on the fake clock NOW, small pages, one try per request."""
    settings: dict[str, Any] = {
        "api_url": URL,
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "webhook_secret": "whsec",
        "first_poll_window": timedelta(days=1),
        "order_lookback": timedelta(minutes=5),
        "clock": lambda: NOW,
        "page_size": 2,
        "policy": ONCE,
    }
    settings.update(options)
    return WooCommerceConnector("woo", **settings)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(
        base_url=f"{URL}/wp-json", assert_all_called=True, assert_all_mocked=True
    ) as router:
        yield router


@pytest.fixture
async def connector() -> Any:
    conn = make()
    yield conn
    await conn.aclose()


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def simple(sku: str, product_id: int) -> ListingRef:
    return ListingRef(sku, {"product_id": str(product_id), "variation_id": ""}, "listed", 0)


def variation(sku: str, parent: int, variation_id: int) -> ListingRef:
    return ListingRef(
        sku, {"product_id": str(parent), "variation_id": str(variation_id)}, "listed", 0
    )


def push(ref: ListingRef, quantity: int) -> StockPush:
    return StockPush(ref, quantity, expected=None, idempotency_key=f"k:{ref.sku}")


def shipment(lines: tuple[ShipmentLine, ...] = (), **changes: Any) -> ShipmentPush:
    values: dict[str, Any] = {
        "order_id": "1001",
        "shipment_id": "7",
        "carrier": "UPS",
        "tracking_number": "1Z999",
        "tracking_url": "https://track.example/1Z999",
        "lines": lines,
        "idempotency_key": "ship-7",
        "shipped_at": datetime(2026, 2, 28, 23, 30, tzinfo=UTC),
    }
    values.update(changes)
    return ShipmentPush(**values)


# -- orders ----------------------------------------------------------------------------------------


async def test_a_first_poll_pins_the_query_and_follows_total_pages(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    seen: list[httpx.Request] = []

    def orders(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params["page"] == "1":
            return page([order_json(1001), order_json(1002, "2026-03-01T11:30:00")], 3, 2)
        return page([order_json(1003, "2026-03-01T11:00:00")], 3, 2)

    api.get(f"{WC}/orders").mock(side_effect=orders)
    pages = [p async for p in connector.fetch_orders(None)]

    assert [params(r) for r in seen] == [
        {
            "modified_after": "2026-02-28T11:55:00",  # the first window, minus the look-back
            "dates_are_gmt": "true",
            "per_page": "2",
            "page": str(number),
            "orderby": "date",
            "order": "asc",
            "status": "any",
        }
        for number in (1, 2)
    ]
    assert all(r.headers["Authorization"] == BASIC for r in seen)
    assert [p.done for p in pages] == [False, True]
    assert json.loads(pages[0].cursor) == {"since": "2026-02-28T12:00:00", "page": 2, "total": 3}
    # The run's newest date_modified_gmt, not the last page's.
    assert json.loads(pages[1].cursor) == {"since": "2026-03-01T11:30:00", "page": 1,
                                           "total": None}
    first = pages[0].orders[0]
    assert first.external_id == "1001" and first.status is OrderStatus.OPEN
    assert first.updated_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert [line.sku for line in first.lines] == ["MUG", "TEE-M"]


async def test_a_committed_cursor_resumes_at_its_page(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    route = api.get(f"{WC}/orders").mock(return_value=page([order_json(1005)], 5, 3))
    cursor = json.dumps({"since": "2026-03-01T08:00:00", "page": 3, "total": 5})
    pages = [p async for p in connector.fetch_orders(cursor)]
    sent = params(route.calls.last.request)
    assert (sent["page"], sent["modified_after"]) == ("3", "2026-03-01T07:55:00")
    assert [p.done for p in pages] == [True]
    assert json.loads(pages[0].cursor)["since"] == "2026-03-01T10:00:00"


async def test_the_final_cursor_never_passes_the_runs_start(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    api.get(f"{WC}/orders").mock(return_value=page([order_json(1001, "2026-03-01T12:00:09")]))
    (only,) = [p async for p in connector.fetch_orders(None)]
    assert json.loads(only.cursor)["since"] == "2026-03-01T12:00:00"


async def test_a_set_that_shrank_while_paging_keeps_since_where_it_was(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    # An order trashed mid-run slides the later ones back a page: one may have been skipped.
    api.get(f"{WC}/orders").mock(side_effect=[
        page([order_json(1001), order_json(1002)], 5, 3),
        page([order_json(1004), order_json(1005)], 4, 2),
    ])
    pages = [p async for p in connector.fetch_orders(None)]
    assert [p.done for p in pages] == [False, True]
    assert json.loads(pages[-1].cursor)["since"] == "2026-02-28T12:00:00"


async def test_query_auth_sends_the_keys_as_parameters_and_no_authorization(
    api: respx.MockRouter,
) -> None:
    route = api.get(f"{WC}/orders").mock(return_value=page([]))
    conn = make(auth="query")
    try:
        pages = [p async for p in conn.fetch_orders(None)]
    finally:
        await conn.aclose()
    request = route.calls.last.request
    assert "Authorization" not in request.headers
    sent = params(request)
    assert (sent["consumer_key"], sent["consumer_secret"]) == (KEY, SECRET)
    assert pages[0].done and pages[0].orders == ()


async def test_fetch_order_reads_one_and_answers_none_for_404(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get(f"{WC}/orders/404").mock(return_value=httpx.Response(404, json={
        "code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
        "data": {"status": 404}}))
    order = await connector.fetch_order("1001")
    assert order is not None and order.name == "#1001" and order.customer == "buyer@example.com"
    assert await connector.fetch_order("404") is None
    assert await connector.fetch_order("not-a-number") is None  # never sent


# -- listings and levels ---------------------------------------------------------------------------


async def test_listings_walk_products_then_each_variable_products_variations(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    products = api.get(f"{WC}/products").mock(return_value=page([
        {"id": 20, "type": "simple", "sku": "MUG", "manage_stock": True, "stock_quantity": 4},
        {"id": 21, "type": "simple", "sku": "", "manage_stock": True, "stock_quantity": 9},
        {"id": 22, "type": "simple", "sku": "GIFT", "manage_stock": False,
         "stock_quantity": None},
        {"id": 30, "type": "variable", "sku": "TEE", "manage_stock": False,
         "stock_quantity": None},
    ]))
    variations = api.get(f"{WC}/products/30/variations").mock(return_value=page([
        {"id": 31, "sku": "TEE-S", "manage_stock": True, "stock_quantity": 2},
        {"id": 32, "sku": "TEE-M", "manage_stock": "parent", "stock_quantity": 7},
        {"id": 33, "sku": "", "manage_stock": True, "stock_quantity": 1},
    ]))
    refs = await connector.fetch_listings()
    assert params(products.calls.last.request) == {
        "per_page": "100", "page": "1", "orderby": "id", "order": "asc"}
    assert params(variations.calls.last.request) == {
        "per_page": "100", "page": "1", "orderby": "id", "order": "asc"}
    assert refs == [
        ListingRef("MUG", {"product_id": "20", "variation_id": ""}, "listed", 4),
        ListingRef("GIFT", {"product_id": "22", "variation_id": ""}, "untracked", None),
        ListingRef("TEE", {"product_id": "30", "variation_id": ""}, "untracked", None),
        ListingRef("TEE-S", {"product_id": "30", "variation_id": "31"}, "listed", 2),
        # Stock managed by the parent is a pool shared with siblings: not pushable.
        ListingRef("TEE-M", {"product_id": "30", "variation_id": "32"}, "untracked", None),
    ]


async def test_listings_follow_total_pages(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    def products(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        return page([{"id": number, "type": "simple", "sku": f"S{number}",
                      "manage_stock": True, "stock_quantity": 1}], 3, 3)

    route = api.get(f"{WC}/products").mock(side_effect=products)
    refs = await connector.fetch_listings()
    assert [r.sku for r in refs] == ["S1", "S2", "S3"]
    assert [params(c.request)["page"] for c in route.calls] == ["1", "2", "3"]


async def test_levels_are_read_by_include_in_chunks_of_100(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    listings = [simple(f"S{n}", n) for n in range(1, 151)] + [
        variation("TEE-S", 30, 31), variation("TEE-L", 30, 33)]

    def products(request: httpx.Request) -> httpx.Response:
        ids = [int(i) for i in request.url.params["include"].split(",")]
        return page([{"id": i, "sku": f"S{i}", "manage_stock": True, "stock_quantity": i}
                     for i in ids])

    product_route = api.get(f"{WC}/products").mock(side_effect=products)
    variation_route = api.get(f"{WC}/products/30/variations").mock(return_value=page([
        {"id": 31, "sku": "TEE-S", "manage_stock": True, "stock_quantity": 5},
        {"id": 33, "sku": "TEE-L", "manage_stock": False, "stock_quantity": None},
    ]))
    levels = await connector.fetch_levels(listings)
    sent = [params(c.request) for c in product_route.calls]
    assert [len(p["include"].split(",")) for p in sent] == [100, 50]
    assert sent[0] == {"per_page": "100", "page": "1",
                       "include": ",".join(str(n) for n in range(1, 101)),
                       "orderby": "id", "order": "asc"}
    assert params(variation_route.calls.last.request) == {
        "per_page": "100", "page": "1", "include": "31,33", "orderby": "id", "order": "asc"}
    assert levels == {**{f"S{n}": n for n in range(1, 151)}, "TEE-S": 5}


# -- stock -----------------------------------------------------------------------------------------


async def test_a_lone_product_is_a_plain_put(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    route = api.put(f"{WC}/products/20").mock(return_value=httpx.Response(
        200, json={"id": 20, "sku": "MUG", "manage_stock": True, "stock_quantity": 8}))
    results = await connector.push_stock([push(simple("MUG", 20), 8)])
    assert body(route.calls.last.request) == {"stock_quantity": 8}
    assert [(r.key, r.outcome, r.observed) for r in results] == [("MUG", PushOutcome.DONE, 8)]


async def test_a_lone_variation_is_a_plain_put(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    route = api.put(f"{WC}/products/30/variations/31").mock(return_value=httpx.Response(
        200, json={"id": 31, "sku": "TEE-S", "manage_stock": True, "stock_quantity": 0}))
    results = await connector.push_stock([push(variation("TEE-S", 30, 31), 0)])
    assert body(route.calls.last.request) == {"stock_quantity": 0}
    assert results[0].outcome is PushOutcome.DONE


async def test_products_and_variations_go_in_their_batch_endpoints(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    products = api.post(f"{WC}/products/batch").mock(return_value=httpx.Response(200, json={
        "update": [
            {"id": 20, "sku": "MUG", "manage_stock": True, "stock_quantity": 3},
            {"id": 21, "error": {"code": "woocommerce_rest_product_invalid_id",
                                 "message": "Invalid ID.", "data": {"status": 400}}},
        ]}))
    variations = api.post(f"{WC}/products/30/variations/batch").mock(
        return_value=httpx.Response(200, json={"update": [
            {"id": 31, "sku": "TEE-S", "manage_stock": True, "stock_quantity": 4},
        ]}))
    batch = [
        push(simple("MUG", 20), 3),
        push(variation("TEE-S", 30, 31), 4),
        push(simple("CAP", 21), 5),
        push(variation("TEE-M", 30, 32), 6),
    ]
    results = {r.key: r for r in await connector.push_stock(batch)}
    assert body(products.calls.last.request) == {
        "update": [{"id": 20, "stock_quantity": 3}, {"id": 21, "stock_quantity": 5}]}
    assert body(variations.calls.last.request) == {
        "update": [{"id": 31, "stock_quantity": 4}, {"id": 32, "stock_quantity": 6}]}
    assert results["MUG"].outcome is PushOutcome.DONE and results["MUG"].observed == 3
    assert results["CAP"].outcome is PushOutcome.PERMANENT
    assert "Invalid ID." in results["CAP"].message
    assert results["TEE-S"].outcome is PushOutcome.DONE
    assert results["TEE-M"].outcome is PushOutcome.RETRY  # missing from the answer


async def test_no_request_carries_more_than_100_objects(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    def batch(request: httpx.Request) -> httpx.Response:
        items = body(request)["update"]
        assert len(items) <= 100
        return httpx.Response(200, json={"update": [
            {"id": i["id"], "manage_stock": True, "stock_quantity": i["stock_quantity"]}
            for i in items]})

    route = api.post(f"{WC}/products/batch").mock(side_effect=batch)
    results = await connector.push_stock(
        [push(simple(f"S{n}", n), n) for n in range(1, 151)])
    assert [len(body(c.request)["update"]) for c in route.calls] == [100, 50]
    assert {r.outcome for r in results} == {PushOutcome.DONE} and len(results) == 150


async def test_a_failure_before_anything_landed_raises_after_it_becomes_results(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    route = api.post(f"{WC}/products/batch").mock(side_effect=[
        httpx.Response(503, json={"code": "down", "message": "down", "data": {"status": 503}}),
        httpx.Response(200, json={"update": [{"id": n, "stock_quantity": 1,
                                              "manage_stock": True} for n in range(1, 101)]}),
        httpx.Response(429, headers={"Retry-After": "9"}),
    ])
    batch = [push(simple(f"S{n}", n), 1) for n in range(1, 151)]
    with pytest.raises(RetryableError):
        await connector.push_stock(batch)
    results = await connector.push_stock(batch)
    assert route.call_count == 3
    assert [r.outcome for r in results[:100]] == [PushOutcome.DONE] * 100
    assert {(r.outcome, r.retry_after) for r in results[100:]} == {(PushOutcome.RETRY, 9.0)}


async def test_ids_that_are_not_woocommerces_are_refused_without_a_request(
    connector: WooCommerceConnector,
) -> None:
    bad = ListingRef("X", {"product_id": "abc", "variation_id": ""}, "listed", 0)
    (result,) = await connector.push_stock([push(bad, 1)])
    assert result.outcome is PushOutcome.PERMANENT


async def test_a_listing_without_ids_is_found_by_sku(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    lookup = api.get(f"{WC}/products").mock(return_value=page([
        {"id": 32, "type": "variation", "parent_id": 30, "sku": "TEE-M", "manage_stock": True,
         "stock_quantity": 1}]))
    write = api.put(f"{WC}/products/30/variations/32").mock(return_value=httpx.Response(
        200, json={"id": 32, "manage_stock": True, "stock_quantity": 6}))
    results = await connector.push_stock([push(ListingRef("TEE-M"), 6)])
    assert params(lookup.calls.last.request) == {"sku": "TEE-M"}
    assert body(write.calls.last.request) == {"stock_quantity": 6}
    assert results[0].outcome is PushOutcome.DONE


# -- shipments -------------------------------------------------------------------------------------


async def test_a_shipment_adds_a_customer_note_then_completes_the_order(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get(f"{WC}/orders/1001/notes").mock(return_value=httpx.Response(200, json=[
        {"id": 1, "note": "Order status changed from Pending payment to Processing."}]))
    note = api.post(f"{WC}/orders/1001/notes").mock(return_value=httpx.Response(201, json={}))
    complete = api.put(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json={}))
    result = await connector.push_shipment(shipment())
    assert body(note.calls.last.request) == {
        "note": "Shipped with UPS, tracking 1Z999 https://track.example/1Z999",
        "customer_note": True,
    }
    assert body(complete.calls.last.request) == {"status": "completed"}
    assert (result.key, result.outcome) == ("7", PushOutcome.DONE)


async def test_a_note_already_there_is_not_added_again(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get(f"{WC}/orders/1001/notes").mock(return_value=httpx.Response(200, json=[
        {"id": 5, "note": "Shipped with UPS, tracking 1Z999 https://track.example/1Z999"}]))
    api.put(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json={}))
    result = await connector.push_shipment(shipment())
    assert result.outcome is PushOutcome.DONE and "already" in result.message


async def test_the_tracking_extension_gets_a_custom_provider_with_our_link(
    api: respx.MockRouter,
) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get(f"{TRACK}/orders/1001/shipment-trackings").mock(
        return_value=httpx.Response(200, json=[]))
    add = api.post(f"{TRACK}/orders/1001/shipment-trackings").mock(
        return_value=httpx.Response(201, json={"tracking_id": "abc"}))
    complete = api.put(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json={}))
    conn = make(shipment_tracking=True)
    try:
        result = await conn.push_shipment(shipment())
        await conn.push_shipment(shipment(shipment_id="2", tracking_url="", carrier="USPS",
                                          tracking_number="9400"))
    finally:
        await conn.aclose()
    assert [body(c.request) for c in add.calls] == [
        {
            "custom_tracking_provider": "UPS",
            "custom_tracking_link": "https://track.example/1Z999",
            "tracking_number": "1Z999",
            "date_shipped": "2026-02-28",
        },
        {"tracking_provider": "USPS", "tracking_number": "9400", "date_shipped": "2026-02-28"},
    ]
    assert body(complete.calls.last.request) == {"status": "completed"}
    assert result.outcome is PushOutcome.DONE


async def test_a_tracking_already_there_is_not_added_again(api: respx.MockRouter) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get(f"{TRACK}/orders/1001/shipment-trackings").mock(return_value=httpx.Response(
        200, json=[{"tracking_id": "abc", "tracking_number": "1Z999"}]))
    complete = api.put(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json={}))
    conn = make(shipment_tracking=True)
    try:
        result = await conn.push_shipment(shipment())
    finally:
        await conn.aclose()
    assert complete.call_count == 1  # a retry after a crash still completes the order
    assert result.message.startswith("tracking already added")


async def test_a_partial_shipment_is_remembered_and_the_last_one_completes(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    first = shipment((ShipmentLine("11", "MUG", 2),), shipment_id="7")
    recorded = {"key": SHIPPED_META_KEY, "value": '{"7":{"11":2}}'}
    api.get(f"{WC}/orders/1001").mock(side_effect=[
        httpx.Response(200, json=order_json()),
        httpx.Response(200, json=order_json(meta_data=[{"id": 3, **recorded}])),
    ])
    api.get(f"{WC}/orders/1001/notes").mock(return_value=httpx.Response(200, json=[]))
    api.post(f"{WC}/orders/1001/notes").mock(return_value=httpx.Response(201, json={}))
    update = api.put(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json={}))
    partial = await connector.push_shipment(first)
    last = await connector.push_shipment(shipment(
        (ShipmentLine("12", "TEE-M", 1),), shipment_id="8", tracking_number="1Z998"))
    assert [body(c.request) for c in update.calls] == [
        {"meta_data": [recorded]},
        {"status": "completed"},
    ]
    assert "partial" in partial.message and "completed" in last.message


async def test_a_cancelled_order_refuses_the_shipment_without_writing(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    api.get(f"{WC}/orders/1001").mock(
        return_value=httpx.Response(200, json=order_json(status="cancelled")))
    result = await connector.push_shipment(shipment())
    assert result.outcome is PushOutcome.PERMANENT and "cancelled" in result.message


async def test_a_missing_tracking_extension_is_named(api: respx.MockRouter) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    api.get(f"{TRACK}/orders/1001/shipment-trackings").mock(return_value=httpx.Response(
        404, json={"code": "rest_no_route", "message": "No route was found matching the URL "
                   "and request method.", "data": {"status": 404}}))
    conn = make(shipment_tracking=True)
    try:
        result = await conn.push_shipment(shipment())
    finally:
        await conn.aclose()
    assert result.outcome is PushOutcome.PERMANENT
    assert "Shipment Tracking extension" in result.message


async def test_a_tracking_post_whose_answer_was_lost_is_not_resent_blindly(
    api: respx.MockRouter,
) -> None:
    api.get(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json=order_json()))
    listed = api.get(f"{TRACK}/orders/1001/shipment-trackings").mock(side_effect=[
        httpx.Response(200, json=[]),
        httpx.Response(200, json=[{"tracking_id": "abc", "tracking_number": "1Z999"}]),
    ])
    # The store added it, then the connection dropped before the answer arrived.
    add = api.post(f"{TRACK}/orders/1001/shipment-trackings").mock(
        side_effect=httpx.ReadError("connection reset"))
    complete = api.put(f"{WC}/orders/1001").mock(return_value=httpx.Response(200, json={}))
    conn = make(shipment_tracking=True, policy=RetryPolicy(attempts=3, base_s=0, cap_s=0))
    try:
        with pytest.raises(RetryableError):
            await conn.push_shipment(shipment())
        assert add.call_count == 1  # reads, reads and write retried; creating POSTs are not
        result = await conn.push_shipment(shipment())  # the outbox's retry
    finally:
        await conn.aclose()
    assert (add.call_count, listed.call_count, complete.call_count) == (1, 2, 1)
    assert result.outcome is PushOutcome.DONE


# -- errors ----------------------------------------------------------------------------------------


async def test_refused_keys_raise_auth_error_and_429_raises_rate_limited(
    api: respx.MockRouter, connector: WooCommerceConnector
) -> None:
    api.get(f"{WC}/products").mock(side_effect=[
        httpx.Response(401, json={"code": "woocommerce_rest_authentication_error",
                                  "message": "Consumer key is invalid.", "data": {"status": 401}}),
        httpx.Response(429, headers={"Retry-After": "12"}),
    ])
    with pytest.raises(AuthError):
        await connector.fetch_listings()
    with pytest.raises(RateLimited) as caught:
        await connector.fetch_listings()
    assert caught.value.retry_after == 12


async def test_query_secrets_stay_out_of_error_messages(api: respx.MockRouter) -> None:
    api.get(f"{WC}/products").mock(return_value=httpx.Response(
        400, text=f"bad request for consumer_secret={SECRET}"))
    conn = make(auth="query")
    try:
        with pytest.raises(Exception) as caught:
            await conn.fetch_listings()
    finally:
        await conn.aclose()
    assert SECRET not in str(caught.value)

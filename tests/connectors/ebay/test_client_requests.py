"""The eBay connector's exact requests (respx, strict): token form, headers, filter encoding,
bodies, and how eBay's answers map to results and errors.

respx runs with assert_all_called and assert_all_mocked: a request the test did not expect, or
an expected one that was never made, fails the test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

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
    WebhookRejected,
)
from connectors.ebay.client import EbayRequestError
from connectors.ebay.connector import EbayConnector
from connectors.http import RetryPolicy

URL = "https://api.ebay.test"
TOKEN_URL = f"{URL}/identity/v1/oauth2/token"
ORDERS = "/sell/fulfillment/v1/order"
INVENTORY = "/sell/inventory/v1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ONCE = RetryPolicy(attempts=1)
BASIC = "Basic " + base64.b64encode(b"app-id:cert-id").decode()
SCOPES = (
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment "
    "https://api.ebay.com/oauth/api_scope/sell.inventory"
)


def order_json(order_id: str = "05-10455-72394", **changes: Any) -> dict[str, Any]:
    """An eBay order as getOrders returns it (the fields storesync reads)."""
    order: dict[str, Any] = {
        "orderId": order_id,
        "creationDate": "2026-03-01T09:00:00.000Z",
        "lastModifiedDate": "2026-03-01T10:00:00.250Z",
        "orderFulfillmentStatus": "NOT_STARTED",
        "orderPaymentStatus": "PAID",
        "buyer": {"username": "buyer_1"},
        "salesRecordReference": "1042",
        "pricingSummary": {"total": {"value": "29.97", "currency": "USD"}},
        "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
        "lineItems": [
            {"lineItemId": "1001", "sku": "MUG", "title": "Mug", "quantity": 2,
             "lineItemFulfillmentStatus": "NOT_STARTED"},
            {"lineItemId": "1002", "sku": "TEE", "title": "Tee", "quantity": 1,
             "lineItemFulfillmentStatus": "NOT_STARTED"},
        ],
    }  # fmt: skip
    order.update(changes)
    return order


def ebay_error(status: int, error_id: int, category: str = "REQUEST") -> httpx.Response:
    body = {
        "errors": [
            {"errorId": error_id, "domain": "API_FULFILLMENT", "category": category,
             "message": f"message {error_id}"}
        ]
    }  # fmt: skip
    return httpx.Response(status, json=body)


def make(**options: Any) -> EbayConnector:
    """A connector on the fake clock NOW, small pages, one try per request."""
    settings: dict[str, Any] = {
        "client_id": "app-id",
        "client_secret": "cert-id",
        "refresh_token": "v^1.1#refresh",
        "api_url": URL,
        "first_poll_window": timedelta(days=1),
        "order_lookback": timedelta(minutes=5),
        "clock": lambda: NOW,
        "page_size": 2,
        "policy": ONCE,
    }
    settings.update(options)
    return EbayConnector("ebay", **settings)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=URL, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def token(api: respx.MockRouter) -> respx.Route:
    return api.post("/identity/v1/oauth2/token").mock(
        return_value=httpx.Response(
            200,
            json={"access_token": "user-1", "expires_in": 7200, "token_type": "User Access Token"},
        )
    )


@pytest.fixture
async def connector() -> Any:
    conn = make()
    yield conn
    await conn.aclose()


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def listing(sku: str, offer_id: str) -> ListingRef:
    return ListingRef(sku, {"offer_id": offer_id}, "listed", 0)


# -- auth ------------------------------------------------------------------------------------------


async def test_the_refresh_grant_and_the_headers_on_every_call(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    orders = api.get(ORDERS).mock(return_value=httpx.Response(200, json={"total": 0}))
    [page async for page in connector.fetch_orders(None)]
    [page async for page in connector.fetch_orders(None)]

    assert token.call_count == 1  # the user token is cached
    grant = token.calls.last.request
    assert grant.headers["Authorization"] == BASIC
    assert grant.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(grant.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["v^1.1#refresh"],
        "scope": [SCOPES],
    }
    for call in orders.calls:
        assert call.request.headers["Authorization"] == "Bearer user-1"
        assert call.request.headers["X-EBAY-C-MARKETPLACE-ID"] == "EBAY_US"
        assert "Content-Language" not in call.request.headers


async def test_the_token_is_refreshed_before_it_expires(api: respx.MockRouter) -> None:
    now = [NOW]
    connector = make(clock=lambda: now[0])
    token = api.post("/identity/v1/oauth2/token").mock(
        side_effect=[
            httpx.Response(200, json={"access_token": f"user-{n}", "expires_in": 7200})
            for n in (1, 2)
        ]
    )
    order = api.get(f"{ORDERS}/05-1").mock(
        return_value=httpx.Response(200, json=order_json("05-1"))
    )
    try:
        await connector.fetch_order("05-1")
        now[0] = NOW + timedelta(seconds=7200 - 301)  # still outside the last five minutes
        await connector.fetch_order("05-1")
        now[0] = NOW + timedelta(seconds=7200 - 299)  # inside them: refresh first
        await connector.fetch_order("05-1")
    finally:
        await connector.aclose()
    assert token.call_count == 2
    sent = [call.request.headers["Authorization"] for call in order.calls]
    assert sent == ["Bearer user-1", "Bearer user-1", "Bearer user-2"]


async def test_a_401_refreshes_once_then_raises_auth_error(
    api: respx.MockRouter, connector: EbayConnector
) -> None:
    token = api.post("/identity/v1/oauth2/token").mock(
        side_effect=[
            httpx.Response(200, json={"access_token": f"user-{n}", "expires_in": 7200})
            for n in (1, 2, 3)
        ]
    )
    invalid = {"errors": [{"errorId": 1001, "domain": "OAuth", "category": "REQUEST",
                           "message": "Invalid access token"}]}  # fmt: skip
    route = api.get(f"{ORDERS}/05-1").mock(
        side_effect=[
            httpx.Response(401, json=invalid),
            httpx.Response(200, json=order_json("05-1")),
            httpx.Response(401, json=invalid),
            httpx.Response(401, json=invalid),
        ]
    )
    order = await connector.fetch_order("05-1")
    assert order is not None and order.external_id == "05-1"
    with pytest.raises(AuthError, match="1001"):
        await connector.fetch_order("05-1")
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer user-1",
        "Bearer user-2",
        "Bearer user-2",
        "Bearer user-3",
    ]
    assert token.call_count == 3


async def test_a_refused_refresh_token_is_an_auth_error(
    api: respx.MockRouter, connector: EbayConnector
) -> None:
    api.post("/identity/v1/oauth2/token").mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "the token is invalid"}
        )
    )
    with pytest.raises(AuthError, match="invalid_grant"):
        await connector.fetch_listings()


async def test_a_custom_token_url_and_marketplace(api: respx.MockRouter) -> None:
    connector = make(token_url="https://auth.ebay.test/token", marketplace_id="EBAY_DE")
    with respx.mock(assert_all_called=True) as auth:
        auth.post("https://auth.ebay.test/token").mock(
            return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 7200})
        )
        bulk = api.post(f"{INVENTORY}/bulk_update_price_quantity").mock(
            return_value=httpx.Response(200, json={"responses": [{"statusCode": 200, "sku": "A"}]})
        )
        try:
            await connector.push_stock([StockPush(listing("A", "77"), 3, None, "k")])
        finally:
            await connector.aclose()
    sent = bulk.calls.last.request
    assert sent.headers["X-EBAY-C-MARKETPLACE-ID"] == "EBAY_DE"
    assert sent.headers["Content-Language"] == "de-DE"


# -- orders ----------------------------------------------------------------------------------------


async def test_the_filter_is_percent_encoded_and_offsets_follow_the_pages(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    def orders(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        if offset == 0:
            return httpx.Response(
                200,
                json={"total": 3, "offset": 0, "limit": 2, "next": f"{URL}{ORDERS}?offset=2",
                      "orders": [order_json("05-1"), order_json("05-2")]},
            )  # fmt: skip
        later = order_json("05-3", lastModifiedDate="2026-03-01T11:30:00.000Z")
        return httpx.Response(200, json={"total": 3, "offset": 2, "limit": 2, "orders": [later]})

    route = api.get(ORDERS).mock(side_effect=orders)
    pages = [page async for page in connector.fetch_orders(None)]

    queries = [c.request.url.query.decode() for c in route.calls]
    # The first window (a day) minus the look-back; [ ] encoded, : and , as eBay writes them.
    assert queries == [
        "filter=lastmodifieddate:%5B2026-02-28T11:55:00.000Z..%5D&limit=2&offset=0",
        "filter=lastmodifieddate:%5B2026-02-28T11:55:00.000Z..%5D&limit=2&offset=2",
    ]
    assert [p.done for p in pages] == [False, True]
    assert json.loads(pages[0].cursor) == {
        "since": "2026-02-28T12:00:00.000Z",
        "from": "2026-02-28T11:55:00.000Z",
        "offset": 2,
        "total": 3,
    }
    assert json.loads(pages[1].cursor) == {
        "since": "2026-03-01T11:30:00.000Z",  # the newest lastModifiedDate of the run
        "from": None,
        "offset": 0,
        "total": None,
    }
    first = pages[0].orders[0]
    assert (first.external_id, first.status, first.customer) == (
        "05-1",
        OrderStatus.OPEN,
        "buyer_1",
    )
    assert first.updated_at == datetime(2026, 3, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in first.lines] == [
        ("1001", "MUG", 2),
        ("1002", "TEE", 1),
    ]


async def test_a_committed_cursor_resumes_the_same_filter_at_its_offset(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    route = api.get(ORDERS).mock(
        return_value=httpx.Response(200, json={"total": 5, "orders": [order_json("05-5")]})
    )
    cursor = json.dumps(
        {"since": "2026-03-01T08:00:00.000Z", "from": "2026-03-01T07:50:00.000Z",
         "offset": 4, "total": 5}
    )  # fmt: skip
    pages = [page async for page in connector.fetch_orders(cursor)]
    sent = route.calls.last.request.url.params
    assert (sent["offset"], sent["filter"]) == (
        "4",
        "lastmodifieddate:[2026-03-01T07:50:00.000Z..]",
    )
    assert json.loads(pages[0].cursor)["since"] == "2026-03-01T10:00:00.250Z"


async def test_a_shrinking_set_keeps_the_watermark(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(ORDERS).mock(
        side_effect=[
            httpx.Response(200, json={"total": 4, "next": "x?offset=2",
                                      "orders": [order_json("05-1"), order_json("05-2")]}),
            httpx.Response(200, json={"total": 3, "orders": [order_json("05-4")]}),
        ]
    )  # fmt: skip
    pages = [page async for page in connector.fetch_orders(None)]
    # An order left the set: one may have slid past the offset, so read the window again.
    assert json.loads(pages[-1].cursor)["since"] == "2026-02-28T12:00:00.000Z"


async def test_the_window_stays_inside_ebays_90_days(
    api: respx.MockRouter, token: respx.Route
) -> None:
    connector = make(first_poll_window=timedelta(days=365))
    route = api.get(ORDERS).mock(return_value=httpx.Response(200, json={"total": 0}))
    try:
        [page async for page in connector.fetch_orders(None)]
    finally:
        await connector.aclose()
    assert route.calls.last.request.url.params["filter"] == (
        "lastmodifieddate:[2025-12-01T13:00:00.000Z..]"
    )


async def test_orders_with_a_cancellation_are_read_again_in_full(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    requested = {"cancelState": "IN_PROGRESS", "cancelRequests": []}
    canceled = {"cancelState": "CANCELED", "cancelRequests": []}
    api.get(ORDERS).mock(
        return_value=httpx.Response(200, json={"total": 3, "orders": [
            order_json("05-1"),
            order_json("05-2", cancelStatus=requested),
            order_json("05-3", cancelStatus=canceled),
        ]})
    )  # fmt: skip
    full_request = {**requested, "cancelRequests": [{"cancelRequestId": "9"}]}
    one = api.get(f"{ORDERS}/05-2").mock(
        return_value=httpx.Response(200, json=order_json("05-2", cancelStatus=full_request))
    )
    three = api.get(f"{ORDERS}/05-3").mock(
        return_value=httpx.Response(200, json=order_json("05-3", cancelStatus=canceled))
    )
    (page,) = [page async for page in connector.fetch_orders(None)]
    assert one.called and three.called
    statuses = [order.status for order in page.orders]
    assert statuses == [OrderStatus.OPEN, OrderStatus.OPEN, OrderStatus.CANCELLED]
    assert page.orders[1].raw["cancelStatus"]["cancelRequests"] == [{"cancelRequestId": "9"}]
    assert [line.cancelled for line in page.orders[2].lines] == [2, 1]


@pytest.mark.parametrize(
    ("changes", "status", "shipped"),
    [
        ({"orderPaymentStatus": "FULLY_REFUNDED"}, OrderStatus.REFUNDED, [0, 0]),
        ({"orderPaymentStatus": "PENDING"}, OrderStatus.PENDING, [0, 0]),
        (
            {
                "orderFulfillmentStatus": "IN_PROGRESS",
                "lineItems": [
                    {"lineItemId": "1", "sku": "A", "quantity": 2,
                     "lineItemFulfillmentStatus": "FULFILLED"},
                    {"lineItemId": "2", "sku": "B", "quantity": 1,
                     "lineItemFulfillmentStatus": "NOT_STARTED"},
                ],
            },
            OrderStatus.PARTIALLY_SHIPPED,
            [2, 0],
        ),
        (
            {"orderFulfillmentStatus": "FULFILLED",
             "lineItems": [{"lineItemId": "1", "sku": "A", "quantity": 3,
                            "lineItemFulfillmentStatus": "FULFILLED"}]},
            OrderStatus.SHIPPED,
            [3],
        ),
    ],
)  # fmt: skip
async def test_statuses_and_shipped_units_map(
    api: respx.MockRouter,
    token: respx.Route,
    connector: EbayConnector,
    changes: dict[str, Any],
    status: OrderStatus,
    shipped: list[int],
) -> None:
    api.get(f"{ORDERS}/05-1").mock(
        return_value=httpx.Response(200, json=order_json("05-1", **changes))
    )
    order = await connector.fetch_order("05-1")
    assert order is not None
    assert (order.status, [line.shipped for line in order.lines]) == (status, shipped)


async def test_fetch_order_is_none_for_an_unknown_id_and_raises_for_other_errors(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{ORDERS}/05-404").mock(return_value=httpx.Response(404))
    api.get(f"{ORDERS}/bad").mock(return_value=ebay_error(400, 32100))
    api.get(f"{ORDERS}/05-500").mock(return_value=ebay_error(500, 30500, "APPLICATION"))
    assert await connector.fetch_order("05-404") is None
    assert await connector.fetch_order("bad") is None
    with pytest.raises(RetryableError, match="30500"):
        await connector.fetch_order("05-500")


async def test_a_429_is_rate_limited_and_pauses_that_api(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{ORDERS}/05-1").mock(
        return_value=httpx.Response(
            429, json={"errors": [{"errorId": 2001, "domain": "ACCESS", "category": "REQUEST",
                                   "message": "Too many requests"}]},
            headers={"Retry-After": "30"},
        )
    )  # fmt: skip
    with pytest.raises(RateLimited, match="2001") as caught:
        await connector.fetch_order("05-1")
    assert caught.value.retry_after == 30
    snapshot = connector.limiter.snapshot()
    assert snapshot["apis"]["fulfillment"]["paused_for_s"] > 0
    assert snapshot["apis"]["inventory"]["paused_for_s"] == 0


async def test_an_application_error_on_a_4xx_is_retryable(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{ORDERS}/05-1").mock(return_value=ebay_error(400, 25001, "APPLICATION"))
    with pytest.raises(RetryableError):
        await connector.fetch_order("05-1")
    api.get(f"{ORDERS}/05-2").mock(return_value=ebay_error(400, 32800))
    with pytest.raises(EbayRequestError) as caught:
        await connector.fetch_order("05-2")
    assert caught.value.error_ids == {32800}


# -- listings and stock ----------------------------------------------------------------------------


async def test_discovery_pairs_items_with_offers_and_levels_read_both(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    def item(sku: str, quantity: int) -> dict[str, Any]:
        return {"sku": sku, "availability": {"shipToLocationAvailability": {"quantity": quantity}}}

    # The OAS calls the offset a page number: the connector follows `next` whatever it holds.
    next_page = f"{URL}{INVENTORY}/inventory_item?limit=100&offset=1"
    items = api.get(f"{INVENTORY}/inventory_item").mock(
        side_effect=[
            httpx.Response(200, json={"total": 3, "next": next_page,
                                      "inventoryItems": [item("A", 9), item("B", 4)]}),
            httpx.Response(200, json={"total": 3, "inventoryItems": [item("C", 2)]}),
        ]
    )  # fmt: skip

    def offers(request: httpx.Request) -> httpx.Response:
        sku = request.url.params["sku"]
        if sku == "C":
            return httpx.Response(404, json={"errors": [{"errorId": 25713, "category": "REQUEST"}]})
        offer = {"offerId": f"7{sku}", "sku": sku, "marketplaceId": "EBAY_US",
                 "format": "FIXED_PRICE", "availableQuantity": 5, "status": "PUBLISHED",
                 "listing": {"listingId": f"11{sku}"}}  # fmt: skip
        if sku == "B":
            offer["status"] = "UNPUBLISHED"
        return httpx.Response(200, json={"offers": [offer]})

    offer_route = api.get(f"{INVENTORY}/offer").mock(side_effect=offers)
    refs = await connector.fetch_listings()
    assert [c.request.url.params["offset"] for c in items.calls] == ["0", "1"]
    assert [c.request.url.params["limit"] for c in items.calls] == ["100", "100"]
    assert dict(offer_route.calls[0].request.url.params) == {
        "sku": "A",
        "marketplace_id": "EBAY_US",
    }
    assert [(r.sku, dict(r.ids), r.status, r.level) for r in refs] == [
        ("A", {"offer_id": "7A", "listing_id": "11A"}, "listed", 5),  # min(9, 5)
        ("B", {"offer_id": "7B", "listing_id": "11B"}, "inactive", None),
        ("C", {}, "inactive", None),
    ]

    bulk = api.post(f"{INVENTORY}/bulk_get_inventory_item").mock(
        return_value=httpx.Response(207, json={"responses": [
            {"statusCode": 200, "sku": "A", "inventoryItem": item("A", 3)},
            {"statusCode": 404, "sku": "Z"},
        ]})
    )  # fmt: skip
    levels = await connector.fetch_levels([refs[0], ListingRef("Z", {"offer_id": "1"})])
    assert body(bulk.calls.last.request) == {"requests": [{"sku": "A"}, {"sku": "Z"}]}
    assert levels == {"A": 3}  # min(3, 5)


async def test_stock_goes_in_one_bulk_call_with_item_and_offer_quantities(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    answers = {"responses": [
        {"statusCode": 200, "sku": "A", "offerId": "7A"},
        {"statusCode": 400, "sku": "B", "offerId": "7B", "errors": [
            {"errorId": 25002, "domain": "API_INVENTORY", "category": "REQUEST",
             "message": "Any User error"}]},
        {"statusCode": 500, "sku": "C", "offerId": "7C", "errors": [
            {"errorId": 25001, "domain": "API_INVENTORY", "category": "APPLICATION",
             "message": "A system error has occurred"}]},
    ]}  # fmt: skip
    route = api.post(f"{INVENTORY}/bulk_update_price_quantity").mock(
        return_value=httpx.Response(207, json=answers)
    )
    pushes = [
        StockPush(listing(sku, f"7{sku}"), qty, None, f"k:{sku}")
        for sku, qty in (("A", 5), ("B", 0), ("C", 2), ("D", 1))
    ]
    results = await connector.push_stock(pushes)
    sent = route.calls.last.request
    assert sent.headers["Content-Language"] == "en-US"
    assert body(sent) == {
        "requests": [
            {"sku": sku, "shipToLocationAvailability": {"quantity": qty},
             "offers": [{"offerId": f"7{sku}", "availableQuantity": qty}]}
            for sku, qty in (("A", 5), ("B", 0), ("C", 2), ("D", 1))
        ]
    }  # fmt: skip
    outcomes = {r.key: r.outcome for r in results}
    assert outcomes == {
        "A": PushOutcome.DONE,
        "B": PushOutcome.PERMANENT,
        "C": PushOutcome.RETRY,
        "D": PushOutcome.RETRY,  # missing from the answer: absolute, safe to send again
    }
    assert "25002" in next(r.message for r in results if r.key == "B")


async def test_more_than_25_pushes_split_and_a_listing_without_offer_id_is_resolved(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{INVENTORY}/offer").mock(
        return_value=httpx.Response(200, json={"offers": [
            {"offerId": "900", "sku": "S-0", "marketplaceId": "EBAY_US", "status": "PUBLISHED"}
        ]})
    )  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        skus = [r["sku"] for r in body(request)["requests"]]
        return httpx.Response(
            200, json={"responses": [{"statusCode": 200, "sku": s} for s in skus]}
        )

    route = api.post(f"{INVENTORY}/bulk_update_price_quantity").mock(side_effect=answer)
    pushes = [StockPush(listing(f"S-{n}", f"{n}"), n, None, f"k{n}") for n in range(1, 30)]
    pushes.insert(0, StockPush(ListingRef("S-0"), 4, None, "k0"))
    results = await connector.push_stock(pushes)
    sizes = [len(body(c.request)["requests"]) for c in route.calls]
    assert sizes == [25, 5]
    first = body(route.calls[0].request)["requests"][0]
    assert first["offers"] == [{"offerId": "900", "availableQuantity": 4}]
    assert len(results) == 30 and {r.outcome for r in results} == {PushOutcome.DONE}


async def test_a_push_that_fails_before_anything_landed_raises(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.post(f"{INVENTORY}/bulk_update_price_quantity").mock(
        return_value=ebay_error(503, 2003, "APPLICATION")
    )
    with pytest.raises(RetryableError):
        await connector.push_stock([StockPush(listing("A", "7A"), 1, None, "k")])


# -- shipments -------------------------------------------------------------------------------------


def shipment(lines: tuple[ShipmentLine, ...] = (), **changes: Any) -> ShipmentPush:
    values: dict[str, Any] = {
        "order_id": "05-1",
        "shipment_id": "s-7",
        "carrier": "UPS",
        "tracking_number": "1Z999",
        "tracking_url": "https://track.example/1Z999",
        "lines": lines,
        "idempotency_key": "ship-7",
        "shipped_at": datetime(2026, 2, 28, 23, 30, 0, 123_000, tzinfo=UTC),
    }
    values.update(changes)
    return ShipmentPush(**values)


async def test_a_shipment_reads_then_creates_one_fulfillment(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{ORDERS}/05-1").mock(return_value=httpx.Response(200, json=order_json("05-1")))
    api.get(f"{ORDERS}/05-1/shipping_fulfillment").mock(
        return_value=httpx.Response(200, json={"total": 0, "fulfillments": []})
    )
    create = api.post(f"{ORDERS}/05-1/shipping_fulfillment").mock(
        return_value=httpx.Response(
            201, headers={"Location": f"{URL}{ORDERS}/05-1/shipping_fulfillment/1Z999"}
        )
    )
    result = await connector.push_shipment(shipment((ShipmentLine("1001", "MUG", 2),)))
    assert (result.key, result.outcome) == ("s-7", PushOutcome.DONE)
    assert "1Z999" in result.message
    assert body(create.calls.last.request) == {
        "lineItems": [{"lineItemId": "1001", "quantity": 2}],
        "shippedDate": "2026-02-28T23:30:00.123Z",
        "shippingCarrierCode": "UPS",
        "trackingNumber": "1Z999",
    }


async def test_a_replayed_shipment_finds_its_fulfillment_and_creates_nothing(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{ORDERS}/05-1").mock(return_value=httpx.Response(200, json=order_json("05-1")))
    api.get(f"{ORDERS}/05-1/shipping_fulfillment").mock(
        return_value=httpx.Response(200, json={"total": 1, "fulfillments": [
            {"fulfillmentId": "1Z999", "shipmentTrackingNumber": "1Z999"}]})
    )  # fmt: skip
    result = await connector.push_shipment(shipment())
    assert result.outcome is PushOutcome.DONE and "already" in result.message


async def test_a_shipment_without_lines_ships_what_is_left(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    partly = order_json(
        "05-1",
        lineItems=[
            {"lineItemId": "1001", "quantity": 2, "lineItemFulfillmentStatus": "FULFILLED"},
            {"lineItemId": "1002", "quantity": 1, "lineItemFulfillmentStatus": "NOT_STARTED"},
        ],
    )
    # Without a tracking number there is nothing to match fulfillments on: no GET for them.
    api.get(f"{ORDERS}/05-1").mock(return_value=httpx.Response(200, json=partly))
    create = api.post(f"{ORDERS}/05-1/shipping_fulfillment").mock(
        return_value=httpx.Response(201, headers={"Location": "x/shipping_fulfillment/1Z999"})
    )
    await connector.push_shipment(shipment(carrier="", tracking_number=""))
    sent = body(create.calls.last.request)
    assert sent["lineItems"] == [{"lineItemId": "1002", "quantity": 1}]
    assert "trackingNumber" not in sent and "shippingCarrierCode" not in sent


async def test_shipments_to_missing_or_cancelled_orders_are_permanent(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    api.get(f"{ORDERS}/05-9").mock(return_value=httpx.Response(404))
    cancelled = order_json("05-1", cancelStatus={"cancelState": "CANCELED"})
    api.get(f"{ORDERS}/05-1").mock(return_value=httpx.Response(200, json=cancelled))
    missing = await connector.push_shipment(shipment(order_id="05-9"))
    gone = await connector.push_shipment(shipment())
    assert (missing.outcome, gone.outcome) == (PushOutcome.PERMANENT, PushOutcome.PERMANENT)


async def test_webhooks_are_refused_in_this_version(connector: EbayConnector) -> None:
    assert connector.capabilities.webhooks is False
    with pytest.raises(WebhookRejected, match="polls"):
        connector.verify_webhook({}, b"{}")


async def test_a_run_resumed_after_months_starts_again_inside_the_window(
    api: respx.MockRouter, token: respx.Route, connector: EbayConnector
) -> None:
    route = api.get(ORDERS).mock(return_value=httpx.Response(200, json={"total": 0}))
    cursor = json.dumps(
        {"since": "2025-10-01T00:00:00.000Z", "from": "2025-09-30T23:55:00.000Z",
         "offset": 400, "total": 900}
    )  # fmt: skip
    [page async for page in connector.fetch_orders(cursor)]
    sent = route.calls.last.request.url.params
    assert (sent["offset"], sent["filter"]) == (
        "0",
        "lastmodifieddate:[2025-12-01T13:00:00.000Z..]",
    )

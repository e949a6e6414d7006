"""The Amazon connector's exact requests (respx, strict): LWA form, headers, getOrders filters,
patch bodies, the feed calls and the shipment confirmation.

respx runs with assert_all_called and assert_all_mocked: a request the test did not expect, or
an expected one that was never made, fails the test. Time is a fake: `sleep` moves it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors.amazon.connector import NOT_APPLIED_RETRY_S, AmazonConnector, package_reference
from connectors.base import (
    AuthError,
    ListingRef,
    OrderStatus,
    PushOutcome,
    RateLimited,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)
from connectors.http import RetryPolicy

API = "https://sp.test"
LWA = "https://lwa.test/auth/o2/token"
S3 = "https://s3.test"
SELLER = "A1SELLER"
MARKET = "ATVPDKIKX0DER"
NOW = datetime(2026, 3, 1, 12, 0, 30, 500_000, tzinfo=UTC)
ONCE = RetryPolicy(attempts=1)
ORDER_ID = "114-1234567-7654321"


class FakeTime:
    """A clock that moves only when the connector sleeps."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return 1000.0 + self.offset

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds


def make(time: FakeTime, **options: Any) -> AmazonConnector:
    settings: dict[str, Any] = {
        "seller_id": SELLER,
        "marketplace_ids": [MARKET],
        "api_url": API,
        "lwa_url": LWA,
        "lwa_client_id": "amzn1.application-oa2-client.abc",
        "lwa_client_secret": "client-secret",
        "refresh_token": "Atzr|refresh",
        "first_poll_window": timedelta(days=1),
        "order_lookback": timedelta(minutes=5),
        "policy": ONCE,
        "page_size": 2,
        "clock": time.now,
        "monotonic": time.monotonic,
        "sleep": time.sleep,
    }
    settings.update(options)
    return AmazonConnector("amazon", **settings)


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def connector(time: FakeTime) -> AsyncIterator[AmazonConnector]:
    conn = make(time)
    yield conn
    await conn.aclose()


def token_route(api: respx.MockRouter, token: str = "Atza|one") -> respx.Route:
    return api.post(LWA).mock(
        return_value=httpx.Response(
            200,
            json={"access_token": token, "token_type": "bearer", "expires_in": 3600},
        )
    )


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def order_json(**changes: Any) -> dict[str, Any]:
    order = {
        "AmazonOrderId": ORDER_ID,
        "PurchaseDate": "2026-03-01T10:00:00Z",
        "LastUpdateDate": "2026-03-01T10:05:00Z",
        "OrderStatus": "Unshipped",
        "FulfillmentChannel": "MFN",
        "MarketplaceId": MARKET,
        "OrderTotal": {"CurrencyCode": "USD", "Amount": "24.00"},
    }
    order.update(changes)
    return order


def items_json(*items: tuple[str, str, int, int]) -> dict[str, Any]:
    return {
        "payload": {
            "AmazonOrderId": ORDER_ID,
            "OrderItems": [
                {
                    "ASIN": "B0TEST0001",
                    "OrderItemId": item_id,
                    "SellerSKU": sku,
                    "QuantityOrdered": ordered,
                    "QuantityShipped": shipped,
                }
                for item_id, sku, ordered, shipped in items
            ],
        }
    }


def listing(sku: str, product_type: str = "LUGGAGE") -> ListingRef:
    return ListingRef(sku, {"product_type": product_type}, "listed", 1)


def push(ref: ListingRef, quantity: int) -> StockPush:
    return StockPush(ref, quantity, expected=None, idempotency_key=f"k:{ref.sku}")


def levels_answer(updated: str = "2026-03-01T11:00:00Z", **quantities: int) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "numberOfResults": len(quantities),
            "items": [
                {
                    "sku": sku,
                    "summaries": [
                        {
                            "marketplaceId": MARKET,
                            "productType": "LUGGAGE",
                            "status": ["BUYABLE"],
                            "itemName": sku,
                            "createdDate": "2026-01-01T00:00:00Z",
                            "lastUpdatedDate": updated,
                        }
                    ],
                    "fulfillmentAvailability": [
                        {"fulfillmentChannelCode": "DEFAULT", "quantity": qty}
                    ],
                }
                for sku, qty in quantities.items()
            ],
        },
    )


# -- Login with Amazon -----------------------------------------------------------------------------


async def test_the_lwa_refresh_grant_is_a_form_post_and_its_token_is_reused(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    lwa = token_route(api)
    orders = api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(
        return_value=httpx.Response(404, json={"errors": [{"code": "NotFound", "message": "x"}]})
    )
    assert await connector.fetch_order(ORDER_ID) is None
    assert await connector.fetch_order(ORDER_ID) is None
    assert lwa.call_count == 1, "the access token is cached for its hour"
    sent = lwa.calls[0].request
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["Atzr|refresh"],
        "client_id": ["amzn1.application-oa2-client.abc"],
        "client_secret": ["client-secret"],
    }
    for call in orders.calls:
        assert call.request.headers["x-amz-access-token"] == "Atza|one"
        assert "Authorization" not in call.request.headers  # no SigV4 since 2023-10-02


async def test_the_token_is_refreshed_shortly_before_it_expires(
    api: respx.MockRouter, time: FakeTime, connector: AmazonConnector
) -> None:
    lwa = token_route(api)
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(return_value=httpx.Response(404))
    await connector.fetch_order(ORDER_ID)
    time.offset += 3600 - 59  # inside the last minute of the token's hour
    await connector.fetch_order(ORDER_ID)
    assert lwa.call_count == 2


@pytest.mark.parametrize(("status", "error"), [(400, "invalid_grant"), (401, "invalid_client")])
async def test_a_refused_refresh_is_an_auth_error(
    api: respx.MockRouter, connector: AmazonConnector, status: int, error: str
) -> None:
    api.post(LWA).mock(return_value=httpx.Response(status, json={"error": error}))
    with pytest.raises(AuthError):
        await connector.fetch_order(ORDER_ID)


async def test_a_403_refreshes_the_token_once_then_is_an_auth_error(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    lwa = api.post(LWA).mock(
        side_effect=[
            httpx.Response(200, json={"access_token": f"Atza|{n}", "expires_in": 3600})
            for n in range(3)
        ]
    )
    denied = {
        "errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]
    }
    route = api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(
        side_effect=[
            httpx.Response(403, json=denied),
            httpx.Response(200, json={"payload": order_json()}),
            httpx.Response(403, json=denied),
            httpx.Response(403, json=denied),
        ]
    )
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}/orderItems").mock(
        return_value=httpx.Response(200, json=items_json(("1", "MUG", 1, 0)))
    )
    assert await connector.fetch_order(ORDER_ID) is not None
    with pytest.raises(AuthError, match="Unauthorized: Access to requested resource is denied"):
        await connector.fetch_order(ORDER_ID)
    assert [c.request.headers["x-amz-access-token"] for c in route.calls] == [
        "Atza|0",
        "Atza|1",
        "Atza|1",
        "Atza|2",
    ]
    assert lwa.call_count == 3


# -- orders ----------------------------------------------------------------------------------------


async def test_get_orders_sends_a_closed_window_and_resends_it_with_next_token(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    token = "a+b/c=="  # Amazon's tokens are base64: '+' and '/' must be encoded
    orders = api.get(f"{API}/orders/v0/orders").mock(
        side_effect=[
            httpx.Response(200, json={"payload": {"Orders": [order_json()], "NextToken": token}}),
            httpx.Response(200, json={"payload": {"Orders": []}}),
        ]
    )
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}/orderItems").mock(
        return_value=httpx.Response(200, json=items_json(("1", "MUG", 2, 0)))
    )
    cursor = json.dumps(
        {"since": "2026-03-01T09:00:00Z", "after": None, "before": None, "next": None}
    )
    pages = [page async for page in connector.fetch_orders(cursor)]
    first, second = (call.request for call in orders.calls)
    window = {
        "MarketplaceIds": MARKET,
        "LastUpdatedAfter": "2026-03-01T08:55:00Z",  # since minus the 5 minute look-back
        "LastUpdatedBefore": "2026-03-01T11:58:30Z",  # now minus 2 minutes, whole seconds
        "MaxResultsPerPage": "2",
    }
    assert dict(first.url.params) == window
    assert dict(second.url.params) == {**window, "NextToken": token}
    assert "NextToken=a%2Bb%2Fc%3D%3D" in str(second.url)
    assert [page.done for page in pages] == [False, True]
    assert json.loads(pages[0].cursor) == {
        "since": "2026-03-01T09:00:00Z",
        "checked": "2026-03-01T08:55:00Z",  # a cursor from before `checked`: since - look-back
        "after": "2026-03-01T08:55:00Z",
        "before": "2026-03-01T11:58:30Z",
        "late": False,
        "next": token,
        "seen": [],  # the page was read whole before it was committed
    }
    assert json.loads(pages[1].cursor)["since"] == "2026-03-01T11:58:30Z"


async def test_each_order_comes_once_its_items_are_in_and_a_cut_short_page_resumes_past_it(
    api: respx.MockRouter, time: FakeTime
) -> None:
    """After an outage a page holds orders whose items are all still to read, one call each:
    each order comes (and commits) as soon as its own items are in, and a poll cut short
    part-way through the page reads neither those orders nor their items again."""
    token_route(api)
    ids = ["111-0000001-0000001", "111-0000002-0000002"]
    page = {"payload": {"Orders": [order_json(AmazonOrderId=i) for i in ids]}}
    api.get(f"{API}/orders/v0/orders").mock(return_value=httpx.Response(200, json=page))
    items = {
        i: api.get(f"{API}/orders/v0/orders/{i}/orderItems").mock(
            return_value=httpx.Response(200, json=items_json(("1", "MUG", 1, 0)))
        )
        for i in ids
    }
    cursor = json.dumps({"since": "2026-03-01T11:50:00Z"})
    first = make(time)
    try:
        polled = aiter(first.fetch_orders(cursor))
        batch = await anext(polled)
        assert [o.external_id for o in batch.orders] == ids[:1] and not batch.done
        assert items[ids[1]].call_count == 0, "the first order waited on the second's items"
    finally:
        await polled.aclose()
        await first.aclose()
    # The first batch committed; then the agent was killed. A new one resumes past it.
    await time.sleep(600)  # and starts well after: the resumed read still ends where it did
    second = make(time)
    try:
        rest = [page async for page in second.fetch_orders(batch.cursor)]
    finally:
        await second.aclose()
    assert [o.external_id for p in rest for o in p.orders] == ids[1:]
    assert rest[-1].done
    # What the poll has read through is that window's end, not this poll's reach.
    window_end = json.loads(batch.cursor)["before"]
    assert rest[-1].read_through == datetime.fromisoformat(window_end.replace("Z", "+00:00"))
    assert (items[ids[0]].call_count, items[ids[1]].call_count) == (1, 1)


async def test_orders_map_amazon_statuses_items_and_fba(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(
        return_value=httpx.Response(
            200, json={"payload": order_json(OrderStatus="Canceled", FulfillmentChannel="AFN")}
        )
    )
    first_page = items_json(("1", "MUG", 3, 1))
    first_page["payload"]["NextToken"] = "more"
    items = api.get(f"{API}/orders/v0/orders/{ORDER_ID}/orderItems").mock(
        side_effect=[
            httpx.Response(200, json=first_page),
            httpx.Response(200, json=items_json(("2", "TEE", 1, 0))),
        ]
    )
    order = await connector.fetch_order(ORDER_ID)
    assert order is not None
    assert order.status is OrderStatus.CANCELLED and order.fulfilled_by_channel
    lines = [(ln.line_id, ln.sku, ln.quantity, ln.shipped, ln.cancelled) for ln in order.lines]
    assert lines == [
        ("1", "MUG", 3, 1, 2),
        ("2", "TEE", 1, 0, 1),
    ]
    assert order.total == "24.00" and order.currency == "USD"
    assert dict(items.calls[1].request.url.params) == {"NextToken": "more"}


# -- stock -----------------------------------------------------------------------------------------


async def test_a_patch_replaces_fulfillment_availability_then_reads_it_back(
    api: respx.MockRouter, time: FakeTime, connector: AmazonConnector
) -> None:
    token_route(api)
    sku = "A/B 1"
    patch = api.patch(f"{API}/listings/2021-08-01/items/{SELLER}/A%2FB%201").mock(
        return_value=httpx.Response(
            200, json={"sku": sku, "status": "ACCEPTED", "submissionId": "s1", "issues": []}
        )
    )
    search = api.get(f"{API}/listings/2021-08-01/items/{SELLER}").mock(
        # before the patch; a read-back before Amazon applied it; one after
        side_effect=[levels_answer(**{sku: 1}), levels_answer(**{sku: 1}),
                     levels_answer(**{sku: 9})]
    )
    (result,) = await connector.push_stock([push(listing(sku), 9)])
    assert result.outcome is PushOutcome.DONE and result.observed == 9
    sent = patch.calls[0].request
    assert dict(sent.url.params) == {"marketplaceIds": MARKET, "includedData": "issues"}
    assert body(sent) == {
        "productType": "LUGGAGE",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 9}],
            }
        ],
    }
    assert dict(search.calls[0].request.url.params) == {
        "marketplaceIds": MARKET,
        "includedData": "summaries,fulfillmentAvailability",
        "identifiers": sku,
        "identifiersType": "SKU",
        "pageSize": "20",
    }
    assert time.slept[:2] == [0.25, 0.5], "read-backs back off"


async def test_an_invalid_patch_is_permanent_with_amazons_issue(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    api.patch(f"{API}/listings/2021-08-01/items/{SELLER}/MUG").mock(
        return_value=httpx.Response(
            200,
            json={
                "sku": "MUG",
                "status": "INVALID",
                "submissionId": "s1",
                "issues": [
                    {
                        "code": "90000900",
                        "message": "bad attribute",
                        "severity": "ERROR",
                        "categories": [],
                    }
                ],
            },
        )
    )
    api.get(f"{API}/listings/2021-08-01/items/{SELLER}").mock(return_value=levels_answer(MUG=5))
    (result,) = await connector.push_stock([push(listing("MUG"), 3)])
    assert result.outcome is PushOutcome.PERMANENT
    assert "90000900: bad attribute" in result.message


async def test_a_patch_applied_then_sold_on_amazon_counts_as_done(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    """Amazon applied our 9, then a shopper there bought 2: the level is 7, but the listing's
    lastUpdatedDate moved, so the push is done (the sale reaches us with its order)."""
    token_route(api)
    api.patch(f"{API}/listings/2021-08-01/items/{SELLER}/MUG").mock(
        return_value=httpx.Response(
            200, json={"sku": "MUG", "status": "ACCEPTED", "submissionId": "s1", "issues": []}
        )
    )
    api.get(f"{API}/listings/2021-08-01/items/{SELLER}").mock(
        side_effect=[levels_answer(MUG=4), levels_answer("2026-03-01T12:00:01Z", MUG=7)]
    )
    (result,) = await connector.push_stock([push(listing("MUG"), 9)])
    assert result.outcome is PushOutcome.DONE, result


async def test_an_unconfirmed_patch_is_retried_without_submitting_again(
    api: respx.MockRouter, time: FakeTime
) -> None:
    token_route(api)
    connector = make(time, confirm_timeout=timedelta(seconds=2))
    patch = api.patch(f"{API}/listings/2021-08-01/items/{SELLER}/MUG").mock(
        return_value=httpx.Response(
            200, json={"sku": "MUG", "status": "ACCEPTED", "submissionId": "s1", "issues": []}
        )
    )
    search = api.get(f"{API}/listings/2021-08-01/items/{SELLER}").mock(
        return_value=levels_answer(MUG=1)
    )
    try:
        (first,) = await connector.push_stock([push(listing("MUG"), 4)])
        search.mock(return_value=levels_answer(MUG=4))
        (second,) = await connector.push_stock([push(listing("MUG"), 4)])
    finally:
        await connector.aclose()
    assert first.outcome is PushOutcome.RETRY and first.retry_after == NOT_APPLIED_RETRY_S
    assert "not applied yet" in first.message
    assert second.outcome is PushOutcome.DONE
    assert patch.call_count == 1, "the accepted submission was waited on, not sent again"


async def test_a_large_batch_goes_as_one_json_listings_feed(
    api: respx.MockRouter, time: FakeTime
) -> None:
    token_route(api)
    connector = make(time, feed_threshold=1)
    document = api.post(f"{API}/feeds/2021-06-30/documents").mock(
        return_value=httpx.Response(
            201, json={"feedDocumentId": "doc-in", "url": f"{S3}/in?X-Amz-Signature=sig"}
        )
    )
    upload = api.put(f"{S3}/in").mock(return_value=httpx.Response(200))
    create = api.post(f"{API}/feeds/2021-06-30/feeds").mock(
        return_value=httpx.Response(202, json={"feedId": "50001"})
    )
    feed = {"feedId": "50001", "feedType": "JSON_LISTINGS_FEED", "createdTime": "x"}
    poll = api.get(f"{API}/feeds/2021-06-30/feeds/50001").mock(
        side_effect=[
            httpx.Response(200, json={**feed, "processingStatus": "IN_QUEUE"}),
            httpx.Response(200, json={**feed, "processingStatus": "IN_PROGRESS"}),
            httpx.Response(
                200,
                json={**feed, "processingStatus": "DONE", "resultFeedDocumentId": "doc-out"},
            ),
        ]
    )
    api.get(f"{API}/feeds/2021-06-30/documents/doc-out").mock(
        return_value=httpx.Response(
            200,
            json={
                "feedDocumentId": "doc-out",
                "url": f"{S3}/out?X-Amz-Signature=sig2",
                "compressionAlgorithm": "GZIP",
            },
        )
    )
    report = {
        "header": {"sellerId": SELLER, "version": "2.0", "feedId": "50001"},
        "issues": [{"messageId": 2, "severity": "ERROR", "code": "4000001", "message": "no SKU"}],
        "summary": {
            "errors": 1,
            "warnings": 0,
            "messagesProcessed": 2,
            "messagesAccepted": 1,
            "messagesInvalid": 1,
        },
    }
    download = api.get(f"{S3}/out").mock(
        return_value=httpx.Response(200, content=gzip.compress(json.dumps(report).encode()))
    )
    try:
        results = await connector.push_stock(
            [push(listing("MUG"), 5), push(listing("GHOST", "PRODUCT"), 2)]
        )
    finally:
        await connector.aclose()
    assert [(r.key, r.outcome) for r in results] == [
        ("MUG", PushOutcome.DONE),
        ("GHOST", PushOutcome.PERMANENT),
    ]
    assert "4000001: no SKU" in results[1].message
    assert body(document.calls[0].request) == {"contentType": "application/json; charset=UTF-8"}
    put = upload.calls[0].request
    assert put.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert "x-amz-access-token" not in put.headers, "the presigned URL is the only grant"
    assert body(put) == {
        "header": {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"},
        "messages": [
            {
                "messageId": n,
                "sku": sku,
                "operationType": "PATCH",
                "productType": product_type,
                "patches": [
                    {
                        "op": "replace",
                        "path": "/attributes/fulfillment_availability",
                        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": qty}],
                    }
                ],
            }
            for n, sku, product_type, qty in ((1, "MUG", "LUGGAGE", 5), (2, "GHOST", "PRODUCT", 2))
        ],
    }
    assert body(create.calls[0].request) == {
        "feedType": "JSON_LISTINGS_FEED",
        "marketplaceIds": [MARKET],
        "inputFeedDocumentId": "doc-in",
    }
    assert poll.call_count == 3
    assert "x-amz-access-token" not in download.calls[0].request.headers


# -- shipments -------------------------------------------------------------------------------------


def shipment(*lines: ShipmentLine, **changes: Any) -> ShipmentPush:
    values: dict[str, Any] = {
        "order_id": ORDER_ID,
        "shipment_id": "sh-7",
        "carrier": "UPS",
        "tracking_number": "1Z999",
        "tracking_url": "",
        "lines": lines,
        "idempotency_key": "ship-7",
        "shipped_at": datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
    }
    values.update(changes)
    return ShipmentPush(**values)


async def test_confirm_shipment_sends_one_package(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(
        return_value=httpx.Response(200, json={"payload": order_json()})
    )
    confirm = api.post(f"{API}/orders/v0/orders/{ORDER_ID}/shipmentConfirmation").mock(
        return_value=httpx.Response(204)
    )
    done = await connector.push_shipment(
        shipment(
            ShipmentLine("11", "MUG", 1),
            ShipmentLine("11", "MUG", 1),
            ShipmentLine("12", "TEE", 1),
            carrier="Speedy Parcels",
        )
    )
    assert done.outcome is PushOutcome.DONE
    assert body(confirm.calls[0].request) == {
        "marketplaceId": MARKET,
        "packageDetail": {
            "packageReferenceId": package_reference("sh-7"),
            "carrierCode": "Other",
            "carrierName": "Speedy Parcels",
            "trackingNumber": "1Z999",
            "shipDate": "2026-03-01T11:00:00Z",
            "orderItems": [
                {"orderItemId": "11", "quantity": 2},
                {"orderItemId": "12", "quantity": 1},
            ],
        },
    }
    assert package_reference("sh-7").isdigit() and package_reference("42") == "42"


async def test_a_replayed_package_is_done(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(
        return_value=httpx.Response(
            200, json={"payload": order_json(OrderStatus="PartiallyShipped")}
        )
    )
    api.post(f"{API}/orders/v0/orders/{ORDER_ID}/shipmentConfirmation").mock(
        return_value=httpx.Response(
            400,
            json={
                "errors": [
                    {
                        "code": "InvalidInput",
                        "message": "Package 1 has already been confirmed for order x.",
                    }
                ]
            },
        )
    )
    result = await connector.push_shipment(shipment(ShipmentLine("11", "MUG", 1)))
    assert result.outcome is PushOutcome.DONE and "already" in result.message


# -- rate limits -----------------------------------------------------------------------------------


async def test_a_429_without_retry_after_waits_for_the_operations_refill(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    quota = {
        "errors": [
            {
                "code": "QuotaExceeded",
                "message": "You exceeded your quota for the requested resource.",
                "details": "",
            }
        ]
    }
    api.get(f"{API}/orders/v0/orders").mock(return_value=httpx.Response(429, json=quota))
    with pytest.raises(RateLimited) as caught:
        await anext(connector.fetch_orders(None))
    # getOrders refills 0.0167 tokens a second (paced at 97 % of that): about a minute.
    assert caught.value.retry_after == pytest.approx(1 / (0.0167 * 0.97), rel=0.01)
    assert "QuotaExceeded: You exceeded your quota" in str(caught.value)
    operations = connector.limiter.snapshot()["operations"]
    assert operations["getOrders"]["throttled"] == 1
    # Full (one token below the burst of 30, kept spare for arrival jitter).
    assert operations["getOrderItems"]["available"] == 29, "other operations are not held back"


async def test_the_limiter_adopts_the_rate_amazon_reports(
    api: respx.MockRouter, connector: AmazonConnector
) -> None:
    token_route(api)
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}").mock(
        return_value=httpx.Response(
            200, json={"payload": order_json()}, headers={"x-amzn-RateLimit-Limit": "2.0"}
        )
    )
    api.get(f"{API}/orders/v0/orders/{ORDER_ID}/orderItems").mock(
        return_value=httpx.Response(200, json=items_json(("1", "MUG", 1, 0)))
    )
    await connector.fetch_order(ORDER_ID)
    snapshot = connector.limiter.snapshot()
    assert snapshot["model"] == "token_bucket"
    assert snapshot["operations"]["getOrder"]["rate_per_s"] == pytest.approx(2.0 * 0.97)

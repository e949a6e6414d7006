"""The eBay sandbox as clients see it: the filter grammar, paging, bulk rules, quotas, auth, faults.

Real loopback sockets and a ManualClock: token expiry, the 90-day window and the quota reset at
midnight Pacific happen when the test moves the clock, never because time passed.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.ebay.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    EbaySandbox,
)
from connectors.ebay.wire import SCOPES, encode_filter, format_time
from connectors.sandbox import ManualClock, Served, serve

# 20:00 UTC is 12:00 in Los Angeles (PST, UTC-8) on this date.
START = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
FULFILLMENT = "/sell/fulfillment/v1"
INVENTORY = "/sell/inventory/v1"
BASIC = (
    "Basic " + base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
)


@dataclass
class Account:
    sandbox: EbaySandbox
    clock: ManualClock
    served: Served
    http: httpx.AsyncClient
    token: str = ""

    async def grant(
        self, refresh_token: str = DEFAULT_REFRESH_TOKEN, **form: str
    ) -> httpx.Response:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": " ".join(SCOPES),
        }
        data.update(form)
        return await self.http.post(
            "/identity/v1/oauth2/token", data=data, headers={"Authorization": BASIC}
        )

    async def login(self) -> None:
        response = await self.grant()
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "X-EBAY-C-MARKETPLACE-ID": "EBAY_US",
            **kwargs.pop("headers", {}),
        }
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def orders(self, filter_text: str | None = None, **params: Any) -> httpx.Response:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        if filter_text is not None:
            query = f"filter={encode_filter(filter_text)}" + (f"&{query}" if query else "")
        return await self.api("GET", f"{FULFILLMENT}/order?{query}")

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, f"/_control{path}", json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def buy(self, **lines: int) -> dict[str, Any]:
        body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines.items()]}
        return await self.control("POST", "/orders", body)

    async def stock(self, **levels: int) -> None:
        listings = [{"sku": sku, "quantity": qty} for sku, qty in levels.items()]
        await self.control("POST", "/listings", {"listings": listings})

    async def state(self) -> dict[str, Any]:
        return await self.control("GET", "/state")


@pytest.fixture
async def account() -> AsyncIterator[Account]:
    clock = ManualClock(START)
    sandbox = EbaySandbox(clock=clock, seed=3)
    served = await serve(sandbox.build_app())
    http = httpx.AsyncClient(base_url=served.url, timeout=10)
    account = Account(sandbox, clock, served, http)
    try:
        await account.login()
        yield account
    finally:
        await http.aclose()
        await served.close()


def error_id(response: httpx.Response) -> int:
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    return int(errors[0]["errorId"])


def ago(**delta: float) -> str:
    return format_time(START - timedelta(**delta))


# -- auth ------------------------------------------------------------------------------------------


async def test_the_token_endpoint_takes_only_the_apps_credentials_and_refresh_token(
    account: Account,
) -> None:
    ok = await account.grant()
    assert ok.json()["expires_in"] == 7200 and ok.json()["token_type"] == "User Access Token"
    wrong = await account.grant("v^1.1#someone-elses")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    scope = await account.grant(scope="https://api.ebay.com/oauth/api_scope/commerce.identity")
    assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")
    grant = await account.grant(grant_type="client_credentials")
    assert grant.json()["error"] == "unsupported_grant_type"
    bad_client = await account.http.post(
        "/identity/v1/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH_TOKEN},
        headers={"Authorization": "Basic " + base64.b64encode(b"app:wrong").decode()},
    )
    assert (bad_client.status_code, bad_client.json()["error"]) == (401, "invalid_client")


async def test_api_calls_need_a_live_bearer_token_and_a_marketplace(account: Account) -> None:
    assert (await account.orders()).status_code == 200
    no_marketplace = await account.http.get(
        f"{FULFILLMENT}/order", headers={"Authorization": f"Bearer {account.token}"}
    )
    assert no_marketplace.status_code == 400
    stranger = await account.http.get(
        f"{INVENTORY}/inventory_item",
        headers={"Authorization": "Bearer forged", "X-EBAY-C-MARKETPLACE-ID": "EBAY_US"},
    )
    assert (stranger.status_code, error_id(stranger)) == (401, 1001)
    account.clock.advance(7200)  # the user token lives two hours
    expired = await account.orders()
    assert (expired.status_code, error_id(expired)) == (401, 1001)
    await account.login()
    assert (await account.orders()).status_code == 200
    await account.control("POST", "/tokens/revoke")
    assert (await account.orders()).status_code == 401


# -- getOrders: the filter -------------------------------------------------------------------------


async def test_filters_select_by_date_and_fulfillment_status(account: Account) -> None:
    await account.stock(MUG=10)
    first = await account.buy(MUG=1)
    account.clock.advance(3600)
    second = await account.buy(MUG=1)
    account.clock.advance(60)
    # The first order changes last: modified after the second was created.
    await account.control("POST", f"/orders/{first['id']}/request_cancel")
    account.clock.advance(60)

    async def ids(text: str) -> list[str]:
        response = await account.orders(text)
        assert response.status_code == 200, response.text
        return [o["orderId"] for o in response.json()["orders"]]

    one_hour_on = format_time(START + timedelta(minutes=30))
    assert await ids(f"creationdate:[{one_hour_on}..]") == [second["id"]]
    assert await ids(f"lastmodifieddate:[{format_time(START + timedelta(minutes=61))}..]") == [
        first["id"]
    ]
    end = format_time(START + timedelta(minutes=30))
    assert await ids(f"creationdate:[{ago(hours=1)}..{end}]") == [first["id"]]
    # Both dates given: only creationdate counts (OAS getOrders).
    both = f"creationdate:[{one_hour_on}..],lastmodifieddate:[{ago(hours=1)}..{end}]"
    assert await ids(both) == [second["id"]]
    # Newest creationDate first.
    assert await ids("orderfulfillmentstatus:{NOT_STARTED|IN_PROGRESS}") == [
        second["id"],
        first["id"],
    ]
    assert await ids("orderfulfillmentstatus:{FULFILLED|IN_PROGRESS}") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modifieddate:[2026-03-01T00:00:00.000Z..]", 30700),
        ("orderfulfillmentstatus:{NOT_STARTED|FULFILLED}", 30800),
        ("orderfulfillmentstatus:NOT_STARTED", 30800),
        ("lastmodifieddate:2026-03-01T00:00:00.000Z", 30800),
        ("lastmodifieddate:[2026-03-01..]", 30810),
        ("lastmodifieddate:[..2026-03-01T00:00:00.000Z]", 30820),
        ("lastmodifieddate:[2025-11-01T00:00:00.000Z..]", 30830),
        ("creationdate:[2026-03-02T00:00:00.000Z..2026-03-01T00:00:00.000Z]", 30840),
        ("creationdate:[2026-03-03T00:00:00.000Z..]", 30850),
    ],
)
async def test_bad_filters_get_the_documented_error_ids(
    account: Account, text: str, expected: int
) -> None:
    response = await account.orders(text)
    assert (response.status_code, error_id(response)) == (400, expected)
    assert response.json()["errors"][0]["domain"] == "API_FULFILLMENT"


async def test_brackets_must_arrive_percent_encoded(account: Account) -> None:
    await account.stock(MUG=1)
    await account.buy(MUG=1)
    text = f"lastmodifieddate:[{ago(hours=1)}..]"
    encoded = await account.api("GET", f"{FULFILLMENT}/order?filter={encode_filter(text)}")
    assert encoded.json()["total"] == 1
    raw = await account.api("GET", f"{FULFILLMENT}/order?filter={text}")
    assert (raw.status_code, error_id(raw)) == (400, 30800)
    await account.control("PUT", "/config", {"strict_encoding": False})
    lenient = await account.api("GET", f"{FULFILLMENT}/order?filter={text}")
    assert lenient.json()["total"] == 1


# -- getOrders: paging -----------------------------------------------------------------------------


async def test_offset_pages_carry_href_total_next_and_prev(account: Account) -> None:
    await account.stock(MUG=100)
    placed = []
    for _ in range(7):
        placed.append((await account.buy(MUG=1))["id"])
        account.clock.advance(1)
    text = f"lastmodifieddate:[{ago(hours=1)}..]"
    seen: list[str] = []
    response = await account.orders(text, limit=3)
    pages = []
    while True:
        body = response.json()
        pages.append(body)
        seen += [o["orderId"] for o in body["orders"]]
        if "next" not in body:
            break
        # `next` is a URL the client can follow as it is.
        response = await account.api("GET", httpx.URL(body["next"]).raw_path.decode())
    assert seen == list(reversed(placed))
    assert [(p["offset"], p["limit"], p["total"]) for p in pages] == [
        (0, 3, 7),
        (3, 3, 7),
        (6, 3, 7),
    ]
    assert "prev" not in pages[0] and "offset=3" in pages[2]["prev"]
    assert "%5B" in pages[0]["href"]
    too_big = await account.orders(text, limit=201)
    assert (too_big.status_code, error_id(too_big)) == (400, 31100)
    negative = await account.orders(text, offset=-1)
    assert (negative.status_code, error_id(negative)) == (400, 31000)


async def test_get_orders_leaves_cancel_requests_empty_get_order_fills_them(
    account: Account,
) -> None:
    await account.stock(MUG=3)
    order = await account.buy(MUG=1)
    await account.control("POST", f"/orders/{order['id']}/request_cancel")
    listed = (await account.orders()).json()["orders"][0]["cancelStatus"]
    single = (await account.api("GET", f"{FULFILLMENT}/order/{order['id']}")).json()
    assert listed == {"cancelState": "IN_PROGRESS", "cancelRequests": []}
    assert single["cancelStatus"]["cancelRequests"][0]["cancelRequestState"] == "REQUESTED"
    missing = await account.api("GET", f"{FULFILLMENT}/order/99-99999-99999")
    assert missing.status_code == 404
    malformed = await account.api("GET", f"{FULFILLMENT}/order/not-an-id")
    assert (malformed.status_code, error_id(malformed)) == (400, 32100)


# -- the shopper and the listing ------------------------------------------------------------------


async def test_buyers_see_the_smaller_of_item_and_offer_quantity(account: Account) -> None:
    await account.control(
        "POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 10, "offer_quantity": 4}]}
    )
    listing = (await account.state())["listings"]["MUG"]
    assert (listing["quantity"], listing["item_quantity"], listing["offer_quantity"]) == (4, 10, 4)
    refused = await account.http.post(
        "/_control/orders", json={"lines": [{"sku": "MUG", "quantity": 5}]}
    )
    assert (refused.status_code, refused.json()["error"]) == (409, "insufficient_stock")
    order = await account.buy(MUG=3)
    assert (await account.state())["listings"]["MUG"]["quantity"] == 1
    await account.control("POST", f"/orders/{order['id']}/cancel")
    state = await account.state()
    assert state["listings"]["MUG"]["quantity"] == 4
    assert state["orders"][order["id"]]["cancelStatus"]["cancelState"] == "CANCELED"


# -- shipping fulfillments -------------------------------------------------------------------------


async def test_a_fulfillment_is_created_validated_and_moves_the_statuses(account: Account) -> None:
    await account.stock(MUG=5, TEE=5)
    order = await account.buy(MUG=2, TEE=1)
    mug, tee = (line["lineItemId"] for line in order["lineItems"])
    path = f"{FULFILLMENT}/order/{order['id']}/shipping_fulfillment"

    async def ship(body: dict[str, Any]) -> httpx.Response:
        return await account.api("POST", path, json=body)

    bad_line = await ship({"lineItems": [{"lineItemId": "1", "quantity": 1}]})
    assert error_id(bad_line) == 32200
    too_many = await ship({"lineItems": [{"lineItemId": mug, "quantity": 3}]})
    assert error_id(too_many) == 32600
    half = await ship({"lineItems": [{"lineItemId": mug, "quantity": 2}], "trackingNumber": "1Z9"})
    assert error_id(half) == 32300  # a tracking number needs its carrier
    bad_date = await ship({"lineItems": [{"lineItemId": mug}], "shippedDate": "yesterday"})
    assert error_id(bad_date) == 32500
    body = {
        "lineItems": [{"lineItemId": mug, "quantity": 2}],
        "shippedDate": "2026-03-02T19:00:00.000Z",
        "shippingCarrierCode": "UPS",
        "trackingNumber": "1Z999AA10123456784",
    }
    created = await ship(body)
    assert created.status_code == 201
    assert created.headers["Location"].endswith(f"{path}/1Z999AA10123456784")
    again = await ship({**body, "lineItems": [{"lineItemId": tee, "quantity": 1}]})
    assert error_id(again) == 32300  # the fulfillment id is the tracking number: taken
    shown = (await account.api("GET", f"{FULFILLMENT}/order/{order['id']}")).json()
    assert shown["orderFulfillmentStatus"] == "IN_PROGRESS"
    assert [li["lineItemFulfillmentStatus"] for li in shown["lineItems"]] == [
        "FULFILLED",
        "NOT_STARTED",
    ]
    listed = (await account.api("GET", path)).json()
    assert listed["total"] == 1
    assert listed["fulfillments"][0]["shipmentTrackingNumber"] == "1Z999AA10123456784"
    rest = {**body, "lineItems": [{"lineItemId": tee, "quantity": 1}], "trackingNumber": "1Z2"}
    assert (await ship(rest)).status_code == 201
    shown = (await account.api("GET", f"{FULFILLMENT}/order/{order['id']}")).json()
    assert shown["orderFulfillmentStatus"] == "FULFILLED"
    shipments = (await account.state())["shipments"]
    assert [(s["tracking_number"], s["carrier"]) for s in shipments] == [
        ("1Z999AA10123456784", "UPS"),
        ("1Z2", "UPS"),
    ]


# -- inventory -------------------------------------------------------------------------------------


async def test_bulk_update_answers_per_item_and_refuses_more_than_25(account: Account) -> None:
    await account.stock(MUG=5, TEE=5)
    offers = {sku: item["offer_id"] for sku, item in (await account.state())["listings"].items()}

    def request(sku: str, quantity: int, offer_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"sku": sku, "shipToLocationAvailability": {"quantity": quantity}}
        if offer_id:
            body["offers"] = [{"offerId": offer_id, "availableQuantity": quantity}]
        return body

    path = f"{INVENTORY}/bulk_update_price_quantity"
    too_many = await account.api(
        "POST", path, json={"requests": [request("MUG", 1) for _ in range(26)]}
    )
    assert (too_many.status_code, error_id(too_many)) == (400, 25002)
    mixed = await account.api(
        "POST",
        path,
        json={
            "requests": [
                request("MUG", 8, offers["MUG"]),
                request("GHOST", 1),
                request("TEE", 2, offers["MUG"]),  # another SKU's offer
            ]
        },
    )
    assert mixed.status_code == 207
    answers = mixed.json()["responses"]
    assert answers[0] == {"statusCode": 200, "sku": "MUG", "offerId": offers["MUG"]}
    assert answers[1]["statusCode"] == 400 and answers[1]["errors"][0]["errorId"] == 25702
    assert answers[2]["statusCode"] == 400 and answers[2]["sku"] == "TEE"
    state = await account.state()
    assert {sku: item["quantity"] for sku, item in state["listings"].items()} == {
        "MUG": 8,
        "TEE": 5,
    }
    assert state["effective_changes"] == 1
    same = await account.api("POST", path, json={"requests": [request("MUG", 8, offers["MUG"])]})
    assert same.status_code == 200
    assert (await account.state())["effective_changes"] == 1  # the same number changes nothing


async def test_a_listing_takes_at_most_the_daily_revision_cap(account: Account) -> None:
    await account.stock(MUG=5)
    await account.control("PUT", "/config", {"revision_cap": 2})
    offer_id = (await account.state())["listings"]["MUG"]["offer_id"]
    path = f"{INVENTORY}/bulk_update_price_quantity"

    async def revise(quantity: int) -> int:
        offers = [{"offerId": offer_id, "availableQuantity": quantity}]
        body = {"requests": [{"sku": "MUG", "offers": offers}]}
        return (await account.api("POST", path, json=body)).json()["responses"][0]["statusCode"]

    assert [await revise(4), await revise(3), await revise(2)] == [200, 200, 400]
    account.clock.advance(12 * 3600)  # past midnight in Los Angeles
    await account.login()
    assert await revise(2) == 200


async def test_inventory_pages_follow_next_links(account: Account) -> None:
    await account.stock(**{f"SKU-{n}": n for n in range(5)})

    async def walk() -> list[str]:
        skus: list[str] = []
        path = f"{INVENTORY}/inventory_item?limit=2&offset=0"
        while path:
            body = (await account.api("GET", path)).json()
            skus += [item["sku"] for item in body["inventoryItems"]]
            path = httpx.URL(body["next"]).raw_path.decode() if "next" in body else ""
        return skus

    expected = [f"SKU-{n}" for n in range(5)]
    assert await walk() == expected  # offset is a page number, as the OAS says
    second = (await account.api("GET", f"{INVENTORY}/inventory_item?limit=2&offset=1")).json()
    assert [item["sku"] for item in second["inventoryItems"]] == ["SKU-2", "SKU-3"]
    await account.control("PUT", "/config", {"inventory_offset": "items"})
    assert await walk() == expected
    bulk = await account.api(
        "POST",
        f"{INVENTORY}/bulk_get_inventory_item",
        json={"requests": [{"sku": "SKU-3"}, {"sku": "NOPE"}]},
    )
    assert bulk.status_code == 207
    assert [r["statusCode"] for r in bulk.json()["responses"]] == [200, 404]
    quantity = bulk.json()["responses"][0]["inventoryItem"]["availability"]
    assert quantity["shipToLocationAvailability"]["quantity"] == 3


# -- quotas ----------------------------------------------------------------------------------------


async def test_daily_quotas_refuse_over_the_limit_and_reset_at_pacific_midnight(
    account: Account,
) -> None:
    await account.control("PUT", "/config", {"daily_limits": {"inventory": 2}})
    path = f"{INVENTORY}/inventory_item"
    statuses = [(await account.api("GET", path)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = await account.api("GET", path)
    assert error_id(refused) == 2001
    assert (await account.orders()).status_code == 200  # another API, another count
    state = await account.state()
    assert state["over_limit"] == 2
    assert state["daily"]["inventory"]["used"] == 2
    account.clock.advance(12 * 3600 - 1)  # 23:59:59 in Los Angeles (noon + 12 h - 1 s)
    await account.login()
    assert (await account.api("GET", path)).status_code == 429
    account.clock.advance(1)  # midnight Pacific: a new day
    assert (await account.api("GET", path)).status_code == 200
    await account.control("PUT", "/config", {"limits": False})
    assert all([(await account.api("GET", path)).status_code == 200 for _ in range(3)])


# -- faults ----------------------------------------------------------------------------------------


async def test_injected_faults_answer_in_ebays_error_shape(account: Account) -> None:
    await account.control("PUT", "/faults", {"storm_s": 30, "storm_retry_after_s": 7})
    storm = await account.orders()
    assert (storm.status_code, storm.headers["Retry-After"], error_id(storm)) == (429, "7", 2001)
    assert storm.json()["errors"][0]["domain"] == "ACCESS"
    await account.control("PUT", "/faults", {"storm_s": 0, "error_rate": 1.0})
    broken = await account.api("GET", f"{INVENTORY}/inventory_item")
    assert (broken.status_code, error_id(broken)) == (500, 2003)
    assert broken.json()["errors"][0]["category"] == "APPLICATION"

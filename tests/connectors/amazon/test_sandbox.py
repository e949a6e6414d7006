"""The Amazon sandbox's rules, driven over HTTP as a client would meet them.

Time is the sandbox's ManualClock: two minutes, a bucket refill or a patch's apply delay pass
when a test says so.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.amazon.sandbox import (
    CLIENT_ID,
    CLIENT_SECRET,
    MARKETPLACE_ID,
    SELLER_ID,
    TOKEN_PATH,
    UNLIMITED_RATE,
    format_time,
)
from tests.connectors.amazon.conftest import REFRESH_TOKEN, Amazon

ORDERS = "/orders/v0/orders"
ITEMS = f"/listings/2021-08-01/items/{SELLER_ID}"
FEEDS = "/feeds/2021-06-30"


async def sp(
    amazon: Amazon,
    method: str,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    body: Any = None,
    token: str | None = None,
) -> httpx.Response:
    """One SP-API call with a valid access token (unless one is given)."""
    headers = {"x-amz-access-token": token if token is not None else await amazon.token()}
    return await amazon.api.request(method, path, params=params, json=body, headers=headers)


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    """Amazon's error list, which every error answer must carry."""
    body = response.json()
    assert set(body) == {"errors"}, body
    return list(body["errors"])


async def place(amazon: Amazon, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines], **extra}
    return dict(await amazon.call("POST", "/orders", body))


async def stock(amazon: Amazon, **levels: int) -> None:
    listings = [{"sku": sku, "quantity": qty} for sku, qty in levels.items()]
    await amazon.call("POST", "/listings", {"listings": listings})


def window(amazon: Amazon, **extra: str | int) -> dict[str, str | int]:
    """getOrders filters for the last day up to the latest Before Amazon allows."""
    now = amazon.clock.now()
    return {
        "MarketplaceIds": MARKETPLACE_ID,
        "LastUpdatedAfter": format_time(now - timedelta(days=1)),
        "LastUpdatedBefore": format_time(now - timedelta(minutes=2)),
        **extra,
    }


# -- Login with Amazon and the access token --------------------------------------------------------


async def test_lwa_issues_hour_long_tokens_for_the_accounts_refresh_token(amazon: Amazon) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    good = await amazon.api.post(TOKEN_PATH, data=form)
    wrong_grant = await amazon.api.post(TOKEN_PATH, data={**form, "refresh_token": "Atzr|other"})
    wrong_client = await amazon.api.post(TOKEN_PATH, data={**form, "client_secret": "nope"})
    assert good.status_code == 200
    assert good.json()["access_token"].startswith("Atza|")
    assert good.json()["expires_in"] == 3600 and good.json()["token_type"] == "bearer"
    assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "invalid_grant"
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"


async def test_sp_api_calls_need_a_live_access_token(amazon: Amazon) -> None:
    token = await amazon.token()
    assert (await sp(amazon, "GET", ORDERS, params=window(amazon), token=token)).status_code == 200
    for bad in ("", "Atza|made-up"):
        refused = await sp(amazon, "GET", ORDERS, params=window(amazon), token=bad)
        assert refused.status_code == 403
        assert errors(refused)[0]["code"] == "Unauthorized"
    amazon.clock.advance(3600)
    expired = await sp(amazon, "GET", ORDERS, params=window(amazon), token=token)
    assert expired.status_code == 403


# -- getOrders -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"LastUpdatedBefore": "now-60s"},  # the two-minute rule
        {"CreatedAfter": "yesterday"},  # both After filters
        {"LastUpdatedAfter": None},  # neither After filter
        {"LastUpdatedBefore": "two-days-ago"},  # Before earlier than After
        {"MaxResultsPerPage": 0},
        {"MaxResultsPerPage": 101},
        {"MarketplaceIds": None},
    ],
)
async def test_get_orders_refuses_what_amazon_refuses(
    amazon: Amazon, change: dict[str, Any]
) -> None:
    now = amazon.clock.now()
    times = {
        "now-60s": format_time(now - timedelta(seconds=60)),
        "yesterday": format_time(now - timedelta(days=1)),
        "two-days-ago": format_time(now - timedelta(days=2)),
    }
    params: dict[str, Any] = window(amazon)
    for key, value in change.items():
        if value is None:
            del params[key]
        else:
            params[key] = times.get(value, value) if isinstance(value, str) else value
    refused = await sp(amazon, "GET", ORDERS, params=params)
    assert refused.status_code == 400
    assert errors(refused)[0]["code"] == "InvalidInput"


async def test_an_order_shows_in_get_orders_once_two_minutes_old(amazon: Amazon) -> None:
    await stock(amazon, MUG=5)
    order = await place(amazon, ("MUG", 2))
    early = await sp(amazon, "GET", ORDERS, params=window(amazon))
    amazon.clock.advance(121)
    later = await sp(amazon, "GET", ORDERS, params=window(amazon))
    assert early.json()["payload"]["Orders"] == []
    (shown,) = later.json()["payload"]["Orders"]
    assert shown["AmazonOrderId"] == order["id"] and shown["OrderStatus"] == "Unshipped"
    assert later.json()["payload"]["LastUpdatedBefore"] == window(amazon)["LastUpdatedBefore"]


async def test_next_token_pages_need_the_same_filters(amazon: Amazon) -> None:
    await stock(amazon, MUG=50)
    placed = {(await place(amazon, ("MUG", 1)))["id"] for _ in range(5)}
    amazon.clock.advance(121)
    params = window(amazon, MaxResultsPerPage=2)
    seen: list[str] = []
    token = None
    while True:
        page = await sp(
            amazon, "GET", ORDERS, params={**params, **({"NextToken": token} if token else {})}
        )
        assert page.status_code == 200, page.text
        seen += [o["AmazonOrderId"] for o in page.json()["payload"]["Orders"]]
        token = page.json()["payload"].get("NextToken")
        if token is None:
            break
        dropped = {k: v for k, v in params.items() if k != "LastUpdatedBefore"}
        refused = await sp(amazon, "GET", ORDERS, params={**dropped, "NextToken": token})
        assert refused.status_code == 400, "a NextToken without its filters must be refused"
    assert sorted(seen) == sorted(placed)


# -- usage plans -----------------------------------------------------------------------------------


async def test_each_operation_has_its_own_token_bucket(amazon: Amazon) -> None:
    token = await amazon.token()
    answers = [
        await sp(amazon, "GET", ORDERS, params=window(amazon), token=token) for _ in range(21)
    ]
    assert [a.status_code for a in answers] == [200] * 20 + [429]
    assert answers[0].headers["x-amzn-RateLimit-Limit"] == "0.0167"
    assert errors(answers[-1]) == [
        {
            "code": "QuotaExceeded",
            "message": "You exceeded your quota for the requested resource.",
            "details": "",
        }
    ]
    assert "Retry-After" not in answers[-1].headers
    other = await sp(amazon, "GET", ITEMS, params={"marketplaceIds": MARKETPLACE_ID}, token=token)
    assert other.status_code == 200, "another operation's bucket is not touched"
    amazon.clock.advance(60)  # one token at 0.0167 per second
    again = await sp(amazon, "GET", ORDERS, params=window(amazon), token=token)
    assert again.status_code == 200
    state = await amazon.state()
    assert state["over_limit"] == 1
    assert state["rate_limits"]["getOrders"]["over_limit"] == 1


async def test_limits_off_lifts_every_bucket_and_reports_a_generous_plan(amazon: Amazon) -> None:
    await amazon.call("PUT", "/config", {"limits": False})
    token = await amazon.token()
    answers = [
        await sp(amazon, "GET", ORDERS, params=window(amazon), token=token) for _ in range(30)
    ]
    assert {a.status_code for a in answers} == {200}
    assert float(answers[-1].headers["x-amzn-RateLimit-Limit"]) == UNLIMITED_RATE
    await amazon.call("PUT", "/config", {"limits": True})  # a full bucket again: 20, then 429
    again = [await sp(amazon, "GET", ORDERS, params=window(amazon), token=token) for _ in range(21)]
    assert [a.status_code for a in again][-2:] == [200, 429]


async def test_injected_errors_use_amazons_error_shape(amazon: Amazon) -> None:
    token = await amazon.token()
    await amazon.call("PUT", "/faults", {"storm_s": 30, "storm_retry_after_s": 4})
    storm = await sp(amazon, "GET", ORDERS, params=window(amazon), token=token)
    await amazon.call("PUT", "/faults", {"storm_s": 0, "statuses": [503]})
    outage = await sp(amazon, "GET", ORDERS, params=window(amazon), token=token)
    assert storm.status_code == 429 and storm.headers["Retry-After"] == "4"
    assert errors(storm)[0]["code"] == "QuotaExceeded"
    assert outage.status_code == 503 and errors(outage)[0]["code"] == "ServiceUnavailable"


# -- listings: patches apply later -----------------------------------------------------------------


def fulfillment(
    quantity: Any, path: str = "/attributes/fulfillment_availability"
) -> dict[str, Any]:
    return {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "replace",
                "path": path,
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}],
            }
        ],
    }


async def shown(amazon: Amazon, sku: str) -> int:
    response = await sp(
        amazon,
        "GET",
        f"{ITEMS}/{sku}",
        params={"marketplaceIds": MARKETPLACE_ID, "includedData": "fulfillmentAvailability"},
    )
    assert response.status_code == 200, response.text
    (entry,) = response.json()["fulfillmentAvailability"]
    return int(entry["quantity"])


async def test_an_accepted_patch_applies_after_the_delay(amazon: Amazon) -> None:
    await stock(amazon, MUG=5)
    params = {"marketplaceIds": MARKETPLACE_ID}
    answer = await sp(amazon, "PATCH", f"{ITEMS}/MUG", params=params, body=fulfillment(9))
    assert answer.json()["status"] == "ACCEPTED" and answer.json()["issues"] == []
    assert await shown(amazon, "MUG") == 5, "ACCEPTED is not applied"
    amazon.clock.advance(0.2)
    assert await shown(amazon, "MUG") == 9
    again = await sp(amazon, "PATCH", f"{ITEMS}/MUG", params=params, body=fulfillment(9))
    amazon.clock.advance(0.2)
    state = await amazon.state()
    assert again.json()["status"] == "ACCEPTED"
    assert state["effective_changes"] == 1 and state["stock_writes"] == 2
    assert state["listings"]["MUG"]["quantity"] == 9


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (fulfillment(3, "/attributes/fulfillmentAvailability"), "90000900"),
        (fulfillment(-1), "4000001"),
        (fulfillment("7"), "4000001"),
    ],
)
async def test_a_bad_patch_is_invalid_and_changes_nothing(
    amazon: Amazon, body: dict[str, Any], code: str
) -> None:
    await stock(amazon, MUG=5)
    answer = await sp(
        amazon, "PATCH", f"{ITEMS}/MUG", params={"marketplaceIds": MARKETPLACE_ID}, body=body
    )
    amazon.clock.advance(1)
    assert answer.status_code == 200
    assert answer.json()["status"] == "INVALID"
    assert [issue["code"] for issue in answer.json()["issues"]] == [code]
    assert await shown(amazon, "MUG") == 5


async def test_a_patch_for_an_unknown_sku_is_invalid(amazon: Amazon) -> None:
    answer = await sp(
        amazon,
        "PATCH",
        f"{ITEMS}/NOPE",
        params={"marketplaceIds": MARKETPLACE_ID},
        body=fulfillment(1),
    )
    assert answer.json()["status"] == "INVALID"


async def test_another_channel_code_adds_an_entry_instead_of_replacing(amazon: Amazon) -> None:
    await stock(amazon, MUG=5)
    body = fulfillment(8)
    body["patches"][0]["value"][0]["fulfillment_channel_code"] = "AMAZON_NA"
    await sp(amazon, "PATCH", f"{ITEMS}/MUG", params={"marketplaceIds": MARKETPLACE_ID}, body=body)
    amazon.clock.advance(0.2)
    state = await amazon.state()
    assert state["listings"]["MUG"]["fulfillment_availability"] == {"DEFAULT": 5, "AMAZON_NA": 8}


async def test_search_pages_twenty_at_most_and_through_a_thousand_items(amazon: Amazon) -> None:
    amazon.sandbox.seed_catalog({f"SKU-{n:04d}": 1 for n in range(1003)})
    too_big = await sp(
        amazon, "GET", ITEMS, params={"marketplaceIds": MARKETPLACE_ID, "pageSize": 21}
    )
    assert too_big.status_code == 400
    await amazon.call("PUT", "/config", {"limits": False})
    params: dict[str, str | int] = {"marketplaceIds": MARKETPLACE_ID, "pageSize": 20}
    seen, token = 0, None
    while True:
        page = await sp(
            amazon, "GET", ITEMS, params={**params, **({"pageToken": token} if token else {})}
        )
        body = page.json()
        assert body["numberOfResults"] == 1003
        seen += len(body["items"])
        token = body.get("pagination", {}).get("nextToken")
        if token is None:
            break
    assert seen == 1000


# -- feeds -----------------------------------------------------------------------------------------


async def submit_feed(amazon: Amazon, document: bytes) -> str:
    created = await sp(
        amazon,
        "POST",
        f"{FEEDS}/documents",
        body={"contentType": "application/json; charset=UTF-8"},
    )
    assert created.status_code == 201
    upload = await amazon.api.put(created.json()["url"], content=document)
    assert upload.status_code == 200
    feed = await sp(
        amazon,
        "POST",
        f"{FEEDS}/feeds",
        body={
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [MARKETPLACE_ID],
            "inputFeedDocumentId": created.json()["feedDocumentId"],
        },
    )
    assert feed.status_code == 202, feed.text
    return str(feed.json()["feedId"])


def listings_feed(*messages: dict[str, Any]) -> bytes:
    feed = {"header": {"sellerId": SELLER_ID, "version": "2.0"}, "messages": list(messages)}
    return json.dumps(feed).encode()


def patch_message(number: int, sku: str, quantity: Any) -> dict[str, Any]:
    return {"messageId": number, "sku": sku, "operationType": "PATCH", **fulfillment(quantity)}


async def test_a_feed_queues_processes_and_reports_per_message(amazon: Amazon) -> None:
    await stock(amazon, A=1, B=1)
    feed_id = await submit_feed(
        amazon,
        listings_feed(
            patch_message(1, "A", 10),
            patch_message(2, "GHOST", 3),
            patch_message(3, "B", -2),
            {"messageId": 4, "sku": "B", "operationType": "PATCH", "productType": "PRODUCT"},
        ),
    )
    statuses = []
    for _ in range(3):
        feed = (await sp(amazon, "GET", f"{FEEDS}/feeds/{feed_id}")).json()
        statuses.append(feed["processingStatus"])
        amazon.clock.advance(0.5)
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "DONE"]
    document = (await sp(amazon, "GET", f"{FEEDS}/documents/{feed['resultFeedDocumentId']}")).json()
    assert document["compressionAlgorithm"] == "GZIP"
    report = json.loads(gzip.decompress((await amazon.api.get(document["url"])).content))
    assert report["summary"] == {
        "errors": 3,
        "warnings": 0,
        "messagesProcessed": 4,
        "messagesAccepted": 1,
        "messagesInvalid": 3,
    }
    assert sorted(issue["messageId"] for issue in report["issues"]) == [2, 3, 4]
    listings = (await amazon.state())["listings"]
    assert listings["A"]["quantity"] == 10 and listings["B"]["quantity"] == 1


async def test_an_unreadable_feed_ends_fatal(amazon: Amazon) -> None:
    feed_id = await submit_feed(amazon, b"{not json")
    amazon.clock.advance(1)
    feed = (await sp(amazon, "GET", f"{FEEDS}/feeds/{feed_id}")).json()
    assert feed["processingStatus"] == "FATAL"


async def test_the_upload_url_is_the_only_grant_to_the_document(amazon: Amazon) -> None:
    created = await sp(amazon, "POST", f"{FEEDS}/documents", body={"contentType": "text/plain"})
    url = httpx.URL(created.json()["url"])
    forged = url.copy_set_param("X-Amz-Signature", "0" * 64)
    assert (await amazon.api.put(forged, content=b"x")).status_code == 403
    assert (await amazon.api.put(url, content=b"x")).status_code == 200


# -- confirmShipment -------------------------------------------------------------------------------


def package(order: dict[str, Any], reference: str, **changes: Any) -> dict[str, Any]:
    detail = {
        "packageReferenceId": reference,
        "carrierCode": "UPS",
        "trackingNumber": "1Z999",
        "shipDate": "2026-01-01T10:00:00Z",
        "orderItems": [{"orderItemId": order["items"][0]["OrderItemId"], "quantity": 1}],
    }
    detail.update(changes)
    return {"marketplaceId": MARKETPLACE_ID, "packageDetail": detail}


async def confirm(amazon: Amazon, order: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
    return await sp(amazon, "POST", f"{ORDERS}/{order['id']}/shipmentConfirmation", body=body)


@pytest.mark.parametrize(
    "changes",
    [
        {"trackingNumber": ""},
        {"packageReferenceId": "pkg-1"},
        {"carrierCode": "Other"},  # without carrierName
        {"shipDate": "yesterday"},
        {"orderItems": []},
        {"orderItems": [{"orderItemId": "00000000000000", "quantity": 1}]},
        {"orderItems": [{"orderItemId": "ITEM", "quantity": 3}]},  # more than ordered
    ],
)
async def test_confirm_shipment_checks_the_package(amazon: Amazon, changes: dict[str, Any]) -> None:
    await stock(amazon, MUG=5)
    order = await place(amazon, ("MUG", 2))
    if changes.get("orderItems") and changes["orderItems"][0]["orderItemId"] == "ITEM":
        changes = {"orderItems": [{"orderItemId": order["items"][0]["OrderItemId"], "quantity": 3}]}
    refused = await confirm(amazon, order, package(order, "1", **changes))
    assert refused.status_code == 400, refused.text
    assert errors(refused)[0]["code"] == "InvalidInput"
    assert (await amazon.state())["shipments"] == []


async def test_packages_ship_an_order_in_parts_once_each(amazon: Amazon) -> None:
    await stock(amazon, MUG=5)
    order = await place(amazon, ("MUG", 2))
    pending = await place(amazon, ("MUG", 1), status="pending")
    first = await confirm(amazon, order, package(order, "1"))
    replay = await confirm(amazon, order, package(order, "1"))
    amazon.clock.advance(5)
    second = await confirm(amazon, order, package(order, "2", trackingNumber="1Z998"))
    unpaid = await confirm(amazon, pending, package(pending, "1"))
    assert first.status_code == 204 and second.status_code == 204
    assert replay.status_code == 400 and "already been confirmed" in errors(replay)[0]["message"]
    assert unpaid.status_code == 400
    state = await amazon.state()
    shipped = state["orders"][order["id"]]
    assert shipped["OrderStatus"] == "Shipped"
    assert shipped["LastUpdateDate"] > order["LastUpdateDate"]
    assert [s["tracking_number"] for s in state["shipments"]] == ["1Z999", "1Z998"]


# -- the shopper -----------------------------------------------------------------------------------


async def test_shoppers_take_units_and_cancellations_give_them_back(amazon: Amazon) -> None:
    await stock(amazon, MUG=3)
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "fba_quantity": 2}]})
    short = await amazon.control.post("/orders", json={"lines": [{"sku": "MUG", "quantity": 4}]})
    assert short.status_code == 409 and short.json()["error"] == "insufficient_stock"
    order = await place(amazon, ("MUG", 2), status="pending")
    await place(amazon, ("MUG", 2), fba=True)
    assert (await amazon.state())["listings"]["MUG"]["fulfillment_availability"] == {
        "DEFAULT": 1,
        "AMAZON_NA": 0,
    }
    paid = await amazon.call("POST", f"/orders/{order['id']}/pay")
    cancelled = await amazon.call("POST", f"/orders/{order['id']}/cancel")
    assert paid["OrderStatus"] == "Unshipped" and cancelled["OrderStatus"] == "Canceled"
    assert cancelled["LastUpdateDate"] > paid["LastUpdateDate"] > order["LastUpdateDate"]
    assert (await amazon.state())["listings"]["MUG"]["quantity"] == 3

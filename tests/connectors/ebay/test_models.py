"""Every request the eBay connector sends, and every answer the sandbox gives, fits eBay's OAS.

The connector runs a full cycle against the sandbox with exchange recording on: discovery,
levels, a poll with several line items, a cancellation request (getOrder), a stock push,
shipments (one partial, one replayed), and the fault and quota errors. Each recorded exchange
is then checked against sell_fulfillment_v1_oas3.json or sell_inventory_v1_oas3.json through
`tests/specs`, which skips with a clear reason where the specs are not on the machine. Strict
mode refuses properties the specs do not list, so a misspelt field fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import PushOutcome, RateLimited, ShipmentLine, ShipmentPush, StockPush
from connectors.ebay.connector import EbayConnector
from connectors.ebay.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EbaySandbox
from connectors.http import RetryPolicy
from connectors.sandbox import ManualClock, serve
from tests.specs import ebay_model
from tests.specs.channels import check_ebay_exchanges

START = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
REFRESH_TOKEN = "v^1.1#models-refresh-token"
ONCE = RetryPolicy(attempts=1)


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[EbayConnector, httpx.AsyncClient, ManualClock]]:
    clock = ManualClock(START)
    sandbox = EbaySandbox(api_key=REFRESH_TOKEN, clock=clock, seed=5, record_exchanges=True)
    served = await serve(sandbox.build_app())
    control = httpx.AsyncClient(base_url=f"{served.url}/_control", timeout=10)
    connector = EbayConnector(
        "ebay",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        api_url=served.url,
        first_poll_window=timedelta(days=1),
        order_lookback=timedelta(minutes=5),
        policy=ONCE,
        page_size=2,
        clock=clock.now,
    )
    try:
        yield connector, control, clock
    finally:
        await connector.aclose()
        await control.aclose()
        await served.close()


async def call(control: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    response = await control.request(method, path, json=body)
    assert response.status_code < 400, response.text
    return response.json()


async def test_a_full_cycle_fits_ebays_models(
    recorded: tuple[EbayConnector, httpx.AsyncClient, ManualClock],
) -> None:
    ebay_model("sell_fulfillment_v1_oas3.json")  # skips here, not mid-cycle, without the specs
    connector, control, clock = recorded
    levels = {"MUG": 10, "TEE": 6, "CAP": 4}
    await call(
        control,
        "POST",
        "/listings",
        {"listings": [{"sku": sku, "quantity": qty} for sku, qty in levels.items()]},
    )
    orders = []
    for lines in ({"MUG": 2, "TEE": 1}, {"CAP": 1}, {"MUG": 1}):
        body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines.items()]}
        orders.append(await call(control, "POST", "/orders", body))
        clock.advance(1)
    await call(control, "POST", f"/orders/{orders[1]['id']}/request_cancel")
    clock.advance(1)

    listings = await connector.fetch_listings()
    assert {ref.sku: ref.level for ref in listings} == {"MUG": 7, "TEE": 5, "CAP": 3}
    pages = [page async for page in connector.fetch_orders(None)]
    assert len(pages) == 2 and sum(len(page.orders) for page in pages) == 3
    assert await connector.fetch_order("99-99999-99999") is None
    pushed = await connector.push_stock(
        [StockPush(ref, 20, None, f"models:{ref.sku}") for ref in listings]
    )
    assert {r.outcome for r in pushed} == {PushOutcome.DONE}
    assert await connector.fetch_levels(listings) == {"MUG": 20, "TEE": 20, "CAP": 20}
    first = orders[0]
    mug_line = first["lineItems"][0]["lineItemId"]
    shipment = ShipmentPush(
        order_id=first["id"],
        shipment_id="s-1",
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="",
        lines=(ShipmentLine(mug_line, "MUG", 2),),
        idempotency_key="models:s-1",
        shipped_at=START,
    )
    assert (await connector.push_shipment(shipment)).outcome is PushOutcome.DONE
    assert (await connector.push_shipment(shipment)).outcome is PushOutcome.DONE  # replayed
    rest = ShipmentPush(first["id"], "s-2", "USPS", "9400111899223197428490", "", (), "models:s-2")
    assert (await connector.push_shipment(rest)).outcome is PushOutcome.DONE
    # Error answers are part of the model too.
    await call(control, "PUT", "/config", {"daily_limits": {"inventory": 1}})
    with pytest.raises(RateLimited):
        await connector.fetch_listings()

    recording = await call(control, "GET", "/exchanges")
    exchanges = recording["exchanges"]
    assert recording["dropped"] == 0
    checked = sum(check_ebay_exchanges(exchanges).values())
    routes = {exchange["route"] for exchange in exchanges}
    assert {
        "GET /sell/fulfillment/v1/order",
        "GET /sell/fulfillment/v1/order/{orderId}",
        "GET /sell/fulfillment/v1/order/{orderId}/shipping_fulfillment",
        "POST /sell/fulfillment/v1/order/{orderId}/shipping_fulfillment",
        "GET /sell/inventory/v1/inventory_item",
        "GET /sell/inventory/v1/offer",
        "POST /sell/inventory/v1/bulk_get_inventory_item",
        "POST /sell/inventory/v1/bulk_update_price_quantity",
    } <= routes
    assert checked >= 20

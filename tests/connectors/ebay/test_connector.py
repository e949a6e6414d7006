"""The eBay connector against its sandbox, as a merchant would notice it: orders are never lost
while the set changes under the pages, shipments are never doubled, tokens renew themselves,
and the connector's own quota keeps it from being refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectors.base import (
    OrderStatus,
    PushOutcome,
    PushResult,
    RateLimited,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)
from connectors.ebay.connector import EbayConnector
from connectors.ebay.revisions import RevisionBudget, is_revision_cap
from connectors.ebay.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EbaySandbox
from connectors.http import RetryPolicy
from connectors.sandbox import ManualClock, Served, serve

START = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
REFRESH_TOKEN = "v^1.1#connector-refresh-token"
FAST = RetryPolicy(attempts=4, base_s=0.001, cap_s=0.01, max_delay_s=1.0)


@dataclass
class Seller:
    sandbox: EbaySandbox
    clock: ManualClock
    served: Served
    control: httpx.AsyncClient

    def connector(self, **options: Any) -> EbayConnector:
        settings: dict[str, Any] = {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "api_url": self.served.url,
            "first_poll_window": timedelta(days=1),
            "order_lookback": timedelta(minutes=5),
            "policy": FAST,
            "page_size": 3,
            "clock": self.clock.now,
        }
        settings.update(options)
        return EbayConnector("ebay", **settings)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.control.request(method, path, json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def buy(self, **lines: int) -> dict[str, Any]:
        self.clock.advance(1)
        body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines.items()]}
        return await self.call("POST", "/orders", body)

    async def state(self) -> dict[str, Any]:
        return await self.call("GET", "/state")


@pytest.fixture
async def seller() -> AsyncIterator[Seller]:
    clock = ManualClock(START)
    sandbox = EbaySandbox(api_key=REFRESH_TOKEN, clock=clock, seed=11)
    served = await serve(sandbox.build_app())
    control = httpx.AsyncClient(base_url=f"{served.url}/_control", timeout=10)
    seller = Seller(sandbox, clock, served, control)
    try:
        await seller.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 500}]})
        yield seller
    finally:
        await control.aclose()
        await served.close()


@pytest.mark.parametrize("order_sort", ["newest_first", "oldest_first"])
async def test_no_order_is_lost_while_orders_arrive_and_change_between_pages(
    seller: Seller, order_sort: str
) -> None:
    await seller.call("PUT", "/config", {"order_sort": order_sort})
    placed = [(await seller.buy(MUG=1))["id"] for _ in range(7)]
    connector = seller.connector()
    seen: list[str] = []
    changed = 0
    try:
        pages = connector.fetch_orders(None)
        async for page in pages:
            seen += [order.external_id for order in page.orders]
            if not page.done:
                # Between pages: new checkouts, and older orders change (lastModifiedDate moves).
                placed.append((await seller.buy(MUG=1))["id"])
                await seller.call("POST", f"/orders/{placed[changed]}/request_cancel")
                await seller.call("POST", f"/orders/{placed[6 - changed]}/cancel")
                changed += 1
    finally:
        await connector.aclose()
    assert set(placed[:7]) <= set(seen), "an order present when the poll started was skipped"


async def test_the_next_poll_picks_up_changes_with_cancellations_read_in_full(
    seller: Seller,
) -> None:
    first = await seller.buy(MUG=2)
    second = await seller.buy(MUG=1)
    connector = seller.connector()
    try:
        pages = [page async for page in connector.fetch_orders(None)]
        seller.clock.advance(60)
        await seller.call("POST", f"/orders/{first['id']}/cancel")
        later = [page async for page in connector.fetch_orders(pages[-1].cursor)]
    finally:
        await connector.aclose()
    orders = {o.external_id: o for page in later for o in page.orders}
    assert orders[first["id"]].status is OrderStatus.CANCELLED
    assert [line.cancelled for line in orders[first["id"]].lines] == [2]
    assert orders[first["id"]].raw["cancelStatus"]["cancelRequests"], "getOrder was not used"
    assert second["id"] in orders  # inside the look-back: read again, deduped downstream
    assert (await seller.state())["listings"]["MUG"]["quantity"] == 500 - 1


async def test_a_replayed_shipment_is_not_created_twice(seller: Seller) -> None:
    order = await seller.buy(MUG=2)
    line = order["lineItems"][0]["lineItemId"]
    shipment = ShipmentPush(
        order_id=order["id"],
        shipment_id="s-1",
        carrier="USPS",
        tracking_number="9400111899223197428490",
        tracking_url="",
        lines=(ShipmentLine(line, "MUG", 2),),
        idempotency_key="s-1",
    )
    first = seller.connector()
    try:
        created = await first.push_shipment(shipment)
    finally:
        await first.aclose()
    # The outbox replays it (the ack was lost in a crash), from a new instance.
    second = seller.connector()
    try:
        replayed = await second.push_shipment(shipment)
        polled = await second.fetch_order(order["id"])
    finally:
        await second.aclose()
    assert created.outcome is PushOutcome.DONE and "created" in created.message
    assert replayed.outcome is PushOutcome.DONE and "already" in replayed.message
    state = await seller.state()
    assert [s["tracking_number"] for s in state["shipments"]] == ["9400111899223197428490"]
    assert polled is not None and polled.status is OrderStatus.SHIPPED


async def test_partial_packages_move_the_order_to_shipped(seller: Seller) -> None:
    await seller.call("POST", "/listings", {"listings": [{"sku": "TEE", "quantity": 5}]})
    self_order = await seller.buy(MUG=1, TEE=2)
    mug, tee = (item["lineItemId"] for item in self_order["lineItems"])
    connector = seller.connector()

    def package(number: str, line: str, sku: str, qty: int) -> ShipmentPush:
        lines = (ShipmentLine(line, sku, qty),)
        return ShipmentPush(self_order["id"], number, "UPS", number, "", lines, number)

    try:
        await connector.push_shipment(package("1Z1", mug, "MUG", 1))
        halfway = await connector.fetch_order(self_order["id"])
        await connector.push_shipment(package("1Z2", tee, "TEE", 2))
        done = await connector.fetch_order(self_order["id"])
    finally:
        await connector.aclose()
    assert halfway is not None and halfway.status is OrderStatus.PARTIALLY_SHIPPED
    assert [line.shipped for line in halfway.lines] == [1, 0]
    assert done is not None and done.status is OrderStatus.SHIPPED


async def test_tokens_renew_after_two_hours_and_after_a_revocation(seller: Seller) -> None:
    connector = seller.connector()
    try:
        await connector.fetch_listings()
        seller.clock.advance(2 * 3600)  # the user token has expired
        await connector.fetch_listings()
        await seller.call("POST", "/tokens/revoke")  # eBay forgets it early: 401, refresh once
        refs = await connector.fetch_listings()
    finally:
        await connector.aclose()
    assert [ref.sku for ref in refs] == ["MUG"]
    assert (await seller.state())["tokens_issued"] == 3


async def test_the_connectors_quota_refuses_before_ebay_has_to(seller: Seller) -> None:
    await seller.call("PUT", "/config", {"daily_limits": {"inventory": 1000}})
    connector = seller.connector(daily_limits={"inventory": 2})
    try:
        refs = await connector.fetch_listings()  # inventory_item + offer: two calls
        with pytest.raises(RateLimited) as caught:
            await connector.push_stock([StockPush(refs[0], 3, None, "k")])
        snapshot = connector.limiter.snapshot()
    finally:
        await connector.aclose()
    assert caught.value.retry_after == pytest.approx(12 * 3600)  # noon to midnight Pacific
    assert snapshot["model"] == "daily_quota" and snapshot["warning"] is True
    assert snapshot["apis"]["inventory"]["used"] == 2
    assert snapshot["apis"]["fulfillment"]["used"] == 0
    assert (await seller.state())["over_limit"] == 0


async def test_stock_pushes_ride_out_server_errors(seller: Seller) -> None:
    connector = seller.connector()
    try:
        refs = await connector.fetch_listings()
        await seller.call("PUT", "/faults", {"statuses": [500, 503]})
        results = await connector.push_stock([StockPush(refs[0], 42, None, "k")])
    finally:
        await connector.aclose()
    assert [r.outcome for r in results] == [PushOutcome.DONE]
    listing = (await seller.state())["listings"]["MUG"]
    assert (listing["item_quantity"], listing["offer_quantity"], listing["quantity"]) == (
        42,
        42,
        42,
    )


async def test_a_busy_listing_spends_its_daily_revisions_on_sales_first_and_never_dead_letters(
    seller: Seller,
) -> None:
    # eBay blocks a listing after 250 revisions in a day; with a day of 10 the connector
    # pushes the first 5 at once. From then on a fall in quantity (a sale elsewhere) still goes
    # at once, a rise waits its share of what is left of the Pacific day, and the last
    # revision is kept for a sell-out.
    await seller.call("PUT", "/config", {"revision_cap": 10})
    connector = seller.connector()
    connector.revisions = RevisionBudget(per_day=10)
    try:
        [ref] = await connector.fetch_listings()

        async def push(quantity: int) -> PushResult:
            [result] = await connector.push_stock([StockPush(ref, quantity, None, "k")])
            return result

        assert [(await push(q)).outcome for q in range(499, 494, -1)] == [PushOutcome.DONE] * 5
        restock = await push(500)
        shown_while_held = (await seller.state())["listings"]["MUG"]["quantity"]
        sale = await push(494)
        sold_out = await push(0)
        seller.clock.advance(3600)
        cancellation = await push(3)  # a rise: paced after the sell-out's revision
        seller.clock.advance(cancellation.retry_after or 0)
        after_the_wait = await push(3)
        falls = [await push(2), await push(1)]  # the second would spend the sell-out's revision
        last = await push(0)
        # The connector forgot its count (a restart): eBay's own refusal still keeps the push.
        connector.revisions = RevisionBudget(per_day=10)
        await seller.call("PUT", "/config", {"revision_cap": 7})
        refused = await push(5)
        seller.clock.advance(refused.retry_after or 0)  # midnight in Los Angeles: a new day
        next_day = await push(5)
    finally:
        await connector.aclose()
    # Noon in Los Angeles: 12 h left for the 5 revisions left, one of them kept for a sell-out.
    assert restock.outcome == PushOutcome.WAIT
    assert restock.retry_after == pytest.approx(12 * 3600 / 4)
    assert shown_while_held == 495
    assert (sale.outcome, sold_out.outcome) == (PushOutcome.DONE, PushOutcome.DONE)
    # 11 h left for the 3 revisions left, less the sell-out's: 5.5 h after the last revision.
    assert cancellation.outcome == PushOutcome.WAIT
    assert cancellation.retry_after == pytest.approx(11 * 3600 / 2 - 3600)
    assert after_the_wait.outcome == PushOutcome.DONE
    assert [f.outcome for f in falls] == [PushOutcome.DONE, PushOutcome.WAIT]
    assert falls[1].retry_after == pytest.approx(12 * 3600 - 3600 - cancellation.retry_after)
    assert last.outcome == PushOutcome.DONE
    assert refused.outcome == PushOutcome.WAIT
    assert refused.retry_after == pytest.approx(falls[1].retry_after)
    assert "midnight Pacific" in refused.message
    assert next_day.outcome == PushOutcome.DONE
    assert (await seller.state())["listings"]["MUG"]["quantity"] == 5


def test_the_revision_cap_is_recognised_in_the_long_message_too() -> None:
    # 25002 is eBay's catch-all user error: the cap may be spelled out only in longMessage.
    generic = "A user error has occurred. "
    assert is_revision_cap(25002, generic, "This listing has been revised 250 times today.")
    assert is_revision_cap(25002, "You can revise a listing at most 250 times a day.", "")
    assert not is_revision_cap(25002, generic, "The SKU is not valid.")
    assert not is_revision_cap(25001, "Listing revised too often", "")

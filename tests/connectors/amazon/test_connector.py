"""The Amazon connector against its sandbox: what a merchant would notice beyond the contract.

Listings past searchListingsItems' 1000-item paging cap, a flash sale paced under getOrderItems'
usage plan, a revoked token, a change Amazon is slow to apply, a shipment of everything left.
"""

from __future__ import annotations

from datetime import timedelta

from connectors.amazon.connector import DEFAULT_SETTLE
from connectors.base import OrderStatus, PushOutcome, ShipmentPush, StockPush
from tests.connectors.amazon.conftest import Amazon

TWO_MINUTES = DEFAULT_SETTLE.total_seconds() + 1


async def test_listings_past_the_thousand_item_paging_cap_are_all_read(amazon: Amazon) -> None:
    for n in range(1030):
        amazon.sandbox.upsert_listing(f"SKU-{n:04d}", n)
        amazon.clock.advance(1)  # listings created over time, as a real catalog is
    connector = amazon.connector()
    listings = await connector.fetch_listings()
    assert len(listings) == 1030
    assert {ref.sku: ref.level for ref in listings}["SKU-1029"] == 1029
    assert (await amazon.state())["over_limit"] == 0


async def test_a_flash_sale_is_read_within_the_usage_plans(amazon: Amazon) -> None:
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 500}]})
    placed = [
        (await amazon.call("POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 1}]}))["id"]
        for _ in range(45)  # more orders than getOrderItems' burst of 30
    ]
    amazon.clock.advance(TWO_MINUTES)
    connector = amazon.connector(page_size=10)
    pages = [page async for page in connector.fetch_orders(None)]
    assert sorted(o.external_id for p in pages for o in p.orders) == sorted(placed)
    state = await amazon.state()
    assert state["over_limit"] == 0, state["rate_limits"]


async def test_a_paid_pending_order_comes_back_open_in_the_next_poll(amazon: Amazon) -> None:
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 5}]})
    order = await amazon.call(
        "POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 1}], "status": "pending"}
    )
    amazon.clock.advance(TWO_MINUTES)
    connector = amazon.connector()
    first = [page async for page in connector.fetch_orders(None)]
    await amazon.call("POST", f"/orders/{order['id']}/pay")
    amazon.clock.advance(TWO_MINUTES)
    second = [page async for page in connector.fetch_orders(first[-1].cursor)]
    assert [o.status for p in first for o in p.orders] == [OrderStatus.PENDING]
    assert [o.status for p in second for o in p.orders] == [OrderStatus.OPEN]


async def test_a_revoked_access_token_is_replaced_without_fuss(amazon: Amazon) -> None:
    connector = amazon.connector()
    assert await connector.fetch_listings() == []
    await amazon.call("PUT", "/config", {"revoke_tokens": True})
    assert await connector.fetch_listings() == []
    assert (await amazon.state())["tokens_issued"] == 2


async def test_a_slow_apply_is_retried_then_confirmed_without_a_second_submission(
    amazon: Amazon,
) -> None:
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 5}]})
    await amazon.call("PUT", "/config", {"apply_delay_s": 20})
    connector = amazon.connector(confirm_timeout=timedelta(seconds=5))
    (ref,) = await connector.fetch_listings()
    batch = [StockPush(ref, 8, None, "slow:MUG:8")]
    (first,) = await connector.push_stock(batch)
    assert first.outcome is PushOutcome.RETRY and first.retry_after
    assert (await amazon.state())["listings"]["MUG"]["quantity"] == 5
    second = first
    for _ in range(10):  # the outbox waits retry_after each time, then pushes again
        assert second.retry_after
        amazon.clock.advance(second.retry_after)
        (second,) = await connector.push_stock(batch)
        if second.outcome is PushOutcome.DONE:
            break
    state = await amazon.state()
    assert second.outcome is PushOutcome.DONE
    assert state["listings"]["MUG"]["quantity"] == 8
    assert state["submissions"] == 1


async def test_a_shipment_without_lines_ships_everything_left(amazon: Amazon) -> None:
    await amazon.call(
        "POST",
        "/listings",
        {"listings": [{"sku": "MUG", "quantity": 5}, {"sku": "TEE", "quantity": 5}]},
    )
    order = await amazon.call(
        "POST",
        "/orders",
        {"lines": [{"sku": "MUG", "quantity": 2}, {"sku": "TEE", "quantity": 1}]},
    )
    connector = amazon.connector()
    result = await connector.push_shipment(
        ShipmentPush(
            order_id=order["id"],
            shipment_id="1",
            carrier="USPS",
            tracking_number="9400100000000000000000",
            tracking_url="",
            lines=(),
            idempotency_key="ship:1",
        )
    )
    state = await amazon.state()
    assert result.outcome is PushOutcome.DONE
    assert state["orders"][order["id"]]["OrderStatus"] == "Shipped"
    (shipment,) = state["shipments"]
    assert shipment["carrier_code"] == "USPS" and sum(shipment["items"].values()) == 3


async def test_a_cancelled_or_fba_order_is_not_shipped_by_the_merchant(amazon: Amazon) -> None:
    await amazon.call(
        "POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 5, "fba_quantity": 5}]}
    )
    cancelled = await amazon.call("POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 1}]})
    await amazon.call("POST", f"/orders/{cancelled['id']}/cancel")
    fba = await amazon.call(
        "POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 1}], "fba": True}
    )
    connector = amazon.connector()
    for order in (cancelled, fba):
        result = await connector.push_shipment(
            ShipmentPush(order["id"], "1", "UPS", "1Z1", "", (), f"ship:{order['id']}")
        )
        assert result.outcome is PushOutcome.PERMANENT, result
    assert (await amazon.state())["shipments"] == []


async def test_a_reconcile_sweep_reads_no_items_of_orders_that_did_not_change(
    amazon: Amazon,
) -> None:
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 50}]})
    placed = [
        (await amazon.call("POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 1}]}))["id"]
        for _ in range(5)
    ]
    amazon.clock.advance(TWO_MINUTES)
    connector = amazon.connector()
    since = amazon.clock.now() - timedelta(hours=1)
    first = [o async for p in connector.fetch_orders(None, since=since) for o in p.orders]
    calls = (await amazon.state())["requests"]["by_route"]
    items_route = next(route for route in calls if route.endswith("/orderItems"))
    read_once = calls[items_route]
    await amazon.call("POST", f"/orders/{placed[0]}/cancel")  # one order changes
    amazon.clock.advance(TWO_MINUTES)
    again = [o async for p in connector.fetch_orders(None, since=since) for o in p.orders]
    calls = (await amazon.state())["requests"]["by_route"]
    assert read_once == 5
    assert calls[items_route] == read_once + 1  # only the cancelled order's items again
    assert {o.external_id: o.status for o in again}[placed[0]] is OrderStatus.CANCELLED
    assert sorted(o.external_id for o in first) == sorted(placed)

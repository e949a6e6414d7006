"""A backlog of shipments (a warehouse's end-of-day batch, or everything queued during an
outage) must not hold a sale's new number back: the pusher looks at the stock queue between
every few shipments, so the other channel hears of the sale while shipments still drain."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.demo.world import World, WorldSettings

pytestmark = pytest.mark.asyncio
SKU = "MUG"
ORDERS = 30
# Each Shopify call waits this long, so a shipment (a fulfillment-order query and a
# fulfillmentCreate) takes about twice it and the backlog about ORDERS times that.
LATENCY_S = 0.3
# A sale's number must reach Shopify within this while the backlog drains: a few shipments and
# one stock call, well under the backlog's ~18 s.
PROMPT_S = 8.0


async def test_a_sale_reaches_a_channel_while_its_shipment_backlog_drains(tmp_path: Path) -> None:
    world = World(tmp_path, WorldSettings(kinds=["shopify", "woocommerce"], skus=[SKU],
                                          stock=1000))
    await world.start(timeout=120)
    try:
        shopify = world.channels["shopify"].sandbox
        woo = world.channels["woocommerce"].sandbox
        orders = [str(shopify.place_order([(SKU, 1)]).id)  # type: ignore[attr-defined]
                  for _ in range(ORDERS)]

        async def all_known() -> bool:
            return world.read(lambda conn: conn.execute(
                "SELECT count(*) FROM orders WHERE channel = 'shopify'").fetchone()[0]) == ORDERS

        await world.wait_for(all_known, timeout=30, what="the agent to store every order")
        await world.wait_for(world.in_step, timeout=30, what="every channel in step")
        shopify.faults.update({"latency_s": LATENCY_S, "seed": 1}, now=shopify.clock.monotonic())
        for index, order_id in enumerate(orders):
            response = await world.ops("POST", "/shipments", {
                "channel": "shopify", "order_id": order_id, "carrier": "UPS",
                "tracking_number": f"1Z{index:04d}", "lines": {SKU: 1},
            })
            assert response.status_code == 201, response.text

        def shipped() -> int:
            return len(shopify.truth()["shipments"])

        async def draining() -> bool:
            return shipped() >= 1

        await world.wait_for(draining, timeout=30, what="the first shipment on Shopify")
        before = shopify.levels()[SKU]
        woo.place_order([(SKU, 5)])  # type: ignore[attr-defined]
        sold = time.monotonic()

        async def heard() -> bool:
            return shopify.levels()[SKU] == before - 5

        await world.wait_for(heard, timeout=PROMPT_S, every=0.05,
                             what="the WooCommerce sale to reach Shopify")
        took = time.monotonic() - sold
        still_to_ship = ORDERS - shipped()
        shopify.faults.clear()

        async def all_shipped() -> bool:
            return shipped() == ORDERS

        await world.wait_for(all_shipped, timeout=60, what="every shipment on Shopify")
    finally:
        assert await world.stop() == 0
    assert took < PROMPT_S
    # The sale did not wait for the backlog: shipments were still queued when it landed.
    assert still_to_ship > 0, f"the sale took {took:.1f} s, after every shipment"

"""A channel outage longer than a push's retries: nothing is dead-lettered, because the channel
failing every call is not the rows' fault, and once the channel answers again (a poll notices)
everything that waited goes at once instead of sleeping out its backoff."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.demo.world import World, WorldSettings

pytestmark = pytest.mark.asyncio
SKU = "MUG"
# Few attempts and a long backoff cap: without the fix, the outage dead-letters both rows, and
# after it they would wait up to a minute. (Until the channel is called degraded, three failed
# calls in a row, a failure still counts against the row.)
SYNC = {"push_max_attempts": 3, "push_retry_base": "200ms", "push_retry_max": "60s"}
# Long enough for three attempts, each tried three times by the HTTP client, several times over.
OUTAGE_S = 15.0
# From the outage's end: one poll (1 s) notices, then a stock call and a shipment.
RECOVER_S = 10.0


async def test_an_outage_longer_than_the_retries_loses_nothing_and_recovers_at_once(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, WorldSettings(
        kinds=["shopify", "woocommerce"], skus=[SKU], stock=100, poll_interval="1s",
        sync_toml=SYNC,
    ))
    await world.start(timeout=120)
    try:
        shopify = world.channels["shopify"].sandbox
        woo = world.channels["woocommerce"].sandbox
        order_id = str(shopify.place_order([(SKU, 1)]).id)  # type: ignore[attr-defined]

        async def known() -> bool:
            response = await world.ops("GET", f"/orders/shopify/{order_id}")
            return response.status_code == 200

        await world.wait_for(known, timeout=30, what="the agent to store the Shopify order")
        await world.wait_for(world.in_step, timeout=30, what="every channel in step")
        before = shopify.levels()[SKU]
        shopify.faults.update({"outage": True, "seed": 1}, now=shopify.clock.monotonic())
        began = time.monotonic()
        woo.place_order([(SKU, 4)])  # type: ignore[attr-defined]
        response = await world.ops("POST", "/shipments", {
            "channel": "shopify", "order_id": order_id, "carrier": "UPS",
            "tracking_number": "1ZOUTAGE", "lines": {SKU: 1},
        })
        assert response.status_code == 201, response.text

        def refused() -> int:
            return sum(1 for r in shopify.requests if r.fault == "outage")

        async def long_outage() -> dict | None:
            # Degraded, and many more refused requests than a row's attempts (each call is
            # tried three times by the HTTP client).
            status = (await world.status())["channels"]["shopify"]
            held = time.monotonic() - began >= OUTAGE_S
            return status if held and status["state"] == "degraded" and refused() >= 30 else None

        during = await world.wait_for(long_outage, timeout=OUTAGE_S + 60,
                                      what=f"a {OUTAGE_S:g} s outage refusing thirty requests")
        shopify.faults.clear()
        ended = time.monotonic()

        async def recovered() -> bool:
            shipped = any(s["tracking_number"] == "1ZOUTAGE" for s in shopify.truth()["shipments"])
            return shipped and shopify.levels()[SKU] == before - 4

        await world.wait_for(recovered, timeout=RECOVER_S, every=0.1,
                             what="the sale and the shipment on Shopify after the outage")
        took = time.monotonic() - ended
        after = (await world.status())["channels"]["shopify"]
    finally:
        assert await world.stop() == 0
    assert during["state"] == "degraded"
    assert during["outbox"]["dead"] == 0 and during["outbox"]["depth"] == 2
    assert after["outbox"]["dead"] == 0
    assert took < RECOVER_S

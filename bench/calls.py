"""Measure 2, calls per change: a flash sale of 1,000 orders in 30 s over 200 SKUs on every
channel. For each channel: the API calls storesync made, over the (channel, SKU) number changes
the sale caused, beside the least the channel's batch size allows (one call per batch)."""

from __future__ import annotations

import math
import time
from typing import Any

from agent.demo.traffic import TrafficSettings
from agent.demo.world import available_kinds
from bench.policies import storesync
from bench.report import progress
from bench.scene import route_counts, shop, started_world
from connectors.base import Connector

ORDERS, SECONDS = 1000, 30.0
SKUS = [f"FLASH-{n:03d}" for n in range(200)]
STOCK = 1000


def max_batches() -> dict[str, int]:
    """Each kind's push batch size, from its connector class."""
    from agent.sync.factory import connector_class

    sizes = {}
    for kind in available_kinds():
        cls: type[Connector] = connector_class(kind)
        sizes[kind] = int(cls.capabilities.max_batch)
    return sizes


async def measure(*, quick: bool = False) -> dict[str, Any]:
    """Calls, changes and their ratio per channel."""
    kinds = available_kinds()
    orders, seconds = (200, 6.0) if quick else (ORDERS, SECONDS)
    progress(f"calls per change: {orders} orders in {seconds:g} s over {len(SKUS)} SKUs")
    batches = max_batches()
    async with started_world(storesync(kinds, SKUS, STOCK)) as world:
        before = route_counts(world)
        ledger, _watch = await shop(
            world, TrafficSettings(rate=orders / seconds, cancel_share=0.0), seconds, stock=STOCK
        )
        # Until every channel shows every number again: Amazon reads each order's items at
        # 0.5 per second, so its share of a flash sale takes minutes to come in.
        started = time.monotonic()
        try:
            await world.wait_for(world.in_step, timeout=1200, what="every channel in step",
                                 every=1.0)
            in_step_after: float | None = round(time.monotonic() - started, 1)
        except TimeoutError:
            in_step_after = None
        after = route_counts(world)
    # Every sale line changes that SKU's number on every channel.
    changes = sum(len(sale.lines) for sale in ledger.sales)
    result: dict[str, Any] = {
        "orders": len(ledger.sales),
        "changes_per_channel": changes,
        "in_step_after_sale_s": in_step_after,
    }
    for name in kinds:
        delta = after[name] - before[name]
        calls = sum(delta.values())
        least = math.ceil(changes / batches[name])
        result[name] = {
            "calls": calls,
            "calls_per_change": round(calls / changes, 4) if changes else None,
            "least_calls_per_change": round(least / changes, 4) if changes else None,
            "max_batch": batches[name],
            "by_route": dict(delta.most_common()),
        }
    return result

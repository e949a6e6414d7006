"""Measure 3, oversell: a flash sale of one SKU with 100 units, 400 shoppers over 10 s spread
across every channel, each buying one unit where the channel still shows one. The same seeded
shopper stream runs against storesync and against the naive 15-minute interval sync
(bench/policies.py), in the same run; the figure is the units sold beyond the 100."""

from __future__ import annotations

from typing import Any

from agent.demo.observe import summary_ms
from agent.demo.traffic import TrafficSettings
from agent.demo.world import available_kinds
from bench.policies import naive_interval, storesync
from bench.report import progress
from bench.scene import shop, started_world

UNITS, SHOPPERS, SECONDS = 100, 400, 10.0
SKU = "FLASH-ONLY"


async def _sale(policy_name: str, *, seed: int) -> dict[str, Any]:
    kinds = available_kinds()
    make = storesync if policy_name == "storesync" else naive_interval
    async with started_world(make(kinds, [SKU], UNITS, seed=seed)) as world:
        ledger, watch = await shop(
            world,
            TrafficSettings(rate=SHOPPERS / SECONDS, cancel_share=0.0, max_lines=1, max_qty=1,
                            seed=seed),
            SECONDS,
            stock=UNITS,
        )
    by_channel: dict[str, int] = {}
    for sale in ledger.sales:
        by_channel[sale.channel] = by_channel.get(sale.channel, 0) + 1
    return {
        "sold": sum(sum(s.lines.values()) for s in ledger.sales),
        "oversold_units": ledger.oversold(),
        "refused_checkouts": ledger.refused,
        "sold_by_channel": by_channel,
        "propagation_ms": summary_ms(watch.samples),
    }


async def measure(*, quick: bool = False, seed: int = 7) -> dict[str, Any]:
    """Both policies on the same shopper stream."""
    results = {}
    for policy_name in ("storesync", "naive_15min"):
        progress(f"oversell: {SHOPPERS} shoppers for {UNITS} units, policy {policy_name}")
        results[policy_name] = await _sale(policy_name, seed=seed)
    return {"units": UNITS, "shoppers": SHOPPERS, "seconds": SECONDS, **results}

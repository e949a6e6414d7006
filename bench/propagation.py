"""Measure 1, propagation: from a sale's checkout (and webhook) on one channel until every other
channel shows the new number, at 1, 10 and 50 orders/s, with every sandbox's documented limits.

Sales are placed on the channels that send webhooks; each sample is one sale, complete when the
slowest other channel shows it (agent/demo/observe.py explains which samples are kept). The
per-channel figures say which channel's API sets the pace.
"""

from __future__ import annotations

from typing import Any

from agent.demo.observe import summary_ms
from agent.demo.traffic import TrafficSettings
from agent.demo.world import available_kinds
from bench.policies import storesync
from bench.report import progress
from bench.scene import shop, started_world

RATES = (1.0, 10.0, 50.0)
SKUS = [f"PROP-{n:04d}" for n in range(500)]
STOCK = 100_000  # nothing sells out: every sale changes every channel's number


async def measure(*, quick: bool = False) -> dict[str, Any]:
    """Propagation percentiles at each rate, overall and per receiving channel."""
    kinds = available_kinds()
    results: dict[str, Any] = {}
    for rate in RATES:
        duration = 10.0 if quick else max(20.0, 60.0 / rate * 2) if rate < 10 else 20.0
        progress(f"propagation: {rate:g} orders/s for {duration:g} s on {', '.join(kinds)}")
        async with started_world(storesync(kinds, SKUS, STOCK)) as world:
            webhook_channels = [c.name for c in world.channels.values() if c.keys.webhooks]
            ledger, watch = await shop(
                world, TrafficSettings(rate=rate, cancel_share=0.0, max_qty=1), duration,
                on=webhook_channels, stock=STOCK,
            )
        results[f"{rate:g}/s"] = {
            "orders": len(ledger.sales),
            "all_channels_ms": summary_ms(watch.samples),
            "discarded_samples": watch.discarded,
            "unfinished": watch.in_flight,
            "by_receiving_channel_ms": {n: summary_ms(s) for n, s in watch.by_target.items()},
        }
    return results

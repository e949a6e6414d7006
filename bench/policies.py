"""The two sync policies the benchmarks compare, as settings of the same agent.

`storesync` is the agent as shipped: webhooks where the channel has them, polling as the safety
net. `naive_interval` is how interval-sync tools work: no webhooks, one poll of every channel
every 15 minutes, and absolute numbers pushed from what that poll saw. It is a switch on the
same program, not a second product: only the config differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.demo.world import WorldSettings

# Polls as each channel's rate limits allow: Amazon's getOrders gives one call a minute after a
# burst of 20 (ordersV0.json usage plan).
POLL_INTERVALS = {"amazon": {"poll_interval": "60s"}}


def storesync(kinds: Sequence[str], skus: Sequence[str], stock: int, **more: Any) -> WorldSettings:
    """The agent as shipped, with each channel's documented limits."""
    more.setdefault("channel_options", {k: v for k, v in POLL_INTERVALS.items() if k in kinds})
    return WorldSettings(kinds=kinds, skus=skus, stock=stock, declare_skus=False, **more)


def naive_interval(
    kinds: Sequence[str], skus: Sequence[str], stock: int, **more: Any
) -> WorldSettings:
    """No webhooks; every channel polled, and pushed to, once per 15 minutes."""
    return WorldSettings(
        kinds=kinds, skus=skus, stock=stock, declare_skus=False, webhooks=False,
        poll_interval="15m", polling_interval="15m", reconcile_interval="15m", **more,
    )

"""Measure 4, full reconcile: every channel lists 100k SKUs one unit off what the agent counts,
with the sandboxes' rate limits lifted. Wall time from starting the agent until every channel
shows every published number, and the agent's peak RSS. A 10k-SKU run in the same invocation is
the baseline: the ratio shows how the cost grows with the catalog."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent.demo.world import available_kinds
from bench.policies import storesync
from bench.report import progress
from bench.scene import agent_usage, started_world

STOCK = 20


def unlimited(kinds: list[str]) -> dict[str, dict[str, Any]]:
    """Sandbox options that lift each channel's rate limits and quotas."""
    options: dict[str, dict[str, Any]] = {
        "shopify": {"cost_capacity": 1e9, "cost_restore_rate": 1e9},
        "woocommerce": {},
        "ebay": {"limits": False},
        "amazon": {"limits": False},
    }
    return {k: options.get(k, {}) for k in kinds}


async def _reconcile(skus: int) -> dict[str, Any]:
    kinds = available_kinds()
    names = [f"R{n:06d}" for n in range(skus)]
    settings = storesync(
        kinds, names, STOCK, channel_stock=STOCK - 1, sandbox_options=unlimited(kinds),
        reconcile_interval="1h",
    )
    marks: dict[str, float] = {}

    def mark(step: str) -> None:
        marks[step] = time.monotonic()
        progress(f"  {skus:,} SKUs: {step}")

    async with started_world(settings, timeout=3600, progress=mark) as world:
        done = time.monotonic()
        cpu, rss, peak = await asyncio.to_thread(agent_usage, world)
    # The agent's clock starts when it is started: seeding the sandboxes is the bench's own work.
    wall = done - marks["starting the agent"]
    return {"skus": skus, "channels": len(kinds), "numbers": skus * len(kinds),
            "wall_s": round(wall, 1), "agent_cpu_s": round(cpu, 1), "agent_peak_rss_mib": peak,
            "agent_rss_mib": rss,
            "setup_s": round(marks["starting the agent"] - marks["starting sandboxes"], 1)}


async def measure(*, quick: bool = False) -> dict[str, Any]:
    """The baseline catalog and the full one."""
    small, large = (1_000, 10_000) if quick else (10_000, 100_000)
    progress(f"full reconcile: {small:,} SKUs (baseline)")
    base = await _reconcile(small)
    progress(f"full reconcile: {large:,} SKUs")
    full = await _reconcile(large)
    return {"baseline": base, "full": full,
            "wall_ratio": round(full["wall_s"] / base["wall_s"], 2),
            "catalog_ratio": large // small}

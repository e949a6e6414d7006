"""A benchmark scene: the demo's world (sandboxes in this process, the real agent beside them)
in a temporary folder, with shoppers, and the agent process's resource use."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from agent.demo.observe import Ledger, Watch
from agent.demo.traffic import Traffic, TrafficSettings
from agent.demo.world import World, WorldSettings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def started_world(
    settings: WorldSettings, *, timeout: float = 180,
    progress: Callable[[str], None] = lambda _: None,
) -> AsyncIterator[World]:
    """A world started and in step; stopped on the way out. `progress` hears each start step."""
    with tempfile.TemporaryDirectory(prefix="storesync-bench-") as tmp:
        world = World(Path(tmp), settings)
        try:
            await world.start(progress, timeout=timeout)
            yield world
        finally:
            await world.stop()


async def shop(
    world: World,
    traffic: TrafficSettings,
    duration_s: float,
    *,
    on: Sequence[str] | None = None,
    stock: int,
) -> tuple[Ledger, Watch]:
    """Shoppers on channels `on` (default all) for `duration_s`; every channel is watched."""
    ledger = Ledger({sku: stock for sku in world.settings.skus})
    watch = world.watch(ledger)
    names = on or list(world.channels)
    shoppers = Traffic({n: world.channels[n].url for n in names}, world.settings.skus, ledger,
                       watch, traffic)
    watching = asyncio.create_task(watch.run())
    try:
        await shoppers.shoppers(duration_s)
    finally:
        await shoppers.aclose()
    # Let the last sales reach every channel (bounded), then stop watching.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while watch.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.05)
    watch.stop()
    await watching
    return ledger, watch


def route_counts(world: World) -> dict[str, Counter[str]]:
    """API requests each sandbox has answered so far, by route."""
    return {name: Counter(c.sandbox.route_counts) for name, c in world.channels.items()}


def agent_usage(world: World) -> tuple[float, float, float]:
    """The agent process's CPU seconds (user + system), RSS and peak RSS in MiB (Linux /proc)."""
    assert world.agent is not None
    pid = world.agent.proc.pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    rss = int(status["VmRSS"].split()[0]) / 1024
    peak = int(status["VmHWM"].split()[0]) / 1024
    return cpu, round(rss, 1), round(peak, 1)

"""Measure 5, idle footprint: the agent with every channel configured at the default intervals
(a poll a minute, a reconcile every 15 minutes) and nothing happening, over 60 s: its RSS, its
CPU use and the API calls it makes. The baseline is a bare Python
process importing the same libraries, measured in the same run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.demo.world import available_kinds
from bench.policies import storesync
from bench.report import progress
from bench.scene import agent_usage, route_counts, started_world

SKUS = [f"IDLE-{n:04d}" for n in range(200)]
FLOOR = "import aiohttp, httpx, structlog, sqlite_utils, apscheduler, pydantic; import time; " \
        "print('ready', flush=True); time.sleep(600)"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def measure(*, quick: bool = False) -> dict[str, Any]:
    """Idle RSS, CPU and calls per minute, beside the library floor."""
    seconds = 15.0 if quick else 60.0
    kinds = available_kinds()
    progress(f"idle footprint: {seconds:g} s with {', '.join(kinds)} configured")
    # The intervals a merchant runs with: the config's defaults, and Amazon's one poll a minute.
    settings = storesync(kinds, SKUS, 10, poll_interval="60s", polling_interval="60s",
                         reconcile_interval="15m")
    async with started_world(settings) as world:
        cpu0, _, _ = await asyncio.to_thread(agent_usage, world)
        calls0 = route_counts(world)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, rss, _peak = await asyncio.to_thread(agent_usage, world)
        elapsed = time.monotonic() - t0
        calls1 = route_counts(world)
    floor = subprocess.Popen([sys.executable, "-c", FLOOR], stdout=subprocess.PIPE, text=True)
    try:
        assert floor.stdout is not None
        floor.stdout.readline()
        floor_rss = _rss_mib(floor.pid)
    finally:
        floor.kill()
        floor.wait()
    per_minute = {n: round(sum((calls1[n] - calls0[n]).values()) * 60 / elapsed, 1)
                  for n in kinds}
    return {
        "seconds": round(elapsed, 1),
        "agent_rss_mib": rss,
        "agent_cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 2),
        "api_calls_per_minute": per_minute,
        "floor_rss_mib": floor_rss,
        "rss_ratio": round(rss / floor_rss, 2) if floor_rss else None,
    }

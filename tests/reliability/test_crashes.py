"""Crashes: SIGKILL the agent at random moments while every channel sells, and lose nothing.

Shopify, WooCommerce, Amazon and eBay sandboxes run in this process with the real agent beside
them (agent/demo/world.py). Shoppers keep buying on every channel and the warehouse keeps
shipping through the ops API, so webhooks, polls, stock pushes and shipment pushes are in flight
when the kill lands. The kill moment comes from a seeded RNG (the seed is printed; set
STORESYNC_CRASH_SEED to replay one): mostly while the agent runs, sometimes while it is still
starting up. After each kill, before the restart:

- `storesync db check` passes (SQLite's integrity check and storesync's invariants), and
- every webhook delivery the channel got a 2xx for is in the agent's inbox (a 200 means on disk);

after each restart `PRAGMA integrity_check` is ok. At the end, with the agent up: every order
placed is stored exactly once and nothing else is, every acknowledged delivery's order is
stored, every outbox row is done or dead with a reason, every channel shows the numbers the
agent publishes and those are the shoppers' ledger, and every shipment the warehouse was told
about is on its channel with its tracking number.

CI runs 6 kills; STORESYNC_RELIABILITY=full runs 50.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from agent.demo.traffic import TrafficSettings
from tests.reliability.crash_world import CrashWorld, crash_settings
from tests.reliability.scale import seconds, size

KILLS = size(ci=6, full=50)
SKUS = [f"CRASH-{n:02d}" for n in range(10)]
STOCK = 400  # enough that the full run's shoppers rarely empty a SKU
RATE = 2.0  # orders per second over all channels
# How long the agent runs before a kill: sometimes it dies while still starting up.
EARLY_SHARE = 0.2
EARLY_KILL_S = (0.05, 1.0)  # after the spawn, ready or not
RUNNING_KILL_S = (0.2, 3.0)  # after /readyz
# After the last restart and the last order: a webhook channel catches up within its 5 s poll,
# Amazon's orders settle for 3 s and are polled every 15 s; the full run's 50 restarts spent
# Amazon's getOrders burst, which then refills at one call a minute.
CONVERGE_S = seconds(ci=60, full=240)


async def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """50 (CI: 6) SIGKILLs under traffic; the store stays sound and nothing acknowledged is lost."""
    seed = int(os.environ.get("STORESYNC_CRASH_SEED") or random.randrange(1, 10**6))
    print(f"crash seed: {seed} (replay with STORESYNC_CRASH_SEED={seed})")
    rng = random.Random(seed)
    world = CrashWorld(
        tmp_path, crash_settings(SKUS, STOCK, seed=seed), TrafficSettings(rate=RATE, seed=seed)
    )
    started = time.monotonic()
    try:
        await world.start()
        stop_shopping, stop_shipping = asyncio.Event(), asyncio.Event()
        shopping = asyncio.create_task(world.shop(stop_shopping))
        shipping = asyncio.create_task(world.traffic.warehouse(stop_shipping))
        acks_checked = early = 0
        for kill in range(1, KILLS + 1):
            if kill > 1 and rng.random() < EARLY_SHARE:
                early += 1
                await asyncio.sleep(rng.uniform(*EARLY_KILL_S))
            else:
                await world.wait_ready()
                await asyncio.sleep(rng.uniform(*RUNNING_KILL_S))
            await world.kill()
            acks = world.acks.snapshot()  # every 2xx the dead agent gave
            check = await asyncio.to_thread(world.db_check)
            assert check["ok"] and check["exit"] == 0, (
                f"seed {seed}, kill {kill}: storesync db check failed: {check}")
            lost = await asyncio.to_thread(world.lost_acks_in_inbox, acks)
            assert not lost, (
                f"seed {seed}, kill {kill}: {len(lost)} acknowledged deliveries are not in the "
                f"inbox, e.g. {lost[:3]}")
            acks_checked = len(acks)
            world.spawn()
            integrity = await asyncio.to_thread(world.integrity)
            assert integrity == ["ok"], f"seed {seed}, after restart {kill}: {integrity[:5]}"
        await world.wait_ready()
        kills_done_at = time.monotonic()
        stop_shopping.set()
        await shopping
        stop_shipping.set()
        await shipping
        assert not world.traffic.errors, f"seed {seed}: {world.traffic.errors[:5]}"

        try:
            report = await world.world.wait_for(
                world.converged, timeout=CONVERGE_S, what="every channel to converge", every=0.5)
        except TimeoutError as exc:
            raise AssertionError(
                f"seed {seed}: not converged {CONVERGE_S:g} s after the last kill: "
                f"{world.last_report}") from exc
        converged_s = time.monotonic() - kills_done_at

        rows = world.order_rows()
        doubled = {key: n for key, n in rows.items() if n != 1}
        assert not doubled, f"seed {seed}: orders stored more than once: {doubled}"
        placed = world.placed()
        assert sum(len(ids) for ids in placed.values()) == len(rows), (
            f"seed {seed}: {len(rows)} orders stored, shoppers placed "
            f"{sum(len(ids) for ids in placed.values())}")
        all_acks = world.acks.snapshot()
        lost = world.lost_acks(all_acks)
        assert not lost, f"seed {seed}: acknowledged deliveries lost at the end: {lost[:5]}"
        assert world.unsettled_outbox() == []
        final = await asyncio.to_thread(world.db_check)
        assert final["ok"], f"seed {seed}: final db check: {final}"

        orders = {
            "placed": len(rows),
            "shipped": len(world.traffic.shipped),
            "cancelled": report["orders"]["cancelled"],
        }
        print(
            f"crashes: {KILLS} SIGKILLs survived ({early} during start-up), seed {seed}; "
            f"orders {orders}; acknowledged deliveries checked {len(all_acks)} "
            f"(last kill: {acks_checked}); converged {converged_s:.1f} s after the last kill; "
            f"total {time.monotonic() - started:.1f} s"
        )
    finally:
        await world.stop()

"""Webhook faults: dropped, duplicated (up to 10 copies, concurrently and across a restart),
reordered, and retried 4 hours late with a stale payload. The store converges to the sandboxes'
truth within one reconcile interval, and an older payload never rolls an order back.

Shopify and WooCommerce (the channels storesync hears by webhook) run in this process, the real
agent beside them. Their polls are set 10 minutes apart, so only webhooks and the reconcile sweep
can bring an order in: anything a dropped delivery lost must come back through one sweep.

The CI subset buys for 8 s; the full run (STORESYNC_RELIABILITY=full) for 60 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from agent.demo.observe import Ledger, Sale
from agent.demo.traffic import Traffic, TrafficSettings
from agent.demo.world import World, WorldSettings
from tests.reliability.scale import seconds

KINDS = ["shopify", "woocommerce"]
SKUS = [f"WH-{n:02d}" for n in range(1, 9)]
STOCK = 500
RECONCILE_S = 20.0
# After the last sale: the sweep that starts within RECONCILE_S, plus its reads and pushes.
SWEEP_MARGIN_S = 15.0


@asynccontextmanager
async def webhook_world(tmp_path: Path) -> AsyncIterator[World]:
    """The two webhook channels and the agent, polls 10 minutes apart, in step."""
    world = World(tmp_path, WorldSettings(
        kinds=KINDS, skus=SKUS, stock=STOCK, poll_interval="10m",
        reconcile_interval=f"{RECONCILE_S:.0f}s",
    ))
    await world.start(timeout=120)
    try:
        yield world
    finally:
        await world.stop()


class Captured:
    """Every delivery a sandbox posts, as sent: its headers and raw body."""

    def __init__(self, world: World) -> None:
        self.deliveries: list[tuple[str, dict[str, str], bytes]] = []
        for channel in world.channels.values():
            sender = channel.sandbox.sender
            post = sender._post  # noqa: SLF001 - instrumenting our own sandbox

            async def keep(job: Any, name: str = channel.name, post: Any = post) -> Any:
                self.deliveries.append((name, dict(job.headers), job.body))
                return await post(job)

            sender._post = keep  # type: ignore[method-assign]  # noqa: SLF001

    def order_delivery(self, channel: str, order_id: str, topic: str) -> tuple[dict[str, str],
                                                                               bytes]:
        """The first delivery of `topic` about one order."""
        for name, headers, body in self.deliveries:
            if name == channel and topic_of(headers) == topic and body_id(body) == order_id:
                return headers, body
        raise AssertionError(f"no {topic} delivery for {channel} order {order_id}")


def topic_of(headers: dict[str, str]) -> str:
    """The delivery's topic header, whichever channel sent it."""
    for name in ("X-Shopify-Topic", "X-WC-Webhook-Topic"):
        if name in headers:
            return headers[name]
    return ""


def body_id(body: bytes) -> str | None:
    """The order id a delivery's body is about."""
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)


def stored_orders(world: World) -> dict[tuple[str, str], str]:
    """(channel, order id) -> status, as the agent stored them."""
    return world.read(lambda conn: {
        (c, o): s for c, o, s in conn.execute("SELECT channel, external_id, status FROM orders")
    })


# WooCommerce's truth is its own API's order; the statuses shoppers and cancellations produce
# here, in storesync's words (WooCommerce docs, `_orders.md`).
WOO_STATUS = {"processing": "open", "cancelled": "cancelled", "pending": "pending"}


def truth_orders(world: World) -> dict[tuple[str, str], str]:
    """(channel, order id) -> status, as the sandboxes hold them."""
    found = {}
    for channel in world.channels.values():
        for order_id, order in channel.sandbox.truth()["orders"].items():
            status = order["status"]
            found[(channel.name, order_id)] = (
                WOO_STATUS.get(status, status) if channel.kind == "woocommerce" else status)
    return found


async def converged(world: World, ledger: Ledger) -> str | None:
    """None when the store equals the sandboxes' truth; otherwise what differs."""
    stored, truth = stored_orders(world), truth_orders(world)
    if stored != truth:
        wrong = {k: (stored.get(k), v) for k, v in truth.items() if stored.get(k) != v}
        return f"orders differ (stored, truth): {dict(list(wrong.items())[:5])}"
    expected = ledger.expected_published()
    published = world.published()
    for channel in world.channels.values():
        shown = channel.sandbox.levels()
        for sku in SKUS:
            if not shown.get(sku) == published.get(channel.name, {}).get(sku) == expected[sku]:
                return (f"{channel.name} {sku}: shows {shown.get(sku)}, published "
                        f"{published.get(channel.name, {}).get(sku)}, expected {expected[sku]}")
    return None


async def post_copies(world: World, channel: str, headers: dict[str, str], body: bytes,
                      copies: int) -> list[int]:
    """POST one delivery `copies` times at once to the agent's webhook endpoint."""
    async with httpx.AsyncClient(timeout=15) as client:
        answers = await asyncio.gather(*(
            client.post(f"{world.webhook_url}/webhooks/{channel}", content=body, headers=headers)
            for _ in range(copies)
        ))
    return [a.status_code for a in answers]


def inbox_rows(world: World, channel: str, order_id: str) -> int:
    """Inbox rows whose body is about one order."""
    bodies = world.read(lambda conn: [
        b for (b,) in conn.execute("SELECT body FROM inbox WHERE channel = ?", (channel,))])
    return sum(1 for b in bodies if body_id(bytes(b)) == order_id)


async def test_dropped_duplicated_reordered_webhooks_converge_within_one_reconcile(
    tmp_path: Path,
) -> None:
    async with webhook_world(tmp_path) as world:
        for channel in world.channels.values():
            channel.sandbox.faults.update({
                "drop_rate": 0.3, "duplicate_rate": 0.5, "duplicate_max": 10, "reorder": True,
                "seed": 7,
            })
        ledger = Ledger(dict.fromkeys(SKUS, STOCK))
        traffic = Traffic({c.name: c.url for c in world.channels.values()}, SKUS, ledger, None,
                          TrafficSettings(rate=4, cancel_share=0.3, seed=11))
        try:
            await traffic.shoppers(seconds(ci=8, full=60))
        finally:
            await traffic.aclose()
        last_sale = time.monotonic()
        for channel in world.channels.values():
            channel.sandbox.sender.release_held()  # the last reordered delivery goes out too
        sent = {c.name: c.sandbox.sender.snapshot() for c in world.channels.values()}
        assert all(s["dropped"] > 0 and s["duplicated"] > 0 for s in sent.values()), sent
        assert traffic.errors == []
        assert len(ledger.sales) > 10

        deadline = last_sale + RECONCILE_S + SWEEP_MARGIN_S
        problem: str | None = "not checked"
        while time.monotonic() < deadline:
            problem = await converged(world, ledger)
            if problem is None:
                break
            await asyncio.sleep(0.5)
        assert problem is None, (
            f"not converged {RECONCILE_S + SWEEP_MARGIN_S:.0f} s after the last sale "
            f"(one reconcile interval and a margin): {problem}"
        )
        took = time.monotonic() - last_sale
        print(f"{len(ledger.sales)} orders, {sum(s['dropped'] for s in sent.values())} "
              f"deliveries dropped, {sum(s['duplicated'] for s in sent.values())} extra copies; "
              f"converged {took:.1f} s after the last sale")


async def test_ten_copies_at_once_and_after_a_restart_apply_once_and_a_stale_retry_never_rolls_back(
    tmp_path: Path,
) -> None:
    async with webhook_world(tmp_path) as world:
        captured = Captured(world)
        shop = world.channels["shopify"]
        async with httpx.AsyncClient(timeout=10) as client:
            placed = (await client.post(f"{shop.url}/_control/orders", json={
                "lines": [{"sku": "WH-01", "quantity": 2}]})).json()
        order_id = str(placed["id"])
        await world.wait_for(lambda: stored_orders(world).get(("shopify", order_id)) == "open",
                             timeout=20, what="the order by webhook")
        headers, body = captured.order_delivery("shopify", order_id, "orders/create")

        # Ten copies at once: one inbox row, one order, one stock effect.
        assert set(await post_copies(world, "shopify", headers, body, 10)) == {200}
        assert inbox_rows(world, "shopify", order_id) == 1
        # Ten more after a kill -9 and a restart.
        assert world.agent is not None
        world.agent.signal(signal.SIGKILL)
        world.agent.stop(timeout=30)  # reaps it and closes its log
        await world.start_agent(timeout=60)
        assert set(await post_copies(world, "shopify", headers, body, 10)) == {200}
        assert inbox_rows(world, "shopify", order_id) == 1
        ledger = Ledger(dict.fromkeys(SKUS, STOCK))
        sale = Sale("shopify", order_id, {"WH-01": 2}, time.monotonic())
        ledger.record_sale(sale)
        await world.wait_for(lambda: _expect(world, ledger), timeout=30,
                             what="one sale's worth of stock everywhere")

        # The shop cancels the order; then a delivery that failed 4 hours ago is retried with
        # its original payload (the order as it was, open) under a new delivery id.
        async with httpx.AsyncClient(timeout=10) as client:
            cancelled = await client.post(f"{shop.url}/_control/orders/{order_id}/cancel")
            assert cancelled.status_code < 400, cancelled.text
        await world.wait_for(
            lambda: stored_orders(world).get(("shopify", order_id)) == "cancelled",
            timeout=30, what="the cancellation")
        ledger.record_cancel(sale)
        await world.wait_for(lambda: _expect(world, ledger), timeout=30,
                             what="the cancelled units back on every channel")
        stale = dict(headers)
        four_hours_ago = datetime.now(UTC) - timedelta(hours=4)
        stale["X-Shopify-Triggered-At"] = four_hours_ago.isoformat().replace("+00:00", "Z")
        for name in ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id"):
            if name in stale:
                stale[name] = f"{stale[name]}-retry"
        answers = await post_copies(world, "shopify", stale, body, 3)
        assert all(a < 500 for a in answers), answers
        # Whatever the answer, once the agent has dealt with it the order stays cancelled and
        # the stock stays released.
        await world.wait_for(lambda: world.read(lambda conn: conn.execute(
            "SELECT count(*) FROM inbox WHERE processed_at IS NULL AND parked = 0"
        ).fetchone()[0] == 0), timeout=30, what="the inbox to be worked off")
        assert stored_orders(world)[("shopify", order_id)] == "cancelled"
        assert await _expect(world, ledger)


async def _expect(world: World, ledger: Ledger) -> bool:
    """Every channel shows, and the agent publishes, what the ledger says."""
    expected = ledger.expected_published()
    published = world.published()
    return all(
        channel.sandbox.levels().get(sku) == published.get(channel.name, {}).get(sku)
        == expected[sku]
        for channel in world.channels.values() for sku in SKUS
    )


"""A four-store world for channel-fault scenarios: the demo's World (sandboxes in this process,
the real agent in a child process) with shoppers, a warehouse, a probe SKU, and the readings the
fault tests assert on (request logs, converged stores, credential rotation).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.demo.observe import Ledger, Sale
from agent.demo.traffic import Traffic, TrafficSettings
from agent.demo.world import STORE_KINDS, World, WorldSettings
from agent.store.queries import stored_order_ids
from connectors.sandbox.app import RequestRecord

SKUS = [f"FLT-{n:02d}" for n in range(8)]
# Shoppers never buy the probe SKU: a probe sale on a healthy channel has one known effect, so
# "it reached the other healthy channels" is an exact level to wait for.
PROBE = "FLT-PROBE"
# Enough units that shoppers never run a SKU dry over the whole module's scenarios.
STOCK = 5_000
# Amazon here plays a seller on a raised dynamic usage plan (getOrders at 0.5/s instead of one a
# minute): the agent learns the rate from x-amzn-RateLimit-Limit and paces itself, so a 2 s
# poll stays inside the limit and the tests need not wait minutes for a polled store.
# The same raised plan covers getOrderItems (one call per order): at 0.5/s by default it trails
# the quarter of ORDERS_PER_S that lands on Amazon, and Amazon orders were heard minutes late.
AMAZON_RATES = {
    "getOrders": {"rate_per_s": 0.5, "burst": 20},
    "getOrderItems": {"rate_per_s": 2.0, "burst": 30},
}
AMAZON_SETTLE_S = 2
REVISIONS_UNCAPPED = 1_000_000


def settings() -> WorldSettings:
    """The world every fault scenario shares."""
    return WorldSettings(
        kinds=STORE_KINDS,
        skus=[*SKUS, PROBE],
        stock=STOCK,
        seed=7,
        poll_interval="2s",  # the safety net behind webhooks; polls meet faults too
        polling_interval="1s",  # eBay, heard only by polling
        # Amazon takes absolute quantities with no compare-and-set: a sale there racing a
        # quantity patch can only be caught by a reconcile sweep, so sweep often.
        reconcile_interval="15s",
        sandbox_options={
            "amazon": {"min_age_s": AMAZON_SETTLE_S, "request_log_size": 500_000},
            **{k: {"request_log_size": 500_000} for k in ("shopify", "woocommerce", "ebay")},
        },
        channel_options={
            "amazon": {"order_settle": f"{AMAZON_SETTLE_S}s", "poll_interval": "2s"},
            # The full run sells each SKU several hundred times an hour, more than eBay lets a
            # listing be revised in a day (250): its cap is lifted in the sandbox and the
            # agent, and tests/connectors/ebay covers how the agent lives with it.
            "ebay": {"revisions_per_day": REVISIONS_UNCAPPED},
        },
        secret_files=True,
    )


async def start_world(directory: Path) -> World:
    """Sandboxes, config with keys in files, starting stock, the agent; in step on return."""
    world = World(directory, settings())
    await world.start_sandboxes()
    amazon = world.channels["amazon"].sandbox
    amazon.configure(rates=AMAZON_RATES)  # type: ignore[attr-defined]
    world.channels["ebay"].sandbox.configure({"revision_cap": None})  # type: ignore[attr-defined]
    world.write_config()
    await asyncio.to_thread(world.import_stock)
    await world.start_agent(timeout=60)
    await world.wait_for(world.in_step, timeout=60, what="every channel to be in step")
    return world


# -- credentials ----------------------------------------------------------------------------------


def rotate_credentials(world: World, name: str) -> str:
    """The merchant rotates channel `name`'s credential on the channel: the key storesync holds
    stops working at once (tokens minted from it included). Returns the new key."""
    channel = world.channels[name]
    sandbox: Any = channel.sandbox
    new = f"rotated-{secrets.token_urlsafe(9)}"
    if channel.kind == "shopify":
        sandbox.configure(api_key=new)
        sandbox.records.tokens.clear()
    elif channel.kind == "woocommerce":
        sandbox.configure(consumer_secret=new)
    elif channel.kind == "amazon":
        sandbox.configure(api_key=new, revoke_tokens=True)
    elif channel.kind == "ebay":
        sandbox.configure({"api_key": new})
        sandbox.revoke_tokens()
    else:
        raise ValueError(f"no credential rotation for {channel.kind}")
    return new


def reload_with_key(world: World, name: str, key: str) -> None:
    """Write the new key where the config points, then SIGHUP: what a merchant does."""
    world.write_secret(name, key)
    assert world.agent is not None
    world.agent.signal(signal.SIGHUP)


# -- shoppers, warehouse, probe -------------------------------------------------------------------


@dataclass
class Shop:
    """Shoppers and the warehouse over a world, with one ledger for the whole module."""

    world: World
    ledger: Ledger
    order_timeout_s: float  # how long the warehouse waits for the agent to know an order
    shipped: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def traffic(self, seed: int, rate: float) -> Traffic:
        """Shoppers on every channel, buying everything but the probe SKU."""
        # A ledger of this scenario's sales (the warehouse walks every sale of its ledger from
        # the first), counting units into the module's totals.
        ledger = Ledger(self.ledger.stock, net_sold=self.ledger.net_sold)
        return Traffic(
            {name: c.url for name, c in self.world.channels.items()}, SKUS, ledger, None,
            TrafficSettings(rate=rate, cancel_share=0.05, ship_share=0.5, seed=seed),
            ship=self.ship,
        )

    async def ship(
        self, channel: str, order_id: str, lines: dict[str, int], carrier: str, tracking: str
    ) -> None:
        """POST /shipments once the agent knows the order, as a shipping tool would."""

        async def known() -> bool:
            response = await self.world.ops("GET", f"/orders/{channel}/{order_id}")
            return response.status_code == 200

        await self.world.wait_for(
            known, timeout=self.order_timeout_s, every=0.5,
            what=f"the agent to know {channel} order {order_id}",
        )
        body = {
            "channel": channel, "order_id": order_id, "carrier": carrier,
            "tracking_number": tracking, "tracking_url": f"https://t.example/{tracking}",
            "lines": lines,
        }
        response = await self.world.ops("POST", "/shipments", body)
        if response.status_code != 201:
            raise RuntimeError(f"POST /shipments answered {response.status_code}: {response.text}")

    async def run(self, traffic: Traffic, duration_s: float) -> None:
        """Shoppers for `duration_s`, the warehouse until they stop and its shipments are in."""
        stop = asyncio.Event()
        warehouse = asyncio.create_task(traffic.warehouse(stop, every_s=0.5))
        try:
            await traffic.shoppers(duration_s)
        finally:
            stop.set()
            await warehouse
            self.ledger.sales.extend(traffic.ledger.sales)
            self.shipped.extend(traffic.shipped)
            self.errors.extend(traffic.errors)
            await traffic.aclose()

    async def probe(self, origin: str, healthy: Sequence[str], *, timeout: float) -> float:
        """Sell one probe unit on `origin`; seconds until every other healthy channel shows it."""
        channel = self.world.channels[origin]
        at = time.monotonic()
        response = await self.world._http.post(
            f"{channel.url}/_control/orders", json={"lines": [{"sku": PROBE, "quantity": 1}]}
        )
        response.raise_for_status()
        self.ledger.record_sale(Sale(origin, str(response.json()["id"]), {PROBE: 1}, at))
        left = self.ledger.left(PROBE)
        others = [n for n in healthy if n != origin]
        await self.world.wait_for(
            lambda: all(self.world.channels[n].sandbox.levels().get(PROBE) == left
                        for n in others),
            timeout=timeout, every=0.05,
            what=f"a sale on {origin} to reach {', '.join(others)} during the fault",
        )
        return time.monotonic() - at


# -- convergence ----------------------------------------------------------------------------------


async def behind(world: World, shop: Shop, *, stock_only: bool = False) -> list[str]:
    """Why the stores have not converged yet (empty once they have): nothing lost, nothing twice.
    With `stock_only`, only whether every store shows the sold-through stock: no oversell."""
    reasons: list[str] = []
    status = await world.status()
    expected = shop.ledger.expected_published()
    published = world.published()
    stored = world.read(stored_order_ids)
    for name, channel in world.channels.items():
        state = status["channels"][name]
        if not stock_only and (state["state"] != "ok" or state["outbox"]["depth"]):
            reasons.append(f"{name}: {state['state']}, outbox {state['outbox']['depth']}")
        wanted = published.get(name, {})
        wrong = {s: (wanted.get(s), expected[s]) for s in expected if wanted.get(s) != expected[s]}
        if wrong:
            first = dict(list(wrong.items())[:3])
            reasons.append(f"{name}: published != sold-through stock {first}")
        shown = channel.sandbox.levels()
        off = {s: (shown.get(s), wanted.get(s)) for s in expected if shown.get(s) != wanted.get(s)}
        if off:
            reasons.append(f"{name}: shows != published {dict(list(off.items())[:3])}")
        if stock_only:
            continue
        truth = channel.sandbox.truth()
        missing = set(truth["orders"]) - stored.get(name, set())
        if missing:
            reasons.append(f"{name}: orders not stored {sorted(missing)[:5]}")
        on_channel = {(str(s["order_id"]), str(s["tracking_number"])) for s in truth["shipments"]}
        lost = [p.tracking_number for p in shop.shipped
                if p.channel == name and (p.order_id, p.tracking_number) not in on_channel]
        if lost:
            reasons.append(f"{name}: shipments not on the channel {lost[:5]}")
    if stock_only:
        return reasons
    twice = world.read(lambda conn: conn.execute(
        "SELECT channel, external_id FROM orders GROUP BY channel, external_id "
        "HAVING count(*) > 1").fetchall())
    if twice:
        reasons.append(f"orders stored twice: {twice[:5]}")
    return reasons


async def converge(
    world: World, shop: Shop, *, timeout: float, stock_only: bool = False
) -> float:
    """Seconds until every store converged (with `stock_only`: shows the sold-through stock);
    AssertionError naming what is behind at the deadline."""
    start = time.monotonic()
    last: list[str] = []

    async def done() -> bool:
        last[:] = await behind(world, shop, stock_only=stock_only)
        return not last

    what = "every store to show the sold-through stock" if stock_only else "every store to converge"
    try:
        await world.wait_for(done, timeout=timeout, every=0.5, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {'; '.join(last)}") from exc
    return time.monotonic() - start


def log_size(world: World) -> int:
    """Where the agent's log ends now: `tracebacks` reads on from here."""
    return (world.dir / "agent.log").stat().st_size


def tracebacks(world: World, since: int) -> list[str]:
    """Events the agent logged with a traceback after byte `since` of its log: an error no code
    path expected (a fault the agent meets, however harsh, is logged as what it is, without
    one)."""
    found = []
    with (world.dir / "agent.log").open("rb") as log:
        log.seek(since)
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "exception" in event:
                found.append(f"{event.get('event')}: {event.get('error', '')}"[:200])
    return found


# -- request logs ---------------------------------------------------------------------------------


def hearing_lags(world: World, channels: Sequence[str], since: float) -> dict[str, float]:
    """Per channel, the longest an order created at or after wall time `since` waited between
    its creation on the store and the agent storing it."""
    start = datetime.fromtimestamp(since, UTC).isoformat()

    def query(conn: sqlite3.Connection) -> dict[str, float]:
        rows = conn.execute(
            "SELECT channel, max(julianday(first_seen_at) - julianday(created_at)) * 86400 "
            "FROM orders WHERE julianday(created_at) >= julianday(?) GROUP BY channel", (start,),
        ).fetchall()
        return {name: lag for name, lag in rows if name in channels}

    return world.read(query)


def requests_since(world: World, name: str, since: float) -> list[RequestRecord]:
    """Channel `name`'s API requests that arrived at or after wall time `since`, in order."""
    return sorted((r for r in world.channels[name].sandbox.requests if r.at >= since),
                  key=lambda r: r.at)


def self_inflicted_429s(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """429 answers no injected fault produced: the agent went over the channel's real limit."""
    return [r for r in records if r.status == 429 and r.fault is None]


# A request the agent had already sent when a 429 came back arrives a moment after it; only
# requests sent after the agent read the 429 must respect Retry-After.
IN_FLIGHT_S = 0.3


def early_after_storm_429(records: Sequence[RequestRecord], retry_after: float) -> list[str]:
    """Requests that arrived after a storm 429 was read but before its Retry-After passed, in
    the 429's own scope: an Amazon operation or an eBay API is metered, and paused, alone."""
    early = []
    for i, answer in enumerate(records):
        if answer.fault != "storm":
            continue
        for later in records[i + 1:]:
            gap = later.at - answer.at
            if gap >= retry_after - 0.05:
                break
            if gap > IN_FLIGHT_S and later.scope == answer.scope:
                early.append(f"{later.route} {gap:.2f} s after a 429 at {answer.at:.2f}")
    return early


def storm_429s(records: Iterable[RequestRecord]) -> Counter[str]:
    """Storm 429s by the scope they paused, the requests already in flight when the storm
    began (within IN_FLIGHT_S of the scope's first storm 429) counted once: a poll, a sweep
    and a push sent together all meet the storm's first moment, and no client can know it
    is coming."""
    first: dict[str, float] = {}
    counted: Counter[str] = Counter()
    for record in sorted((r for r in records if r.fault == "storm"), key=lambda r: r.at):
        start = first.setdefault(record.scope, record.at)
        if record.at == start or record.at - start > IN_FLIGHT_S:
            counted[record.scope] += 1
    return counted


def storm_bound(storm_s: float, retry_after: float) -> int:
    """The most storm 429s a client honouring Retry-After can collect in one storm."""
    # After a 429 the client waits Retry-After before its next request, so requests that meet
    # the storm are at least `retry_after` apart: the one at the storm's start, then at most one
    # per Retry-After window; ceil() counts the windows that start inside the storm, and +1
    # covers the first request landing just after the storm began (timing slack at both ends).
    return math.ceil(storm_s / retry_after) + 1

"""Simulated shoppers and a simulated warehouse, driving the sandboxes and the agent over HTTP.

Shoppers check out on a random channel at a steady average rate (Poisson arrivals, seeded), as
a buyer would through the channel's own store: through the sandbox's control API, which refuses a
checkout the channel cannot fill. A few change their mind and cancel. The warehouse ships orders
once the agent knows them, through the agent's ops API (`POST /shipments`), the way a merchant's
shipping tool would, and remembers every tracking number so the demo can check it reached the
channel.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from agent.demo.observe import Ledger, Sale, Watch

CARRIERS = ("UPS", "USPS", "FedEx", "DHL")


@dataclass(frozen=True, slots=True)
class Shipped:
    """A shipment the warehouse reported, to find again on the order's channel."""

    channel: str
    order_id: str
    carrier: str
    tracking_number: str


@dataclass(slots=True)
class TrafficSettings:
    """How busy the shop is."""

    rate: float  # orders per second, over all channels
    cancel_share: float = 0.05  # of placed orders, cancelled a little later
    ship_share: float = 0.6  # of placed orders, shipped by the warehouse
    max_lines: int = 2
    max_qty: int = 2
    seed: int = 2026


@dataclass(slots=True)
class Traffic:
    """Shoppers and the warehouse for one run."""

    channels: dict[str, str]  # channel name -> sandbox URL
    skus: Sequence[str]
    ledger: Ledger
    watch: Watch | None
    settings: TrafficSettings
    ship: Callable[[str, str, dict[str, int], str, str], Awaitable[None]] | None = None
    shipped: list[Shipped] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))

    async def shoppers(self, duration_s: float) -> None:
        """Place orders for `duration_s` seconds at the configured average rate."""
        rng = random.Random(self.settings.seed)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        next_at = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        while True:
            next_at += rng.expovariate(self.settings.rate)
            if next_at >= end:
                break
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            channel = rng.choice(sorted(self.channels))
            count = rng.randint(1, min(self.settings.max_lines, len(self.skus)))
            lines = {sku: rng.randint(1, self.settings.max_qty) for sku in rng.sample(
                list(self.skus), count)}
            cancel = rng.random() < self.settings.cancel_share
            task = asyncio.create_task(self._checkout(channel, lines, cancel, rng.random()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    async def _checkout(
        self, channel: str, lines: dict[str, int], cancel: bool, later: float
    ) -> None:
        at = time.monotonic()
        body = {"lines": [{"sku": s, "quantity": q} for s, q in lines.items()]}
        try:
            response = await self._client.post(
                f"{self.channels[channel]}/_control/orders", json=body
            )
        except httpx.HTTPError as exc:
            self.errors.append(f"checkout on {channel}: {exc!r}")
            return
        if response.status_code == 409:
            self.ledger.refused += 1  # the channel shows too few: the shopper goes elsewhere
            return
        if response.status_code >= 400:
            self.errors.append(f"checkout on {channel}: {response.status_code} {response.text}")
            return
        sale = Sale(channel, str(response.json()["id"]), lines, at)
        self.ledger.record_sale(sale)
        if self.watch is not None:
            self.watch.on_sale(sale)
        if cancel:
            await asyncio.sleep(0.5 + 2 * later)
            await self._cancel(sale)

    async def _cancel(self, sale: Sale) -> None:
        if sale.shipped:
            return
        url = f"{self.channels[sale.channel]}/_control/orders/{sale.order_id}/cancel"
        response = await self._client.post(url)
        if response.status_code < 400:
            self.ledger.record_cancel(sale)
            if self.watch is not None:
                self.watch.on_cancel(sale)

    async def warehouse(self, stop: asyncio.Event, *, every_s: float = 0.5) -> None:
        """Ship a share of the orders, oldest first, until `stop` is set; then finish the
        shipments already started."""
        if self.ship is None:
            return
        rng = random.Random(self.settings.seed + 1)
        considered = 0
        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            ripe = time.monotonic() - 4.0  # past the cancellation window
            while considered < len(self.ledger.sales) and self.ledger.sales[considered].at < ripe:
                sale = self.ledger.sales[considered]
                considered += 1
                if sale.cancelled or rng.random() >= self.settings.ship_share:
                    continue
                sale.shipped = True
                parcel = Shipped(
                    sale.channel, sale.order_id, rng.choice(CARRIERS),
                    f"DEMO{rng.randrange(10**9, 10**10)}",
                )
                task = asyncio.create_task(self._send(parcel, sale.lines))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass
        if tasks:
            await asyncio.gather(*tasks)

    async def _send(self, parcel: Shipped, lines: dict[str, int]) -> None:
        assert self.ship is not None
        try:
            await self.ship(
                parcel.channel, parcel.order_id, lines, parcel.carrier, parcel.tracking_number
            )
        except Exception as exc:  # noqa: BLE001 - reported; the run goes on
            self.errors.append(f"shipping {parcel.channel} order {parcel.order_id}: {exc}")
            return
        self.shipped.append(parcel)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

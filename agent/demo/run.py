"""One demo run: start the world, let shoppers buy and the warehouse ship, show a live line,
then wait for every channel to converge and report what was measured."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agent.demo.observe import Ledger, Watch, summary_ms
from agent.demo.traffic import Traffic, TrafficSettings
from agent.demo.world import DEMO_NOTES, World, WorldSettings
from agent.store.queries import stored_order_ids


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `storesync demo` was asked for."""

    directory: Path
    world: WorldSettings
    traffic: TrafficSettings
    duration_s: float
    settle_timeout_s: float = 150.0  # after the shoppers stop, how long convergence may take


class DemoRun:
    """The world, the traffic and the watch for one run, and the report at its end."""

    def __init__(self, options: DemoOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.world = World(options.directory, options.world)
        self.ledger = Ledger({sku: options.world.stock for sku in options.world.skus})
        self.watch: Watch | None = None
        self.traffic: Traffic | None = None
        self.interrupted = asyncio.Event()
        self.started = time.monotonic()

    # -- the warehouse's shipping tool ----------------------------------------------------------

    async def ship(
        self, channel: str, order_id: str, lines: dict[str, int], carrier: str, tracking: str
    ) -> None:
        """POST /shipments once the agent has the order (polled channels take a while)."""
        await self.world.wait_for(
            lambda: self._known(channel, order_id),
            timeout=self.options.settle_timeout_s,
            what=f"the agent to know {channel} order {order_id}",
            every=0.5,
        )
        response = await self.world.ops(
            "POST",
            "/shipments",
            {
                "channel": channel,
                "order_id": order_id,
                "carrier": carrier,
                "tracking_number": tracking,
                "tracking_url": f"https://tracking.example/{tracking}",
                "lines": lines,
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST /shipments answered {response.status_code}: {response.text}")

    async def _known(self, channel: str, order_id: str) -> bool:
        response = await self.world.ops("GET", f"/orders/{channel}/{order_id}")
        return response.status_code == 200

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Start, drive traffic, converge, stop; the report."""
        world = self.world
        try:
            await world.start(self.say)
            self.say(f"agent ops page: {world.ops_url}/  (status: {world.ops_url}/status)")
            for channel in world.channels.values():
                self.say(f"  {channel.name:<12} sandbox {channel.url}/_control/state")
            self.say(f"config and database in {self.options.directory}")
            for kind in world.channels:
                if kind in DEMO_NOTES:
                    self.say(f"note: {DEMO_NOTES[kind]}")
            self.watch = world.watch(self.ledger)
            self.traffic = Traffic(
                {c.name: c.url for c in world.channels.values()},
                self.options.world.skus, self.ledger, self.watch, self.options.traffic,
                ship=self.ship,
            )
            watching = asyncio.create_task(self.watch.run())
            shipping_stop = asyncio.Event()
            shipping = asyncio.create_task(self.traffic.warehouse(shipping_stop))
            shopping = asyncio.create_task(self.traffic.shoppers(self.options.duration_s))
            await self._until(shopping)
            shopping.cancel()
            self.say("shoppers done; waiting for every channel to converge")
            shipping_stop.set()
            await shipping
            report = await self._converge()
            self.watch.stop()
            await watching
            return report
        finally:
            if self.traffic is not None:
                await self.traffic.aclose()
            code = await world.stop()
            if code not in (0, None):
                self.say(f"warning: the agent exited with {code}; see {world.dir}/agent.log")

    async def _until(self, shopping: asyncio.Task[None]) -> None:
        """Wait for the shoppers to finish, or for Ctrl-C."""
        interrupted = asyncio.create_task(self.interrupted.wait())
        await asyncio.wait({shopping, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        interrupted.cancel()

    async def _converge(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.options.settle_timeout_s
        while True:
            report = await self.report()
            if report["converged"] or time.monotonic() >= deadline:
                return report
            await asyncio.sleep(0.5)

    # -- measuring ------------------------------------------------------------------------------

    async def counters(self) -> dict[str, float]:
        """Orders in and pushes out, from the agent's own metrics."""
        text = await self.world.metrics()
        totals = {"orders_in": 0.0, "pushes_out": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (sample.name == "storesync_orders_applied_total"
                        and sample.labels.get("result") == "created"):
                    totals["orders_in"] += sample.value
                elif (sample.name == "storesync_pushes_total"
                        and sample.labels.get("result") == "done"):
                    totals["pushes_out"] += sample.value
        return totals

    async def live_line(self) -> str:
        """One line: orders in, pushes out, propagation, oversold units, channel states."""
        counters = await self.counters()
        status = await self.world.status()
        watch = self.watch
        prop = summary_ms(watch.samples if watch else [])
        states = ", ".join(f"{n} {c['state']}" for n, c in status["channels"].items())
        p50 = "-" if prop["p50"] is None else f"{prop['p50']:.0f}"
        p99 = "-" if prop["p99"] is None else f"{prop['p99']:.0f}"
        return (
            f"{time.monotonic() - self.started:5.0f}s  orders in {counters['orders_in']:.0f}"
            f"  pushes out {counters['pushes_out']:.0f}  propagation p50 {p50} ms p99 {p99} ms"
            f"  oversold {self.ledger.oversold()}  [{states}]"
        )

    async def report(self) -> dict[str, Any]:
        """Where every channel stands against the ledger; `converged` when all agree."""
        world = self.world
        expected = self.ledger.expected_published()
        published = world.published()
        stored = world.read(stored_order_ids)
        status = await world.status()
        channels: dict[str, Any] = {}
        for channel in world.channels.values():
            shown = channel.sandbox.levels()
            wanted = published.get(channel.name, {})
            wrong = sorted(
                sku for sku in expected
                if shown.get(sku) != wanted.get(sku) or wanted.get(sku) != expected[sku]
            )
            placed = {s.order_id for s in self.ledger.sales if s.channel == channel.name}
            missing_orders = sorted(placed - stored.get(channel.name, set()))
            on_channel = {
                (str(s["order_id"]), str(s["tracking_number"]))
                for s in channel.sandbox.truth().get("shipments", [])
            }
            sent = [p for p in (self.traffic.shipped if self.traffic else [])
                    if p.channel == channel.name]
            missing_shipments = sorted(
                p.tracking_number for p in sent if (p.order_id, p.tracking_number) not in on_channel
            )
            state = status["channels"].get(channel.name, {})
            channels[channel.name] = {
                "state": state.get("state"),
                "skus": len(expected),
                "skus_matching": len(expected) - len(wrong),
                "mismatches": [
                    {"sku": sku, "shown": shown.get(sku), "published": wanted.get(sku),
                     "expected": expected[sku]}
                    for sku in wrong[:5]
                ],
                "orders_placed": len(placed),
                "orders_missing": missing_orders[:5],
                "shipments_sent": len(sent),
                "shipments_missing": missing_shipments[:5],
                "outbox_depth": state.get("outbox", {}).get("depth"),
                "dead_letters": state.get("outbox", {}).get("dead"),
            }
        converged = all(
            c["skus_matching"] == c["skus"] and not c["orders_missing"]
            and not c["shipments_missing"]
            for c in channels.values()
        )
        counters = await self.counters()
        sales = self.ledger.sales
        return {
            "converged": converged,
            "duration_s": round(time.monotonic() - self.started, 1),
            "orders": {
                "placed": len(sales),
                "cancelled": sum(1 for s in sales if s.cancelled),
                "refused_out_of_stock": self.ledger.refused,
                "applied_by_agent": counters["orders_in"],
            },
            "shipments": len(self.traffic.shipped) if self.traffic else 0,
            "pushes_out": counters["pushes_out"],
            "oversold_units": self.ledger.oversold(),
            "propagation_ms": {
                **summary_ms(self.watch.samples if self.watch else []),
                "discarded": self.watch.discarded if self.watch else 0,
            },
            "propagation_by_origin_ms": {
                name: summary_ms(samples)
                for name, samples in (self.watch.by_origin.items() if self.watch else [])
            },
            "propagation_from_polled_channels_ms": summary_ms(
                self.watch.polled_samples if self.watch else []
            ),
            "errors": (self.traffic.errors if self.traffic else [])[:10],
            "channels": channels,
        }


def write_report(directory: Path, report: dict[str, Any]) -> Path:
    """report.json beside the config, for scripts and tests."""
    path = directory / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path

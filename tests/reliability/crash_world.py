"""A world to crash and starve: every channel's sandbox in this process, the real agent beside it,
shoppers and a warehouse, and a log of every webhook delivery the agent acknowledged.

test_crashes.py and test_disk.py drive it. It builds on agent/demo (World, Traffic, DemoRun's
report) and adds what a reliability test needs on top: restarting the agent without waiting for
it, a warehouse that retries while the agent is down, and the checks that say "nothing is lost".
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent.demo.observe import Ledger
from agent.demo.run import DemoOptions, DemoRun
from agent.demo.traffic import Traffic, TrafficSettings
from agent.demo.world import World, WorldSettings, available_kinds, demo_tuning
from agent.processes import REPO, Child, child_env
from agent.sandbox_config import toml_value
from agent.store.queries import stored_order_ids
from connectors.sandbox.webhooks import WebhookSender
from connectors.shopify.webhooks import verify_delivery as verify_shopify
from connectors.woocommerce.webhooks import verify_delivery as verify_woocommerce
from tests.reliability.scale import seconds

# How the agent keys a verified delivery in its inbox, per kind that sends webhooks.
VERIFIERS: dict[str, Callable[..., Any]] = {
    "shopify": verify_shopify,
    "woocommerce": verify_woocommerce,
}
# Order topics, whose body's "id" is the channel's order id.
ORDER_TOPIC_PREFIXES = ("orders/", "order.")

# How long one start of the agent may take to answer /readyz (a loaded 2-core CI machine).
READY_TIMEOUT_S = 60.0
# How long the warehouse keeps trying one shipment while the agent is down or does not know the
# order yet (a polled channel's order settles, then waits for the next poll).
SHIP_TIMEOUT_S = seconds(ci=120, full=900)  # the full run kills the agent 50 times
# An outbox row is settled when done, or set aside with a reason: dead (gave up), skipped (the
# listing cannot take it), superseded (a stale compare-and-set, or a newer value took its place;
# the channel's level is then checked against the published number).
_UNSETTLED = """
SELECT id, channel, kind, key, state, last_error FROM outbox
WHERE NOT (state = 'done' OR (state IN ('dead', 'skipped', 'superseded')
                              AND coalesce(last_error, '') != ''))
"""


@dataclass(frozen=True, slots=True)
class Ack:
    """One webhook delivery a sandbox's sender got a 2xx for."""

    channel: str
    key: str  # the agent's inbox key for it
    topic: str
    order_id: str | None  # for an order topic


@dataclass(slots=True)
class AckLog:
    """Every delivery the agent acknowledged, recorded by the senders as the answers arrive."""

    acks: list[Ack] = field(default_factory=list)
    refused: dict[str, dict[int | None, int]] = field(default_factory=dict)  # channel -> status
    refused_keys: set[tuple[str, str]] = field(default_factory=set)  # (channel, inbox key)
    errors: list[str] = field(default_factory=list)  # deliveries the log could not key

    def watch(self, channel: str, kind: str, sender: WebhookSender, secret: str) -> None:
        """Record each answer `sender` gets for a copy it posts."""
        verify = VERIFIERS[kind]
        # The sender keeps no body with its attempt log, and WooCommerce's renders the body when
        # it sends; so wrap the one call that sees the final body, headers and answer.
        post = sender._post  # noqa: SLF001 - test instrumentation of our own sandbox
        refused = self.refused.setdefault(channel, {})

        async def recording_post(job: Any) -> tuple[int | None, str | None]:
            status, error = await post(job)
            try:
                delivery = verify(secret, job.headers, job.body)
            except Exception as exc:  # noqa: BLE001 - reported by the test; the sender goes on
                self.errors.append(f"{channel} {job.delivery_id}: {exc!r}")
                return status, error
            if status is not None and 200 <= status < 300:
                if not delivery.ping:
                    self.acks.append(Ack(channel, delivery.delivery_key, delivery.topic,
                                         _order_id(delivery.topic, job.body)))
            else:
                refused[status] = refused.get(status, 0) + 1
                self.refused_keys.add((channel, delivery.delivery_key))
            return status, error

        sender._post = recording_post  # type: ignore[method-assign]  # noqa: SLF001

    def snapshot(self) -> list[Ack]:
        """The acknowledgements so far."""
        return list(self.acks)


def _order_id(topic: str, body: bytes) -> str | None:
    if not topic.startswith(ORDER_TOPIC_PREFIXES):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return None if value is None else str(value)


def crash_settings(
    skus: Sequence[str], stock: int, *, seed: int, kinds: Sequence[str] | None = None,
    webhook_poll: str = "5s", reconcile: str = "30s",
) -> WorldSettings:
    """Every channel kind, tuned like the demo (Amazon orders settle after 3 s, polled every
    15 s); webhook channels polled every `webhook_poll` as the safety net for deliveries lost
    while the agent was down (WooCommerce never retries one)."""
    chosen = list(kinds or available_kinds())
    sandbox_options, channel_options = demo_tuning(chosen)
    return WorldSettings(
        kinds=chosen, skus=list(skus), stock=stock, seed=seed, poll_interval=webhook_poll,
        polling_interval="1s", reconcile_interval=reconcile,
        sandbox_options=sandbox_options, channel_options=channel_options,
    )


class CrashWorld:
    """A World, its traffic, and the acknowledgement log; start, crash, restart, check."""

    def __init__(
        self, directory: Path, settings: WorldSettings, traffic: TrafficSettings,
        say: Callable[[str], None] = print,
    ) -> None:
        self.run = DemoRun(DemoOptions(directory, settings, traffic, duration_s=0.0), say)
        self.world: World = self.run.world
        self.ledger: Ledger = self.run.ledger
        self.acks = AckLog()
        self.traffic = Traffic(
            {}, settings.skus, self.ledger, None, traffic, ship=self.ship
        )
        self.run.traffic = self.traffic
        self.restarts = 0
        self.last_report: dict[str, Any] = {}
        self._shoppers: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, *, timeout: float = 120.0, database: Path | None = None) -> None:
        """Sandboxes, config, stock, agent; every channel in step; the senders watched.

        `database` puts the agent's SQLite file elsewhere than beside the config (on a small
        filesystem, say), keeping the config and the logs out of its way.
        """
        world = self.world
        if database is None:
            await world.start(timeout=timeout)
        else:
            # World.start, with the config pointed at `database` before anything opens it.
            await world.start_sandboxes()
            world.write_config()
            text = world.config_path.read_text()
            moved = text.replace('database = "storesync.db"',
                                 f"database = {toml_value(str(database))}")
            assert moved != text, "the world's config no longer names storesync.db"
            world.config_path.write_text(moved)
            world.db_path = database
            await asyncio.to_thread(world.import_stock)
            await world.start_agent(timeout=timeout)
            await world.wait_for(world.in_step, timeout=timeout, what="every channel in step")
            world.apply_faults()
        self.traffic.channels.update({c.name: c.url for c in self.world.channels.values()})
        for channel in self.world.channels.values():
            if channel.kind in VERIFIERS and channel.keys.webhooks:
                self.acks.watch(channel.name, channel.kind, channel.sandbox.sender,
                                channel.webhook_secret)

    def spawn(self, env: Mapping[str, str] | None = None, log: Path | None = None) -> Child:
        """`storesync run` again on the same config, not waiting for it."""
        child = Child(["--config", str(self.world.config_path), "run"],
                      log or self.world.dir / "agent.log", child_env(env))
        self.world.agent = child
        self.restarts += 1
        return child

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until /readyz answers 200; fail at once if the agent exited."""
        child = self.world.agent
        assert child is not None

        async def ready() -> bool:
            if not child.running:
                raise AssertionError(
                    f"the agent exited with {child.proc.returncode}; its log ends:\n"
                    + child.log()[-3000:]
                )
            response = await self.world._http.get(f"{self.world.ops_url}/readyz")  # noqa: SLF001
            return response.status_code == 200

        await self.world.wait_for(ready, timeout=timeout, what="the agent to answer /readyz")

    async def kill(self) -> None:
        """SIGKILL the agent and reap it."""
        child = self.world.agent
        assert child is not None
        child.proc.kill()
        await asyncio.to_thread(child.proc.wait, 30)
        child.stop()  # closes our end of its log

    async def stop(self) -> int | None:
        """Stop traffic, the agent and the sandboxes."""
        for task in self._shoppers:
            task.cancel()
        await asyncio.gather(*self._shoppers, return_exceptions=True)
        await self.traffic.aclose()
        return await self.world.stop()

    # -- traffic --------------------------------------------------------------------------------

    async def shop(self, stop: asyncio.Event, *, chunk_s: float = 1.0) -> None:
        """Shoppers buy until `stop`, in chunks with fresh seeds, then finish what they started."""
        settings = self.traffic.settings
        while not stop.is_set():
            settings.seed += 1
            task = asyncio.create_task(self.traffic.shoppers(chunk_s))
            self._shoppers.add(task)
            task.add_done_callback(self._shoppers.discard)
            try:
                await asyncio.wait_for(stop.wait(), chunk_s)
            except TimeoutError:
                pass
        await asyncio.gather(*list(self._shoppers))

    async def ship(
        self, channel: str, order_id: str, lines: dict[str, int], carrier: str, tracking: str
    ) -> None:
        """The warehouse's shipping tool: POST /shipments once the agent knows the order,
        retrying while the agent is down (a repeat with the same tracking number is a no-op)."""
        world = self.world
        body = {
            "channel": channel, "order_id": order_id, "carrier": carrier,
            "tracking_number": tracking, "tracking_url": f"https://tracking.example/{tracking}",
            "lines": lines,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHIP_TIMEOUT_S
        last = "nothing yet"
        while loop.time() < deadline:
            try:
                known = await world.ops("GET", f"/orders/{channel}/{order_id}")
                if known.status_code == 200:
                    response = await world.ops("POST", "/shipments", body)
                    if response.status_code in (200, 201):
                        return
                    last = f"{response.status_code} {response.text}"
                    if response.status_code not in (404, 503):
                        raise RuntimeError(f"POST /shipments answered {last}")
            except httpx.TransportError as exc:
                last = repr(exc)  # the agent is down or restarting: try again
            await asyncio.sleep(0.5)
        raise TimeoutError(f"shipping {channel} order {order_id}: {last}")

    # -- checks ---------------------------------------------------------------------------------

    def db_check(self) -> dict[str, Any]:
        """`storesync db check --json` on the agent's database: {"ok", "breaches", ...}."""
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "--config", str(self.world.config_path),
             "db", "check", "--json"],
            cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120, check=False,
        )
        try:
            result: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            return {"ok": False, "breaches": [], "output": done.stdout + done.stderr,
                    "exit": done.returncode}
        result["exit"] = done.returncode
        return result

    def integrity(self) -> list[str]:
        """PRAGMA integrity_check's lines ("ok" alone when sound)."""
        return self.world.read(
            lambda conn: [row[0] for row in conn.execute("PRAGMA integrity_check")]
        )

    def inbox_keys(self) -> set[tuple[str, str]]:
        """Every (channel, delivery key) the agent's inbox holds."""
        return self.world.read(
            lambda conn: set(conn.execute("SELECT channel, delivery_key FROM inbox"))
        )

    def lost_acks(self, acks: Sequence[Ack]) -> list[Ack]:
        """Acknowledged deliveries missing from the inbox, or whose order is not stored."""
        keys = self.inbox_keys()
        orders = self.world.read(stored_order_ids)
        return [
            a for a in acks
            if (a.channel, a.key) not in keys
            or (a.order_id is not None and a.order_id not in orders.get(a.channel, set()))
        ]

    def lost_acks_in_inbox(self, acks: Sequence[Ack]) -> list[Ack]:
        """Acknowledged deliveries missing from the inbox (their order may not be applied yet)."""
        keys = self.inbox_keys()
        return [a for a in acks if (a.channel, a.key) not in keys]

    def order_rows(self) -> dict[tuple[str, str], int]:
        """How many order rows each (channel, order id) has."""
        rows = self.world.read(
            lambda conn: list(conn.execute(
                "SELECT channel, external_id, count(*) FROM orders GROUP BY channel, external_id"
            ))
        )
        return {(channel, order_id): count for channel, order_id, count in rows}

    def unsettled_outbox(self) -> list[tuple[Any, ...]]:
        """Outbox rows neither done nor set aside with a reason."""
        return self.world.read(lambda conn: list(conn.execute(_UNSETTLED)))

    def placed(self) -> dict[str, set[str]]:
        """Every order the shoppers placed, by channel."""
        placed: dict[str, set[str]] = {}
        for sale in self.ledger.sales:
            placed.setdefault(sale.channel, set()).add(sale.order_id)
        return placed

    async def converged(self) -> dict[str, Any] | None:
        """DemoRun's report when every channel agrees with the ledger and the outbox is settled;
        None otherwise (the last report is kept in `last_report`)."""
        report = await self.run.report()
        report["unsettled_outbox"] = len(self.unsettled_outbox())
        self.last_report = report
        stored = self.world.read(stored_order_ids)
        extra = {
            name: sorted(stored.get(name, set()) - ids) for name, ids in self.placed().items()
        }
        report["orders_unexpected"] = {k: v[:5] for k, v in extra.items() if v}
        if report["converged"] and not report["unsettled_outbox"] and not any(extra.values()):
            return report
        return None


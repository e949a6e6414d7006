"""The inbox processor: turns stored webhook deliveries into engine calls.

A delivery was committed before its sender got a 200; here it is parsed and applied, and marked
processed in the same transaction as its effects, so a crash between the two replays it (and the
engine's versioning makes the replay harmless). A delivery that keeps failing is parked with its
error after a few attempts, visible in /status; it never holds up the deliveries behind it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from datetime import timedelta

import structlog

from agent.engine import Engine
from agent.metrics import Metrics
from agent.store import Store, Tx
from agent.store.records import InboxRow
from connectors.base import (
    AuthError,
    ChannelEvent,
    Connector,
    ConnectorError,
    EventKind,
    RetryableError,
)

log = structlog.get_logger("storesync.inbox")

BATCH = 100
# What a delivery's own content can make parsing or applying it raise: counted against that
# delivery (and it is parked after a few), never against the whole inbox. ArithmeticError: a number
# past what SQLite's INTEGER holds; IntegrityError: a value a table's CHECK refuses.
DELIVERY_FAULTS: tuple[type[Exception], ...] = (
    ConnectorError, ValueError, KeyError, TypeError, ArithmeticError, RecursionError,
    sqlite3.IntegrityError,
)
IDLE_CHECK = timedelta(seconds=2)
# A channel whose API failed while fetching a thin event's order is left alone this long.
CHANNEL_BACKOFF = timedelta(seconds=5)


class InboxProcessor:
    """Processes every channel's stored deliveries, oldest first."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Callable[[], Engine],
        connectors: Callable[[], Mapping[str, Connector]],
        max_attempts: int,
        metrics: Metrics,
        on_auth_error: Callable[[str, AuthError], None],
        on_applied: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        # Called after deliveries were applied: they may have queued pushes for any channel.
        self._on_applied = on_applied
        self._engine = engine
        self._connectors = connectors
        self.max_attempts = max_attempts
        self.metrics = metrics
        self._on_auth_error = on_auth_error
        self.wake = asyncio.Event()
        self._stopping = False
        self._resting: dict[str, float] = {}

    async def run(self) -> None:
        """Process until stopped."""
        while not self._stopping:
            try:
                handled = await self.process_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a store error: wait and try again
                log.exception("inbox cycle failed", error=str(exc))
                handled = 0
            if handled == 0:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), IDLE_CHECK.total_seconds())
                except TimeoutError:
                    pass

    def stop(self) -> None:
        """Stop after the delivery in hand."""
        self._stopping = True
        self.wake.set()

    async def process_once(self) -> int:
        """Process one batch; returns how many deliveries were settled (done or failed)."""
        rows = await self.store.submit(lambda tx: tx.pending_deliveries(BATCH))
        loop = asyncio.get_running_loop()
        settled = 0
        for row in rows:
            if self._stopping:
                break
            if self._resting.get(row.channel, 0.0) > loop.time():
                continue
            with structlog.contextvars.bound_contextvars(
                channel=row.channel, delivery=row.delivery_key, topic=row.topic
            ):
                done = await self._process(row)
            if done:
                settled += done
                self._on_applied()  # wake the pushers now, not after the whole batch
        return settled

    async def _process(self, row: InboxRow) -> int:
        connector = self._connectors().get(row.channel)
        if connector is None:
            await self._fail(row, f"channel {row.channel!r} is not configured (or not running)",
                             park=True)
            return 1
        try:
            event = connector.parse_event(row.topic, row.headers, row.body)
            await self._apply(connector, row, event)
        except RetryableError as exc:
            # The channel's API is the problem, not the delivery: come back to this channel later.
            self._resting[row.channel] = asyncio.get_running_loop().time() + (
                CHANNEL_BACKOFF.total_seconds()
            )
            log.warning("delivery waits for its channel", channel=row.channel,
                        delivery=row.delivery_key, error=str(exc))
            return 0
        except AuthError as exc:
            self._on_auth_error(row.channel, exc)
            self._resting[row.channel] = asyncio.get_running_loop().time() + 60
            return 0
        except DELIVERY_FAULTS as exc:
            park = row.attempts + 1 >= self.max_attempts
            await self._fail(row, f"{type(exc).__name__}: {exc}", park=park)
            return 1
        return 1

    async def _apply(self, connector: Connector, row: InboxRow, event: ChannelEvent) -> None:
        engine = self._engine()
        if event.kind == EventKind.ORDER_REF and event.order_id:
            order = await connector.fetch_order(event.order_id)
        else:
            order = event.order

        def apply(tx: Tx) -> None:
            if event.kind in (EventKind.ORDER, EventKind.ORDER_REF) and order is not None:
                outcome = engine.apply_order(tx, order)
                self.metrics.orders_applied.labels(row.channel, "webhook", outcome.result).inc()
            elif event.kind == EventKind.LEVEL and event.sku and event.level is not None:
                master = engine.rules.map_sku(row.channel, event.sku)
                if master is not None and tx.sku_kind(master) is not None:
                    engine.observe_level(tx, row.channel, master, event.level)
            tx.finish_delivery(row.channel, row.delivery_key)

        context = {"order": order.external_id} if order is not None else {"sku": event.sku}
        with structlog.contextvars.bound_contextvars(**context):
            await self.store.submit(apply)

    async def _fail(self, row: InboxRow, error: str, *, park: bool) -> None:
        def fail(tx: Tx) -> None:
            tx.fail_delivery(row.channel, row.delivery_key, error, park=park)
            if park:
                tx.add_event(
                    "parked_webhook",
                    f"webhook {row.delivery_key} ({row.topic}) on {row.channel} was set aside "
                    f"after {row.attempts + 1} attempts: {error}",
                    level="error",
                    channel=row.channel,
                    ref=row.delivery_key,
                )

        await self.store.submit(fail)
        log_fn = log.error if park else log.warning
        log_fn("delivery failed", channel=row.channel, delivery=row.delivery_key,
               attempts=row.attempts + 1, parked=park, error=error)

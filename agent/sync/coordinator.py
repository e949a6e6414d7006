"""One coordinator per channel: its polls, listing discovery, reconcile sweep, pusher and health.

Polls run on the channel's interval with jitter (APScheduler, one at a time, missed runs
coalesced). Each page of orders commits with its cursor. Discovery maps the channel's listings to
master SKUs at start and periodically; the slower reconcile sweep reads the levels the channel
shows and lets the engine correct drift.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agent.config import BaseChannel, SyncConfig
from agent.engine import Engine
from agent.engine.errors import ImplausibleOrder
from agent.metrics import Metrics
from agent.store import Store, Tx
from agent.sync.health import ChannelHealth
from agent.sync.pusher import OutboxPusher, RetryRules
from connectors.base import (
    AuthError,
    ChannelOrder,
    Connector,
    ConnectorError,
    ListingRef,
    OrderPage,
)

log = structlog.get_logger("storesync.coordinator")

ORDERS_STREAM = "orders"


class ChannelCoordinator:
    """Everything storesync does with one channel."""

    def __init__(
        self,
        *,
        name: str,
        config: BaseChannel,
        connector: Connector | None,
        store: Store,
        engine: Callable[[], Engine],
        health: ChannelHealth,
        sync: SyncConfig,
        metrics: Metrics,
    ) -> None:
        self.name = name
        self.config = config
        self.connector = connector
        self.store = store
        self._engine = engine
        self.health = health
        self.sync = sync
        self.metrics = metrics
        self.discovered = asyncio.Event()
        self._listings: list[ListingRef] = []
        # The last order poll read every update before this moment; None: it failed, or none
        # has finished since start.
        self._polled_through: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._job_ids: list[str] = []
        self._running: set[asyncio.Task[Any]] = set()  # scheduled jobs in progress
        self._stopping = False
        self.pusher: OutboxPusher | None = None
        if connector is not None:
            self.pusher = OutboxPusher(
                channel=name,
                connector=connector,
                store=store,
                engine=engine,
                health=health,
                retry=RetryRules(sync.push_max_attempts, sync.push_retry_base, sync.push_retry_max),
                metrics=metrics,
                discovered=self.discovered,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, scheduler: AsyncIOScheduler) -> None:
        """Schedule the jobs and start the pusher."""
        if self.connector is None or self.pusher is None:
            return
        interval = self.config.poll_interval.total_seconds()
        jobs = (
            ("poll", self.poll_orders, interval, interval * 0.1),
            ("discover", self.discover_listings, self.sync.listing_refresh.total_seconds(), 5.0),
            ("reconcile", self.reconcile, self.config.reconcile_interval.total_seconds(), 5.0),
        )
        for job, fn, seconds, jitter in jobs:
            job_id = f"{self.name}:{job}"
            scheduler.add_job(
                self._store_guarded(job, fn), "interval", seconds=seconds, jitter=jitter, id=job_id,
                max_instances=1, coalesce=True, misfire_grace_time=60,
            )
            self._job_ids.append(job_id)
        first = self._store_guarded("first sync", self._first_sync)
        self._tasks.append(asyncio.create_task(first(), name=f"{self.name}:first"))
        self._tasks.append(asyncio.create_task(self.pusher.run(), name=f"{self.name}:pusher"))

    def _store_guarded(
        self, job: str, fn: Callable[[], Awaitable[None]]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        """`fn`, with a store that cannot write (full disk, read-only file) logged as one JSON
        line instead of a scheduler traceback: the job runs again at its next interval. A run
        that `stop` cuts short ends quietly: being stopped is not the job's failure."""

        async def guarded() -> None:
            task = asyncio.current_task()
            if self._stopping or task is None:
                return
            self._running.add(task)
            try:
                await fn()
            except sqlite3.Error as exc:
                log.error("job could not write to the store; it runs again later",
                          channel=self.name, job=job, error=f"{type(exc).__name__}: {exc}")
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                log.info("job cut short by stop", channel=self.name, job=job)
            finally:
                self._running.discard(task)

        return guarded

    async def stop(self, scheduler: AsyncIOScheduler, drain: timedelta) -> None:
        """Unschedule; let the pusher finish its batch and running jobs their page within
        `drain`, then cancel what is left; close the connector."""
        self._stopping = True
        for job_id in self._job_ids:
            if scheduler.get_job(job_id):
                scheduler.remove_job(job_id)
        if self.pusher is not None:
            self.pusher.stop()
        busy = [*self._tasks, *self._running]
        if busy:
            _, pending = await asyncio.wait(busy, timeout=drain.total_seconds())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.connector is not None:
            await self.connector.aclose()

    def wake_pusher(self) -> None:
        """New rows may be due: look now instead of at the next timer."""
        if self.pusher is not None:
            self.pusher.wake.set()

    async def _first_sync(self) -> None:
        await self.discover_listings()
        await self.poll_orders()

    async def sync_now(self) -> None:
        """Discover, poll and reconcile at once (the ops `sync` action)."""
        await self.discover_listings()
        await self.poll_orders()
        await self.reconcile()

    # -- jobs ----------------------------------------------------------------------------------

    async def poll_orders(self) -> None:
        """Read orders updated since the cursor; each page commits with its cursor."""
        with structlog.contextvars.bound_contextvars(channel=self.name, job="poll"):
            await self._poll_orders()

    async def _poll_orders(self) -> None:
        if self.connector is None or not self.health.can_call:
            return
        engine = self._engine()
        started = self.store.clock()
        try:
            cursor = await self.store.submit(lambda tx: tx.get_cursor(self.name, ORDERS_STREAM))
            through: datetime | None = None
            async for page in self.connector.fetch_orders(cursor):
                await self.store.submit(
                    lambda tx, page=page: self._apply_page(tx, engine, page)  # type: ignore[misc]
                )
                through = page.read_through
            await self.store.submit(lambda tx: tx.touch_channel(self.name, polled=True))
            self._polled_through = through or started
            self.metrics.polls.labels(self.name, "ok").inc()
            self.health.succeeded()
        except AuthError as exc:
            self._polled_through = None
            self.metrics.polls.labels(self.name, "auth_error").inc()
            self.health.auth_failed("poll", exc)
        except ConnectorError as exc:
            self._polled_through = None
            self.metrics.polls.labels(self.name, "error").inc()
            self.health.failed("poll", exc)
            await self._note_error(exc)
        self.wake_pusher()

    def _apply_page(self, tx: Tx, engine: Engine, page: OrderPage) -> None:
        for order in page.orders:
            self._apply_order(tx, engine, order, "poll")
        tx.set_cursor(self.name, ORDERS_STREAM, page.cursor)

    def _apply_order(self, tx: Tx, engine: Engine, order: ChannelOrder, source: str) -> int:
        """Apply one polled or swept order; returns 1 when it changed the store. An order with
        impossible numbers is set aside with an event, so the page (and the cursor behind it)
        still commits: otherwise every later order of the channel would wait on it forever."""
        try:
            outcome = engine.apply_order(tx, order)
        except ImplausibleOrder as exc:
            self.metrics.orders_applied.labels(self.name, source, "refused").inc()
            log.error("order refused", order=order.external_id, error=str(exc))
            tx.add_event("order_refused", str(exc), level="error", channel=self.name,
                         ref=f"{self.name}:{order.external_id}")
            return 0
        self.metrics.orders_applied.labels(self.name, source, outcome.result).inc()
        return int(outcome.applied)

    async def discover_listings(self) -> None:
        """Map the channel's listings to master SKUs; learn their ids and current levels."""
        if self.connector is None or not self.health.can_call:
            return
        engine = self._engine()
        try:
            listings = await self.connector.fetch_listings()
        except AuthError as exc:
            self.health.auth_failed("discovery", exc)
            return
        except ConnectorError as exc:
            self.health.failed("discovery", exc)
            await self._note_error(exc)
            return
        self._listings = listings

        def record(tx: Tx) -> None:
            unmapped = []
            for listing in listings:
                master = engine.rules.map_sku(self.name, listing.sku)
                if master is None or tx.sku_kind(master) is None:
                    unmapped.append(listing.sku)
                    continue
                tx.upsert_listing(self.name, master, {**listing.ids, "sku": listing.sku},
                                  listing.status)
                if listing.level is not None and listing.pushable:
                    engine.observe_level(tx, self.name, master, listing.level)
            if unmapped:
                tx.add_event(
                    "unmapped_listings",
                    f"{len(unmapped)} listing(s) on {self.name} match no master SKU "
                    f"(first: {', '.join(unmapped[:5])})",
                    level="warning",
                    channel=self.name,
                    data={"skus": unmapped[:100]},
                )

        await self.store.submit(record)
        self.discovered.set()
        self.health.succeeded()
        self.wake_pusher()
        log.info("listings discovered", channel=self.name, listings=len(listings))

    async def reconcile(self) -> None:
        """The slow sweep: re-read a look-back window of orders (backfilling anything webhooks
        and polls missed), then the levels the channel shows, letting the engine correct drift."""
        with structlog.contextvars.bound_contextvars(channel=self.name, job="reconcile"):
            await self._reconcile_orders()
            await self._reconcile_levels()

    async def _reconcile_orders(self) -> None:
        if self.connector is None or not self.health.can_call:
            return
        engine = self._engine()
        # Twice the sweep's interval: an order updated just before the last sweep, but not
        # visible to it yet, is read by this one.
        since = self.store.clock() - 2 * self.config.reconcile_interval
        missed = ahead = 0
        try:
            async for page in self.connector.fetch_orders(None, since=since):

                def apply(tx: Tx, page: OrderPage = page) -> list[ChannelOrder]:
                    return [order for order in page.orders
                            if self._apply_order(tx, engine, order, "reconcile")]

                for order in await self.store.submit(apply):
                    if self._was_missed(order):
                        missed += 1
                    else:
                        ahead += 1
        except AuthError as exc:
            self.health.auth_failed("reconcile", exc)
            return
        except ConnectorError as exc:
            self.health.failed("reconcile", exc)
            await self._note_error(exc)
            return
        if missed:
            log.warning("reconcile found orders polls and webhooks had missed", orders=missed)
        if ahead:
            log.info("reconcile read orders before the next poll could", orders=ahead)

    def _was_missed(self, order: ChannelOrder) -> bool:
        """Whether the sweep backfilled `order` because webhooks and polls lost it, rather than
        because it ran before the next poll could read it: a polled-only channel's sweep often
        comes first, all the more when the poll reads behind the clock (Amazon's settle). With
        the last poll failed, anything the sweep finds counts as missed."""
        if self.connector is None or self.connector.capabilities.webhooks:
            return True
        return self._polled_through is None or order.updated_at <= self._polled_through

    async def _reconcile_levels(self) -> None:
        if self.connector is None or not self.health.can_call or not self._listings:
            return
        engine = self._engine()
        pushable = [ref for ref in self._listings if ref.pushable]
        try:
            levels = await self.connector.fetch_levels(pushable)
        except AuthError as exc:
            self.health.auth_failed("reconcile", exc)
            return
        except ConnectorError as exc:
            self.health.failed("reconcile", exc)
            await self._note_error(exc)
            return

        def observe(tx: Tx) -> int:
            drifted = 0
            for channel_sku, level in levels.items():
                master = engine.rules.map_sku(self.name, channel_sku)
                if master is None or tx.sku_kind(master) is None:
                    continue
                if engine.observe_level(tx, self.name, master, level).drift:
                    drifted += 1
            return drifted

        drifted = await self.store.submit(observe)
        if drifted:
            log.warning("drift corrected", skus=drifted)
        self.wake_pusher()

    async def _note_error(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        await self.store.submit(lambda tx: tx.touch_channel(self.name, error=message))

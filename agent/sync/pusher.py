"""The outbox pusher: one task per channel takes due rows in batches and pushes them.

It is woken by new rows (and checks on a short timer for rows other processes wrote). A batch goes
through the connector, which goes through the channel's rate limiter; each item's result is applied
in one transaction: done, retry later with backoff, a stale compare-and-set (re-read, recompute,
queue again), or a dead letter after bounded attempts or a permanent error.

Order per (channel, SKU) holds because a channel has one pusher that finishes a batch before
claiming the next, and a newer value waits as a pending row while an older one is in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from agent.engine import Engine
from agent.metrics import Metrics
from agent.store import Store, Tx
from agent.store.records import OutboxRow
from agent.sync.health import ChannelHealth, State
from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    ListingRef,
    PermanentError,
    PushOutcome,
    PushResult,
    RateLimited,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)

log = structlog.get_logger("storesync.pusher")

# How often an idle pusher looks for rows written by other processes (the CLI, a restart).
IDLE_CHECK = timedelta(seconds=1)
# An unlisted SKU is retried this soon while listing discovery has not run yet.
AWAIT_DISCOVERY = timedelta(seconds=5)
# 2**40 times even a millisecond is 35 years: past any cap.
MAX_DOUBLINGS = 40
# Shipments pushed between two looks at the stock queue.
SHIPMENTS_PER_CYCLE = 4
# Outcomes that put the row back for later: nothing new to push at once.
_LATER = frozenset({PushOutcome.RETRY, PushOutcome.WAIT})


@dataclass(frozen=True, slots=True)
class RetryRules:
    """Bounds on retrying one outbox row across time."""

    max_attempts: int
    base: timedelta
    cap: timedelta

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """Exponential backoff with jitter: base, 2x, 4x ... up to cap, each times 0.5 to 1.
        `attempts` may be a channel's whole run of failures in an outage (hundreds): the
        doubling stops long before it could overflow."""
        raw = min(self.base * (2 ** min(max(attempts - 1, 0), MAX_DOUBLINGS)), self.cap)
        return raw * (0.5 + rng.random() / 2)


def idempotency_key(row: OutboxRow) -> str:
    """The same key for every retry of the same value, a new one for a new value."""
    return f"{row.channel}:{row.kind}:{row.key}:{row.id}:{row.revision}"


class OutboxPusher:
    """Pushes one channel's outbox."""

    def __init__(
        self,
        *,
        channel: str,
        connector: Connector,
        store: Store,
        engine: Callable[[], Engine],
        health: ChannelHealth,
        retry: RetryRules,
        metrics: Metrics,
        discovered: asyncio.Event,
    ) -> None:
        self.channel = channel
        self.connector = connector
        self.store = store
        self._engine = engine
        self.health = health
        self.retry = retry
        self.metrics = metrics
        self.discovered = discovered
        self.wake = asyncio.Event()
        self._stopping = False
        self._claimed_unsettled = False
        self._degraded_seen = False
        self._rng = random.Random()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Push until stopped; a batch in progress is finished (or left in the outbox)."""
        log.info("pusher started", channel=self.channel)
        while not self._stopping:
            pushed = 0
            if self.health.can_call:
                try:
                    if self._recovered():
                        # What waited out the outage goes now, not when its backoff ends.
                        await self.store.submit(lambda tx: tx.expedite_outbox(self.channel))
                    if self._claimed_unsettled:
                        # A failed cycle may have left its claimed rows in flight (the store took
                        # the claim, then refused the outcome: a full disk). Nothing else pushes
                        # this channel's rows, so put them back, or they would wait for a restart.
                        await self.store.submit(lambda tx: tx.release_inflight(
                            self.channel, "the outcome could not be stored"))
                        self._claimed_unsettled = False
                    pushed = await self.push_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a store or programming error
                    self._claimed_unsettled = True
                    log.exception("push cycle failed", channel=self.channel, error=str(exc))
                    await asyncio.sleep(IDLE_CHECK.total_seconds())
            if pushed == 0:
                await self._idle()

    def _recovered(self) -> bool:
        """Whether the channel came back from degraded since the last look."""
        state = self.health.state
        recovered = self._degraded_seen and state == State.OK
        self._degraded_seen = state == State.DEGRADED
        return recovered

    def stop(self) -> None:
        """Finish the batch in hand, then stop."""
        self._stopping = True
        self.wake.set()

    async def _idle(self) -> None:
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), IDLE_CHECK.total_seconds())
        except TimeoutError:
            pass

    # -- one batch -----------------------------------------------------------------------------

    async def push_once(self) -> int:
        """Claim due rows and push them; returns how many rows were taken."""
        with structlog.contextvars.bound_contextvars(channel=self.channel, job="push"):
            return await self._push_once()

    async def _push_once(self) -> int:
        # Stock and shipments are claimed apart, stock first and shipments a few at a time: a
        # shipment takes a call or two of its own, so after an outage a backlog of them would
        # otherwise hold every sale's new number back for as long as it takes to drain.
        batch = max(self.connector.capabilities.max_batch, 1)
        stock = await self.store.submit(lambda tx: tx.claim_due(self.channel, "stock", batch))
        if stock:
            await self._push_stock(stock)
        shipments = await self.store.submit(
            lambda tx: tx.claim_due(self.channel, "shipment", SHIPMENTS_PER_CYCLE)
        )
        for row in shipments:
            await self._push_shipment(row)
        return len(stock) + len(shipments)

    async def _push_stock(self, rows: list[OutboxRow]) -> None:
        # Decide "not listed" only from a discovery that finished before this lookup: one that
        # finishes during it may have just recorded the very listings we did not see.
        discovered = self.discovered.is_set()
        listings = await self.store.submit(
            lambda tx: tx.listing_ids(self.channel, [r.key for r in rows])
        )
        ready: list[tuple[OutboxRow, StockPush]] = []
        unready: list[tuple[OutboxRow, str]] = []
        for row in rows:
            found = listings.get(row.key)
            if found is None:
                unready.append((row, f"{row.key} is not listed on {self.channel}"))
                continue
            ids, status = found
            listing = ListingRef(sku=ids.get("sku", row.key), ids=ids, status=status)
            if not listing.pushable:
                unready.append((row, f"{row.key} on {self.channel} is {status}; not pushed"))
                continue
            push = StockPush(listing, int(json.loads(row.value)), row.expected,
                             idempotency_key(row))
            ready.append((row, push))
        if unready:
            await self.store.submit(lambda tx: self._set_aside(tx, unready, discovered))
        if not ready:
            return
        try:
            results = await self.connector.push_stock([p for _, p in ready])
        except ConnectorError as exc:
            await self._batch_failed([r for r, _ in ready], exc)
            return
        by_sku: dict[str, PushResult] = {r.key: r for r in results}
        outcomes = [
            (row, by_sku.get(push.listing.sku) or PushResult(
                push.listing.sku, PushOutcome.RETRY, "the channel gave no result for this item"))
            for row, push in ready
        ]
        await self._apply_results(outcomes)

    async def _push_shipment(self, row: OutboxRow) -> None:
        value = json.loads(row.value)
        shipment = ShipmentPush(
            order_id=value["order_id"],
            shipment_id=str(value["shipment_id"]),
            carrier=value.get("carrier", ""),
            tracking_number=value.get("tracking_number", ""),
            tracking_url=value.get("tracking_url", ""),
            lines=tuple(
                ShipmentLine(ln["line_id"], ln.get("sku"), int(ln["qty"]))
                for ln in value.get("lines", [])
            ),
            idempotency_key=hashlib.sha256(idempotency_key(row).encode()).hexdigest()[:32],
            shipped_at=datetime.fromisoformat(value["shipped_at"])
            if value.get("shipped_at") else None,
        )
        try:
            result = await self.connector.push_shipment(shipment)
        except ConnectorError as exc:
            await self._batch_failed([row], exc)
            return
        await self._apply_results([(row, result)])

    # -- applying results ------------------------------------------------------------------------

    async def _batch_failed(self, rows: Sequence[OutboxRow], exc: ConnectorError) -> None:
        """A whole call failed: how depends on what the error says to do."""
        if isinstance(exc, AuthError):
            self.health.auth_failed("push", exc)
            # Not the rows' fault: give their attempt back and keep them queued.
            await self.store.submit(lambda tx: self._requeue(tx, rows, timedelta(0), uncount=True))
            return
        if isinstance(exc, RateLimited):
            wait = timedelta(seconds=exc.retry_after)
            await self.store.submit(lambda tx: self._requeue(tx, rows, wait, uncount=True))
            return
        if isinstance(exc, PermanentError):
            results = [(r, PushResult(r.key, PushOutcome.PERMANENT, str(exc))) for r in rows]
        else:
            self.health.failed("push", exc)
            if self.health.state == State.DEGRADED:
                # Every call to the channel fails (an outage), not these rows: their attempts
                # are kept for failures of their own, or a long outage would dead-letter them.
                # They back off with the channel's run of failures and go again as soon as it
                # recovers (see run).
                wait = self.retry.delay(self.health.failures, self._rng)
                await self.store.submit(
                    lambda tx: self._requeue(tx, rows, wait, uncount=True, error=str(exc))
                )
                for row in rows:
                    self.metrics.pushes.labels(self.channel, row.kind, "retry").inc()
                log.warning("pushes wait for the channel to recover", rows=len(rows),
                            delay_s=round(wait.total_seconds(), 1), error=str(exc))
                return
            results = [(r, PushResult(r.key, PushOutcome.RETRY, str(exc))) for r in rows]
        await self._apply_results(results)

    async def _apply_results(self, outcomes: Sequence[tuple[OutboxRow, PushResult]]) -> None:
        conflicts: list[tuple[OutboxRow, PushResult]] = []

        def apply(tx: Tx) -> None:
            for row, result in outcomes:
                self._apply_one(tx, row, result, conflicts)

        await self.store.submit(apply)
        if any(res.outcome == PushOutcome.DONE for _, res in outcomes):
            self.health.succeeded()
        if conflicts:
            await self._resolve_conflicts(conflicts)
        if any(res.outcome not in _LATER for _, res in outcomes):
            self.wake.set()  # conflicts and re-reads may have queued new rows

    def _apply_one(
        self,
        tx: Tx,
        row: OutboxRow,
        result: PushResult,
        conflicts: list[tuple[OutboxRow, PushResult]],
    ) -> None:
        now = tx.now()
        label = "stock" if row.kind == "stock" else "shipment"
        if result.outcome == PushOutcome.DONE:
            if row.kind == "stock":
                self._engine().confirm_stock_push(tx, row.id)
            else:
                tx.set_outbox_state(row.id, "done")
            self.metrics.pushes.labels(self.channel, label, "done").inc()
            # From when this value was queued to when the channel took it.
            self.metrics.push_latency.labels(self.channel, label).observe(
                max((now - row.queued_at).total_seconds(), 0.0)
            )
            return
        if result.outcome == PushOutcome.CONFLICT:
            tx.set_outbox_state(row.id, "superseded", error=result.message or "stale value")
            self.metrics.pushes.labels(self.channel, label, "conflict").inc()
            conflicts.append((row, result))
            return
        if result.outcome == PushOutcome.WAIT:
            # The channel paces this item (eBay's daily revision cap): not a failure, so the
            # attempt is given back, however long the wait.
            wait = timedelta(seconds=max(result.retry_after or 0.0, 1.0))
            state = tx.retry_outbox(row, result.message, now + wait, count=False)
            self.metrics.pushes.labels(self.channel, label, "wait").inc()
            log.info(
                "push waits for the channel", channel=self.channel, kind=row.kind, key=row.key,
                delay_s=round(wait.total_seconds(), 1), state=state, reason=result.message,
            )
            return
        if result.outcome == PushOutcome.RETRY and row.attempts < self.retry.max_attempts:
            delay = self.retry.delay(row.attempts, self._rng)
            if result.retry_after:
                delay = max(delay, timedelta(seconds=result.retry_after))
            state = tx.retry_outbox(row, result.message, now + delay)
            self.metrics.pushes.labels(self.channel, label, "retry").inc()
            log.warning(
                "push will be retried", channel=self.channel, kind=row.kind, key=row.key,
                attempts=row.attempts, delay_s=round(delay.total_seconds(), 1), state=state,
                error=result.message,
            )
            return
        reason = result.message or "failed"
        if result.outcome == PushOutcome.RETRY:
            reason = f"gave up after {row.attempts} attempts: {reason}"
        tx.set_outbox_state(row.id, "dead", error=reason)
        tx.add_event(
            "dead_letter",
            f"{row.kind} push of {row.key} to {self.channel} is a dead letter: {reason}",
            level="error",
            channel=self.channel,
            sku=row.key if row.kind == "stock" else None,
            ref=str(row.id),
        )
        self.metrics.pushes.labels(self.channel, label, "dead").inc()
        log.error("push dead-lettered", channel=self.channel, kind=row.kind, key=row.key,
                  reason=reason)

    async def _resolve_conflicts(self, conflicts: Sequence[tuple[OutboxRow, PushResult]]) -> None:
        """A stale compare-and-set: learn the channel's value, let drift rules decide, re-queue."""
        unknown = [row for row, res in conflicts if res.observed is None]
        observed = {row.key: res.observed for row, res in conflicts if res.observed is not None}
        if unknown:
            listings = await self.store.submit(
                lambda tx: tx.listing_ids(self.channel, [r.key for r in unknown])
            )
            refs = [ListingRef(ids.get("sku", sku), ids, status)
                    for sku, (ids, status) in listings.items()]
            try:
                levels = await self.connector.fetch_levels(refs)
            except ConnectorError as exc:
                self.health.failed("re-read after conflict", exc)
                levels = {}
            for sku, (ids, _) in listings.items():
                level = levels.get(ids.get("sku", sku))
                if level is not None:
                    observed[sku] = level

        def observe(tx: Tx) -> None:
            for sku, level in observed.items():
                self._engine().observe_level(tx, self.channel, sku, int(level))
            for row in unknown:
                if row.key not in observed:  # could not re-read: push the value again later
                    tx.enqueue(self.channel, "stock", row.key, json.loads(row.value), None)

        await self.store.submit(observe)

    def _set_aside(
        self, tx: Tx, rows: Sequence[tuple[OutboxRow, str]], discovered: bool
    ) -> None:
        """Rows whose SKU the channel does not list (yet): skip them, or wait for discovery."""
        for row, reason in rows:
            if discovered:
                tx.set_outbox_state(row.id, "skipped", error=reason)
                self.metrics.pushes.labels(self.channel, "stock", "skipped").inc()
            else:
                self._requeue(tx, [row], AWAIT_DISCOVERY, uncount=True)

    def _requeue(
        self, tx: Tx, rows: Sequence[OutboxRow], wait: timedelta, *, uncount: bool,
        error: str | None = None,
    ) -> None:
        for row in rows:
            reason = error or row.last_error or "waiting"
            tx.retry_outbox(row, reason, tx.now() + wait, count=not uncount)


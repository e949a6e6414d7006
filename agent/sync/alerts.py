"""Low-stock alerts in the daemon: evaluated on a timer and after stock changes, announced by a
signed webhook with durable retries.

The evaluation is `agent.engine.reorder.evaluate_alerts`, one store transaction. Raised alerts
wait in the `alerts` table until the merchant's receiver answers 2xx, so a restart or a receiver
that is down loses none: each failed attempt is written down with the next one's time (jittered
exponential backoff), and after `webhook_max_attempts` the alert is marked failed and an error
event names the reason (/status "recent_events"). Delivery is at least once: a receiver that
must act once per alert dedupes on the payload's `id`.

Signing: `X-Storesync-Timestamp: <unix seconds>` and `X-Storesync-Signature: sha256=<hex>`,
the HMAC-SHA256 of "<timestamp>.<raw body>" under `webhook_secret`; every attempt is signed
afresh, so a receiver may refuse timestamps more than a few minutes old.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from datetime import timedelta

import httpx
import structlog

from agent.config import AlertsConfig, Config
from agent.engine.reorder import AlertChanges, ReorderRules, low_stock_now, record_alerts
from agent.store import Store, Tx
from agent.store.alerts import (
    AlertRow,
    due_notifications,
    mark_notified,
    next_notification_at,
    retry_notification,
)
from agent.store.timestamps import Clock, parse_iso, utc_now
from agent.sync.pusher import RetryRules

log = structlog.get_logger("storesync.alerts")

TIMESTAMP_HEADER = "X-Storesync-Timestamp"
SIGNATURE_HEADER = "X-Storesync-Signature"
# Bursts of stock changes each wake the evaluation; it runs at most this often for them.
MIN_GAP = timedelta(seconds=5)
# An idle notifier looks for due rows at least this often (a retry falling due, a new row).
IDLE_CHECK = timedelta(seconds=5)


def sign_alert(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _retry_after(response: httpx.Response) -> timedelta | None:
    """A Retry-After in seconds (the HTTP-date form is rare from webhook receivers)."""
    value = response.headers.get("Retry-After", "")
    return timedelta(seconds=int(value)) if value.isdigit() else None


class AlertWatcher:
    """Evaluates low-stock alerts and delivers their webhooks."""

    def __init__(
        self, *, store: Store, config: Callable[[], Config], clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self._config = config
        self.clock = clock
        self._rng = rng or random.Random()
        self._check_wake = asyncio.Event()
        self._notify_wake = asyncio.Event()

    def wake(self) -> None:
        """Stock may have changed: evaluate soon."""
        self._check_wake.set()

    # -- evaluation ----------------------------------------------------------------------------

    async def check_once(self) -> AlertChanges:
        """Evaluate every SKU against its reorder point, in one transaction."""
        config = self._config()
        rules = ReorderRules.from_config(config)
        notify = config.alerts.webhook_url is not None
        # Read on a reader thread, write only the changes: the single writer is never held for
        # a catalog scan. A stock change landing in between wakes the next check, which fixes it.
        found = await self.store.read(lambda conn: low_stock_now(conn, rules, self.clock()))
        changes = await self.store.submit(lambda tx: record_alerts(tx, found, notify=notify))
        for row in changes.raised:
            log.warning("low stock: reorder alert raised", sku=row.sku, available=row.available,
                        reorder_point=row.reorder_point, source=row.source)
        for row in changes.cleared:
            log.info("reorder alert cleared", sku=row.sku)
        if changes.raised:
            self._notify_wake.set()
        return changes

    async def run_checks(self) -> None:
        """Evaluate every `check_interval`, and soon after a wake."""
        while True:
            self._check_wake.clear()
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a store error; the next check retries
                log.exception("reorder alert check failed", error=str(exc))
            interval = self._config().alerts.check_interval
            gap = min(MIN_GAP, interval)
            await asyncio.sleep(gap.total_seconds())
            try:
                await asyncio.wait_for(self._check_wake.wait(), (interval - gap).total_seconds())
            except TimeoutError:
                pass

    # -- the webhook ---------------------------------------------------------------------------

    async def run_notifier(self) -> None:
        """Deliver due webhooks until cancelled."""
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                attempted = 0
                try:
                    attempted = await self.notify_once(client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a store error; try again later
                    log.exception("reorder alert delivery failed", error=str(exc))
                if not attempted:
                    await self._idle()

    async def _idle(self) -> None:
        self._notify_wake.clear()
        wait = IDLE_CHECK
        due = await self.store.read(next_notification_at)
        if due is not None:
            wait = min(wait, max(parse_iso(due) - self.clock(), timedelta()))
        try:
            await asyncio.wait_for(self._notify_wake.wait(), wait.total_seconds())
        except TimeoutError:
            pass

    async def notify_once(self, client: httpx.AsyncClient) -> int:
        """Try each due webhook once; returns how many were tried."""
        alerts = self._config().alerts
        if alerts.webhook_url is None or alerts.webhook_secret is None:
            return 0
        due = await self.store.read(lambda conn: due_notifications(conn, self.clock()))
        for row in due:
            with structlog.contextvars.bound_contextvars(sku=row.sku, alert=row.id):
                await self._deliver(client, alerts, row)
        return len(due)

    async def _deliver(
        self, client: httpx.AsyncClient, alerts: AlertsConfig, row: AlertRow
    ) -> None:
        assert alerts.webhook_url is not None and alerts.webhook_secret is not None
        body = json.dumps(row.payload(), separators=(",", ":")).encode()
        stamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign_alert(alerts.webhook_secret.reveal(), stamp, body),
        }
        error: str | None = None
        retry_after: timedelta | None = None
        try:
            response = await client.post(
                alerts.webhook_url, content=body, headers=headers,
                timeout=alerts.webhook_timeout.total_seconds(),
            )
            if not response.is_success:
                error = f"the receiver answered HTTP {response.status_code}"
                retry_after = _retry_after(response)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = row.notify_attempts + 1
        now = self.clock()
        if error is None:
            await self.store.submit(lambda tx: mark_notified(tx.conn, row.id, at=now))
            log.info("reorder alert delivered", attempts=attempts)
            return
        if attempts >= alerts.webhook_max_attempts:
            message = (f"reorder alert for {row.sku} not delivered after {attempts} attempts: "
                       f"{error}")

            def give_up(tx: Tx) -> None:
                retry_notification(tx.conn, row.id, error=error, next_at=None)
                tx.add_event("alert_webhook_failed", message, level="error", sku=row.sku,
                             ref=str(row.id))

            await self.store.submit(give_up)
            log.error("reorder alert webhook failed for good", attempts=attempts, error=error)
            return
        rules = RetryRules(alerts.webhook_max_attempts, alerts.webhook_retry_base,
                           alerts.webhook_retry_max)
        delay = rules.delay(attempts, self._rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, alerts.webhook_retry_max))
        await self.store.submit(
            lambda tx: retry_notification(tx.conn, row.id, error=error, next_at=now + delay)
        )
        log.warning(f"backing off {delay.total_seconds():.1f} s after {attempts} tries",
                    error=error, attempts=attempts)

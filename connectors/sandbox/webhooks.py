"""Webhook delivery for fake channels: a background sender with retries and delivery faults.

A channel sandbox builds each delivery (topic, raw body, signed headers, delivery id) and hands it
to `WebhookSender.enqueue`; the sender POSTs it to the configured URL from a background task.
Like Shopify, a failed attempt is retried on the channel's schedule with the *original* body and
headers (shopify.dev/changelog/updates-to-webhook-retry-mechanism), so consumers must dedupe on
the delivery id and judge staleness themselves. Delivery faults come from the sandbox's `Faults`:
drop, duplicate, reorder and delay. Every attempt is recorded for the control API, and `idle()`
lets a test wait until nothing is queued or due for retry instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from connectors.sandbox.clock import SandboxClock, format_timestamp
from connectors.sandbox.faults import Faults

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_TIMEOUT_S = 5.0  # Shopify's budget for the whole request
DEFAULT_FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One POST of one copy of a delivery, or the decision not to send it."""

    delivery_id: str
    topic: str
    attempt: int  # 1 for the first try of this copy; 0 when the delivery was never sent
    copy: int  # 0 for the delivery itself, 1.. for duplicates
    status: int | None
    error: str | None
    at: float  # sandbox wall clock, Unix seconds

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        """The attempt as JSON."""
        return {
            "delivery_id": self.delivery_id,
            "topic": self.topic,
            "attempt": self.attempt,
            "copy": self.copy,
            "status": self.status,
            "error": self.error,
            "at": self.at,
            "time": format_timestamp(datetime.fromtimestamp(self.at, UTC)),
        }


@dataclass(slots=True)
class _Job:
    """One copy of a delivery on its way, with the attempts it has made."""

    delivery_id: str
    topic: str
    body: bytes
    headers: dict[str, str]
    copy: int
    generation: int
    attempts: int = 0


@dataclass(slots=True)
class _Counts:
    delivered: int = 0  # copies answered 2xx
    gave_up: int = 0  # copies that ran out of retries
    dropped: int = 0  # deliveries the drop fault swallowed
    duplicated: int = 0  # extra copies the duplicate fault added


class WebhookSender:
    """Deliver webhooks in the background with a retry schedule and injected delivery faults."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        clock: SandboxClock | None = None,
        url: str | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        speed: float = 1.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        log_size: int = 10_000,
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self.clock = clock if clock is not None else SandboxClock()
        self.url = url
        self.retry_delays: tuple[float, ...] = ()
        self.speed = 1.0
        self.timeout_s = DEFAULT_TIMEOUT_S
        self.configure(retry_delays=retry_delays, speed=speed, timeout_s=timeout_s)
        self.attempts: deque[WebhookAttempt] = deque(maxlen=log_size)
        self._counts = _Counts()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._held: list[_Job] = []
        self._timers: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._outstanding = 0  # jobs queued, in flight, or waiting on a timer
        self._idle = asyncio.Event()
        self._idle.set()
        self._generation = 0

    # -- configuration -------------------------------------------------------------------------

    def configure(
        self,
        *,
        url: str | None = None,
        retry_delays: Sequence[float] | None = None,
        speed: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Change the target or schedule; a None argument leaves that setting alone."""
        if retry_delays is not None:
            delays = tuple(float(d) for d in retry_delays)
            if any(d < 0 for d in delays):
                raise ValueError("retry_delays must not be negative")
            self.retry_delays = delays
        if speed is not None:
            if speed <= 0:
                raise ValueError("speed must be positive")
            self.speed = float(speed)
        if timeout_s is not None:
            if timeout_s <= 0:
                raise ValueError("timeout_s must be positive")
            self.timeout_s = float(timeout_s)
        if url is not None:
            self.url = url or None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and start the delivery task (idempotent)."""
        if self._worker is not None:
            return
        self._session = aiohttp.ClientSession()
        self._worker = asyncio.create_task(self._run(), name="sandbox-webhook-sender")

    async def close(self) -> None:
        """Stop delivering: cancel the task and pending retries, close the session."""
        tasks = [t for t in (self._worker, *self._timers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        self._timers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._drain_queue()
        self._outstanding = 0
        self._idle.set()  # nothing will ever be delivered now: release anyone waiting

    def reset(self) -> None:
        """Forget queued and held deliveries, pending retries and the attempt log."""
        self._generation += 1  # an attempt in flight now finishes unrecorded and is not retried
        for task in self._timers:
            task.cancel()
        self._timers.clear()
        self._drain_queue()
        self._held.clear()
        self.attempts.clear()
        self._counts = _Counts()
        self._outstanding = 0
        self._idle.set()

    def _drain_queue(self) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                self._queue.get_nowait()

    # -- sending --------------------------------------------------------------------------------

    def enqueue(
        self, topic: str, body: bytes, headers: Mapping[str, str], delivery_id: str
    ) -> int:
        """Queue one delivery, applying the delivery faults; returns how many copies will go."""
        if self.url is None:
            self._record_unsent(delivery_id, topic, "no webhook url configured")
            return 0
        copies = self.faults.copies()
        if copies == 0:
            self._counts.dropped += 1
            self._record_unsent(delivery_id, topic, "dropped by fault")
            return 0
        self._counts.duplicated += copies - 1
        jobs = [
            _Job(delivery_id, topic, bytes(body), dict(headers), copy, self._generation)
            for copy in range(copies)
        ]
        if self.faults.reorder and not self._held:
            self._held = jobs  # sent right after the next delivery, so the two arrive swapped
            return copies
        held, self._held = self._held, []
        delay = self.faults.delay_s
        for job in [*jobs, *held]:
            self._track()
            if delay > 0:
                self._later(job, delay)
            else:
                self._queue.put_nowait(job)
        return copies

    def release_held(self) -> None:
        """Send a delivery the reorder fault is holding back, without waiting for the next."""
        held, self._held = self._held, []
        for job in held:
            self._track()
            self._queue.put_nowait(job)

    async def idle(self) -> None:
        """Wait until nothing is queued, in flight or due for retry (held deliveries excepted)."""
        while self._outstanding:
            await self._idle.wait()

    async def flush(self, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
        """Release held deliveries and wait for idle, at most `timeout_s`; True if it got there."""
        self.release_held()
        try:
            await asyncio.wait_for(self.idle(), timeout_s)
        except TimeoutError:
            return False
        return True

    @property
    def pending(self) -> int:
        """Copies not yet delivered or given up on, held ones included."""
        return self._outstanding + len(self._held)

    def snapshot(self) -> dict[str, Any]:
        """Settings, counters and the attempt log, as JSON for the control API."""
        return {
            "url": self.url,
            "retry_delays": list(self.retry_delays),
            "speed": self.speed,
            "timeout_s": self.timeout_s,
            "pending": self.pending,
            "held": len(self._held),
            "delivered": self._counts.delivered,
            "gave_up": self._counts.gave_up,
            "dropped": self._counts.dropped,
            "duplicated": self._counts.duplicated,
            "attempts": [a.to_dict() for a in self.attempts],
        }

    # -- internals ------------------------------------------------------------------------------

    def _track(self) -> None:
        self._outstanding += 1
        self._idle.clear()

    def _untrack(self) -> None:
        self._outstanding = max(self._outstanding - 1, 0)
        if self._outstanding == 0:
            self._idle.set()

    def _later(self, job: _Job, delay_s: float) -> None:
        """Put `job` back on the queue after `delay_s` of the sandbox clock."""

        async def wait_then_queue() -> None:
            await self.clock.sleep(delay_s)
            if job.generation == self._generation:
                self._queue.put_nowait(job)

        task = asyncio.create_task(wait_then_queue(), name=f"webhook-retry-{job.delivery_id}")
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            await self._attempt(job)

    async def _attempt(self, job: _Job) -> None:
        """POST one copy once; schedule its retry or settle it."""
        job.attempts += 1
        status, error = await self._post(job)
        if job.generation != self._generation:
            return  # reset while in flight: forgotten, like everything else
        attempt = WebhookAttempt(
            job.delivery_id,
            job.topic,
            job.attempts,
            job.copy,
            status,
            error,
            self._now(),
        )
        self.attempts.append(attempt)
        if attempt.ok:
            self._counts.delivered += 1
            self._untrack()
        elif job.attempts <= len(self.retry_delays):
            self._later(job, self.retry_delays[job.attempts - 1] / self.speed)
        else:
            self._counts.gave_up += 1
            self._untrack()

    async def _post(self, job: _Job) -> tuple[int | None, str | None]:
        url, session = self.url, self._session
        if url is None or session is None:
            return None, "no webhook url configured"
        try:
            async with session.post(
                url,
                data=job.body,
                headers=job.headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                allow_redirects=False,
            ) as response:
                await response.read()
                return response.status, None
        except TimeoutError:
            return None, f"timed out after {self.timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # A bad URL or a refused connection is the receiver's problem: retry it, never die.
            return None, f"{type(exc).__name__}: {exc}"

    def _record_unsent(self, delivery_id: str, topic: str, why: str) -> None:
        self.attempts.append(WebhookAttempt(delivery_id, topic, 0, 0, None, why, self._now()))

    def _now(self) -> float:
        return self.clock.now().timestamp()

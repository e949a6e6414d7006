"""The one road every connector's HTTP takes: client, status table, limiters, bounded retries.

A response or a transport failure becomes one of the errors of `connectors/base.py`, and the
error says what recovery comes next::

    ConnectorError
     +-- RetryableError      timeouts, resets, truncated responses, 408, 425, 5xx: send() retries
     |    |                  within its RetryPolicy, then it is the caller's (the outbox's) turn;
     |    |                  json_body() raises it for a body that is not JSON
     |    +-- RateLimited    429: the limiter pauses every request to the channel for Retry-After;
     |                       a used-up DailyQuota refuses calls until midnight; send() retries
     |                       when that wait fits its budget, else raises it at once
     +-- AuthError           401, 403: raised at once; pause the channel, keep its outbox
     +-- PermanentError      400, 404, 405, 410, 413, 422, any other 4xx, a malformed URL:
     |                       raised at once; dead-letter the item
     +-- ConflictError       409: raised at once; re-read, recompute, push again

Retries here are tier 1 (seconds, one request); durable retries over hours belong to the outbox.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.metadata
import math
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from connectors import payloads
from connectors.base import (
    AuthError,
    ConflictError,
    ConnectorError,
    PermanentError,
    RateLimited,
    RetryableError,
)

__all__ = [
    "STATUS_ERRORS",
    "USER_AGENT",
    "CostBucket",
    "DailyQuota",
    "Limiter",
    "NoLimit",
    "RetryPolicy",
    "Timeouts",
    "TokenBucket",
    "error_from_exception",
    "json_body",
    "make_client",
    "parse_retry_after",
    "raise_for_status",
    "send",
]

log = structlog.get_logger(__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("storesync")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout, not installed
        return "dev"


USER_AGENT = f"storesync/{_version()} (+https://github.com/storesync/storesync)"

_SNIPPET_CHARS = 200
_EPSILON = 1e-9  # float slack, so a refill that lands a hair short does not cost another sleep


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt limits: connect and read per socket operation, total for the whole attempt."""

    connect_s: float = 5.0
    read_s: float = 30.0
    total_s: float = 60.0  # one attempt incl. body, enforced with asyncio.timeout in send()


_DEFAULT_TIMEOUTS = Timeouts()
# make_client remembers each client's Timeouts, so send() enforces the same total_s by default.
_CLIENT_TIMEOUTS: weakref.WeakKeyDictionary[httpx.AsyncClient, Timeouts] = (
    weakref.WeakKeyDictionary()
)


def _httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(
        connect=timeouts.connect_s,
        read=timeouts.read_s,
        write=timeouts.read_s,
        pool=timeouts.connect_s,
    )


def make_client(
    base_url: str,
    *,
    timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient with explicit timeouts, our User-Agent and no redirect following."""
    merged = httpx.Headers({"User-Agent": USER_AGENT})
    merged.update(headers or {})  # case-insensitive, so a channel may set its own User-Agent
    client = httpx.AsyncClient(
        base_url=base_url,
        headers=merged,
        auth=auth,
        transport=transport,
        timeout=_httpx_timeout(timeouts),
        # A redirect on a write API is a misconfiguration (http -> https drops the body).
        follow_redirects=False,
    )
    _CLIENT_TIMEOUTS[client] = timeouts
    return client


# -- the error table -----------------------------------------------------------------------------

STATUS_ERRORS: Mapping[int, type[ConnectorError]] = {
    400: PermanentError,
    401: AuthError,
    403: AuthError,
    404: PermanentError,
    405: PermanentError,
    408: RetryableError,
    409: ConflictError,
    410: PermanentError,
    413: PermanentError,
    422: PermanentError,
    425: RetryableError,
    429: RateLimited,
    500: RetryableError,
    502: RetryableError,
    503: RetryableError,
    504: RetryableError,
}


def _error_class(status: int) -> type[ConnectorError]:
    known = STATUS_ERRORS.get(status)
    if known is not None:
        return known
    return RetryableError if status >= 500 else PermanentError


def _request_of(
    obj: httpx.Response | httpx.RequestError | httpx.HTTPStatusError,
) -> httpx.Request | None:
    try:
        return obj.request
    except RuntimeError:  # httpx raises when no request is attached
        return None


def _describe(request: httpx.Request | None) -> str:
    # Path only: query strings carry WooCommerce's consumer_key/consumer_secret.
    return f"{request.method} {request.url.path}" if request is not None else "request"


def _redact(text: str, request: httpx.Request | None) -> str:
    # Error bodies and exception texts sometimes echo the URL back; mask its query values.
    if request is not None:
        for _, value in request.url.params.multi_items():
            if len(value) >= 4:
                text = text.replace(value, "***")
    return text


def _snippet(response: httpx.Response) -> str:
    try:
        text = response.text
    except httpx.ResponseNotRead:
        return ""
    text = " ".join(text.split())[:_SNIPPET_CHARS]
    return _redact(text, _request_of(response))


def raise_for_status(response: httpx.Response, *, what: str = "") -> None:
    """Return on 1xx-3xx; otherwise raise the error the status table maps the status to."""
    status = response.status_code
    if status < 400:
        return
    message = f"{what or _describe(_request_of(response))}: HTTP {status}"
    if snippet := _snippet(response):
        message = f"{message}: {snippet}"
    error_class = _error_class(status)
    error: ConnectorError
    if error_class is RateLimited:
        retry_after = parse_retry_after(response.headers.get("Retry-After")) or 1.0
        error = RateLimited(message, retry_after=retry_after)
    else:
        error = error_class(message)
    error.status = status
    raise error


_DELAY_SECONDS = re.compile(r"\d+(\.\d+)?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), None if unusable."""
    # RFC 9110 §10.2.3: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):  # a regex, because float() accepts "inf", "nan", "-5"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def error_from_exception(exc: BaseException, *, what: str = "") -> ConnectorError:
    """Map an httpx or timeout exception to the connector error that says what to do."""
    if isinstance(exc, ConnectorError):
        return exc
    request = (
        _request_of(exc) if isinstance(exc, httpx.RequestError | httpx.HTTPStatusError) else None
    )
    label = what or _describe(request)
    detail = _redact(" ".join(str(exc).split())[:_SNIPPET_CHARS], request)
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"{label}: timed out ({kind}) {detail}".rstrip())
    if isinstance(exc, TimeoutError):
        return RetryableError(f"{label}: no complete response within the total timeout")
    if isinstance(exc, httpx.RemoteProtocolError):
        return RetryableError(f"{label}: the connection broke mid-response ({kind}) {detail}")
    if isinstance(exc, httpx.NetworkError):
        return RetryableError(f"{label}: network error ({kind}) {detail}".rstrip())
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        # Our URL or headers are malformed: the same request can never succeed.
        return PermanentError(f"{label}: cannot send this request ({kind}) {detail}".rstrip())
    if isinstance(exc, httpx.HTTPStatusError):
        # Its text includes the full URL (and so the query string): use the status table.
        try:
            raise_for_status(exc.response, what=what)
        except ConnectorError as error:
            return error
    if isinstance(exc, httpx.HTTPError):
        return RetryableError(f"{label}: {kind}")
    raise TypeError(f"not an HTTP error: {kind}") from exc


def json_body(response: httpx.Response, *, what: str = "") -> Any:
    """The response's JSON; a body that is not JSON is a transient RetryableError, not a crash."""
    try:
        return payloads.loads(response.content)
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deeply
        label = what or _describe(_request_of(response))
        raise RetryableError(
            f"{label}: the channel returned a body that is not JSON ({len(response.content)} bytes)"
        ) from exc


# -- limiters ------------------------------------------------------------------------------------


class Limiter(Protocol):
    """How one channel account paces its calls; shared by every request to that account."""

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until a call of `cost` may go."""
        ...

    def pause(self, seconds: float) -> None:
        """Let nobody call for `seconds` (a 429's Retry-After): channel-wide."""
        ...

    def observe(self, response: httpx.Response) -> None:
        """Learn from response headers where the channel reports its budget."""
        ...

    def settle(self, status: int | None) -> None:
        """The status the current task's request got (None: no answer), for the probe after a
        pause."""
        ...

    def snapshot(self) -> dict[str, float | int | str | None]:
        """The limiter's state for /status."""
        ...


class _Gate:
    """The pause every limiter honours, on a monotonic clock, and the lock around decisions.

    A 429 pauses every request to the channel for its Retry-After. When the pause ends, one
    request goes first, alone (the probe); the others wait for its answer. Another 429 starts a
    new pause; anything else lets them all go. So a storm that outlasts Retry-After costs one
    429 per pause, not one per waiting caller.
    """

    def __init__(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        # One decision at a time; waiting under the lock keeps callers first come, first served.
        self._lock = asyncio.Lock()
        self._paused_until = -math.inf
        self._probe_needed = False  # a pause was asked for: one request tests the channel first
        self._probe: asyncio.Task[Any] | None = None  # the task whose request is the probe
        self._probe_answered = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """Let nobody call for `seconds`; a shorter pause never cuts a longer one short."""
        if seconds > 0:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._probe_needed = True

    def observe(self, response: httpx.Response) -> None:
        """Nothing to learn from headers by default."""

    def settle(self, status: int | None) -> None:
        """The answer the current task's request got (None: no answer). From the probe, a 429
        or no answer keeps the others waiting for the next probe; anything else frees them."""
        if self._probe is None or self._probe is not asyncio.current_task():
            return
        if status is not None and status != 429:
            self._probe_needed = False
        self._probe = None
        self._probe_answered.set()

    def _paused_for(self) -> float:
        return max(self._paused_until - self._clock(), 0.0)

    async def _wait_out_pause(self) -> None:
        while True:
            if (left := self._paused_for()) > 0:
                await self._sleep(left)
                continue
            me = asyncio.current_task()
            if not self._probe_needed or self._probe is me:
                return
            if self._probe is None or self._probe.done():
                self._probe = me  # this caller's request tests the channel
                self._probe_answered.clear()
                return
            await self._probe_answered.wait()

    async def wait_out_pause(self) -> None:
        """Return once no pause is on (for callers that take the bucket themselves)."""
        await self._wait_out_pause()


class NoLimit(_Gate):
    """No pacing: acquire returns at once unless the channel asked for a pause."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(clock, sleep)

    async def acquire(self, cost: float = 1.0) -> None:
        """Return once any pause is over."""
        async with self._lock:
            await self._wait_out_pause()

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Model and pause."""
        return {"model": "none", "paused_for_s": round(self._paused_for(), 3)}


class _Bucket(_Gate):
    """A bucket of `capacity` that refills at `rate` per second; callers take `cost` out."""

    def __init__(
        self,
        capacity: float,
        rate: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError("a bucket needs a positive capacity and refill rate")
        super().__init__(clock, sleep)
        self._capacity = float(capacity)
        self._rate = float(rate)
        self._level = float(capacity)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self._capacity, self._level + (now - self._updated) * self._rate)
        self._updated = now

    async def acquire(self, cost: float = 1.0) -> None:
        """Sleep until the bucket holds `cost` (and no pause is on), then take it."""
        # More than a full bucket could never be granted: treat it as a full bucket.
        need = min(max(cost, 0.0), self._capacity)
        async with self._lock:
            while True:
                await self._wait_out_pause()
                self._refill()
                if self._level + _EPSILON >= need:
                    self._level -= need
                    return
                await self._sleep((need - self._level) / self._rate)

    def _state(self, model: str) -> dict[str, float | int | str | None]:
        self._refill()
        return {
            "model": model,
            "available": round(self._level, 3),
            "capacity": self._capacity,
            "rate_per_s": self._rate,
            "paused_for_s": round(self._paused_for(), 3),
        }


def _header_float(response: httpx.Response, name: str | None) -> float | None:
    raw = response.headers.get(name) if name else None
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


class TokenBucket(_Bucket):
    """Requests per second with a burst (Amazon SP-API, WooCommerce hosts)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        header_rate: str | None = None,
        header_remaining: str | None = None,
    ) -> None:
        super().__init__(burst, rate_per_s, clock, sleep)
        self._header_rate = header_rate
        self._header_remaining = header_remaining

    def observe(self, response: httpx.Response) -> None:
        """Adopt the rate and remaining budget the channel reports, when it reports them."""
        # SP-API sends x-amzn-RateLimit-Limit (requests per second) on a best-effort basis:
        # https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits
        rate = _header_float(response, self._header_rate)
        remaining = _header_float(response, self._header_remaining)
        if rate is None and remaining is None:
            return
        self._refill()
        if rate is not None and rate > 0:
            self._rate = rate
        if remaining is not None:  # the server counts every client of this key; trust it
            self._level = min(remaining, self._capacity)

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Tokens available, burst, rate and pause."""
        return self._state("token_bucket")


class CostBucket(_Bucket):
    """A leaky bucket of query cost points (Shopify GraphQL Admin API)."""

    def __init__(
        self,
        capacity: float,
        restore_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(capacity, restore_per_s, clock, sleep)
        self._last_cost: tuple[float | None, float | None] = (None, None)

    def observe_cost(
        self,
        *,
        maximum_available: float,
        currently_available: float,
        restore_rate: float,
        requested: float | None = None,
        actual: float | None = None,
    ) -> None:
        """Resync to the server's extensions.cost.throttleStatus after a GraphQL response."""
        # Shopify refunds requested-minus-actual itself; currentlyAvailable already includes it:
        # https://shopify.dev/docs/api/usage/rate-limits#graphql-admin-api-rate-limits
        self._refill()
        if maximum_available > 0:
            self._capacity = float(maximum_available)
        if restore_rate > 0:
            self._rate = float(restore_rate)
        self._level = min(max(float(currently_available), 0.0), self._capacity)
        self._last_cost = (requested, actual)

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Points available, capacity, restore rate, the last query's cost, and pause."""
        state = self._state("cost_bucket")
        state["last_requested"], state["last_actual"] = self._last_cost
        return state


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DailyQuota(_Gate):
    """Calls per day that reset at local midnight (eBay: midnight Pacific time)."""

    # https://developer.ebay.com/develop/get-started/api-call-limits

    def __init__(
        self,
        limit_per_day: int,
        *,
        tz: str = "America/Los_Angeles",
        warn_ratio: float = 0.9,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock, sleep)
        self._limit = limit_per_day
        self._tz = ZoneInfo(tz)
        self._warn_ratio = warn_ratio
        self._now = now
        self._day: date | None = None
        self._used = 0

    def _local_now(self) -> datetime:
        now = self._now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        local = now.astimezone(self._tz)
        if local.date() != self._day:
            self._day, self._used = local.date(), 0
        return local

    def _reset_after(self, local: datetime) -> tuple[datetime, float]:
        reset = datetime.combine(local.date() + timedelta(days=1), dtime(0), tzinfo=self._tz)
        # Through UTC: aware datetimes sharing a tzinfo subtract as naive ones, wrong across DST.
        seconds = (reset.astimezone(UTC) - local.astimezone(UTC)).total_seconds()
        return reset, seconds

    async def acquire(self, cost: float = 1.0) -> None:
        """Count the call; when the day's calls are used up, raise RateLimited until midnight."""
        calls = max(math.ceil(cost), 1)
        async with self._lock:
            await self._wait_out_pause()
            local = self._local_now()
            if self._used + calls > self._limit:
                reset, seconds = self._reset_after(local)
                raise RateLimited(
                    f"daily quota used up ({self._used} of {self._limit} calls); "
                    f"resets at {reset.isoformat()}",
                    retry_after=seconds,
                )
            self._used += calls

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Calls used, limit, reset time, and a warning flag near the limit."""
        local = self._local_now()
        reset, _ = self._reset_after(local)
        return {
            "model": "daily_quota",
            "used": self._used,
            "limit": self._limit,
            "resets_at": reset.isoformat(),
            "warning": self._used >= self._warn_ratio * self._limit,
            "paused_for_s": round(self._paused_for(), 3),
        }


# -- the request loop ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard send() tries one request before the error goes back to the caller."""

    attempts: int = 4  # total tries of one request
    max_delay_s: float = 30.0  # total time spent waiting between tries, at most
    base_s: float = 0.5  # first backoff window; exponential with full jitter
    cap_s: float = 8.0


_DEFAULT_POLICY = RetryPolicy()
# For a request that must not be sent twice (it creates something: a fulfillment, a note, a
# feed): a connection that breaks after sending leaves unknown whether the channel acted, so
# the error goes back to the caller, whose next try reads what the channel has first.
ONCE = RetryPolicy(attempts=1)


class _stop_when_waits_exceed(stop_base):
    """Stop when the next wait would bring the total waited past the budget."""

    # Instead of stop_after_delay: it reads tenacity's own monotonic clock (deaf to an injected
    # sleep), counts time spent inside requests, and is checked only after it has overslept.

    def __init__(self, budget_s: float) -> None:
        self._budget_s = budget_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self._budget_s + _EPSILON


class _backoff(wait_base):
    """Full-jitter exponential backoff, but never shorter than a RateLimited's retry_after."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(multiplier=policy.base_s, max=policy.cap_s)

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._jitter(retry_state)
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RateLimited):
            delay = max(delay, error.retry_after)
        return delay


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy = _DEFAULT_POLICY,
    limiter: Limiter | None = None,
    gate: _Gate | None = None,
    cost: float = 1.0,
    what: str = "",
    timeouts: Timeouts | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **request_kwargs: Any,
) -> httpx.Response:
    """Send one request through the limiter, retrying transient failures within `policy`.

    A caller that takes its limiter's bucket itself (Shopify's cost points) passes it as `gate`
    instead: every attempt still waits out the channel's pause, and a 429 still pauses it, so
    a retry never goes out while another caller's Retry-After runs.
    """
    if timeouts is not None:
        request_kwargs.setdefault("timeout", _httpx_timeout(timeouts))
    total_s = (timeouts or _CLIENT_TIMEOUTS.get(client) or _DEFAULT_TIMEOUTS).total_s
    label = what or f"{method.upper()} {httpx.URL(url).path}"
    status: int | None = None

    async def attempt() -> httpx.Response:
        nonlocal status
        status = None
        holder = limiter if limiter is not None else gate
        answered: int | None = None
        try:
            if limiter is not None:
                await limiter.acquire(cost)
            elif gate is not None:
                await gate.wait_out_pause()
            # httpx's timeouts are per socket operation; a trickling server could outlast them.
            async with asyncio.timeout(total_s):
                response = await client.request(method, url, **request_kwargs)
            answered = response.status_code
        except (httpx.HTTPError, TimeoutError) as exc:
            raise error_from_exception(exc, what=what) from exc
        finally:
            if holder is not None:  # after a pause this request may have been the probe
                holder.settle(answered)  # (a 429's own pause is set below, before any await)
        status = response.status_code
        if limiter is not None:
            limiter.observe(response)
        try:
            raise_for_status(response, what=what)
        except RateLimited as exc:
            if holder is not None:  # every request to this channel holds off, not just ours
                holder.pause(exc.retry_after)
            raise
        return response

    def log_backoff(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        log.warning(
            "backing off",
            delay_s=round(retry_state.upcoming_sleep, 3),
            tries=retry_state.attempt_number,
            status=status,
            what=label,
            error=str(outcome.exception()) if outcome is not None else None,
        )

    retrying = AsyncRetrying(
        # Never tenacity's defaults: those retry every exception, forever, without waiting.
        stop=stop_after_attempt(policy.attempts) | _stop_when_waits_exceed(policy.max_delay_s),
        wait=_backoff(policy),
        retry=retry_if_exception_type(RetryableError),
        reraise=True,
        sleep=sleep,
        before_sleep=log_backoff,
    )
    return await retrying(attempt)

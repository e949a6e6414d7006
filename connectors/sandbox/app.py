"""The base every fake channel is built on: an aiohttp app with faults, a request log, webhooks
and the control API.

A channel sandbox subclasses `SandboxBase`, adds its API routes (`add_routes`), its own
middlewares for auth and rate limits (`api_middlewares`), its in-memory truth (`truth`,
`reset_truth`) and a way to seed a catalog (`seed_catalog`). The base provides, for every
channel alike:

    POST /_control/reset            forget the truth, the logs, the faults, queued webhooks
    GET  /_control/state            the truth plus request counters and webhook counters
    GET  /_control/faults           the fault knobs
    PUT  /_control/faults           change them (see `Faults.update`)
    GET  /_control/requests         the API request log: method, path, route, status, at (s)
    GET  /_control/webhooks         the webhook settings, attempt log and pending count
    PUT  /_control/webhooks         {"url", "secret", "retry_delays", "speed", "timeout_s"}
    POST /_control/webhooks/flush   wait (bounded) until every webhook is delivered or given up
    GET  /_control/exchanges        recorded API exchanges with bodies (see `exchanges.py`):
                                    {"recording", "exchanges", "next", "dropped", "limit"};
                                    `?since=N` from index N on, `?route=GET /orders/{id}` one route
    PUT  /_control/exchanges        {"record": bool} switch recording on or off
    DELETE /_control/exchanges      forget the recorded exchanges

The control API takes no auth and no faults: it is how tests and the demo play shopper and
inspect the channel, never part of the channel's API.
"""

from __future__ import annotations

import enum
import json
import random
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.sandbox.clock import SandboxClock, format_timestamp
from connectors.sandbox.exchanges import DEFAULT_LIMIT as DEFAULT_EXCHANGE_LIMIT
from connectors.sandbox.exchanges import ExchangeRecorder
from connectors.sandbox.faults import (
    CONTROL_PREFIX,
    FAULT_KEY,
    Faults,
    faults_middleware,
    is_api_request,
)
from connectors.sandbox.webhooks import (
    DEFAULT_FLUSH_TIMEOUT_S,
    DEFAULT_RETRY_DELAYS,
    DEFAULT_TIMEOUT_S,
    WebhookSender,
)


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET  # "leave this setting alone", where None means "switch it off"

# Faults that leave the client without any HTTP status.
_NO_ANSWER = frozenset({"reset", "reset_after"})


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One API request as the sandbox saw it."""

    method: str
    path: str
    route: str  # the matched route template, e.g. "GET /orders/{id}"
    status: int | None  # None when the connection was reset instead of answered
    fault: str | None  # the injected fault that produced the outcome, if any
    at: float  # sandbox wall clock, Unix seconds: tests do arithmetic with it (Retry-After)
    # What the channel meters the request under: "store" for one budget per account, else an
    # Amazon operation or an eBay API. A 429 (and its Retry-After) speaks for that scope only.
    scope: str = "store"

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON, with `time` as ISO text for people."""
        return {
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "status": self.status,
            "fault": self.fault,
            "at": self.at,
            "scope": self.scope,
            "time": format_timestamp(datetime.fromtimestamp(self.at, UTC)),
        }


def json_response(data: Any, *, status: int = 200, **kwargs: Any) -> web.Response:
    """A compact JSON response (no spaces), as real APIs send."""
    return web.json_response(
        data, status=status, dumps=lambda obj: json.dumps(obj, separators=(",", ":")), **kwargs
    )


class JsonError(web.HTTPException):
    """An HTTP error answered as `{"error": code, "message": ...}` JSON; raise it from handlers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status  # HTTPException reads the status from this attribute
        body: dict[str, Any] = {"error": code}
        if message:
            body["message"] = message
        super().__init__(
            text=json.dumps(body, separators=(",", ":")),
            content_type="application/json",
            headers=dict(headers) if headers else None,
        )
        self.code = code


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 `{"error": "invalid_json"}`."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JsonError(400, "invalid_json", str(exc)) from exc


def read_order_lines(body: Any) -> list[tuple[str | None, int]]:
    """A shopper's `{"lines": [{"sku", "quantity"}]}` as (sku, quantity) pairs, or a 400."""
    if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
        raise JsonError(400, "invalid_body", 'expected {"lines": [{"sku", "quantity"}]}')
    lines: list[tuple[str | None, int]] = []
    for item in body["lines"]:
        if not isinstance(item, dict):
            raise JsonError(400, "invalid_body", "each line must be an object")
        sku, quantity = item.get("sku"), item.get("quantity", 1)
        if sku is not None and not isinstance(sku, str):
            raise JsonError(400, "invalid_body", "sku must be a string or null")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise JsonError(400, "invalid_body", "quantity must be an integer")
        lines.append((sku, quantity))
    return lines


class SandboxBase:
    """A fake channel: subclass it, add routes and truth; the base does everything common."""

    kind: ClassVar[str] = "sandbox"

    def __init__(
        self,
        *,
        clock: SandboxClock | None = None,
        seed: int | None = None,
        webhook_url: str | None = None,
        webhook_secret: str = "",
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        speed: float = 1.0,
        webhook_timeout_s: float = DEFAULT_TIMEOUT_S,
        request_log_size: int = 10_000,
        record_exchanges: bool = False,
        exchange_log_size: int = DEFAULT_EXCHANGE_LIMIT,
    ) -> None:
        self.clock = clock if clock is not None else SandboxClock()
        self.faults = Faults(seed=seed)
        self.webhook_secret = webhook_secret
        self.sender = WebhookSender(
            faults=self.faults,
            clock=self.clock,
            url=webhook_url,
            retry_delays=retry_delays,
            speed=speed,
            timeout_s=webhook_timeout_s,
        )
        # Ids come from their own seeded source so a fault knob never changes which ids a
        # seeded run produces.
        self._ids = random.Random(seed)
        self.requests: deque[RequestRecord] = deque(maxlen=request_log_size)
        self.in_flight = 0  # API requests arrived and not yet answered (the log has them after)
        self.route_counts: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.exchanges = ExchangeRecorder(record=record_exchanges, limit=exchange_log_size)

    # -- hooks for channel sandboxes ------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Add the channel's API routes to `app`."""

    def api_middlewares(self) -> list[Middleware]:
        """Middlewares that run inside the fault layer on every request (auth, rate limits)."""
        return []

    def rate_scope(self, method: str, template: str, path: str) -> str:
        """The budget a request is metered under (see RequestRecord.scope): one per account
        unless the channel meters finer."""
        return "store"

    def truth(self) -> dict[str, Any]:
        """The channel's in-memory state as JSON, merged into `GET /_control/state`."""
        return {}

    def reset_truth(self) -> None:
        """Forget the channel's state (catalog, orders, counters)."""

    def seed_catalog(self, levels: Mapping[str, int]) -> dict[str, str]:
        """Create or update listings for SKUs with quantities; returns SKU -> channel id."""
        raise NotImplementedError(f"{type(self).__name__} cannot seed a catalog")

    def levels(self) -> dict[str, int | None]:
        """The quantity each listing shows buyers now, by SKU (what the demo and benchmarks
        watch). Channels override it with a cheap read; this default builds the whole truth."""
        listings = self.truth().get("listings", {})
        return {sku: entry.get("quantity") for sku, entry in listings.items()}

    def error_response(
        self, status: int, code: str, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """How this channel answers an injected error (outage, storm, 5xx)."""
        return json_response({"error": code}, status=status, headers=dict(headers))

    async def on_startup(self) -> None:
        """Called once the app runs, before requests arrive."""

    async def on_cleanup(self) -> None:
        """Called when the app stops, before the webhook sender closes."""

    # -- the app ------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp application: control routes, API routes, middlewares, lifecycle."""
        app = web.Application(
            middlewares=[
                self._log_requests,
                self.exchanges.middleware(lambda: self.clock.now().timestamp()),
                faults_middleware(self.faults, self.clock, respond=self.error_response),
                *self._only_api(self.api_middlewares()),
            ]
        )
        app[SANDBOX_KEY] = self
        app.cleanup_ctx.append(self._lifecycle)
        control = [
            web.post(f"{CONTROL_PREFIX}/reset", self._control_reset),
            web.get(f"{CONTROL_PREFIX}/state", self._control_state),
            web.get(f"{CONTROL_PREFIX}/faults", self._control_get_faults),
            web.put(f"{CONTROL_PREFIX}/faults", self._control_put_faults),
            web.get(f"{CONTROL_PREFIX}/requests", self._control_requests),
            web.get(f"{CONTROL_PREFIX}/webhooks", self._control_get_webhooks),
            web.put(f"{CONTROL_PREFIX}/webhooks", self._control_put_webhooks),
            web.post(f"{CONTROL_PREFIX}/webhooks/flush", self._control_flush),
            web.get(f"{CONTROL_PREFIX}/exchanges", self._control_get_exchanges),
            web.put(f"{CONTROL_PREFIX}/exchanges", self._control_put_exchanges),
            web.delete(f"{CONTROL_PREFIX}/exchanges", self._control_delete_exchanges),
        ]
        app.add_routes(control)
        self.add_routes(app)
        return app

    def reset(self) -> None:
        """Forget everything but the configuration: truth, logs, faults, queued webhooks."""
        self.faults.clear()
        self.sender.reset()
        self.requests.clear()
        self.route_counts.clear()
        self.status_counts.clear()
        self.exchanges.clear()
        self.reset_truth()

    def state(self) -> dict[str, Any]:
        """The truth plus request and webhook counters."""
        webhooks = self.sender.snapshot()
        del webhooks["attempts"]  # the full log is at GET /_control/webhooks
        return {
            **self.truth(),
            "requests": self.request_stats(),
            "webhooks": webhooks,
        }

    def request_stats(self) -> dict[str, Any]:
        """Request totals by route and by status, and how many are being answered now."""
        return {
            "total": sum(self.route_counts.values()),
            "in_flight": self.in_flight,
            "by_route": dict(self.route_counts),
            "by_status": dict(self.status_counts),
        }

    def new_delivery_id(self) -> str:
        """A fresh UUID for a webhook delivery (reproducible under a seed)."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def emit_webhook(
        self, topic: str, body: bytes, headers: Mapping[str, str], delivery_id: str
    ) -> int:
        """Hand a signed delivery to the sender; returns how many copies will be sent."""
        return self.sender.enqueue(topic, body, headers, delivery_id)

    def now_text(self) -> str:
        """The sandbox clock's current time as the fakes print it."""
        return format_timestamp(self.clock.now())

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.sender.start()
        await self.on_startup()
        try:
            yield
        finally:
            await self.on_cleanup()
            await self.sender.close()

    @staticmethod
    def _only_api(middlewares: list[Middleware]) -> list[Middleware]:
        """Wrap channel middlewares so they never see control requests."""

        def wrap(inner: Middleware) -> Middleware:
            @web.middleware
            async def api_only(request: web.Request, handler: Handler) -> web.StreamResponse:
                if not is_api_request(request):
                    return await handler(request)
                return await inner(request, handler)

            return api_only

        return [wrap(m) for m in middlewares]

    @web.middleware
    async def _log_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_api_request(request):
            return await handler(request)
        # Stamped on arrival: "when did the request reach the channel" is what tests ask.
        arrived = self.clock.now().timestamp()
        status: int | None = 500
        self.in_flight += 1
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.in_flight -= 1
            fault = request.get(FAULT_KEY)
            if fault in _NO_ANSWER:
                status = None
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else "(unmatched)"
            route = f"{request.method} {template}"
            self.route_counts[route] += 1
            self.status_counts[str(status) if status is not None else "reset"] += 1
            self.requests.append(
                RequestRecord(
                    request.method, request.path, route, status, fault, arrived,
                    self.rate_scope(request.method, template, request.path),
                )
            )

    # -- control handlers -------------------------------------------------------------------------

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"ok": True})

    async def _control_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())

    async def _control_get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.faults.to_dict(now=self.clock.monotonic()))

    async def _control_put_faults(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        try:
            self.faults.update(data or {}, now=self.clock.monotonic())
        except ValueError as exc:
            raise JsonError(400, "invalid_faults", str(exc)) from exc
        return json_response(self.faults.to_dict(now=self.clock.monotonic()))

    async def _control_requests(self, request: web.Request) -> web.Response:
        # Appended as they finish; listed as they arrived.
        ordered = sorted(self.requests, key=lambda record: record.at)
        return json_response({"requests": [r.to_dict() for r in ordered], **self.request_stats()})

    async def _control_get_exchanges(self, request: web.Request) -> web.Response:
        since_text = request.query.get("since", "0")
        try:
            since = int(since_text)
        except ValueError:
            raise JsonError(400, "invalid_since", "since must be an integer index") from None
        route = request.query.get("route") or None
        return json_response(self.exchanges.snapshot(since=since, route=route))

    async def _control_put_exchanges(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        if (
            not isinstance(data, dict)
            or set(data) != {"record"}
            or not isinstance(data["record"], bool)
        ):
            raise JsonError(400, "invalid_exchanges", 'expected {"record": true or false}')
        self.exchanges.recording = data["record"]
        return json_response(self._exchange_status())

    async def _control_delete_exchanges(self, request: web.Request) -> web.Response:
        self.exchanges.clear()
        return json_response(self._exchange_status())

    def _exchange_status(self) -> dict[str, Any]:
        """The recorder's switch and counters, without the exchanges."""
        status = self.exchanges.snapshot(since=self.exchanges.recorded)
        del status["exchanges"]
        return {**status, "count": len(self.exchanges.exchanges)}

    async def _control_get_webhooks(self, request: web.Request) -> web.Response:
        return json_response(self.sender.snapshot())

    async def _control_put_webhooks(self, request: web.Request) -> web.Response:
        data = await read_json(request) or {}
        if not isinstance(data, dict):
            raise JsonError(400, "invalid_webhooks", "expected a JSON object")
        unknown = set(data) - {"url", "secret", "retry_delays", "speed", "timeout_s"}
        if unknown:
            raise JsonError(400, "invalid_webhooks", f"unknown keys: {sorted(unknown)}")
        try:
            self.configure_webhooks(**data)
        except (TypeError, ValueError) as exc:
            raise JsonError(400, "invalid_webhooks", str(exc)) from exc
        snapshot = self.sender.snapshot()
        del snapshot["attempts"]
        return json_response(snapshot)

    def configure_webhooks(
        self,
        *,
        url: str | None | _Unset = UNSET,
        secret: str | None = None,
        retry_delays: Sequence[float] | None = None,
        speed: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Point webhooks somewhere (url None switches them off) and set the schedule."""
        if url is not UNSET:
            if url is not None and not isinstance(url, str):
                raise ValueError("url must be a string or null")
            self.sender.url = url or None
        if secret is not None:
            if not isinstance(secret, str):
                raise ValueError("secret must be a string")
            self.webhook_secret = secret
        if retry_delays is not None and not (
            isinstance(retry_delays, list | tuple)
            and all(isinstance(d, int | float) and not isinstance(d, bool) for d in retry_delays)
        ):
            raise ValueError("retry_delays must be a list of seconds")
        for name, value in (("speed", speed), ("timeout_s", timeout_s)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"{name} must be a number")
        self.sender.configure(retry_delays=retry_delays, speed=speed, timeout_s=timeout_s)

    async def _control_flush(self, request: web.Request) -> web.Response:
        data = await read_json(request) or {}
        timeout_s = data.get("timeout_s", DEFAULT_FLUSH_TIMEOUT_S) if isinstance(data, dict) else 0
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s < 0:
            raise JsonError(400, "invalid_flush", "timeout_s must be a non-negative number")
        idle = await self.sender.flush(min(float(timeout_s), 120.0))
        return json_response({"idle": idle, "pending": self.sender.pending})


SANDBOX_KEY: web.AppKey[SandboxBase] = web.AppKey("sandbox", SandboxBase)


@dataclass(frozen=True, slots=True)
class Served:
    """A running app: its runner, the port it bound, and its base URL."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8123."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop serving and run the app's cleanup (webhook sender, sessions)."""
        await self.runner.cleanup()


async def serve(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout_s: float = 5.0
) -> Served:
    """Start `app` on host:port (0 picks a free port) and return where it listens."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
    except BaseException:
        await runner.cleanup()
        raise
    return Served(runner, host, int(bound))

"""Fault injection for fake channels: the failures real APIs and networks produce, on demand.

One `Faults` object per sandbox holds every knob; the control API edits it (`PUT /_control/faults`)
and two consumers read it: `faults_middleware` for API requests, and the webhook sender for
deliveries. Every random decision comes from one seeded `random.Random`, so a failing chaos run
replays exactly with the same seed. Modelled on toxiproxy's toxics and aiohttp's
`examples/retry_middleware.py` scripted statuses (see reference/style-and-reliability.md, B8).
"""

from __future__ import annotations

import math
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.sandbox.clock import SandboxClock

CONTROL_PREFIX = "/_control"

# Knobs the control API may set, with the type each must have ("rate" = a float in [0, 1]).
_RATES = ("error_rate", "reset_rate", "reset_after_rate", "truncate_rate")
_WEBHOOK_RATES = ("drop_rate", "duplicate_rate")
_SECONDS = ("latency_s", "storm_retry_after_s", "delay_s")

ErrorResponder = Callable[[int, str, Mapping[str, str]], web.StreamResponse]


@dataclass
class Faults:
    """Every fault a sandbox can inject, and the seeded randomness that decides when."""

    # API requests (everything outside /_control)
    latency_s: float = 0.0  # added before each request is handled
    error_rate: float = 0.0  # share of requests answered `error_status` without being handled
    error_status: int = 500
    storm_until: float = 0.0  # monotonic time: until then every request gets 429
    storm_retry_after_s: float = 1.0  # the Retry-After a storm (or a scripted 429) announces
    reset_rate: float = 0.0  # share of connections reset before the request is handled
    reset_after_rate: float = 0.0  # reset after handling: the effect lands, the answer is lost
    truncate_rate: float = 0.0  # share answered 200 with the JSON body cut in half
    outage: bool = False  # every request gets 503
    statuses: list[int] = field(default_factory=list)  # the next requests' statuses; 0 = handle it
    # webhook deliveries
    drop_rate: float = 0.0  # share of deliveries never sent, retries included
    duplicate_rate: float = 0.0  # share of deliveries sent more than once
    duplicate_max: int = 2  # at most this many extra copies
    reorder: bool = False  # hold a delivery back and send it after the next one
    delay_s: float = 0.0  # wait before a delivery's first attempt
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    injected: Counter[str] = field(default_factory=Counter, compare=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self.rng.seed(self.seed)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, now: float = 0.0) -> Faults:
        """Faults built from control-API JSON (see `update` for the keys)."""
        faults = cls()
        faults.update(data, now=now)
        return faults

    def update(self, data: Mapping[str, Any], *, now: float = 0.0) -> None:
        """Apply control-API JSON; `storm_s` starts a storm lasting that long from `now`.

        Raises ValueError naming the first bad key, having changed nothing.
        """
        changes = _validated(data)
        storm_s = changes.pop("storm_s", None)
        for key, value in changes.items():
            setattr(self, key, value)
        if storm_s is not None:
            self.storm_until = now + storm_s
        if changes.get("seed") is not None:
            self.rng.seed(self.seed)

    def clear(self) -> None:
        """Back to no faults at all, re-seeding the random source if it had a seed."""
        fresh = Faults(seed=self.seed)
        for f in fields(self):
            if f.name not in ("rng", "injected"):
                setattr(self, f.name, getattr(fresh, f.name))
        self.rng.seed(self.seed)
        self.injected.clear()

    def chance(self, rate: float) -> bool:
        """Draw once: True with probability `rate` (no draw at all for a zero rate)."""
        # Skipping the draw for zero rates keeps a seeded run's sequence independent of the
        # knobs that are switched off.
        return rate > 0.0 and self.rng.random() < rate

    def storming(self, now: float) -> bool:
        """Whether a 429 storm is on at monotonic time `now`."""
        return now < self.storm_until

    def copies(self) -> int:
        """How many times to send one webhook delivery: 0 (dropped), 1, or more (duplicated)."""
        if self.chance(self.drop_rate):
            return 0
        if self.duplicate_max > 0 and self.chance(self.duplicate_rate):
            return 1 + self.rng.randint(1, self.duplicate_max)
        return 1

    def to_dict(self, *, now: float = 0.0) -> dict[str, Any]:
        """The knobs as JSON, with the storm as seconds left rather than a monotonic instant."""
        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("rng", "injected", "storm_until")
        }
        data["statuses"] = list(self.statuses)
        data["storm_remaining_s"] = max(self.storm_until - now, 0.0)
        data["injected"] = dict(self.injected)
        return data


def _validated(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check control-API fault JSON and return the typed changes."""
    if not isinstance(data, Mapping):
        raise ValueError("faults must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _RATES or key in _WEBHOOK_RATES:
            out[key] = _number(key, value, 0.0, 1.0)
        elif key in _SECONDS or key == "storm_s":
            out[key] = _number(key, value, 0.0, math.inf)
        elif key == "error_status":
            out[key] = int(_number(key, value, 100, 599, integer=True))
        elif key == "duplicate_max":
            out[key] = int(_number(key, value, 0, 100, integer=True))
        elif key in ("outage", "reorder"):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false")
            out[key] = value
        elif key == "statuses":
            if not isinstance(value, list):
                raise ValueError("statuses: expected a list of HTTP statuses (0 = handle normally)")
            codes = [int(_number(key, v, 0, 599, integer=True)) for v in value]
            if any(0 < c < 100 for c in codes):
                raise ValueError("statuses: each must be 0 or an HTTP status")
            out[key] = codes
        elif key == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError("seed: expected an integer or null")
            out[key] = value
        else:
            raise ValueError(f"unknown fault {key!r}")
    return out


def _number(key: str, value: Any, low: float, high: float, *, integer: bool = False) -> float:
    """A JSON number within [low, high]."""
    wanted = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise ValueError(f"{key}: expected {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise ValueError(f"{key}: must be between {low} and {high}")
    return float(value)


def is_api_request(request: web.Request) -> bool:
    """Whether a request is channel API traffic (faults apply) rather than the control API."""
    path = request.path
    return not (path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"))


def json_error(status: int, code: str, headers: Mapping[str, str]) -> web.StreamResponse:
    """The default injected-error answer: `{"error": code}` with `status`."""
    return web.json_response({"error": code}, status=status, headers=dict(headers))


def abort_connection(request: web.Request) -> None:
    """Reset the client's TCP connection (RST, not FIN) so it sees a connection reset."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        # SO_LINGER with a zero timeout makes close() send RST, like toxiproxy's reset_peer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# The key the request log reads to learn that a fault, not the handler, produced the outcome.
FAULT_KEY: web.RequestKey[str] = web.RequestKey("sandbox_fault", str)


def faults_middleware(
    faults: Faults,
    clock: SandboxClock,
    *,
    applies: Callable[[web.Request], bool] = is_api_request,
    respond: ErrorResponder = json_error,
) -> Middleware:
    """An aiohttp middleware injecting `faults` into API requests (never into /_control)."""

    @web.middleware
    async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not applies(request):
            return await handler(request)
        injected = _before(request, faults, clock, respond)
        if injected is not None:
            return injected
        if faults.latency_s > 0:
            await clock.sleep(faults.latency_s)
        if faults.chance(faults.error_rate):
            return _injected(request, faults, "error", respond(faults.error_status, "injected", {}))
        if faults.chance(faults.reset_rate):
            return _reset(request, faults, "reset")
        response = await handler(request)
        if faults.chance(faults.reset_after_rate):
            return _reset(request, faults, "reset_after")
        if faults.chance(faults.truncate_rate):
            return _truncated(request, faults, response)
        return response

    return inject_faults


def _before(
    request: web.Request, faults: Faults, clock: SandboxClock, respond: ErrorResponder
) -> web.StreamResponse | None:
    """The faults that answer without waiting: outage, scripted statuses, a 429 storm."""
    if faults.outage:
        return _injected(request, faults, "outage", respond(503, "unavailable", {}))
    retry_after = {"Retry-After": str(math.ceil(faults.storm_retry_after_s))}
    if faults.statuses:
        status = faults.statuses.pop(0)
        if status:
            code = "rate_limited" if status == 429 else "injected"
            headers = retry_after if status in (429, 503) else {}
            return _injected(request, faults, "scripted", respond(status, code, headers))
    if faults.storming(clock.monotonic()):
        return _injected(request, faults, "storm", respond(429, "rate_limited", retry_after))
    return None


def _injected(
    request: web.Request, faults: Faults, kind: str, response: web.StreamResponse
) -> web.StreamResponse:
    """Count an injected fault and mark the request for the log."""
    faults.injected[kind] += 1
    request[FAULT_KEY] = kind
    return response


def _reset(request: web.Request, faults: Faults, kind: str) -> web.StreamResponse:
    """Reset the connection; the returned response is never written (aiohttp drops it quietly)."""
    abort_connection(request)
    return _injected(request, faults, kind, web.Response(status=599))


def _truncated(
    request: web.Request, faults: Faults, response: web.StreamResponse
) -> web.StreamResponse:
    """A 200 carrying the first half of the body, with a Content-Length that matches the cut."""
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes) or len(body) < 2:
        return response  # nothing to cut (a streamed or empty body): pass it through
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("content-length", "content-type", "content-encoding")
    }
    cut = web.Response(
        status=200, body=body[: len(body) // 2], headers=headers, content_type="application/json"
    )
    return _injected(request, faults, "truncate", cut)

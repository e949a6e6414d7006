"""Exchange recording: every API request and response a sandbox served, bodies included.

Tests switch it on (`record_exchanges=True`, or `PUT /_control/exchanges {"record": true}`),
drive a connector through a cycle, then read `GET /_control/exchanges` and check each exchange
against the channel's official API model (`tests/specs`). Off by default: it costs a body read
and a JSON parse per request.

One exchange is a JSON object:

    index                  position in the recording, counted from 0 and never reused
    method, path           as the client sent them (path percent-decoded)
    raw_path               the path still percent-encoded (a SKU holding "/" stays one segment)
    query                  {name: [values]}, secrets redacted
    route                  the matched route template, e.g. "GET /orders/{id}"
    status                 the HTTP status, or null when the connection was reset
    fault                  the injected fault behind the outcome (validators skip these), or null
    request_headers        {lowercased name: value}, credentials redacted
    request_content_type   e.g. "application/json", or null
    request_json           the body parsed as JSON, or null
    request_form           {name: [values]} for x-www-form-urlencoded bodies, secrets redacted
    request_text           the body as text (truncated) when it is neither JSON nor a form
    response_content_type  e.g. "application/json", or null
    response_json          the body parsed as JSON (secrets redacted), or null
    response_text          the body as text (truncated) when it is not JSON, or null
    response_headers       {lowercased name: value}, transport noise left out
    at                     sandbox clock at arrival, Unix seconds

Request bodies are read before the handler runs (aiohttp caches them, so `request.read()`,
`.json()`, `.text()` and `.post()` still work in handlers); multipart bodies are not read, and
handlers that stream `request.content` themselves must not be recorded. Streamed responses are
recorded with null bodies.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.sandbox.faults import FAULT_KEY, is_api_request

DEFAULT_LIMIT = 20_000
TEXT_LIMIT = 4_096  # characters of a non-JSON body kept
REDACTED = "[REDACTED]"

# Header names whose whole value is a credential.
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-amz-access-token",
        "x-amz-security-token",
        "x-shopify-access-token",
        "x-api-key",
    }
)
# Words that mark a header, query, form or JSON field name as secret.
_SECRET_WORDS = ("token", "secret", "password", "signature", "api_key", "apikey", "api-key")
# Names that contain a secret word but are not secrets.
_NOT_SECRET = frozenset(
    {
        "token_type",
        "nexttoken",
        "next_token",
        "pagetoken",
        "page_token",
        "continuationtoken",
        "continuation_token",
    }
)
# Form and query names that carry credentials without a secret word in them (an OAuth `code`);
# in JSON bodies these names mean other things (an error's "code") and are kept.
_SECRET_FIELDS = frozenset({"code", "consumer_key", "client_assertion", "x-amz-credential"})
# Response headers that say nothing about the API.
_NOISE_HEADERS = frozenset(
    {"date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"}
)

Clock = Callable[[], float]


def is_secret_name(name: str, *, in_json: bool = False) -> bool:
    """Whether a header, query, form or JSON field of this name holds a credential."""
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    if not in_json and lowered in _SECRET_FIELDS:
        return True
    return any(word in lowered for word in _SECRET_WORDS)


def redact_header(name: str, value: str) -> str:
    """The value to record for a request header: credentials hidden, an auth scheme kept."""
    lowered = name.lower()
    if lowered in ("authorization", "proxy-authorization"):
        scheme, _, rest = value.partition(" ")
        return f"{scheme} {REDACTED}" if rest else REDACTED
    if lowered in _SECRET_HEADERS or is_secret_name(lowered):
        return REDACTED
    return value


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers as recorded: lowercased names, credentials hidden."""
    return {name.lower(): redact_header(name, value) for name, value in headers.items()}


def redact_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Query or form pairs as {name: [values]}, secret values hidden."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(REDACTED if is_secret_name(name) else value)
    return out


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with secret-named string fields hidden (types unchanged)."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(item, str) and is_secret_name(key, in_json=True)
            else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def _media_type(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`; None for none."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")[:TEXT_LIMIT]


def describe_body(raw: bytes | None, content_type: str | None) -> dict[str, Any]:
    """A request body as `json` / `form` / `text` (exactly one set, or none for no body)."""
    described: dict[str, Any] = {"json": None, "form": None, "text": None}
    if not raw:
        return described
    media_type = _media_type(content_type)
    if media_type == "application/x-www-form-urlencoded":
        pairs = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        described["form"] = redact_pairs((k, v) for k, values in pairs.items() for v in values)
        return described
    try:
        described["json"] = redact_json(json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError):
        described["text"] = _text(raw)
    return described


def _response_body(response: web.StreamResponse) -> bytes | None:
    """The bytes a response will send, when it holds them (not a streamed response)."""
    if not isinstance(response, web.Response):
        return None
    body = response.body
    return bytes(body) if isinstance(body, bytes | bytearray) else None


def _response_headers(response: web.StreamResponse) -> dict[str, str]:
    return {
        name.lower(): REDACTED if name.lower() in _SECRET_HEADERS else value
        for name, value in response.headers.items()
        if name.lower() not in _NOISE_HEADERS
    }


class ExchangeRecorder:
    """A bounded, switchable log of API exchanges (see the module docstring for the shape)."""

    def __init__(self, *, record: bool = False, limit: int = DEFAULT_LIMIT) -> None:
        self.recording = record
        self.limit = limit
        self.exchanges: deque[dict[str, Any]] = deque(maxlen=limit)
        self.recorded = 0  # ever recorded: the next exchange's index
        self._cleared_at = 0  # `recorded` at the last clear

    @property
    def dropped(self) -> int:
        """How many exchanges the bound pushed out since the last clear."""
        return self.recorded - self._cleared_at - len(self.exchanges)

    def clear(self) -> None:
        """Forget the recorded exchanges (indexes keep counting, so `since` stays valid)."""
        self._cleared_at = self.recorded
        self.exchanges.clear()

    def add(self, exchange: dict[str, Any]) -> dict[str, Any]:
        """Store one exchange, giving it the next index."""
        exchange["index"] = self.recorded
        self.recorded += 1
        self.exchanges.append(exchange)
        return exchange

    def select(self, *, since: int = 0, route: str | None = None) -> list[dict[str, Any]]:
        """Exchanges with index >= `since`, optionally only those of one route template."""
        return [
            exchange
            for exchange in self.exchanges
            if exchange["index"] >= since and (route is None or exchange["route"] == route)
        ]

    def snapshot(self, *, since: int = 0, route: str | None = None) -> dict[str, Any]:
        """The control API's view: the switch, the selected exchanges and the counters."""
        return {
            "recording": self.recording,
            "exchanges": self.select(since=since, route=route),
            "next": self.recorded,
            "dropped": self.dropped,
            "limit": self.limit,
        }

    def middleware(self, clock: Clock) -> Middleware:
        """An aiohttp middleware recording API requests (never /_control) while switched on.

        Place it outside the fault layer so injected answers are recorded with their fault.
        """

        @web.middleware
        async def record_exchange(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.recording or not is_api_request(request):
                return await handler(request)
            arrived = clock()
            content_type = request.headers.get("Content-Type")
            raw: bytes | None = None
            if request.body_exists and not (_media_type(content_type) or "").startswith(
                "multipart/"
            ):
                raw = await request.read()  # cached by aiohttp for the handler
            response: web.StreamResponse | None = None
            try:
                response = await handler(request)
                return response
            except web.HTTPException as exc:
                response = exc
                raise
            finally:
                self.add(_exchange(request, raw, response, arrived))

        return record_exchange


def _exchange(
    request: web.Request,
    raw: bytes | None,
    response: web.StreamResponse | None,
    arrived: float,
) -> dict[str, Any]:
    """One exchange record; `response` None means the handler failed without an HTTP answer."""
    fault = request.get(FAULT_KEY)
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "(unmatched)"
    body = describe_body(raw, request.headers.get("Content-Type"))
    status: int | None = response.status if response is not None else 500
    if fault in ("reset", "reset_after"):
        status = None
    response_raw = _response_body(response) if response is not None and status else None
    response_type = _media_type(response.content_type) if response is not None else None
    response_json: Any = None
    response_text: str | None = None
    if response_raw:
        try:
            response_json = redact_json(json.loads(response_raw))
        except (UnicodeDecodeError, json.JSONDecodeError):
            response_text = _text(response_raw)
    return {
        "method": request.method,
        "path": request.path,
        "raw_path": request.rel_url.raw_path,
        "query": redact_pairs(request.query.items()),
        "route": f"{request.method} {template}",
        "status": status,
        "fault": fault,
        "request_headers": redacted_headers(request.headers),
        "request_content_type": _media_type(request.headers.get("Content-Type")),
        "request_json": body["json"],
        "request_form": body["form"],
        "request_text": body["text"],
        "response_content_type": response_type if status else None,
        "response_json": response_json,
        "response_text": response_text,
        "response_headers": _response_headers(response) if response is not None and status else {},
        "at": arrived,
    }

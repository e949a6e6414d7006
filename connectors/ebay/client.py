"""eBay Sell API calls and the user token: one method per endpoint, nothing else.

Auth is OAuth 2.0: the merchant consented once (authorization-code grant) and storesync holds
the refresh token; it trades it for a two-hour user token at the identity endpoint with HTTP
Basic `client_id:client_secret` and the form `grant_type=refresh_token&refresh_token=..&scope=..`
(https://developer.ebay.com/api-docs/static/oauth-refresh-token-request.html). The token is
cached until shortly before `expires_in` runs out, one refresh at a time; a 401 on an API call
forgets it and refreshes once more before the AuthError stands. Every call carries
`Authorization: Bearer`, `X-EBAY-C-MARKETPLACE-ID`, and on Inventory writes `Content-Language`.

Every call goes through `connectors.http.send` (status table, bounded retries) and through the
daily quota of its API: eBay counts calls per application per API per day and resets them at
midnight Pacific (https://developer.ebay.com/develop/get-started/api-call-limits).

eBay answers errors as `{"errors": [{"errorId", "domain", "category", "message", ...}]}`. A
response hook on the HTTP client reads that body before `send()` sees the status, so the error
raised names eBay's errorId and message; a 4xx whose errors are all of category APPLICATION
(eBay's side) is retryable rather than permanent, and a permanent one is an `EbayRequestError`
carrying the errorIds for the caller that must tell "no such order" from "bad request".
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from connectors.base import (
    AuthError,
    ConflictError,
    ConnectorError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from connectors.ebay.wire import (
    DEFAULT_API_URL,
    FULFILLMENT,
    INVENTORY,
    MARKETPLACE_HEADER,
    SCOPES,
    TOKEN_PATH,
    ApiError,
    content_language,
    encode_filter,
    read_errors,
)
from connectors.http import (
    ONCE,
    DailyQuota,
    RetryPolicy,
    Timeouts,
    json_body,
    make_client,
    raise_for_status,
    send,
)
from connectors.tokens import TokenCache, read_grant

# Default daily call limits per API (before an Application Growth Check raises them):
# https://developer.ebay.com/develop/get-started/api-call-limits; OAuth refresh-token grants:
# https://developer.ebay.com/api-docs/static/oauth-rate-limits.html
DEFAULT_DAILY_LIMITS: Mapping[str, int] = {
    "fulfillment": 100_000,
    "inventory": 2_000_000,
    "identity": 50_000,
}
APIS = tuple(DEFAULT_DAILY_LIMITS)

# User tokens live two hours; refresh a few minutes early so no call leaves with a token that
# expires on the way.
DEFAULT_TOKEN_LIFETIME_S = 7_200
TOKEN_REFRESH_MARGIN = timedelta(minutes=5)

MAX_ORDERS_LIMIT = 200  # see EbayConnector: the OAS says 1000, sellers report errors above 200
MAX_INVENTORY_LIMIT = 100  # getInventoryItems: "Min: 1, Max: 100" (OAS)
MAX_BULK = 25  # bulkGetInventoryItem and bulkUpdatePriceQuantity requests per call (OAS)

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EbayRequestError(PermanentError):
    """eBay refused the request as it is (category REQUEST); `errors` says why."""

    def __init__(self, message: str, errors: Sequence[ApiError] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)

    @property
    def error_ids(self) -> frozenset[int]:
        """The errorIds eBay answered with."""
        return frozenset(e.error_id for e in self.errors if e.error_id is not None)


class EbayQuotas:
    """The daily call quotas of one eBay application, one per API, shown in /status."""

    def __init__(
        self,
        limits: Mapping[str, int] | None = None,
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        merged = {**DEFAULT_DAILY_LIMITS, **(limits or {})}
        unknown = set(merged) - set(APIS)
        if unknown:
            raise ValueError(f"unknown eBay APIs in daily_limits: {sorted(unknown)}")
        for name, limit in merged.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"daily_limits.{name} must be a positive integer")
        self.apis = {name: DailyQuota(limit, now=now) for name, limit in merged.items()}

    def api(self, name: str) -> DailyQuota:
        """The quota calls to API `name` count against."""
        return self.apis[name]

    def snapshot(self) -> dict[str, Any]:
        """Every API's calls used, limit and reset, and whether any nears its limit."""
        apis = {name: quota.snapshot() for name, quota in self.apis.items()}
        return {
            "model": "daily_quota",
            "apis": apis,
            "warning": any(bool(snap.get("warning")) for snap in apis.values()),
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an eBay collection: its items, the total, and the next page's offset."""

    items: list[dict[str, Any]]
    total: int | None
    next_offset: int | None  # from the `next` link; None when eBay says there is no next page


class EbayClient:
    """The Sell Fulfillment and Inventory APIs of one seller, over one httpx client."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        marketplace_id: str,
        quotas: EbayQuotas,
        api_url: str | None = None,
        token_url: str | None = None,
        policy: RetryPolicy = _DEFAULT_POLICY,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not (client_id and client_secret and refresh_token):
            raise ValueError("eBay needs a client_id, a client_secret and a refresh_token")
        base = (api_url or DEFAULT_API_URL).rstrip("/")
        self._http = make_client(
            base, headers={"Accept": "application/json"}, timeouts=timeouts, transport=transport
        )
        self._http.event_hooks["response"] = [self._raise_for_ebay_status]
        self.token_url = token_url or f"{base}{TOKEN_PATH}"
        self.marketplace_id = marketplace_id
        self.quotas = quotas
        self._policy = policy
        self._clock = clock
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._refresh_token = refresh_token
        self._tokens = TokenCache(self._grant, clock=clock, margin=TOKEN_REFRESH_MARGIN)

    # -- the user token ----------------------------------------------------------------------------

    async def _user_token(self) -> str:
        return await self._tokens.get()  # one refresh for every caller waiting on an expired token

    def _forget(self, token: str) -> None:
        self._tokens.forget(token)

    async def _grant(self) -> tuple[str, float]:
        """The refresh-token grant: a new user token for the Fulfillment and Inventory scopes."""
        what = f"POST {TOKEN_PATH}"
        try:
            response = await send(
                self._http,
                "POST",
                self.token_url,
                policy=self._policy,
                limiter=self.quotas.api("identity"),
                what=what,
                headers={"Authorization": self._basic},
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self._refresh_token,
                    "scope": " ".join(SCOPES),
                },
            )
        except (PermanentError, ConflictError) as exc:
            # 400 invalid_grant (revoked or expired refresh token), invalid_client, invalid_scope:
            # the merchant must grant access again.
            error = AuthError(f"eBay refused the refresh token: {exc}")
            error.status = exc.status
            raise error from exc
        return read_grant(response, what=what, default_lifetime_s=DEFAULT_TOKEN_LIFETIME_S)

    # -- the request path --------------------------------------------------------------------------

    async def _call(
        self,
        api: str,
        method: str,
        url: str,
        what: str,
        *,
        once: bool = False,
        write: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        refreshed = False
        while True:
            token = await self._user_token()
            headers = {"Authorization": f"Bearer {token}", MARKETPLACE_HEADER: self.marketplace_id}
            if write:
                headers["Content-Language"] = content_language(self.marketplace_id)
            try:
                return await send(
                    self._http,
                    method,
                    url,
                    # A POST that creates something is tried once: a reset after eBay handled it
                    # would otherwise create it twice. The outbox retries after a re-read.
                    policy=ONCE if once else self._policy,
                    limiter=self.quotas.api(api),
                    what=what,
                    headers=headers,
                    **kwargs,
                )
            except AuthError as exc:
                if exc.status == 401 and not refreshed:
                    # The token may have been revoked or expired early: refresh once.
                    self._forget(token)
                    refreshed = True
                    continue
                raise

    async def _raise_for_ebay_status(self, response: httpx.Response) -> None:
        """Raise the error an eBay error answer means, with eBay's errorIds and messages."""
        if response.status_code < 400:
            return
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = read_errors(body.get("errors") if isinstance(body, dict) else None)
        try:
            raise_for_status(response)
        except ConnectorError as exc:
            error = _ebay_error(exc, errors, response)
            if isinstance(error, RateLimited):
                # Every call to this API holds off, not just this one (send() cannot see it:
                # the error leaves the HTTP client before its own status check).
                self.quotas.api(_api_of(response.request.url.path)).pause(error.retry_after)
            raise error from None

    # -- Fulfillment API ---------------------------------------------------------------------------

    async def get_orders(self, filter_text: str, *, limit: int, offset: int) -> Page:
        """`GET /order?filter=..&limit=..&offset=..`: one page of orders."""
        what = "GET /order"
        # Built by hand: eBay wants [ ] { | } percent-encoded and reads `:` and `,` as written.
        query = f"filter={encode_filter(filter_text)}&limit={limit}&offset={offset}"
        response = await self._call("fulfillment", "GET", f"{FULFILLMENT}/order?{query}", what)
        body = _object(json_body(response, what=what), what)
        return Page(_objects(body.get("orders"), what), _int(body.get("total")), _next(body))

    async def get_order(self, order_id: str) -> dict[str, Any] | None:
        """`GET /order/{orderId}` (cancelRequests filled in), or None for an unknown order."""
        what = "GET /order/{orderId}"
        try:
            response = await self._call(
                "fulfillment", "GET", f"{FULFILLMENT}/order/{_segment(order_id)}", what
            )
        except EbayRequestError as exc:
            # 404, or 400 with 32100 "Invalid order ID" (OAS getOrder): no such order.
            if exc.status == 404 or 32100 in exc.error_ids:
                return None
            raise
        return _object(json_body(response, what=what), what)

    async def get_shipping_fulfillments(self, order_id: str) -> list[dict[str, Any]]:
        """`GET /order/{orderId}/shipping_fulfillment`: the order's fulfillments so far."""
        what = "GET /order/{orderId}/shipping_fulfillment"
        path = f"{FULFILLMENT}/order/{_segment(order_id)}/shipping_fulfillment"
        response = await self._call("fulfillment", "GET", path, what)
        body = _object(json_body(response, what=what), what)
        return _objects(body.get("fulfillments"), what)

    async def create_shipping_fulfillment(self, order_id: str, body: Mapping[str, Any]) -> str:
        """`POST /order/{orderId}/shipping_fulfillment` (201): the new fulfillment's id."""
        what = "POST /order/{orderId}/shipping_fulfillment"
        path = f"{FULFILLMENT}/order/{_segment(order_id)}/shipping_fulfillment"
        response = await self._call("fulfillment", "POST", path, what, once=True, json=dict(body))
        # Location: {ENV}/sell/fulfillment/v1/order/{ORDERID}/shipping_fulfillment/{FULFILLMENTID}
        location = response.headers.get("Location", "")
        return location.rstrip("/").rsplit("/", 1)[-1] if location else ""

    # -- Inventory API -----------------------------------------------------------------------------

    async def get_inventory_items(self, *, limit: int, offset: int) -> Page:
        """`GET /inventory_item?limit=..&offset=..`: one page of the seller's inventory items."""
        what = "GET /inventory_item"
        response = await self._call(
            "inventory",
            "GET",
            f"{INVENTORY}/inventory_item",
            what,
            params={"limit": str(limit), "offset": str(offset)},
        )
        body = _object(json_body(response, what=what), what)
        items = _objects(body.get("inventoryItems"), what)
        return Page(items, _int(body.get("total")), _next(body))

    async def bulk_get_inventory_items(self, skus: Sequence[str]) -> list[dict[str, Any]]:
        """`POST /bulk_get_inventory_item` for at most 25 SKUs: one response per SKU."""
        what = "POST /bulk_get_inventory_item"
        if len(skus) > MAX_BULK:
            raise ValueError(f"at most {MAX_BULK} SKUs per bulkGetInventoryItem call")
        response = await self._call(
            "inventory",
            "POST",
            f"{INVENTORY}/bulk_get_inventory_item",
            what,
            json={"requests": [{"sku": sku} for sku in skus]},
        )
        body = _object(json_body(response, what=what), what)
        return _objects(body.get("responses"), what)

    async def get_offers(self, sku: str) -> list[dict[str, Any]]:
        """`GET /offer?sku=..&marketplace_id=..`: the SKU's offers (one per marketplace)."""
        what = "GET /offer"
        try:
            response = await self._call(
                "inventory",
                "GET",
                f"{INVENTORY}/offer",
                what,
                params={"sku": sku, "marketplace_id": self.marketplace_id},
            )
        except EbayRequestError as exc:
            # 25713 "This Offer is not available": the SKU has no offer on this marketplace.
            if exc.status == 404 or 25713 in exc.error_ids:
                return []
            raise
        body = _object(json_body(response, what=what), what)
        return _objects(body.get("offers"), what)

    async def bulk_update_price_quantity(
        self, requests: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """`POST /bulk_update_price_quantity` with at most 25 requests: per-item responses."""
        what = "POST /bulk_update_price_quantity"
        if len(requests) > MAX_BULK:
            raise ValueError(f"at most {MAX_BULK} requests per bulkUpdatePriceQuantity call")
        # Absolute quantities: a repeat sets the same numbers again, so retries are safe.
        response = await self._call(
            "inventory",
            "POST",
            f"{INVENTORY}/bulk_update_price_quantity",
            what,
            write=True,
            json={"requests": [dict(r) for r in requests]},
        )
        body = _object(json_body(response, what=what), what)
        return _objects(body.get("responses"), what)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


# -- helpers ---------------------------------------------------------------------------------------


def _ebay_error(
    exc: ConnectorError, errors: Sequence[ApiError], response: httpx.Response
) -> ConnectorError:
    """`exc` (from the status table) restated with eBay's errors, reclassified by category."""
    request = response.request
    message = f"{request.method} {request.url.path}: HTTP {response.status_code}"
    message = f"{message}: {'; '.join(e.describe() for e in errors)}" if errors else str(exc)
    error: ConnectorError
    if isinstance(exc, RateLimited):
        error = RateLimited(message, retry_after=exc.retry_after)
    elif isinstance(exc, PermanentError):
        if errors and all(e.category == "APPLICATION" for e in errors):
            error = RetryableError(message)  # eBay's side failed, not the request
        else:
            error = EbayRequestError(message, errors)
    else:
        error = type(exc)(message)
    error.status = exc.status
    return error


def _api_of(path: str) -> str:
    if path.startswith(FULFILLMENT):
        return "fulfillment"
    if path.startswith(INVENTORY):
        return "inventory"
    return "identity"


def _segment(value: str) -> str:
    """A path segment: an id or SKU can never address another route."""
    if not value:
        raise PermanentError("an empty eBay id")
    return quote(value, safe="")


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RetryableError(f"{what}: the answer is not a JSON object")
    return data


def _objects(items: Any, what: str) -> list[dict[str, Any]]:
    if items is None:
        return []  # eBay leaves empty arrays out
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise RetryableError(f"{what}: expected a JSON array of objects")
    return items


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _next(body: Mapping[str, Any]) -> int | None:
    """The offset in the `next` link (eBay's own URL), or None when there is no next page."""
    link = body.get("next")
    if not isinstance(link, str) or not link:
        return None
    values = parse_qs(urlsplit(link).query).get("offset")
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None

"""Amazon SP-API calls and Login with Amazon tokens: one method per operation, nothing else.

Auth (https://developer-docs.amazon.com/sp-api/docs/connecting-to-the-selling-partner-api):
the LWA refresh-token grant, a form POST of `grant_type=refresh_token`, the refresh token and
the app's client id and secret to https://api.amazon.com/auth/o2/token, returns an access token
valid for `expires_in` (3600) seconds. Every SP-API call carries it as `x-amz-access-token`;
AWS SigV4 signatures are no longer required (changelog, 2023-10-02). The token is cached until
shortly before it expires, and one refresh runs at a time. A refused refresh (400 invalid_grant,
401 invalid_client) is an AuthError; a 403 from SP-API refreshes the token once, then is one.

Every SP-API call goes through `connectors.http.send` with the bucket of its operation
(`connectors/amazon/limits.py`). A 429 without Retry-After (Amazon rarely sends one) becomes a
RateLimited whose retry_after is the time the operation's bucket needs to refill one token.
Amazon's error bodies, `{"errors": [{"code", "message", "details"}]}` (ordersV0.json ErrorList),
are restated in error messages as `code: message (details)`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from connectors.amazon.limits import UsagePlans
from connectors.base import (
    AuthError,
    ConflictError,
    ConnectorError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from connectors.http import ONCE, RetryPolicy, Timeouts, json_body, make_client, send
from connectors.tokens import TokenCache, read_grant

LWA_URL = "https://api.amazon.com/auth/o2/token"
API_URLS: Mapping[str, str] = {
    # https://developer-docs.amazon.com/sp-api/docs/sp-api-endpoints
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
TOKEN_HEADER = "x-amz-access-token"
ORDERS = "/orders/v0/orders"
LISTINGS = "/listings/2021-08-01/items"
FEEDS = "/feeds/2021-06-30"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
# Refresh this long before expiry, so no call leaves with a token that dies on the way.
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
DEFAULT_TOKEN_LIFETIME_S = 3600.0

Params = Sequence[tuple[str, str | int]]

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()
_BODY = re.compile(r"^(?P<head>.*?: HTTP \d{3}): (?P<body>\{.*\})$", re.DOTALL)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """An SP-API date-time: UTC to the second with a `Z`, as Amazon prints its own."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 date-time from Amazon (with `Z` or an offset), as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _segment(value: str) -> str:
    """One path segment: SKUs may hold '/', ' ', '#' and more."""
    return quote(value, safe="")


def _csv(values: Sequence[str]) -> str:
    # Swagger 2.0 arrays default to collectionFormat csv.
    return ",".join(values)


def restate(exc: ConnectorError) -> ConnectorError:
    """The same error with Amazon's `errors` list written as `code: message (details)`."""
    match = _BODY.match(str(exc))
    if match is None:
        return exc
    try:
        errors = json.loads(match.group("body")).get("errors")
    except (ValueError, AttributeError):
        return exc  # cut short at 200 characters, or not Amazon's shape: keep the raw text
    if not isinstance(errors, list) or not errors:
        return exc
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        text = f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
        if error.get("details"):
            text += f" ({error['details']})"
        parts.append(text)
    message = f"{match.group('head')}: {'; '.join(parts)}"
    again: ConnectorError
    if isinstance(exc, RateLimited):
        again = RateLimited(message, retry_after=exc.retry_after)
    elif isinstance(exc, ConflictError):
        again = ConflictError(message, observed=exc.observed)
    else:
        again = type(exc)(message)
    again.status = exc.status
    return again


class AmazonClient:
    """One seller account's SP-API over one httpx client, paced per operation."""

    def __init__(
        self,
        api_url: str,
        *,
        lwa_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        plans: UsagePlans,
        policy: RetryPolicy = _DEFAULT_POLICY,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = make_client(
            api_url.rstrip("/"),
            headers={"Accept": "application/json"},
            timeouts=timeouts,
            transport=transport,
        )
        self.plans = plans
        self.lwa_url = lwa_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._tokens = TokenCache(self._grant, clock=clock, margin=TOKEN_REFRESH_MARGIN)

    # -- tokens -----------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """A valid LWA access token, refreshed when close to expiry (one refresh at a time)."""
        return await self._tokens.get()

    def _forget(self, token: str) -> None:
        self._tokens.forget(token)

    async def _grant(self) -> tuple[str, float]:
        what = "POST /auth/o2/token"
        try:
            response = await send(
                self._http,
                "POST",
                self.lwa_url,
                policy=self._policy,
                what=what,
                sleep=self._sleep,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self._refresh_token,
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
        except (PermanentError, ConflictError, AuthError) as exc:
            # 400 invalid_grant (revoked or wrong refresh token), 401 invalid_client.
            error = AuthError(f"Login with Amazon refused the refresh token: {exc}")
            error.status = exc.status
            raise error from exc
        return read_grant(response, what=what, default_lifetime_s=DEFAULT_TOKEN_LIFETIME_S)

    # -- the round trip ---------------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body_: Any = None,
        once: bool = False,
    ) -> httpx.Response:
        what = f"{operation} ({method} {path.split('?')[0]})"
        bucket = self.plans.bucket(operation)
        refreshed = False
        while True:
            token = await self.access_token()
            try:
                return await send(
                    self._http,
                    method,
                    path,
                    # A call that creates something (a feed, a document) is tried once: a reset
                    # after Amazon handled it would otherwise create it twice.
                    policy=ONCE if once else self._policy,
                    limiter=bucket,
                    what=what,
                    sleep=self._sleep,
                    params=list(params) if params else None,
                    json=json_body_,
                    headers={TOKEN_HEADER: token},
                )
            except AuthError as exc:
                if exc.status == 403 and not refreshed:
                    # Expired or revoked early: refresh once, then believe it.
                    self._forget(token)
                    refreshed = True
                    continue
                raise restate(exc) from exc
            except RateLimited as exc:
                error = restate(exc)
                if not bucket.last_429_had_retry_after:
                    error = RateLimited(str(error), retry_after=bucket.refill_wait())
                    error.status = exc.status
                raise error from exc
            except ConnectorError as exc:
                raise restate(exc) from exc

    async def _json(self, operation: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._call(operation, method, path, **kwargs)
        body = json_body(response, what=operation)
        if not isinstance(body, dict):
            raise RetryableError(f"{operation}: the answer is not a JSON object")
        return body

    async def _optional(
        self, operation: str, path: str, params: Params | None = None
    ) -> dict[str, Any] | None:
        try:
            return await self._json(operation, "GET", path, params=params)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    # -- ordersV0 ---------------------------------------------------------------------------------

    async def get_orders(self, params: Params) -> dict[str, Any]:
        """`getOrders`: one page of orders; the filters go again with every NextToken."""
        return _payload(await self._json("getOrders", "GET", ORDERS, params=params), "getOrders")

    async def get_order(self, order_id: str) -> dict[str, Any] | None:
        """`getOrder`, or None when Amazon answers 404."""
        body = await self._optional("getOrder", f"{ORDERS}/{_segment(order_id)}")
        return None if body is None else _payload(body, "getOrder")

    async def get_order_items(self, order_id: str, next_token: str | None) -> dict[str, Any]:
        """`getOrderItems`: one page of an order's items."""
        params: list[tuple[str, str | int]] = []
        if next_token:
            params.append(("NextToken", next_token))
        path = f"{ORDERS}/{_segment(order_id)}/orderItems"
        body = await self._json("getOrderItems", "GET", path, params=params)
        return _payload(body, "getOrderItems")

    async def confirm_shipment(self, order_id: str, body: Mapping[str, Any]) -> None:
        """`confirmShipment`: one package (204, no body)."""
        path = f"{ORDERS}/{_segment(order_id)}/shipmentConfirmation"
        await self._call("confirmShipment", "POST", path, json_body_=dict(body))

    # -- listingsItems 2021-08-01 -----------------------------------------------------------------

    async def search_listings(
        self,
        seller_id: str,
        marketplace_ids: Sequence[str],
        *,
        included: Sequence[str],
        page_size: int,
        page_token: str | None = None,
        skus: Sequence[str] = (),
        created_after: str | None = None,
    ) -> dict[str, Any]:
        """`searchListingsItems`: one page of the seller's listings (or of the given SKUs)."""
        params: list[tuple[str, str | int]] = [
            ("marketplaceIds", _csv(marketplace_ids)),
            ("includedData", _csv(included)),
        ]
        if skus:
            params += [("identifiers", _csv(skus)), ("identifiersType", "SKU")]
        else:
            params += [("sortBy", "createdDate"), ("sortOrder", "ASC")]
            if created_after is not None:
                params.append(("createdAfter", created_after))
        params.append(("pageSize", page_size))
        if page_token:
            params.append(("pageToken", page_token))
        path = f"{LISTINGS}/{_segment(seller_id)}"
        return await self._json("searchListingsItems", "GET", path, params=params)

    async def get_listing(
        self, seller_id: str, sku: str, marketplace_ids: Sequence[str], included: Sequence[str]
    ) -> dict[str, Any] | None:
        """`getListingsItem`, or None when Amazon has no listing with that SKU."""
        params = [("marketplaceIds", _csv(marketplace_ids)), ("includedData", _csv(included))]
        path = f"{LISTINGS}/{_segment(seller_id)}/{_segment(sku)}"
        return await self._optional("getListingsItem", path, params)

    async def patch_listing(
        self, seller_id: str, sku: str, marketplace_ids: Sequence[str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`patchListingsItem`: a submission answered ACCEPTED or INVALID (not applied yet)."""
        params = [("marketplaceIds", _csv(marketplace_ids)), ("includedData", "issues")]
        path = f"{LISTINGS}/{_segment(seller_id)}/{_segment(sku)}"
        return await self._json(
            "patchListingsItem", "PATCH", path, params=params, json_body_=dict(body)
        )

    # -- feeds 2021-06-30 -------------------------------------------------------------------------

    async def create_feed_document(self, content_type: str = FEED_CONTENT_TYPE) -> dict[str, Any]:
        """`createFeedDocument`: a document id and the presigned URL to upload its content."""
        return await self._json(
            "createFeedDocument",
            "POST",
            f"{FEEDS}/documents",
            json_body_={"contentType": content_type},
            once=True,
        )

    async def upload(self, url: str, content: bytes, content_type: str = FEED_CONTENT_TYPE) -> None:
        """PUT a feed's content to its presigned URL (no SP-API token: the URL is the grant)."""
        what = "PUT feed document"
        await send(
            self._http,
            "PUT",
            url,
            policy=self._policy,
            what=what,
            sleep=self._sleep,
            content=content,
            headers={"Content-Type": content_type},
        )

    async def create_feed(
        self, feed_type: str, marketplace_ids: Sequence[str], document_id: str
    ) -> dict[str, Any]:
        """`createFeed` (202): the feed id."""
        body = {
            "feedType": feed_type,
            "marketplaceIds": list(marketplace_ids),
            "inputFeedDocumentId": document_id,
        }
        return await self._json("createFeed", "POST", f"{FEEDS}/feeds", json_body_=body, once=True)

    async def get_feed(self, feed_id: str) -> dict[str, Any]:
        """`getFeed`: the feed's processingStatus and, once DONE, its result document id."""
        path = f"{FEEDS}/feeds/{_segment(feed_id)}"
        return await self._json("getFeed", "GET", path)

    async def get_feed_document(self, document_id: str) -> dict[str, Any]:
        """`getFeedDocument`: where to download a document, and its compression."""
        path = f"{FEEDS}/documents/{_segment(document_id)}"
        return await self._json("getFeedDocument", "GET", path)

    async def download(self, url: str, compression: str | None) -> bytes:
        """GET a document from its presigned URL, gunzipped when Amazon says GZIP."""
        response = await send(
            self._http, "GET", url, policy=self._policy, what="GET feed document", sleep=self._sleep
        )
        content = response.content
        if compression == "GZIP":
            try:
                return gzip.decompress(content)
            except (OSError, EOFError) as exc:
                raise RetryableError("GET feed document: not valid gzip") from exc
        return content

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def _payload(body: dict[str, Any], what: str) -> dict[str, Any]:
    """ordersV0 wraps every answer in `payload`."""
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise RetryableError(f"{what}: the answer has no payload object")
    return payload

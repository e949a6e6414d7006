"""Shopify's GraphQL Admin API calls and access-token minting: one method per operation.

Every call goes through `connectors.http.send` (status table, bounded retries) and through one
`CostBucket` acquired with the operation's worst-case cost. Shopify answers most failures with
HTTP 200 and a top-level `errors` list instead of a status, so `execute` reads that list:
THROTTLED is a rate limit (retried here within the RetryPolicy, since nothing ran), ACCESS_DENIED
is an auth problem, INTERNAL_SERVER_ERROR is transient, anything else is a query Shopify will
never accept. Every answer's `extensions.cost.throttleStatus` resyncs the bucket
(https://shopify.dev/docs/api/usage/rate-limits#graphql-admin-api-rate-limits).

Requested costs below follow Shopify's documented rules (objects 1, scalars 0, connections
`first` x their node cost, mutations 10). The bucket must hold a call's whole requested cost up
front (the difference to the actual cost is refunded afterwards), and a single query may not
request more than 1 000 points (MAX_COST_EXCEEDED). So the `first` sizes are small: a poll, a
reconcile sweep and a shipment lookup together still fit one Standard bucket, and the rare
order with more lines or refunds than one read returns is completed by follow-up queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.base import (
    AuthError,
    ConflictError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from connectors.http import (
    ONCE,
    CostBucket,
    RetryPolicy,
    Timeouts,
    json_body,
    make_client,
    send,
)
from connectors.tokens import TokenCache, read_grant

TOKEN_HEADER = "X-Shopify-Access-Token"
TOKEN_PATH = "/admin/oauth/access_token"
# Client-credentials tokens live 24 h (expires_in 86399); refresh well before the end so a call
# never goes out with a token that expires on the way.
# https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/client-credentials-grant
TOKEN_REFRESH_MARGIN = timedelta(minutes=5)
DEFAULT_TOKEN_LIFETIME_S = 86_399

MAX_ORDERS_PAGE = 10  # 10 x 34 points + 1 = 341 requested
ORDER_LINES_FIRST = 20  # lines read with the order; the rest come from ORDER_LINES_QUERY
ORDER_REFUNDS_FIRST = 10  # refund ids read with the order; their lines come per refund
MAX_VARIANTS_PAGE = 100  # 100 x 4 + 1 = 401 requested
MAX_LEVEL_IDS = 250  # 250 x 3 = 750 requested; also Shopify's input array limit
FULFILLMENT_ORDERS_FIRST = 3
FO_LINES_FIRST = 50

_ORDER_COST = 1 + 2 + (ORDER_LINES_FIRST + 1) + ORDER_REFUNDS_FIRST  # 34 points per order
MUTATION_COST = 10.0

LINE_FIELDS = """
fragment StoresyncLine on LineItem {
  id
  sku
  name
  quantity
  currentQuantity
  unfulfilledQuantity
}
"""

# The numbers in the documents are the constants above, written out so the text is the request.
ORDER_FIELDS = (
    """
fragment StoresyncOrder on Order {
  id
  name
  email
  createdAt
  updatedAt
  cancelledAt
  displayFinancialStatus
  displayFulfillmentStatus
  currencyCode
  totalPriceSet { shopMoney { amount } }
  lineItems(first: 20) {
    pageInfo { hasNextPage endCursor }
    nodes { ...StoresyncLine }
  }
  refunds(first: 10) { id }
}
"""
    + LINE_FIELDS
)

ORDERS_QUERY = (
    """
query StoresyncOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes { ...StoresyncOrder }
  }
}
"""
    + ORDER_FIELDS
)

ORDER_QUERY = (
    """
query StoresyncOrderById($id: ID!) {
  order(id: $id) { ...StoresyncOrder }
}
"""
    + ORDER_FIELDS
)

ORDER_LINES_QUERY = (
    """
query StoresyncOrderLines($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { ...StoresyncLine }
    }
  }
}
"""
    + LINE_FIELDS
)

REFUND_LINES_QUERY = """
query StoresyncRefundLines($id: ID!, $after: String) {
  refund(id: $id) {
    refundLineItems(first: 50, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { quantity restockType lineItem { id } }
    }
  }
}
"""

LOCATIONS_QUERY = """
query StoresyncLocations {
  locations(first: 50) {
    nodes { id name isActive }
  }
}
"""

VARIANTS_QUERY = """
query StoresyncVariants($first: Int!, $after: String, $locationId: ID!) {
  productVariants(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      sku
      inventoryItem {
        id
        tracked
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
  }
}
"""

LEVELS_QUERY = """
query StoresyncLevels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevel(locationId: $locationId) {
        quantities(names: ["available"]) { name quantity }
      }
    }
  }
}
"""

# 2026-04+: changeFromQuantity on every quantity and @idempotent are both mandatory.
# https://shopify.dev/changelog/finalizing-compare-and-swap-redesign-for-inventory-set-quantities
# https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations
SET_QUANTITIES_MUTATION = """
mutation StoresyncSetQuantities($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

FULFILLMENT_ORDERS_QUERY = """
query StoresyncFulfillmentOrders($id: ID!, $after: String) {
  order(id: $id) {
    id
    fulfillments(first: 10) { id location { id } trackingInfo(first: 3) { number } }
    fulfillmentOrders(first: 3, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id
        status
        assignedLocation { name location { id fulfillmentService { type } } }
        lineItems(first: 50) {
          pageInfo { hasNextPage }
          nodes { id remainingQuantity lineItem { id } }
        }
      }
    }
  }
}
"""

FULFILLMENT_CREATE_MUTATION = """
mutation StoresyncFulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}
"""

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def default_token_url(api_base: str) -> str:
    """The token endpoint on the same origin as the API: https://{shop}/admin/oauth/access_token."""
    parts = urlsplit(api_base)
    return f"{parts.scheme}://{parts.netloc}{TOKEN_PATH}"


class ShopifyClient:
    """The GraphQL Admin API of one shop over one httpx client, paced by one cost bucket."""

    def __init__(
        self,
        api_base: str,
        *,
        limiter: CostBucket,
        access_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        policy: RetryPolicy = _DEFAULT_POLICY,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not access_token and not (client_id and client_secret):
            raise ValueError("Shopify needs an access_token, or a client_id and client_secret")
        base = api_base.rstrip("/")
        self._http = make_client(
            base,
            headers={"Accept": "application/json"},
            timeouts=timeouts,
            transport=transport,
        )
        self.limiter = limiter
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._static_token = access_token or None
        self._client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url or default_token_url(base)
        self._minted = TokenCache(self._mint, clock=clock, margin=TOKEN_REFRESH_MARGIN)
        self.token_scope: str | None = None
        self._in_flight: dict[object, float] = {}  # cost of each call sent, not yet answered

    # -- the GraphQL round trip -------------------------------------------------------------------

    async def execute(
        self,
        document: str,
        variables: Mapping[str, Any],
        *,
        cost: float,
        what: str,
        once: bool = False,
    ) -> dict[str, Any]:
        """POST one GraphQL operation and return its `data`; raise what its errors mean.

        `once`: a mutation that must not run twice is not sent again after a failure that may
        have reached Shopify (only a throttled answer, when nothing ran, is asked again).
        """
        waited = 0.0
        attempt = 0
        reminted = False
        need = cost
        while True:
            attempt += 1
            token = await self._token()
            # The bucket is taken here rather than inside send(), so the points of calls still
            # in flight are known when an answer resyncs the bucket (see _observe_cost).
            await self.limiter.acquire(need)
            ticket = object()
            self._in_flight[ticket] = need
            try:
                response = await send(
                    self._http,
                    "POST",
                    "/graphql.json",
                    policy=ONCE if once else self._policy,
                    gate=self.limiter,
                    what=what,
                    sleep=self._sleep,
                    json={"query": document, "variables": dict(variables)},
                    headers={TOKEN_HEADER: token},
                )
            except RateLimited as exc:  # an HTTP 429 (a proxy, a storm): everyone holds off
                self.limiter.pause(exc.retry_after)
                raise
            except AuthError as exc:
                if exc.status == 401 and self._static_token is None and not reminted:
                    # A minted token can be revoked or rotated early: mint once, then give up.
                    self._forget(token)
                    reminted = True
                    continue
                raise
            finally:
                del self._in_flight[ticket]
            body = json_body(response, what=what)
            if not isinstance(body, dict):
                raise RetryableError(f"{what}: the answer is not a JSON object")
            requested = self._observe_cost(body)
            errors = body.get("errors")
            if errors:
                error = _graphql_error(errors, body, what)
                if (
                    isinstance(error, RateLimited)
                    and attempt < self._policy.attempts
                    and waited + error.retry_after <= self._policy.max_delay_s
                ):
                    # Nothing ran: ask again for the server's requested cost, and the bucket
                    # (just resynced to currentlyAvailable) waits until it has the points.
                    waited += error.retry_after
                    need = max(need, requested or 0.0)
                    continue
                raise error
            data = body.get("data")
            if not isinstance(data, dict):
                raise RetryableError(f"{what}: the answer carries no data")
            return data

    def _observe_cost(self, body: dict[str, Any]) -> float | None:
        """Feed extensions.cost to the bucket; the requested cost, when reported."""
        cost = _dig(body, "extensions", "cost")
        throttle = _dig(cost, "throttleStatus")
        if not isinstance(cost, dict) or not isinstance(throttle, dict):
            return None
        maximum = _number(throttle.get("maximumAvailable"))
        available = _number(throttle.get("currentlyAvailable"))
        rate = _number(throttle.get("restoreRate"))
        requested = _number(cost.get("requestedQueryCost"))
        if maximum is not None and available is not None and rate is not None:
            # Calls sent but not answered yet were taken out of our bucket already; the
            # server's figure may predate their arrival. Counting them again errs on the side
            # of waiting, never of being throttled.
            self.limiter.observe_cost(
                maximum_available=maximum,
                currently_available=max(available - sum(self._in_flight.values()), 0.0),
                restore_rate=rate,
                requested=requested,
                actual=_number(cost.get("actualQueryCost")),
            )
        return requested

    # -- tokens -----------------------------------------------------------------------------------

    async def _token(self) -> str:
        if self._static_token is not None:
            return self._static_token
        return await self._minted.get()  # one mint for every caller waiting on an expired token

    def _forget(self, token: str) -> None:
        self._minted.forget(token)

    async def _mint(self) -> tuple[str, float]:
        """The client-credentials grant: POST the app's id and secret, get a 24 h token."""
        what = f"POST {TOKEN_PATH}"
        try:
            response = await send(
                self._http,
                "POST",
                self.token_url,
                policy=self._policy,
                what=what,
                sleep=self._sleep,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id or "",
                    "client_secret": self._client_secret or "",
                },
            )
        except (PermanentError, ConflictError) as exc:
            # 400 invalid_client and friends: the credentials, not the request, are wrong.
            error = AuthError(f"Shopify refused the app's client credentials: {exc}")
            error.status = exc.status
            raise error from exc
        grant = read_grant(response, what=what, default_lifetime_s=DEFAULT_TOKEN_LIFETIME_S)
        body = json_body(response, what=what)
        scope = body.get("scope") if isinstance(body, dict) else None
        self.token_scope = scope if isinstance(scope, str) else None
        return grant

    @property
    def token_expires_at(self) -> datetime | None:
        """When the minted token expires (None with a static token or before the first mint)."""
        return self._minted.expires_at

    # -- operations -------------------------------------------------------------------------------

    async def orders_page(self, *, search: str, after: str | None, first: int) -> dict[str, Any]:
        """`orders(sortKey: UPDATED_AT, query: search)`: one page after `after`."""
        return await self.execute(
            ORDERS_QUERY,
            {"first": first, "after": after, "query": search},
            cost=1 + first * _ORDER_COST,
            what="query orders",
        )

    async def order(self, order_gid: str) -> dict[str, Any]:
        """`order(id:)` with the fields orders_page reads."""
        return await self.execute(
            ORDER_QUERY, {"id": order_gid}, cost=_ORDER_COST, what="query order"
        )

    async def order_lines(self, order_gid: str, after: str | None) -> dict[str, Any]:
        """More line items of one order, after `after`."""
        return await self.execute(
            ORDER_LINES_QUERY,
            {"id": order_gid, "after": after},
            cost=102,
            what="query order lineItems",
        )

    async def refund_lines(self, refund_gid: str, after: str | None) -> dict[str, Any]:
        """One refund's line items (units, restock type, order line), after `after`."""
        return await self.execute(
            REFUND_LINES_QUERY,
            {"id": refund_gid, "after": after},
            cost=102,
            what="query refund refundLineItems",
        )

    async def locations(self) -> dict[str, Any]:
        """The shop's active locations (first 50)."""
        return await self.execute(LOCATIONS_QUERY, {}, cost=50, what="query locations")

    async def variants_page(
        self, *, location_gid: str, after: str | None, first: int = MAX_VARIANTS_PAGE
    ) -> dict[str, Any]:
        """One page of product variants with SKU, tracking and `available` at one location."""
        return await self.execute(
            VARIANTS_QUERY,
            {"first": first, "after": after, "locationId": location_gid},
            cost=1 + 4 * first,
            what="query productVariants",
        )

    async def levels(self, item_gids: Sequence[str], location_gid: str) -> dict[str, Any]:
        """`available` of up to 250 inventory items at one location."""
        if len(item_gids) > MAX_LEVEL_IDS:
            raise ValueError(f"at most {MAX_LEVEL_IDS} inventory items per call")
        return await self.execute(
            LEVELS_QUERY,
            {"ids": list(item_gids), "locationId": location_gid},
            cost=3 * len(item_gids),
            what="query nodes(InventoryItem)",
        )

    async def set_quantities(
        self, quantities: Sequence[Mapping[str, Any]], *, idempotency_key: str, reference: str
    ) -> dict[str, Any]:
        """`inventorySetQuantities` of `available`, compare-and-set per item, idempotent by key."""
        return await self.execute(
            SET_QUANTITIES_MUTATION,
            {
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "referenceDocumentUri": reference,
                    "quantities": [dict(q) for q in quantities],
                },
                "idempotencyKey": idempotency_key,
            },
            cost=MUTATION_COST,
            what="mutation inventorySetQuantities",
        )

    async def fulfillment_orders(self, order_gid: str, after: str | None) -> dict[str, Any]:
        """One order's fulfillment orders (3 per page) and its fulfillments' tracking numbers."""
        return await self.execute(
            FULFILLMENT_ORDERS_QUERY,
            {"id": order_gid, "after": after},
            cost=367,
            what="query order fulfillmentOrders",
        )

    async def create_fulfillment(self, fulfillment: Mapping[str, Any]) -> dict[str, Any]:
        """`fulfillmentCreate` for fulfillment orders of one order and one location."""
        return await self.execute(
            FULFILLMENT_CREATE_MUTATION,
            {"fulfillment": dict(fulfillment)},
            cost=MUTATION_COST,
            what="mutation fulfillmentCreate",
            # Not idempotent: a replay of one that landed fails ("unfulfillable status
            # closed"). The push's next try reads the order and finds its tracking number.
            once=True,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def _graphql_error(errors: Any, body: dict[str, Any], what: str) -> Exception:
    """The connector error a top-level `errors` answer means."""
    if not isinstance(errors, list):
        return PermanentError(f"{what}: {str(errors)[:200]}")
    codes = {_dig(e, "extensions", "code") for e in errors}
    messages = "; ".join(
        str(e.get("message", "")) for e in errors if isinstance(e, dict)
    )[:300]
    if "THROTTLED" in codes:
        return RateLimited(f"{what}: throttled ({messages})", retry_after=_throttle_wait(body))
    if "ACCESS_DENIED" in codes:
        return AuthError(f"{what}: access denied ({messages}); check the app's scopes")
    if "INTERNAL_SERVER_ERROR" in codes:
        return RetryableError(f"{what}: Shopify internal error ({messages})")
    return PermanentError(f"{what}: {messages or 'errors without a message'}")


def _throttle_wait(body: dict[str, Any]) -> float:
    """Seconds until the bucket holds the requested cost: (requested - available) / rate."""
    cost = _dig(body, "extensions", "cost")
    requested = _number(_dig(cost, "requestedQueryCost"))
    available = _number(_dig(cost, "throttleStatus", "currentlyAvailable"))
    rate = _number(_dig(cost, "throttleStatus", "restoreRate"))
    if requested is None or available is None or not rate:
        return 1.0
    return max((requested - available) / rate, 1.0)


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)

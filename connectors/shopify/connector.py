"""The Shopify connector: the `Connector` protocol over the GraphQL Admin API.

Orders are polled with `orders(sortKey: UPDATED_AT, query: "updated_at:>='…'")` and Shopify's
opaque page cursors. The cursor storesync commits is JSON, `{"since": ISO, "after": cursor|null}`,
with the reference connector's rules: `after` resumes a run exactly after the last committed
page (the search text is rebuilt from the same `since`, as Shopify's cursors are only valid for
the same query); a run that reaches the end moves `since` to the newest `updatedAt` it saw, never
past the run's start; every run reads from `since` minus the look-back.

The API lives at https://{shop}/admin/api/{api_version}/graphql.json; `api_url` replaces that
base (a sandbox, a proxy): given as a bare origin, `/admin/api/{api_version}` is appended.

Stock is set with `inventorySetQuantities` on the `available` quantity of one location, with
`changeFromQuantity` as the compare-and-set and `@idempotent` so a replayed batch changes nothing
twice. Shipments go through the order's fulfillment orders and `fulfillmentCreate`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from connectors.base import (
    AuthError,
    Capabilities,
    ChannelEvent,
    ChannelOrder,
    ConflictError,
    ConnectorError,
    ListingRef,
    OrderPage,
    PermanentError,
    PushOutcome,
    PushResult,
    RateLimited,
    RateModel,
    RetryableError,
    ShipmentPush,
    StockPush,
    WebhookDelivery,
)
from connectors.http import CostBucket, RetryPolicy, Timeouts
from connectors.shopify.client import (
    MAX_LEVEL_IDS,
    MAX_ORDERS_PAGE,
    ORDER_REFUNDS_FIRST,
    ShopifyClient,
)
from connectors.shopify.orders import build_order, gid, graphql_facts, numeric_id
from connectors.shopify.webhooks import parse_delivery, verify_delivery

log = structlog.get_logger(__name__)

MAX_BATCH = 250  # any GraphQL input array: https://shopify.dev/docs/api/usage/limits
DEFAULT_COST_BUCKET = 1000
DEFAULT_RESTORE_RATE = 100.0  # Standard plan: https://shopify.dev/docs/api/usage/rate-limits

# A namespace of our own for uuid5 idempotency keys: the same pushes always make the same key.
_KEY_NAMESPACE = uuid.UUID("6f1c2a52-5b0e-4c1f-9a44-0d7e3c2b8a11")
_STALE = "CHANGE_FROM_QUANTITY_STALE"
_MAX_ROUNDS = 3  # inventorySetQuantities calls per batch when items are refused for company
_FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
_HELD = {
    "ON_HOLD": "is ON_HOLD: release it in Shopify admin",
    "SCHEDULED": "is SCHEDULED for later: mark it as ready to fulfil in Shopify admin",
}

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ShopifyConnector:
    """One Shopify shop."""

    capabilities = Capabilities(
        webhooks=True, compare_and_set=True, max_batch=MAX_BATCH, rate_model=RateModel.COST_BUCKET
    )

    def __init__(
        self,
        name: str,
        *,
        shop: str,
        api_url: str | None,
        api_version: str,
        access_token: str | None,
        client_id: str | None,
        client_secret: str | None,
        webhook_secret: str | None,
        location: str | None,
        first_poll_window: timedelta,
        order_lookback: timedelta,
        cost_bucket_size: int = DEFAULT_COST_BUCKET,
        cost_restore_rate: float = DEFAULT_RESTORE_RATE,
        policy: RetryPolicy = _DEFAULT_POLICY,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        token_url: str | None = None,
        page_size: int = MAX_ORDERS_PAGE,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        limiter: CostBucket | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_ORDERS_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_ORDERS_PAGE}")
        self.name = name
        self.shop = shop
        # Shopify signs webhooks with the app's client secret; a separate setting wins.
        self._secret = webhook_secret or client_secret
        self._location_setting = location
        self._first_window = first_poll_window
        self._lookback = order_lookback
        self._clock = clock
        self._page_size = page_size
        self.limiter = limiter or CostBucket(cost_bucket_size, cost_restore_rate)
        api_base = _api_base(shop, api_url, api_version)
        self._api = ShopifyClient(
            api_base,
            limiter=self.limiter,
            access_token=access_token,
            client_id=client_id,
            client_secret=client_secret,
            token_url=token_url,
            policy=policy,
            timeouts=timeouts,
            transport=transport,
            clock=clock,
        )
        self._location_gid: str | None = None
        # Numeric inventory item id -> SKU, from the last listing read: inventory_levels/update
        # webhooks name the item only.
        self._sku_for_item: dict[str, str] = {}

    # -- orders -----------------------------------------------------------------------------------

    async def fetch_orders(
        self, cursor: str | None, *, since: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        """Yield pages of orders updated since `cursor` (None: the configured first window).

        With `since`, read everything updated from that moment instead (a reconcile sweep).
        """
        started = self._clock()
        after: str | None
        if since is not None:
            since, after = since.astimezone(UTC), None
        else:
            since, after = self._read_cursor(cursor, started)
        search = _search_since(since - self._lookback)
        newest: datetime | None = None
        while True:
            data = await self._api.orders_page(search=search, after=after, first=self._page_size)
            nodes, has_next, end_cursor = _connection(data.get("orders"), "orders")
            orders = tuple([await self._complete_order(node) for node in nodes])
            for order in orders:
                newest = order.updated_at if newest is None else max(newest, order.updated_at)
            if not has_next:
                if newest is not None:
                    since = max(since, min(newest, started))  # never past the run's start
                yield OrderPage(orders, _write_cursor(since, None), done=True)
                return
            if not end_cursor:
                raise RetryableError(f"{self.name}: orders page has a next page but no endCursor")
            yield OrderPage(orders, _write_cursor(since, end_cursor), done=False)
            after = end_cursor

    def _read_cursor(self, cursor: str | None, now: datetime) -> tuple[datetime, str | None]:
        if cursor is None:
            return now - self._first_window, None
        try:
            data = json.loads(cursor)
            since = datetime.fromisoformat(data["since"])
            after = data.get("after")
            if since.tzinfo is None or not (after is None or isinstance(after, str)):
                raise ValueError("bad field types")
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{self.name}: unreadable orders cursor {cursor!r}") from exc
        return since.astimezone(UTC), after

    async def fetch_order(self, order_id: str) -> ChannelOrder | None:
        """One order by its numeric id (or gid), or None when Shopify has no such order."""
        try:
            number = numeric_id(order_id)
        except ValueError:
            return None  # not an id Shopify could ever have issued
        data = await self._api.order(gid("Order", number))
        node = data.get("order")
        if node is None:
            return None
        return await self._complete_order(node)

    async def _complete_order(self, node: Any) -> ChannelOrder:
        """The order with every line and every refund line, however many pages they take."""
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise RetryableError(f"{self.name}: an order node without an id")
        order_gid = node["id"]
        try:
            lines, more, after = _connection(node.get("lineItems"), "lineItems")
            while more:
                data = await self._api.order_lines(order_gid, after)
                page, more, after = _connection(
                    _dig(data, "order", "lineItems"), "order lineItems"
                )
                lines.extend(page)
            refunds = node.get("refunds") or []
            if not isinstance(refunds, list):
                raise PermanentError("refunds must be a list")
            if len(refunds) >= ORDER_REFUNDS_FIRST:
                log.warning(
                    "order has more refunds than one read returns; later ones are not counted",
                    channel=self.name,
                    order=order_gid,
                    refunds_read=len(refunds),
                )
            refund_lines: list[dict[str, Any]] = []
            for refund in refunds:
                refund_lines.extend(await self._refund_lines(refund["id"]))
            return build_order(self.name, graphql_facts(node, lines, refund_lines), node)
        except PermanentError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PermanentError(
                f"{self.name}: unreadable order {order_gid}: {type(exc).__name__}: {exc}"
            ) from exc

    async def _refund_lines(self, refund_gid: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            data = await self._api.refund_lines(refund_gid, after)
            page, more, after = _connection(
                _dig(data, "refund", "refundLineItems"), "refund refundLineItems"
            )
            items.extend(page)
            if not more:
                return items

    # -- listings and levels ----------------------------------------------------------------------

    async def location_gid(self) -> str:
        """The gid of the location whose `available` storesync reads and sets (looked up once)."""
        if self._location_gid is not None:
            return self._location_gid
        data = await self._api.locations()
        nodes, _, _ = _connection(data.get("locations"), "locations")
        chosen = _choose_location(nodes, self._location_setting)
        if chosen is None:
            names = ", ".join(repr(n.get("name")) for n in nodes if isinstance(n, dict))
            wanted = self._location_setting
            raise PermanentError(
                f"{self.name}: no active location "
                + (f"matches {wanted!r}" if wanted else "in the shop")
                + f" (active locations: {names or 'none'})"
            )
        self._location_gid = chosen
        return chosen

    async def fetch_listings(self) -> list[ListingRef]:
        """Every variant with a SKU, with the ids pushes need and `available` at the location."""
        location = await self.location_gid()
        refs: list[ListingRef] = []
        seen: set[str] = set()
        items: dict[str, str] = {}
        after: str | None = None
        while True:
            data = await self._api.variants_page(location_gid=location, after=after)
            nodes, more, after = _connection(data.get("productVariants"), "productVariants")
            for node in nodes:
                ref = self._listing(node, location)
                if ref is None:
                    continue
                if ref.sku in seen:
                    # Shopify does not enforce unique SKUs; storesync keys on them.
                    log.warning(
                        "two variants share a SKU; the first one is synced",
                        channel=self.name,
                        sku=ref.sku,
                        variant=ref.ids["variant_id"],
                    )
                    continue
                seen.add(ref.sku)
                refs.append(ref)
                items[numeric_id(ref.ids["inventory_item_id"])] = ref.sku
            if not more:
                break
        self._sku_for_item = items
        return refs

    def _listing(self, node: Any, location: str) -> ListingRef | None:
        try:
            sku = node.get("sku")
            if not sku:
                return None  # no SKU, nothing to sync it with
            item = node["inventoryItem"]
            tracked = item["tracked"]
            level = item.get("inventoryLevel")
            if not isinstance(sku, str) or not isinstance(tracked, bool):
                raise TypeError("sku must be text and tracked a boolean")
            ids = {
                "variant_id": _gid_text(node["id"]),
                "inventory_item_id": _gid_text(item["id"]),
                "location_id": location,
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise PermanentError(f"{self.name}: unreadable product variant {node!r}") from exc
        if not tracked:
            status = "untracked"
        elif level is None:
            status = "not_stocked"  # Shopify answers ITEM_NOT_STOCKED_AT_LOCATION to a set
        else:
            status = "listed"
        return ListingRef(sku=sku, ids=ids, status=status, level=_available(level))

    async def fetch_levels(self, listings: Sequence[ListingRef]) -> dict[str, int]:
        """`available` now for each listing at its location, by SKU (up to 250 per call)."""
        default_location = await self.location_gid()
        by_location: dict[str, dict[str, str]] = {}
        for ref in listings:
            item = ref.ids.get("inventory_item_id")
            if item:
                location = ref.ids.get("location_id") or default_location
                by_location.setdefault(location, {})[item] = ref.sku
        levels: dict[str, int] = {}
        for location, skus in by_location.items():
            item_ids = list(skus)
            for start in range(0, len(item_ids), MAX_LEVEL_IDS):
                data = await self._api.levels(item_ids[start : start + MAX_LEVEL_IDS], location)
                nodes = data.get("nodes")
                if not isinstance(nodes, list):
                    raise RetryableError(f"{self.name}: nodes() answered without a list")
                for node in nodes:
                    if not isinstance(node, dict) or node.get("id") not in skus:
                        continue  # a deleted item comes back null
                    available = _available(node.get("inventoryLevel"))
                    if available is not None:
                        levels[skus[node["id"]]] = available
        return levels

    # -- stock ------------------------------------------------------------------------------------

    async def push_stock(self, batch: Sequence[StockPush]) -> list[PushResult]:
        """Set `available` for up to 250 items per mutation, compare-and-set on `expected`.

        A failure before anything was applied raises; after an earlier mutation went through,
        failures become per-item results so what landed is not reported as failed.
        """
        results: list[PushResult] = []
        sendable: list[StockPush] = []
        for push in batch:
            ids = push.listing.ids
            if not ids.get("inventory_item_id") or not ids.get("location_id"):
                results.append(
                    PushResult(
                        push.listing.sku,
                        PushOutcome.PERMANENT,
                        "no inventory_item_id/location_id for this SKU: read the listings again",
                    )
                )
            elif not push.listing.pushable:
                results.append(
                    PushResult(
                        push.listing.sku,
                        PushOutcome.PERMANENT,
                        f"the variant is {push.listing.status} at the location",
                    )
                )
            else:
                sendable.append(push)
        chunks = [sendable[i : i + MAX_BATCH] for i in range(0, len(sendable), MAX_BATCH)]
        for index, chunk in enumerate(chunks):
            try:
                results.extend(await self._push_chunk(chunk))
            except AuthError:
                raise
            except ConnectorError as exc:
                if index == 0:
                    raise
                if isinstance(exc, RetryableError):
                    results.extend(_failed([p for rest in chunks[index:] for p in rest], exc))
                    break
                results.extend(_failed(chunk, exc))
        return results

    async def _push_chunk(self, chunk: Sequence[StockPush]) -> list[PushResult]:
        """One inventorySetQuantities, then again for the items only refused for company.

        A userError on one item sends the whole mutation back (see _stock_results), so the
        items without an error of their own are sent again at once, as a new batch with its
        own idempotency key, instead of waiting for the outbox: otherwise one SKU that keeps
        going stale would hold every other SKU of its batch back. Each round settles at least
        one item, and the rounds are capped. Errors of the first mutation propagate.
        """
        settled: dict[int, PushResult] = {}
        pending = list(range(len(chunk)))
        for round_number in range(_MAX_ROUNDS):
            pushes = [chunk[i] for i in pending]
            key = batch_key(pushes)
            try:
                data = await self._api.set_quantities(
                    [_quantity(push) for push in pushes],
                    idempotency_key=key,
                    reference=f"gid://storesync/Push/{key}",
                )
            except AuthError:
                raise
            except ConnectorError as exc:
                if round_number == 0:
                    raise
                settled.update(zip(pending, _failed(pushes, exc), strict=True))
                break
            results, innocent = await self._stock_results(pushes, data)
            again = [pending[i] for i in sorted(innocent)]
            settled.update(
                (i, result)
                for i, result in zip(pending, results, strict=True)
                if i not in again
            )
            if not again or len(again) == len(pending) or round_number == _MAX_ROUNDS - 1:
                settled.update((i, results[pending.index(i)]) for i in again)
                break
            pending = again
        return [settled[i] for i in range(len(chunk))]

    async def _stock_results(
        self, pushes: Sequence[StockPush], data: Any
    ) -> tuple[list[PushResult], set[int]]:
        """Per-item results, and which items were refused only because another item was."""
        payload = data.get("inventorySetQuantities") if isinstance(data, dict) else None
        errors = payload.get("userErrors") if isinstance(payload, dict) else None
        if not isinstance(errors, list):
            # Applied or not, the idempotency key makes the retry safe: Shopify replays.
            return [
                PushResult(p.listing.sku, PushOutcome.RETRY, "unreadable inventorySetQuantities")
                for p in pushes
            ], set()
        if not errors:
            return [PushResult(p.listing.sku, PushOutcome.DONE) for p in pushes], set()
        per_item: dict[int, list[dict[str, Any]]] = {}
        general: list[dict[str, Any]] = []
        for error in errors:
            if not isinstance(error, dict):
                continue
            index = _quantity_index(error.get("field"))
            if index is not None and 0 <= index < len(pushes):
                per_item.setdefault(index, []).append(error)
            else:
                general.append(error)
        stale = [i for i, errs in per_item.items() if any(e.get("code") == _STALE for e in errs)]
        observed = await self._observe([pushes[i] for i in stale])
        results: list[PushResult] = []
        innocent: set[int] = set()
        for index, push in enumerate(pushes):
            sku = push.listing.sku
            own = per_item.get(index)
            if own and index in stale:
                now = observed.get(sku)
                results.append(
                    PushResult(
                        sku,
                        PushOutcome.CONFLICT,
                        f"changeFromQuantity {push.expected} is stale"
                        + (f"; Shopify shows {now}" if now is not None else ""),
                        observed=now,
                    )
                )
            elif own:
                results.append(PushResult(sku, PushOutcome.PERMANENT, _describe(own)))
            elif general:
                results.append(
                    PushResult(sku, PushOutcome.PERMANENT, f"batch refused: {_describe(general)}")
                )
            else:
                # Shopify's docs do not say whether one quantity's userError stops the others
                # (the sandbox applies all or nothing, like an input validated before it is
                # applied). Sending it again is right under both readings: if this item did
                # not land, it must go again; if it did, its changeFromQuantity no longer
                # matches and comes back as a CONFLICT showing the new value (or, without CAS,
                # sets the same value again). DONE would be wrong under the first reading.
                innocent.add(index)
                results.append(
                    PushResult(
                        sku,
                        PushOutcome.RETRY,
                        "not applied: another item of the same inventorySetQuantities was refused",
                    )
                )
        return results, innocent

    async def _observe(self, pushes: Sequence[StockPush]) -> dict[str, int]:
        """Best-effort re-read of stale items, so a CONFLICT can say what Shopify shows."""
        if not pushes:
            return {}
        try:
            return await self.fetch_levels([push.listing for push in pushes])
        except ConnectorError as exc:
            log.info("could not re-read stale levels", channel=self.name, error=str(exc))
            return {}

    # -- shipments --------------------------------------------------------------------------------

    async def push_shipment(self, shipment: ShipmentPush) -> PushResult:
        """Fulfil the shipment's lines through the order's fulfillment orders, with tracking."""
        key = shipment.shipment_id
        try:
            order_gid = gid("Order", numeric_id(shipment.order_id))
        except ValueError:
            return PushResult(key, PushOutcome.PERMANENT, f"not a Shopify order id: "
                              f"{shipment.order_id!r}")
        try:
            plan = await self._read_fulfillment_orders(order_gid)
            if plan is None:
                return PushResult(key, PushOutcome.PERMANENT, f"order {shipment.order_id} "
                                  "does not exist in Shopify")
            outcome = _allocate(plan, shipment)
            if isinstance(outcome, PushResult):
                return outcome
            created: list[str] = []
            for group in outcome:
                data = await self._api.create_fulfillment(_fulfillment_input(group, shipment))
                payload = data.get("fulfillmentCreate")
                errors = payload.get("userErrors") if isinstance(payload, dict) else None
                if not isinstance(errors, list):
                    raise RetryableError(f"{self.name}: unreadable fulfillmentCreate answer")
                if errors:
                    done = f" ({len(created)} fulfillment(s) created before)" if created else ""
                    return PushResult(key, PushOutcome.PERMANENT, _describe(errors) + done)
                fulfillment_id = _dig(payload, "fulfillment", "id")
                if isinstance(fulfillment_id, str):
                    created.append(fulfillment_id)
        except PermanentError as exc:
            return PushResult(key, PushOutcome.PERMANENT, str(exc))
        return PushResult(key, PushOutcome.DONE, "fulfillment " + ", ".join(created))

    async def _read_fulfillment_orders(self, order_gid: str) -> _Plan | None:
        plan = _Plan()
        after: str | None = None
        while True:
            data = await self._api.fulfillment_orders(order_gid, after)
            order = data.get("order")
            if order is None:
                return None
            try:
                for fulfillment in order.get("fulfillments") or []:
                    location = _dig(fulfillment, "location", "id")
                    for info in fulfillment.get("trackingInfo") or []:
                        if isinstance(info.get("number"), str):
                            plan.tracked.add((info["number"], location))
                nodes, more, after = _connection(
                    order.get("fulfillmentOrders"), "fulfillmentOrders"
                )
                plan.orders.extend(_fulfillment_order(node) for node in nodes)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise RetryableError(f"{self.name}: unreadable fulfillment orders: {exc}") from exc
            if not more:
                return plan

    # -- webhooks ---------------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookDelivery:
        """Check X-Shopify-Hmac-Sha256 on the raw bytes; WebhookRejected if it fails."""
        return verify_delivery(self._secret, headers, raw_body)

    def parse_event(
        self, topic: str, headers: Mapping[str, str], raw_body: bytes
    ) -> ChannelEvent:
        """Order topics carry the order; refunds/create names it; level updates map by item."""
        location = numeric_id(self._location_gid) if self._location_gid else None
        return parse_delivery(
            self.name, topic, raw_body, sku_for_item=self._sku_for_item, location_id=location
        )

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._api.aclose()


# -- fulfillment planning ------------------------------------------------------------------------


@dataclass(slots=True)
class _FoLine:
    id: str  # FulfillmentOrderLineItem gid
    line_id: str  # the order line's numeric id
    remaining: int


@dataclass(slots=True)
class _FulfillmentOrder:
    id: str
    status: str
    location_id: str | None
    location_name: str
    third_party: bool
    truncated: bool
    lines: list[_FoLine]

    @property
    def number(self) -> str:
        return numeric_id(self.id)

    def blocked_because(self) -> str | None:
        """Why storesync cannot fulfil this one, or None when it can."""
        if self.third_party:
            return (
                f"fulfillment order {self.number} is assigned to the fulfillment service "
                f"{self.location_name!r}: that service ships it, not the merchant"
            )
        held = _HELD.get(self.status)
        if held is not None:
            return f"fulfillment order {self.number} {held}"
        return None

    @property
    def fulfillable(self) -> bool:
        return self.status in _FULFILLABLE and not self.third_party


@dataclass(slots=True)
class _Plan:
    orders: list[_FulfillmentOrder] = field(default_factory=list)
    # (tracking number, location gid) of the order's fulfillments
    tracked: set[tuple[str, str | None]] = field(default_factory=set)

    def reported_at(self, tracking_number: str) -> set[str | None]:
        """Locations that already have a fulfillment with this tracking number."""
        if not tracking_number:
            return set()
        return {location for number, location in self.tracked if number == tracking_number}


def _fulfillment_order(node: Any) -> _FulfillmentOrder:
    location = _dig(node, "assignedLocation", "location")
    service_type = _dig(location, "fulfillmentService", "type")
    lines, truncated, _ = _connection(node.get("lineItems"), "fulfillment order lineItems")
    return _FulfillmentOrder(
        id=node["id"],
        status=str(node["status"]),
        location_id=location.get("id") if isinstance(location, dict) else None,
        location_name=str(_dig(node, "assignedLocation", "name") or ""),
        third_party=service_type == "THIRD_PARTY",
        truncated=truncated,
        lines=[
            _FoLine(
                id=item["id"],
                line_id=numeric_id(item["lineItem"]["id"]),
                remaining=int(item["remainingQuantity"]),
            )
            for item in lines
        ],
    )


# One fulfillmentCreate: fulfillment orders of one location, each with (FO line gid, units).
_Group = list[tuple[_FulfillmentOrder, list[tuple[str, int]]]]


def _allocate(plan: _Plan, shipment: ShipmentPush) -> list[_Group] | PushResult:
    """Which fulfillment order lines carry the shipment, grouped by location; or why none can.

    A location that already has a fulfillment with this shipment's tracking number took this
    shipment before (an earlier push landed and its answer was lost): it is skipped, so a
    replay creates nothing twice, and a push that failed half-way resumes where it stopped.
    """
    key = shipment.shipment_id
    done_at = plan.reported_at(shipment.tracking_number)
    open_orders = [fo for fo in plan.orders if fo.fulfillable and fo.location_id not in done_at]
    if shipment.lines:
        wanted: dict[str, int] = {}
        for line in shipment.lines:
            try:
                line_id = numeric_id(line.line_id)
            except ValueError:
                return PushResult(key, PushOutcome.PERMANENT, f"not a Shopify line id: "
                                  f"{line.line_id!r}")
            wanted[line_id] = wanted.get(line_id, 0) + line.qty
    else:
        # No lines: everything still to fulfil in what the merchant can fulfil.
        wanted = {}
        for fo in open_orders:
            for fo_line in fo.lines:
                if fo_line.remaining > 0:
                    wanted[fo_line.line_id] = wanted.get(fo_line.line_id, 0) + fo_line.remaining
    picked: dict[str, list[tuple[str, int]]] = {}
    for line_id, units in wanted.items():
        need = units
        taken: list[tuple[str, str, int]] = []
        for fo in open_orders:
            for fo_line in fo.lines:
                if need > 0 and fo_line.line_id == line_id and fo_line.remaining > 0:
                    take = min(need, fo_line.remaining)
                    taken.append((fo.id, fo_line.id, take))
                    need -= take
        if need > 0:
            if any(
                fo.location_id in done_at and any(ln.line_id == line_id for ln in fo.lines)
                for fo in plan.orders
            ):
                continue  # this line left with the earlier push of this shipment
            blocked = [
                fo.blocked_because()
                for fo in plan.orders
                if fo.blocked_because() is not None
                and any(ln.line_id == line_id and ln.remaining > 0 for ln in fo.lines)
            ]
            if blocked:
                return PushResult(key, PushOutcome.PERMANENT, str(blocked[0]))
            if any(fo.truncated for fo in plan.orders):
                return PushResult(key, PushOutcome.PERMANENT, "a fulfillment order has more "
                                  "than 50 line items; storesync cannot read it whole")
            return PushResult(
                key,
                PushOutcome.PERMANENT,
                f"order line {line_id}: {units} unit(s) to ship, Shopify has "
                f"{units - need} left to fulfil",
            )
        for fo_id, fo_line_id, take in taken:
            picked.setdefault(fo_id, []).append((fo_line_id, take))
    if not picked:
        if done_at:
            return PushResult(key, PushOutcome.DONE, f"already reported: tracking number "
                              f"{shipment.tracking_number} is on the order")
        blocked = [fo.blocked_because() for fo in plan.orders if fo.blocked_because()]
        if blocked:
            return PushResult(key, PushOutcome.PERMANENT, str(blocked[0]))
        return PushResult(key, PushOutcome.PERMANENT, "nothing left to fulfil on this order")
    # All fulfillment orders in one fulfillmentCreate must share order and location.
    groups: dict[str | None, _Group] = {}
    for fo in plan.orders:
        if fo.id in picked:
            groups.setdefault(fo.location_id, []).append((fo, picked[fo.id]))
    return list(groups.values())


def _fulfillment_input(group: _Group, shipment: ShipmentPush) -> dict[str, Any]:
    tracking = {
        key: value
        for key, value in (
            ("company", shipment.carrier),
            ("number", shipment.tracking_number),
            ("url", shipment.tracking_url),
        )
        if value
    }
    fulfillment: dict[str, Any] = {
        "lineItemsByFulfillmentOrder": [
            {
                "fulfillmentOrderId": fo.id,
                "fulfillmentOrderLineItems": [{"id": i, "quantity": q} for i, q in lines],
            }
            for fo, lines in group
        ],
        "notifyCustomer": False,  # the merchant's own shipping flow tells the customer
    }
    if tracking:
        fulfillment["trackingInfo"] = tracking
    return fulfillment


# -- helpers -------------------------------------------------------------------------------------


def batch_key(pushes: Sequence[StockPush]) -> str:
    """The @idempotent key of one mutation: a UUID5 of its pushes' keys, so a replay matches."""
    joined = "\n".join(push.idempotency_key for push in pushes)
    digest = hashlib.sha256(joined.encode()).hexdigest()
    return str(uuid.uuid5(_KEY_NAMESPACE, digest))


def _quantity(push: StockPush) -> dict[str, Any]:
    # changeFromQuantity is sent even when None: from 2026-04 omitting it is an error and an
    # explicit null opts out of the compare-and-set.
    return {
        "inventoryItemId": push.listing.ids["inventory_item_id"],
        "locationId": push.listing.ids["location_id"],
        "quantity": push.quantity,
        "changeFromQuantity": push.expected,
    }


def _quantity_index(path: Any) -> int | None:
    """3 for a userError field ["input", "quantities", "3", "changeFromQuantity"]."""
    if not isinstance(path, list):
        return None
    for position, part in enumerate(path[:-1]):
        if part == "quantities":
            following = path[position + 1]
            text = str(following)
            return int(text) if text.isdigit() else None
    return None


def _describe(errors: Sequence[Any]) -> str:
    parts = []
    for error in errors:
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message") or ""
            parts.append(f"{code}: {message}" if code else str(message))
    return "; ".join(parts)[:500] or "refused without a message"


def _failed(pushes: Sequence[StockPush], exc: ConnectorError) -> list[PushResult]:
    """Per-item results for pushes a whole request failed for."""
    if isinstance(exc, RateLimited):
        return [
            PushResult(p.listing.sku, PushOutcome.RETRY, str(exc), retry_after=exc.retry_after)
            for p in pushes
        ]
    if isinstance(exc, ConflictError):
        outcome = PushOutcome.CONFLICT
    elif isinstance(exc, RetryableError):
        outcome = PushOutcome.RETRY
    else:
        outcome = PushOutcome.PERMANENT
    return [PushResult(p.listing.sku, outcome, str(exc)) for p in pushes]


def _choose_location(nodes: Sequence[Any], wanted: str | None) -> str | None:
    """The configured location by gid, numeric id or name; else the first active one."""
    active = [n for n in nodes if isinstance(n, dict) and n.get("isActive", True) is not False]
    if not wanted:
        return active[0]["id"] if active else None
    for node in active:
        if node.get("id") == wanted or node.get("name") == wanted:
            return str(node["id"])
    for node in active:
        try:
            if wanted.isdigit() and numeric_id(node.get("id")) == wanted:
                return str(node["id"])
        except ValueError:
            continue
        name = node.get("name")
        if isinstance(name, str) and name.casefold() == wanted.casefold():
            return str(node["id"])
    return None


def _available(level: Any) -> int | None:
    quantities = level.get("quantities") if isinstance(level, dict) else None
    if not isinstance(quantities, list):
        return None
    for quantity in quantities:
        if isinstance(quantity, dict) and quantity.get("name") == "available":
            value = quantity.get("quantity")
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def _connection(value: Any, what: str) -> tuple[list[Any], bool, str | None]:
    """A connection's nodes, hasNextPage and endCursor; RetryableError when it is malformed.

    A next page without an endCursor is malformed too: following it would read page one again,
    forever.
    """
    if not isinstance(value, dict) or not isinstance(value.get("nodes"), list):
        raise RetryableError(f"{what}: the answer has no nodes list")
    info = value.get("pageInfo") or {}
    more = info.get("hasNextPage") is True if isinstance(info, dict) else False
    end = info.get("endCursor") if isinstance(info, dict) else None
    cursor = end if isinstance(end, str) and end else None
    if more and cursor is None and "endCursor" in info:
        raise RetryableError(f"{what}: a next page but no endCursor")
    return list(value["nodes"]), more, cursor


def _gid_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"not an id: {value!r}")
    return value


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _api_base(shop: str, api_url: str | None, api_version: str) -> str:
    """https://{shop}/admin/api/{version}, or api_url (a sandbox, a proxy) with that path added
    when it names only a host."""
    if not api_url:
        return f"https://{shop}/admin/api/{api_version}"
    base = api_url.rstrip("/")
    if "/admin/api/" in base:
        return base
    return f"{base}/admin/api/{api_version}"


def _search_since(moment: datetime) -> str:
    """Shopify search syntax for orders updated at or after `moment` (whole seconds, floored)."""
    return f"updated_at:>='{moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"


def _write_cursor(since: datetime, after: str | None) -> str:
    text = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"since": text, "after": after})

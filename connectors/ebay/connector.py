"""The eBay connector: the `Connector` protocol over the Sell Fulfillment and Inventory APIs.

Orders. `GET /order?filter=lastmodifieddate:[<from>..]` pages by offset over a set that lives
while we read it, and eBay does not document the order it returns (reference 4.8). The filter
is left open-ended on purpose: a lastModifiedDate only grows, so an order inside `[from..]`
stays inside it, and the set can only gain members mid-run. A newcomer shifts later offsets one
place on, so one order is read twice (dedupe by version makes that free) and none is skipped. A
closed window `[from..to]` would lose members instead (an order modified mid-run moves past
`to`), and each loss slides an unread order behind our offset. The cursor storesync commits is
JSON, `{"since": ISO, "from": ISO | null, "offset": N, "total": T | null}`: mid-run it pins the
exact filter start and the offset, so a new instance resumes the same run; the run's last page
moves `since` to the newest lastModifiedDate it saw (never past the run's start), and each run
reads from `since` minus the look-back. Should `total` ever shrink mid-run, `since` stays where
it was and the next run reads the whole window again. The filter covers only the last 90 days
(error 30830), so the start is clamped to that. getOrders leaves `cancelRequests` empty
(OAS getOrders description): an order with a cancellation requested or done is re-read with
`GET /order/{orderId}`.

Page size: the OAS says up to 1000 orders per page, sellers report errors above 200
(openlinker-project/openlinker#2880, reference 4.2 [C]); 200 works with both.

Listings. eBay keys inventory by the seller's SKU; a SKU sells through one offer per
marketplace, and the quantity buyers see is the smaller of the item's
`shipToLocationAvailability.quantity` and the offer's `availableQuantity` (reference 4.4). So
discovery reads `GET /inventory_item` pages, then `GET /offer?sku=` per SKU, and levels read
`POST /bulk_get_inventory_item` (25 SKUs a call) plus the offers.

Stock. `POST /bulk_update_price_quantity` sets both numbers, absolute, for up to 25 SKUs per
call (https://developer.ebay.com/api-docs/sell/static/inventory/bulk-updates.html); each SKU's
fate is in `responses[]`. There is no compare-and-set: a sale between our read and this write is
overwritten until the next reconcile corrects it. A listing takes at most 250 revisions a day:
revisions.py paces a busy listing's pushes (a WAIT result) instead of spending them by noon.

Shipments. `POST /order/{orderId}/shipping_fulfillment` once per package, answered 201 with the
fulfillment in `Location`. eBay has no idempotency key, so a push first reads the order's
fulfillments and calls one with the same tracking number (or lines eBay shows shipped) done.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base import (
    AuthError,
    Capabilities,
    ChannelEvent,
    ChannelOrder,
    ConflictError,
    ConnectorError,
    ListingRef,
    OrderPage,
    OrderStatus,
    PermanentError,
    PushOutcome,
    PushResult,
    RateLimited,
    RateModel,
    RetryableError,
    ShipmentPush,
    StockPush,
    WebhookDelivery,
    WebhookRejected,
)
from connectors.ebay.client import (
    MAX_BULK,
    MAX_INVENTORY_LIMIT,
    MAX_ORDERS_LIMIT,
    EbayClient,
    EbayQuotas,
)
from connectors.ebay.orders import NONE_REQUESTED, cancel_state, parse_order
from connectors.ebay.revisions import REVISIONS_PER_DAY, RevisionBudget, is_revision_cap
from connectors.ebay.wire import (
    DEFAULT_MARKETPLACE,
    date_range_filter,
    format_time,
    parse_time,
    read_errors,
)
from connectors.http import RetryPolicy, Timeouts

MAX_BATCH = MAX_BULK
# getOrders' filter "returns data from only the last 90 days" (OAS); stay an hour inside it so
# a clock a little ahead of eBay's never asks for day 91.
FILTER_WINDOW = timedelta(days=90)
WINDOW_MARGIN = timedelta(hours=1)

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EbayConnector:
    """One eBay seller account on one marketplace."""

    # Polling only in this version: eBay's order notifications (Notification API
    # ORDER_CONFIRMATION, ECDSA-signed) are not wired up yet.
    capabilities = Capabilities(
        webhooks=False,
        compare_and_set=False,
        max_batch=MAX_BATCH,
        rate_model=RateModel.DAILY_QUOTA,
    )

    def __init__(
        self,
        name: str,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        marketplace_id: str = DEFAULT_MARKETPLACE,
        api_url: str | None = None,
        token_url: str | None = None,
        first_poll_window: timedelta,
        order_lookback: timedelta,
        policy: RetryPolicy | None = None,
        page_size: int = MAX_ORDERS_LIMIT,
        daily_limits: Mapping[str, int] | None = None,
        revisions_per_day: int = REVISIONS_PER_DAY,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> None:
        if not 1 <= page_size <= MAX_ORDERS_LIMIT:
            raise ValueError(f"page_size must be between 1 and {MAX_ORDERS_LIMIT}")
        self.name = name
        self._first_window = first_poll_window
        self._lookback = order_lookback
        self._page_size = page_size
        self._clock = clock
        self.limiter = EbayQuotas(daily_limits, now=clock)
        self._api = EbayClient(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            marketplace_id=marketplace_id,
            quotas=self.limiter,
            api_url=api_url,
            token_url=token_url,
            policy=policy or _DEFAULT_POLICY,
            timeouts=timeouts,
            transport=transport,
            clock=clock,
        )
        self.marketplace_id = marketplace_id
        self.revisions = RevisionBudget(revisions_per_day)

    # -- orders ------------------------------------------------------------------------------------

    async def fetch_orders(
        self, cursor: str | None, *, since: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        """Yield pages of orders modified since `cursor` (None: the configured first window).

        With `since`, read everything modified from that moment instead (a reconcile sweep).
        """
        started = self._clock()
        start: datetime | None = None
        if since is not None:
            watermark, offset, first_total = since, 0, None
        else:
            watermark, start, offset, first_total = self._read_cursor(cursor, started)
        oldest = started - FILTER_WINDOW + WINDOW_MARGIN
        if start is not None and start < oldest:
            start, offset, first_total = None, 0, None  # a run left for months: start it again
        if start is None:
            start = max(watermark - self._lookback, oldest)
        filter_text = date_range_filter("lastmodifieddate", start)
        newest: datetime | None = None
        shrank = False
        while True:
            page = await self._api.get_orders(filter_text, limit=self._page_size, offset=offset)
            orders = tuple([await self._order(item) for item in page.items])
            for order in orders:
                newest = order.updated_at if newest is None else max(newest, order.updated_at)
            if page.total is not None:
                if first_total is not None and page.total < first_total:
                    shrank = True  # an order left the set: a later one may have slid past us
                first_total = page.total if first_total is None else first_total
            offset += len(page.items)
            more = bool(page.items) and (
                page.next_offset is not None or (page.total is not None and offset < page.total)
            )
            if not more:
                if newest is not None and not shrank:
                    # Never past the run's start (a change made while we read may be missing
                    # from what we read), never backwards.
                    watermark = max(watermark, min(newest, started))
                yield OrderPage(orders, _write_cursor(watermark, None, 0, None), done=True)
                return
            cursor_text = _write_cursor(watermark, start, offset, first_total)
            yield OrderPage(orders, cursor_text, done=False)

    async def _order(self, item: dict[str, Any]) -> ChannelOrder:
        """An order from a getOrders page, re-read in full when a cancellation is in play."""
        if cancel_state(item) != NONE_REQUESTED:
            full = await self._api.get_order(str(item.get("orderId") or ""))
            if full is not None:
                item = full
        return parse_order(self.name, item)

    def _read_cursor(
        self, cursor: str | None, now: datetime
    ) -> tuple[datetime, datetime | None, int, int | None]:
        if cursor is None:
            return now - self._first_window, None, 0, None
        try:
            data = json.loads(cursor)
            since = parse_time(data["since"])
            start_text = data.get("from")
            start = parse_time(start_text) if start_text is not None else None
            offset = data.get("offset", 0)
            total = data.get("total")
            if (
                isinstance(offset, bool)
                or not isinstance(offset, int)
                or offset < 0
                or not (total is None or (isinstance(total, int) and not isinstance(total, bool)))
            ):
                raise ValueError("bad field types")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PermanentError(f"{self.name}: unreadable orders cursor {cursor!r}") from exc
        if start is None:
            offset = 0  # an offset means something only within its run's filter
        return since, start, offset, total

    async def fetch_order(self, order_id: str) -> ChannelOrder | None:
        """One order by the channel's id, or None when it does not exist."""
        if not order_id:
            return None
        data = await self._api.get_order(order_id)
        return None if data is None else parse_order(self.name, data)

    # -- listings and levels -----------------------------------------------------------------------

    async def fetch_listings(self) -> list[ListingRef]:
        """Every inventory item with the offer pushes go to, and the quantity buyers see."""
        refs: list[ListingRef] = []
        async for item in self._inventory_items():
            sku = item.get("sku")
            if not isinstance(sku, str) or not sku:
                continue
            offers = await self._api.get_offers(sku)
            refs.append(self._listing(sku, _item_quantity(item), offers))
        return refs

    async def _inventory_items(self) -> AsyncIterator[dict[str, Any]]:
        """Every inventory item, following eBay's `next` links."""
        # The OAS calls this offset a page number; following `next` works whichever it is.
        offset: int | None = 0
        seen: set[int] = set()
        while offset is not None and offset not in seen:
            seen.add(offset)
            page = await self._api.get_inventory_items(limit=MAX_INVENTORY_LIMIT, offset=offset)
            for item in page.items:
                yield item
            offset = page.next_offset if page.items else None

    def _listing(self, sku: str, quantity: int | None, offers: list[dict[str, Any]]) -> ListingRef:
        offer = self._offer(offers)
        if offer is None:
            return ListingRef(sku, {}, "inactive", None)  # not offered on this marketplace
        ids = {"offer_id": str(offer["offerId"])}
        listing = offer.get("listing")
        if isinstance(listing, dict) and isinstance(listing.get("listingId"), str):
            ids["listing_id"] = listing["listingId"]
        if offer.get("status") != "PUBLISHED":
            return ListingRef(sku, ids, "inactive", None)
        return ListingRef(sku, ids, "listed", _shown(quantity, offer))

    def _offer(self, offers: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The SKU's fixed-price offer on our marketplace, published ones first."""
        mine = [
            offer
            for offer in offers
            if isinstance(offer.get("offerId"), str)
            and offer.get("marketplaceId", self.marketplace_id) == self.marketplace_id
            and offer.get("format", "FIXED_PRICE") == "FIXED_PRICE"
        ]
        mine.sort(key=lambda offer: offer.get("status") != "PUBLISHED")
        return mine[0] if mine else None

    async def fetch_levels(self, listings: Sequence[ListingRef]) -> dict[str, int]:
        """The quantity eBay shows buyers for each listing, by SKU."""
        skus = list(dict.fromkeys(ref.sku for ref in listings if ref.sku))
        items: dict[str, int | None] = {}
        for start in range(0, len(skus), MAX_BULK):
            for answer in await self._api.bulk_get_inventory_items(skus[start : start + MAX_BULK]):
                sku, item = answer.get("sku"), answer.get("inventoryItem")
                if answer.get("statusCode") == 200 and isinstance(sku, str):
                    items[sku] = _item_quantity(item) if isinstance(item, dict) else None
        levels: dict[str, int] = {}
        for sku, quantity in items.items():
            offer = self._offer(await self._api.get_offers(sku))
            if offer is not None and offer.get("status") == "PUBLISHED":
                level = _shown(quantity, offer)
                if level is not None:
                    levels[sku] = level
        return levels

    # -- stock -------------------------------------------------------------------------------------

    async def push_stock(self, batch: Sequence[StockPush]) -> list[PushResult]:
        """Set absolute quantities on the inventory item and its offer; one result per item.

        No compare-and-set exists: `expected` is ignored. A failure before anything landed
        raises; after that, failures become per-item results.
        """
        results: list[PushResult] = []
        latest: dict[str, tuple[StockPush, str | None]] = {}
        pushes: dict[str, list[StockPush]] = {}
        for push in batch:
            sku = push.listing.sku
            offer_id = push.listing.ids.get("offer_id") or None
            if offer_id is None and sku not in latest:
                try:
                    offer = self._offer(await self._api.get_offers(sku))
                except PermanentError as exc:
                    results.append(PushResult(sku, PushOutcome.PERMANENT, str(exc)))
                    continue
                offer_id = str(offer["offerId"]) if offer is not None else None
            elif offer_id is None:
                offer_id = latest[sku][1]
            latest[sku] = (push, offer_id)  # the last number for a SKU is the one that counts
            pushes.setdefault(sku, []).append(push)
        now = self._clock()
        skus = []
        for sku, (push, _) in latest.items():
            wait = self.revisions.wait(sku, push.quantity, now)
            if wait > 0:
                used = self.revisions.used(sku, now)
                results.extend(_paced(sku, pushes[sku], used, self.revisions.per_day, wait))
            else:
                skus.append(sku)
        chunks = [skus[start : start + MAX_BULK] for start in range(0, len(skus), MAX_BULK)]
        landed = False
        for index, chunk in enumerate(chunks):
            requests = [_price_quantity(sku, *latest[sku]) for sku in chunk]
            try:
                answers = await self._api.bulk_update_price_quantity(requests)
            except AuthError:
                raise
            except RetryableError as exc:
                if not landed:
                    raise
                # eBay is struggling: hold the remaining requests back too.
                rest = [sku for later in chunks[index:] for sku in later]
                results.extend(_failed(rest, pushes, exc))
                break
            except ConnectorError as exc:
                results.extend(_failed(chunk, pushes, exc))
                continue
            landed = True
            by_sku = _answers_by_sku(answers)
            for sku in chunk:
                outcome = _stock_result(sku, by_sku.get(sku, []))
                if outcome.outcome == PushOutcome.DONE:
                    self.revisions.spent(sku, latest[sku][0].quantity, now)
                elif outcome.outcome == PushOutcome.WAIT:
                    counted = self.revisions.used(sku, now)
                    outcome = replace(
                        outcome, retry_after=self.revisions.exhausted(sku, now),
                        message=f"{outcome.message} ({counted} revisions by storesync's count)",
                    )
                results.extend(replace(outcome, key=sku) for _ in pushes[sku])
        return results

    # -- shipments ---------------------------------------------------------------------------------

    async def push_shipment(self, shipment: ShipmentPush) -> PushResult:
        """Create one shipping fulfillment (once) for the shipment's package."""
        key, order_id = shipment.shipment_id, shipment.order_id
        try:
            order = await self._api.get_order(order_id)
            if order is None:
                return PushResult(key, PushOutcome.PERMANENT, f"no order {order_id} on eBay")
            mapped = parse_order(self.name, order)
            if mapped.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
                why = f"order {order_id} is {mapped.status}"
                return PushResult(key, PushOutcome.PERMANENT, why)
            number = shipment.tracking_number
            if number:
                for done in await self._api.get_shipping_fulfillments(order_id):
                    if done.get("shipmentTrackingNumber") == number:
                        found = done.get("fulfillmentId")
                        return PushResult(
                            key, PushOutcome.DONE, f"fulfillment {found} already on eBay"
                        )
            lines = _lines_to_ship(shipment, mapped)
            if not lines:
                return PushResult(key, PushOutcome.DONE, "eBay shows every line shipped already")
            body: dict[str, Any] = {
                "lineItems": [{"lineItemId": line, "quantity": qty} for line, qty in lines.items()],
                "shippedDate": format_time(shipment.shipped_at or self._clock()),
            }
            if shipment.carrier:
                body["shippingCarrierCode"] = shipment.carrier
            if number:
                body["trackingNumber"] = number
            fulfillment_id = await self._api.create_shipping_fulfillment(order_id, body)
            return PushResult(key, PushOutcome.DONE, f"fulfillment {fulfillment_id} created")
        except PermanentError as exc:
            return PushResult(key, PushOutcome.PERMANENT, str(exc))

    # -- webhooks ----------------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookDelivery:
        """Reject every delivery: this version polls eBay."""
        raise WebhookRejected(f"{self.name}: this version polls eBay; it takes no webhooks")

    def parse_event(self, topic: str, headers: Mapping[str, str], raw_body: bytes) -> ChannelEvent:
        """Nothing to parse: this version polls eBay."""
        raise PermanentError(f"{self.name}: this version polls eBay; it takes no webhooks")

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._api.aclose()


# -- helpers ---------------------------------------------------------------------------------------


def _write_cursor(since: datetime, start: datetime | None, offset: int, total: int | None) -> str:
    return json.dumps(
        {
            "since": format_time(since),
            "from": format_time(start) if start is not None else None,
            "offset": offset,
            "total": total,
        }
    )


def _item_quantity(item: Any) -> int | None:
    """An inventory item's availability.shipToLocationAvailability.quantity."""
    for key in ("availability", "shipToLocationAvailability", "quantity"):
        item = item.get(key) if isinstance(item, dict) else None
    return item if isinstance(item, int) and not isinstance(item, bool) else None


def _shown(quantity: int | None, offer: dict[str, Any]) -> int | None:
    """What buyers see: the smaller of the item's quantity and the offer's availableQuantity."""
    available = offer.get("availableQuantity")
    if isinstance(available, bool) or not isinstance(available, int):
        return quantity
    return available if quantity is None else min(quantity, available)


def _price_quantity(sku: str, push: StockPush, offer_id: str | None) -> dict[str, Any]:
    """One bulkUpdatePriceQuantity request: the item's quantity and its offer's, absolute."""
    quantity = max(push.quantity, 0)
    request: dict[str, Any] = {
        "sku": sku,
        "shipToLocationAvailability": {"quantity": quantity},
    }
    if offer_id:
        request["offers"] = [{"offerId": offer_id, "availableQuantity": quantity}]
    return request


def _answers_by_sku(answers: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_sku: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        sku = answer.get("sku")
        if isinstance(sku, str):
            by_sku.setdefault(sku, []).append(answer)
    return by_sku


def _stock_result(sku: str, answers: list[dict[str, Any]]) -> PushResult:
    """One SKU's outcome from its entries in `responses[]` (one per offer, or one for the SKU)."""
    if not answers:
        # Absolute writes are safe to repeat: say "again" rather than guess.
        return PushResult(sku, PushOutcome.RETRY, "missing from eBay's answer")
    failed = [a for a in answers if a.get("statusCode") != 200]
    if not failed:
        warnings = [w.describe() for a in answers for w in read_errors(a.get("warnings"))]
        return PushResult(sku, PushOutcome.DONE, "; ".join(warnings))
    errors = [e for a in failed for e in read_errors(a.get("errors"))]
    if any(is_revision_cap(e.error_id, e.message, e.long_message) for e in errors):
        return PushResult(
            sku, PushOutcome.WAIT,
            "eBay refuses more revisions of this listing today (its daily cap): the newest "
            "quantity goes out after midnight Pacific",
        )
    message = "; ".join(e.describe() for e in errors) or (
        f"eBay answered status {failed[0].get('statusCode')}"
    )
    statuses = [a.get("statusCode") for a in failed]
    transient = any(isinstance(s, int) and (s >= 500 or s == 429) for s in statuses) or (
        bool(errors) and all(e.category == "APPLICATION" for e in errors)
    )
    return PushResult(sku, PushOutcome.RETRY if transient else PushOutcome.PERMANENT, message)


def _paced(
    sku: str, pushes: Sequence[StockPush], used: int, per_day: int, wait: float
) -> list[PushResult]:
    """Results for a SKU whose listing must save its day's revisions (see revisions.py)."""
    message = (
        f"eBay allows {per_day} revisions of a listing a day and this one has had {used} "
        f"today: the next goes in {wait:.0f} s, with the newest quantity"
    )
    return [PushResult(sku, PushOutcome.WAIT, message, retry_after=wait) for _ in pushes]


def _failed(
    skus: Sequence[str], pushes: Mapping[str, list[StockPush]], exc: ConnectorError
) -> list[PushResult]:
    """Per-item results for the pushes of `skus` that a whole request failed for."""
    retry_after: float | None = None
    if isinstance(exc, RateLimited):
        outcome, retry_after = PushOutcome.RETRY, exc.retry_after
    elif isinstance(exc, ConflictError):
        outcome = PushOutcome.CONFLICT
    elif isinstance(exc, RetryableError):
        outcome = PushOutcome.RETRY
    else:
        outcome = PushOutcome.PERMANENT
    return [
        PushResult(sku, outcome, str(exc), retry_after=retry_after)
        for sku in skus
        for _ in pushes[sku]
    ]


def _lines_to_ship(shipment: ShipmentPush, order: ChannelOrder) -> dict[str, int]:
    """lineItemId -> units for this package, leaving out lines eBay shows shipped."""
    unshipped = {line.line_id: line.quantity - line.shipped for line in order.lines}
    units: Counter[str] = Counter()
    if shipment.lines:
        for line in shipment.lines:
            units[line.line_id] += line.qty
    else:  # a shipment without lines is the rest of the order
        units.update({line_id: qty for line_id, qty in unshipped.items() if qty > 0})
    # An unknown line id goes to eBay as it is: its 32200 "Invalid line item id" is the answer.
    return {
        line_id: qty
        for line_id, qty in units.items()
        if qty > 0 and unshipped.get(line_id, qty) > 0
    }

"""The Amazon connector: the `Connector` protocol over the Selling Partner API.

Orders. `getOrders` with `LastUpdatedAfter` and `LastUpdatedBefore` (reference/channel-apis.md
3.2): Amazon refuses a Before later than two minutes ago, so every run reads closed windows
[after, before] with `before = now - settle`, and `NextToken` pages go out with the same filters
again ("NextToken doesn't affect any filters", ordersV0.json). Which windows, and the JSON
cursor that says where a run stands (a resumed run reads exactly the pages not yet committed):
poll_window.py; it reads the look-back apart from the fresh window, to spare getOrders. Every
order costs one or more `getOrderItems` calls (0.5 rps, burst 30): that, not getOrders, sets how
fast a flash sale comes in.

Stock. Absolute, asynchronous, no compare-and-set: `patchListingsItem` replaces the
`fulfillment_availability` attribute with the DEFAULT (merchant-fulfilled) quantity, or, for a
batch larger than `feed_threshold`, one `JSON_LISTINGS_FEED` carries every item. ACCEPTED is
not applied (#2068, #5327 in reference/channel-apis.md 3.8): a patched item is DONE only once
a read-back shows the quantity, a fed item once the processing report has no ERROR for it, each
within a bounded wait; otherwise the item comes back as RETRY. Submissions still in flight are
remembered, so the outbox's retry of the same quantity waits on them instead of submitting again.

Shipments. One `confirmShipment` per storesync shipment (Amazon calls it a package), with a
numeric packageReferenceId derived from the shipment id, so a replay names the same package.

Amazon has no HTTP webhooks (order notifications go to SQS or EventBridge): storesync polls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from connectors import payloads
from connectors.amazon.client import (
    API_URLS,
    LWA_URL,
    AmazonClient,
    format_time,
)
from connectors.amazon.limits import UsagePlans
from connectors.amazon.orders import build_order
from connectors.amazon.poll_window import Marks, Window
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
    WebhookRejected,
)
from connectors.http import RetryPolicy, Timeouts

log = structlog.get_logger(__name__)

MAX_ORDERS_PAGE = 100  # MaxResultsPerPage: 1-100 (ordersV0.json)
SEARCH_PAGE = 20  # searchListingsItems pageSize maximum (listingsItems_2021-08-01.json)
SEARCH_IDENTIFIERS = 20  # identifiers maxItems
# A JSON_LISTINGS_FEED takes up to 25 000 messages (listings-feed-schema-v2.json), but one
# push_stock call waits for its feed's report: 1000 items keep that report small and the wait
# bounded, and at createFeed's 1 per 2 minutes that is still 500 SKUs a minute sustained.
MAX_BATCH = 1000
# Up to this many items go as patches (5 per second, burst 5: 10 s for 50); more go as a feed,
# whose createFeed (1 per 2 min) and getFeedDocument (1 per 45 s) budgets are too small to
# spend on a few items.
DEFAULT_FEED_THRESHOLD = 50
DEFAULT_SETTLE = timedelta(minutes=2)  # LastUpdatedBefore must be >= 2 minutes before now
DEFAULT_CONFIRM_TIMEOUT = timedelta(seconds=15)
DEFAULT_FEED_TIMEOUT = timedelta(seconds=60)
NOT_APPLIED_RETRY_S = 5.0  # when Amazon accepted a change but does not show it yet (a re-read)
FEED_RETRY_S = 60.0
PENDING_MAX_AGE_S = 1800.0  # after this, an unconfirmed submission is sent again
ITEMS_CACHE_SIZE = 20_000  # orders whose items are kept, newest first
PENDING_ORDER_RETRY_S = 300.0
FEED_TYPE = "JSON_LISTINGS_FEED"
FULFILLMENT_ATTRIBUTE = "fulfillment_availability"
MFN_CHANNEL = "DEFAULT"  # fulfillment_channel_code of the merchant's own stock
DEFAULT_PRODUCT_TYPE = "PRODUCT"
LISTING_DATA = ("summaries", "fulfillmentAvailability")

# Amazon's carrierCode values for the carriers merchants name most; anything else goes as
# carrierCode "Other" with carrierName (ordersV0.json PackageDetail: "Required when
# carrierCode is Other").
CARRIERS: Mapping[str, str] = {
    "ups": "UPS",
    "usps": "USPS",
    "fedex": "FedEx",
    "dhl": "DHL",
    "dhl express": "DHL",
    "royal mail": "Royal Mail",
    "canada post": "Canada Post",
    "dpd": "DPD",
    "gls": "GLS",
    "ontrac": "OnTrac",
    "amazon shipping": "Amazon Shipping",
}
_CLOSED = frozenset({"Canceled", "Unfulfillable"})
_SHIPPED = frozenset({"Shipped", "InvoiceUnconfirmed"})
_NOT_PAID = frozenset({"Pending", "PendingAvailability"})

_DEFAULT_TIMEOUTS = Timeouts()


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Submission:
    """A quantity Amazon accepted and has not been seen applying yet."""

    quantity: int
    feed_id: str | None
    at: float  # monotonic seconds
    # The listing's summaries.lastUpdatedDate read just before submitting: once it changes,
    # Amazon has processed the change, even if sales there since make the level differ.
    stamp: str | None = None


class AmazonConnector:
    """One Amazon seller account on one SP-API region."""

    capabilities = Capabilities(
        webhooks=False,
        compare_and_set=False,
        max_batch=MAX_BATCH,
        rate_model=RateModel.TOKEN_BUCKET,
    )

    def __init__(
        self,
        name: str,
        *,
        seller_id: str,
        marketplace_ids: Sequence[str],
        region: str = "na",
        api_url: str | None = None,
        lwa_url: str | None = None,
        lwa_client_id: str,
        lwa_client_secret: str,
        refresh_token: str,
        first_poll_window: timedelta,
        order_lookback: timedelta,
        settle: timedelta = DEFAULT_SETTLE,
        policy: RetryPolicy | None = None,
        page_size: int = MAX_ORDERS_PAGE,
        feed_threshold: int = DEFAULT_FEED_THRESHOLD,
        confirm_timeout: timedelta = DEFAULT_CONFIRM_TIMEOUT,
        feed_timeout: timedelta = DEFAULT_FEED_TIMEOUT,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: UsagePlans | None = None,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_ORDERS_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_ORDERS_PAGE}")
        if not marketplace_ids:
            raise ValueError("Amazon needs at least one marketplace id")
        if api_url is None and region not in API_URLS:
            raise ValueError(f"region must be one of {sorted(API_URLS)}, not {region!r}")
        self.name = name
        self.seller_id = seller_id
        self.marketplace_ids = list(marketplace_ids)
        self.api_url = api_url or API_URLS[region]
        self._first_window = first_poll_window
        self._lookback = order_lookback
        self._settle = settle
        self._page_size = page_size
        self._feed_threshold = feed_threshold
        self._confirm_timeout_s = confirm_timeout.total_seconds()
        self._feed_timeout_s = feed_timeout.total_seconds()
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        # Amazon meters the selling partner, not this object: a connector rebuilt on reload
        # takes over its predecessor's buckets (`limiter`) instead of assuming full bursts.
        self.limiter = limiter or UsagePlans(clock=monotonic, sleep=sleep)
        self._api = AmazonClient(
            api_url or API_URLS[region],
            lwa_url=lwa_url or LWA_URL,
            client_id=lwa_client_id,
            client_secret=lwa_client_secret,
            refresh_token=refresh_token,
            plans=self.limiter,
            policy=policy or RetryPolicy(),
            timeouts=timeouts,
            transport=transport,
            clock=clock,
            sleep=sleep,
        )
        self._submitted: dict[str, _Submission] = {}
        # Items of orders read lately, by (AmazonOrderId, LastUpdateDate): an order that has not
        # changed since is completed without another getOrderItems call (0.5 per second), which
        # is what keeps look-back re-reads and reconcile sweeps cheap.
        self._items: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
        self._orders_per_s: float | None = None  # in the last poll's window read whole
        self._feed_skus: dict[str, dict[int, str]] = {}  # feed id -> messageId -> SKU

    # -- orders ------------------------------------------------------------------------------------

    async def fetch_orders(
        self, cursor: str | None, *, since: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        """Yield pages of orders updated since `cursor` (None: the configured first window).

        With `since`, read everything updated from that moment instead (a reconcile sweep).
        """
        if since is not None:
            marks = Marks.start(since)
            windows = marks.plan(self._clock() - self._settle, timedelta(0))
        else:
            marks = self._read_cursor(cursor)
            if marks.window is not None:  # resume the read a crash or an error cut short
                windows = [marks.window]
            else:
                windows = marks.plan(self._clock() - self._settle, self._lookback,
                                     orders_per_s=self._orders_per_s, page_size=self._page_size)
        if not windows:
            yield OrderPage((), marks.cursor(), done=True, read_through=marks.since)
            return
        for n, window in enumerate(windows, start=1):
            read = 0
            async for orders, resume in self._read_window(window):
                read += len(orders)
                if resume is None:
                    if since is None and not window.late and window.whole:
                        seconds = (window.before - window.after).total_seconds()
                        self._orders_per_s = read / max(seconds, 1.0)
                    marks = marks.finished(window, self._lookback)
                    yield OrderPage(orders, marks.cursor(), done=n == len(windows),
                                    read_through=marks.since)
                else:
                    yield OrderPage(orders, marks.reading(resume).cursor(), done=False)

    async def _read_window(
        self, window: Window
    ) -> AsyncIterator[tuple[tuple[ChannelOrder, ...], Window | None]]:
        """The orders of one getOrders window, each batch with where to resume after it
        (None: the window is finished).

        Orders come as soon as their items are in, not a page at a time: getOrderItems is one
        call per order (0.5 a second on the default plan), so a page of 100 new orders after an
        outage would otherwise hold the first one back for minutes. Part-way through a page,
        the place to resume is that page's token and the orders of it already committed.
        """
        token, skip = window.next_token, set(window.seen)
        seen = list(window.seen)
        restarted = False
        while True:
            try:
                payload = await self._api.get_orders(self._order_params(window, token))
            except PermanentError as exc:
                if token is None or exc.status != 400 or restarted:
                    raise
                # A NextToken Amazon no longer takes (they expire): read the window again from
                # its start; orders already committed come again and dedupe drops them.
                log.warning("getOrders refused a NextToken; re-reading the window", error=str(exc))
                token, seen, restarted = None, [], True
                continue
            raw_orders = payload.get("Orders")
            if not isinstance(raw_orders, list):
                raise RetryableError(f"{self.name}: getOrders answered no Orders list")
            next_token = payload.get("NextToken") or None
            if not isinstance(next_token, str | None):
                raise RetryableError(f"{self.name}: getOrders answered a NextToken not a string")
            ready: list[ChannelOrder] = []
            for i, raw in enumerate(raw_orders, start=1):
                if isinstance(raw, dict) and raw.get("AmazonOrderId") in skip:
                    continue  # committed before the poll that read this page was cut short
                fetched = not self._has_items(raw)
                ready.append(await self._complete(raw))
                seen.append(ready[-1].external_id)
                if fetched and i < len(raw_orders):
                    yield tuple(ready), replace(window, next_token=token, seen=tuple(seen))
                    ready = []
            if next_token is None:
                yield tuple(ready), None
                return
            yield tuple(ready), replace(window, next_token=next_token, seen=())
            token, skip, seen = next_token, set(), []

    def _read_cursor(self, cursor: str | None) -> Marks:
        if cursor is None:
            return Marks.start(self._clock() - self._first_window)
        try:
            return Marks.parse(cursor, self._lookback)
        except ValueError as exc:
            raise PermanentError(f"{self.name}: unreadable orders cursor {cursor!r}") from exc

    def _order_params(self, window: Window, token: str | None) -> list[tuple[str, str | int]]:
        params: list[tuple[str, str | int]] = [
            ("MarketplaceIds", ",".join(self.marketplace_ids)),
            ("LastUpdatedAfter", format_time(window.after)),
            ("LastUpdatedBefore", format_time(window.before)),
            ("MaxResultsPerPage", self._page_size),
        ]
        if token is not None:
            params.append(("NextToken", token))
        return params

    def _has_items(self, order: Any) -> bool:
        """Whether this version of `order` has its items at hand (no getOrderItems call)."""
        return isinstance(order, dict) and items_key(order) in self._items

    async def _complete(self, order: Any) -> ChannelOrder:
        """An Order with every one of its items (getOrderItems pages by NextToken)."""
        if not isinstance(order, dict) or not isinstance(order.get("AmazonOrderId"), str):
            raise RetryableError(f"{self.name}: an Order without an AmazonOrderId")
        order_id = order["AmazonOrderId"]
        version = items_key(order)
        cached = self._items.get(version)
        if cached is not None:
            self._items.move_to_end(version)
            return build_order(self.name, order, cached)
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            payload = await self._api.get_order_items(order_id, token)
            page = payload.get("OrderItems")
            if not isinstance(page, list):
                raise RetryableError(f"{self.name}: getOrderItems answered no OrderItems list")
            items.extend(item for item in page if isinstance(item, dict))
            token = payload.get("NextToken") or None
            if not isinstance(token, str):
                built = build_order(self.name, order, items)  # raises on items it cannot read
                self._items[version] = items
                while len(self._items) > ITEMS_CACHE_SIZE:
                    self._items.popitem(last=False)
                return built

    async def fetch_order(self, order_id: str) -> ChannelOrder | None:
        """One order by its AmazonOrderId, or None when Amazon has no such order."""
        try:
            order = await self._api.get_order(order_id)
        except PermanentError as exc:
            if exc.status == 400:
                return None  # not an id Amazon could have issued (InvalidInput)
            raise
        return None if order is None else await self._complete(order)

    # -- listings and levels -----------------------------------------------------------------------

    async def fetch_listings(self) -> list[ListingRef]:
        """Every listing of the seller, with its product type and MFN quantity."""
        refs: dict[str, ListingRef] = {}
        created_after: str | None = None
        while True:
            seen, total, newest = await self._search_window(refs, created_after)
            if seen >= total or newest is None or newest == created_after:
                if seen < total:
                    log.warning(
                        "searchListingsItems stops paging at 1000 items and more were created "
                        "in the same second; some listings were not read",
                        read=len(refs),
                        total=total,
                    )
                return list(refs.values())
            # Amazon pages through at most 1000 items of one search: search again from the
            # newest creation date read (inclusive; repeats are merged by SKU).
            created_after = newest

    async def _search_window(
        self, refs: dict[str, ListingRef], created_after: str | None
    ) -> tuple[int, int, str | None]:
        """Page through one search; returns items seen, numberOfResults, newest createdDate."""
        token: str | None = None
        seen, total, newest = 0, 0, None
        while True:
            body = await self._api.search_listings(
                self.seller_id,
                self.marketplace_ids,
                included=LISTING_DATA,
                page_size=SEARCH_PAGE,
                page_token=token,
                created_after=created_after,
            )
            items = body.get("items")
            if not isinstance(items, list):
                raise RetryableError(f"{self.name}: searchListingsItems answered no items list")
            number = body.get("numberOfResults")
            total = number if isinstance(number, int) else total
            for item in items:
                ref = self._listing(item)
                if ref is None:
                    continue
                refs.setdefault(ref.sku, ref)
                created = _summary(item, self.marketplace_ids).get("createdDate")
                if isinstance(created, str):
                    newest = created if newest is None else max(newest, created)
            seen += len(items)
            pagination = body.get("pagination")
            token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not isinstance(token, str) or not token:
                return seen, total, newest

    def _listing(self, item: Any) -> ListingRef | None:
        sku = item.get("sku") if isinstance(item, dict) else None
        if not isinstance(sku, str) or not sku:
            return None
        summary = _summary(item, self.marketplace_ids)
        product_type = summary.get("productType")
        asin = summary.get("asin")
        ids = {"product_type": product_type if isinstance(product_type, str) else ""}
        if isinstance(asin, str):
            ids["asin"] = asin
        codes = _availability(item)
        if MFN_CHANNEL not in codes and codes:
            # Only Amazon's fulfilment network (AMAZON_NA/EU/JP) stocks it: Amazon's units,
            # never pushed (pushing DEFAULT would add a second offer, #2061).
            return ListingRef(sku, ids, "untracked", None)
        return ListingRef(sku, ids, "listed", codes.get(MFN_CHANNEL))

    async def fetch_levels(self, listings: Sequence[ListingRef]) -> dict[str, int]:
        """The MFN quantity Amazon shows now for each listing, by SKU."""
        return await self._read_levels([ref.sku for ref in listings])

    async def _read_levels(self, skus: Sequence[str]) -> dict[str, int]:
        return {
            sku: level
            for sku, (level, _stamp) in (await self._read_listings(skus)).items()
            if level is not None
        }

    async def _read_listings(self, skus: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
        """Each SKU's MFN quantity and its summary's lastUpdatedDate, 20 SKUs a call."""
        found: dict[str, tuple[int | None, str | None]] = {}
        included = ("summaries", "fulfillmentAvailability")
        # identifiers is a comma-separated list: a SKU holding a comma is read on its own.
        listed = [sku for sku in dict.fromkeys(skus) if "," not in sku]
        alone = [sku for sku in dict.fromkeys(skus) if "," in sku]
        for start in range(0, len(listed), SEARCH_IDENTIFIERS):
            chunk = listed[start : start + SEARCH_IDENTIFIERS]
            body = await self._api.search_listings(
                self.seller_id,
                self.marketplace_ids,
                included=included,
                page_size=SEARCH_PAGE,
                skus=chunk,
            )
            items = body.get("items")
            for item in items if isinstance(items, list) else []:
                sku = item.get("sku") if isinstance(item, dict) else None
                if isinstance(sku, str) and sku in chunk:
                    found[sku] = (_availability(item).get(MFN_CHANNEL), _updated(item))
        for sku in alone:
            item = await self._api.get_listing(self.seller_id, sku, self.marketplace_ids, included)
            if item is not None:
                found[sku] = (_availability(item).get(MFN_CHANNEL), _updated(item))
        return found

    # -- stock -------------------------------------------------------------------------------------

    async def push_stock(self, batch: Sequence[StockPush]) -> list[PushResult]:
        """Set MFN quantities, confirmed applied; one result per item, keyed by SKU.

        No compare-and-set exists: `expected` is ignored. Up to `feed_threshold` items are
        patched one by one, more go as one JSON_LISTINGS_FEED.
        """
        results: dict[str, PushResult] = {}
        pushes: list[StockPush] = []
        for push in batch:
            if push.quantity < 0:
                results[push.listing.sku] = PushResult(
                    push.listing.sku, PushOutcome.PERMANENT, "Amazon quantities are >= 0"
                )
            else:
                pushes.append(push)
        if len(pushes) > self._feed_threshold:
            results.update(await self._push_feed(pushes))
        elif pushes:
            results.update(await self._push_patches(pushes))
        return [results[push.listing.sku] for push in batch if push.listing.sku in results]

    def _in_flight(self, push: StockPush) -> _Submission | None:
        """The submission of this very quantity still awaiting confirmation, if any."""
        sent = self._submitted.get(push.listing.sku)
        if (
            sent is None
            or sent.quantity != push.quantity
            or self._monotonic() - sent.at > PENDING_MAX_AGE_S
        ):
            return None
        return sent

    async def _push_patches(self, pushes: Sequence[StockPush]) -> dict[str, PushResult]:
        results: dict[str, PushResult] = {}
        accepted: list[StockPush] = []
        fresh = [p.listing.sku for p in pushes if self._in_flight(p) is None]
        before = await self._read_listings(fresh) if fresh else {}
        for index, push in enumerate(pushes):
            sku = push.listing.sku
            if self._in_flight(push) is not None:
                accepted.append(push)  # accepted earlier: only the confirmation is missing
                continue
            try:
                answer = await self._api.patch_listing(
                    self.seller_id, sku, self.marketplace_ids, _patch_body(push)
                )
            except AuthError:
                raise
            except RetryableError as exc:
                if not accepted and not results:
                    raise
                # Amazon is struggling: hold the rest back too, confirm what was accepted.
                results.update((p.listing.sku, _failed(p, exc)) for p in pushes[index:])
                break
            except ConnectorError as exc:
                results[sku] = _failed(push, exc)
                continue
            status = answer.get("status")
            if status == "ACCEPTED":
                stamp = before.get(sku, (None, None))[1]
                self._submitted[sku] = _Submission(push.quantity, None, self._monotonic(), stamp)
                accepted.append(push)
            elif status == "INVALID":
                results[sku] = PushResult(
                    sku, PushOutcome.PERMANENT, f"Amazon: INVALID: {_issues(answer)}"
                )
            else:
                results[sku] = PushResult(
                    sku, PushOutcome.RETRY, f"Amazon answered submission status {status!r}"
                )
        shown = await self._confirm(accepted)
        for push in accepted:
            results[push.listing.sku] = self._confirmed(push, shown)
        return results

    async def _confirm(self, pushes: Sequence[StockPush]) -> dict[str, int]:
        """Read listings back until each push shows as processed, or the wait is over.

        Processed: the level shows the pushed quantity, or the listing's lastUpdatedDate moved
        since the submission (Amazon applied it, and sales there since moved the level on).
        """
        wanted = {push.listing.sku: push.quantity for push in pushes}
        shown: dict[str, int] = {}
        deadline = self._monotonic() + self._confirm_timeout_s
        delay = 0.25
        while wanted:
            left = deadline - self._monotonic()
            if left <= 0:
                break
            await self._sleep(min(delay, left))
            delay = min(delay * 2, 4.0)
            try:
                listings = await self._read_listings(list(wanted))
            except ConnectorError as exc:
                log.warning("reading levels back after a stock push failed", error=str(exc))
                break
            for sku, (level, stamp) in listings.items():
                if level is None:
                    continue
                sent = self._submitted.get(sku)
                moved = sent is not None and sent.stamp is not None and stamp not in (
                    None, sent.stamp)
                if wanted.get(sku) == level or (sku in wanted and moved):
                    shown[sku] = wanted.pop(sku)  # processed: as good as showing it
                else:
                    shown[sku] = level
        return shown

    def _confirmed(self, push: StockPush, shown: Mapping[str, int]) -> PushResult:
        sku = push.listing.sku
        level = shown.get(sku)
        if level == push.quantity:
            self._submitted.pop(sku, None)
            return PushResult(sku, PushOutcome.DONE, observed=level)
        return PushResult(
            sku,
            PushOutcome.RETRY,
            f"accepted by Amazon, not applied yet (shows {level})",
            retry_after=NOT_APPLIED_RETRY_S,
            observed=level,
        )

    async def _push_feed(self, pushes: Sequence[StockPush]) -> dict[str, PushResult]:
        feed_id = self._feed_in_flight(pushes)
        if feed_id is None:
            feed_id = await self._submit_feed(pushes)
        try:
            status, document_id = await self._await_feed(feed_id)
            if status == "DONE":
                return await self._feed_results(feed_id, document_id, pushes)
        except ConnectorError as exc:
            return {p.listing.sku: _failed(p, exc) for p in pushes}
        if status in ("FATAL", "CANCELLED"):
            self._feed_skus.pop(feed_id, None)
            for push in pushes:
                self._submitted.pop(push.listing.sku, None)
            message = f"feed {feed_id} ended {status}"
        else:
            message = f"feed {feed_id} is still {status}"
        return {
            p.listing.sku: PushResult(
                p.listing.sku, PushOutcome.RETRY, message, retry_after=FEED_RETRY_S
            )
            for p in pushes
        }

    def _feed_in_flight(self, pushes: Sequence[StockPush]) -> str | None:
        """The feed already carrying exactly these quantities (the outbox retrying a batch)."""
        feeds = {sent.feed_id if sent else None for sent in map(self._in_flight, pushes)}
        if len(feeds) == 1:
            (feed_id,) = feeds
            return feed_id
        return None

    async def _submit_feed(self, pushes: Sequence[StockPush]) -> str:
        """Upload the feed document and create the feed; errors here mean nothing landed."""
        content = json.dumps(feed_document(self.seller_id, pushes), separators=(",", ":")).encode()
        document = await self._api.create_feed_document()
        document_id, url = document.get("feedDocumentId"), document.get("url")
        if not isinstance(document_id, str) or not isinstance(url, str):
            raise RetryableError(f"{self.name}: createFeedDocument answered no id and url")
        await self._api.upload(url, content)
        created = await self._api.create_feed(FEED_TYPE, self.marketplace_ids, document_id)
        feed_id = created.get("feedId")
        if not isinstance(feed_id, str) or not feed_id:
            raise RetryableError(f"{self.name}: createFeed answered no feedId")
        now = self._monotonic()
        for push in pushes:
            self._submitted[push.listing.sku] = _Submission(push.quantity, feed_id, now)
        self._feed_skus[feed_id] = {n: p.listing.sku for n, p in enumerate(pushes, start=1)}
        return feed_id

    async def _await_feed(self, feed_id: str) -> tuple[str, str]:
        """Poll getFeed until the feed ends or the wait is over: status and result document."""
        deadline = self._monotonic() + self._feed_timeout_s
        delay = 0.25
        while True:
            feed = await self._api.get_feed(feed_id)
            status = feed.get("processingStatus")
            if not isinstance(status, str):
                raise RetryableError(f"{self.name}: getFeed answered no processingStatus")
            left = deadline - self._monotonic()
            if status in ("DONE", "FATAL", "CANCELLED") or left <= 0:
                return status, str(feed.get("resultFeedDocumentId") or "")
            await self._sleep(min(delay, left))
            delay = min(delay * 2, 8.0)

    async def _feed_results(
        self, feed_id: str, document_id: str, pushes: Sequence[StockPush]
    ) -> dict[str, PushResult]:
        """Per-item results from the feed's processing report."""
        if not document_id:
            raise RetryableError(f"feed {feed_id} is DONE without a resultFeedDocumentId")
        document = await self._api.get_feed_document(document_id)
        url, compression = document.get("url"), document.get("compressionAlgorithm")
        if not isinstance(url, str):
            raise RetryableError(f"getFeedDocument {document_id} answered no url")
        raw = await self._api.download(url, compression if isinstance(compression, str) else None)
        try:
            report = payloads.loads(raw)
        except ValueError as exc:
            raise RetryableError(f"feed {feed_id}: the processing report is not JSON") from exc
        skus = self._feed_skus.pop(feed_id, None) or {
            number: push.listing.sku for number, push in enumerate(pushes, start=1)
        }
        errors: dict[str | None, list[str]] = {}
        for number, texts in _report_errors(report).items():
            about = skus.get(number, "") if number is not None else None
            errors.setdefault(about, []).extend(texts)
        results: dict[str, PushResult] = {}
        for push in pushes:
            sku = push.listing.sku
            self._submitted.pop(sku, None)
            problems = errors.get(sku) or errors.get(None)
            if problems:
                results[sku] = PushResult(sku, PushOutcome.PERMANENT, "; ".join(problems))
            else:
                results[sku] = PushResult(sku, PushOutcome.DONE, observed=push.quantity)
        return results

    # -- shipments ---------------------------------------------------------------------------------

    async def push_shipment(self, shipment: ShipmentPush) -> PushResult:
        """confirmShipment for one package; an already confirmed package is DONE."""
        key, order_id = shipment.shipment_id, shipment.order_id
        try:
            order = await self._api.get_order(order_id)
            if order is None:
                return PushResult(key, PushOutcome.PERMANENT, f"no order {order_id} on Amazon")
            status = order.get("OrderStatus")
            if status in _CLOSED:
                return PushResult(key, PushOutcome.PERMANENT, f"order {order_id} is {status}")
            if order.get("FulfillmentChannel") == "AFN":
                return PushResult(
                    key, PushOutcome.PERMANENT, f"order {order_id} is fulfilled by Amazon (FBA)"
                )
            if status in _SHIPPED:
                return PushResult(key, PushOutcome.DONE, f"order {order_id} is {status} already")
            if status in _NOT_PAID:
                return PushResult(
                    key,
                    PushOutcome.RETRY,
                    f"order {order_id} is {status}: Amazon takes shipments once it is Unshipped",
                    retry_after=PENDING_ORDER_RETRY_S,
                )
            items = await self._package_items(shipment, order)
            if not items:
                return PushResult(key, PushOutcome.DONE, "nothing left to ship")
            marketplace = order.get("MarketplaceId")
            body = self._confirmation(shipment, items, marketplace)
            try:
                await self._api.confirm_shipment(order_id, body)
            except PermanentError as exc:
                if exc.status == 400 and "already" in str(exc).lower():
                    # A replay: Amazon has this package (or these units) confirmed.
                    return PushResult(key, PushOutcome.DONE, f"already confirmed: {exc}")
                raise
            return PushResult(key, PushOutcome.DONE)
        except PermanentError as exc:
            return PushResult(key, PushOutcome.PERMANENT, str(exc))

    async def _package_items(
        self, shipment: ShipmentPush, order: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The package's orderItems; a shipment without lines ships every unshipped unit."""
        units: Counter[str] = Counter()
        for line in shipment.lines:
            units[line.line_id] += line.qty
        if not shipment.lines:
            for order_line in (await self._complete(order)).lines:
                units[order_line.line_id] += order_line.quantity - order_line.shipped
        return [
            {"orderItemId": item_id, "quantity": quantity}
            for item_id, quantity in units.items()
            if quantity > 0
        ]

    def _confirmation(
        self, shipment: ShipmentPush, items: list[dict[str, Any]], marketplace: Any
    ) -> dict[str, Any]:
        carrier = shipment.carrier.strip()
        code = CARRIERS.get(carrier.lower())
        package: dict[str, Any] = {
            "packageReferenceId": package_reference(shipment.shipment_id),
            "carrierCode": code or "Other",
        }
        if code is None:
            package["carrierName"] = carrier or "Unknown"
        package["trackingNumber"] = shipment.tracking_number
        package["shipDate"] = format_time(shipment.shipped_at or self._clock())
        package["orderItems"] = items
        return {
            "marketplaceId": marketplace
            if isinstance(marketplace, str) and marketplace
            else self.marketplace_ids[0],
            "packageDetail": package,
        }

    # -- webhooks ----------------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookDelivery:
        """Amazon sends no HTTP webhooks: every delivery is rejected."""
        raise WebhookRejected("Amazon has no HTTP webhooks; storesync polls")

    def parse_event(self, topic: str, headers: Mapping[str, str], raw_body: bytes) -> ChannelEvent:
        """Nothing to parse: Amazon has no HTTP webhooks."""
        raise PermanentError("Amazon has no HTTP webhooks; storesync polls")

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._api.aclose()


# -- helpers ---------------------------------------------------------------------------------------


def _summary(item: Any, marketplace_ids: Sequence[str]) -> dict[str, Any]:
    """The item's summary for the first of our marketplaces that has one (else the first)."""
    summaries = item.get("summaries") if isinstance(item, dict) else None
    found = [s for s in summaries if isinstance(s, dict)] if isinstance(summaries, list) else []
    for marketplace in marketplace_ids:
        for summary in found:
            if summary.get("marketplaceId") == marketplace:
                return summary
    return found[0] if found else {}


def _updated(item: Any) -> str | None:
    """The first summary's lastUpdatedDate, as Amazon printed it."""
    summaries = item.get("summaries") if isinstance(item, dict) else None
    for summary in summaries if isinstance(summaries, list) else []:
        stamp = summary.get("lastUpdatedDate") if isinstance(summary, dict) else None
        if isinstance(stamp, str):
            return stamp
    return None


def _availability(item: Any) -> dict[str, int | None]:
    """fulfillmentAvailability as {fulfillmentChannelCode: quantity or None}."""
    entries = item.get("fulfillmentAvailability") if isinstance(item, dict) else None
    codes: dict[str, int | None] = {}
    for entry in entries if isinstance(entries, list) else []:
        code = entry.get("fulfillmentChannelCode") if isinstance(entry, dict) else None
        if isinstance(code, str):
            quantity = entry.get("quantity")
            valid = isinstance(quantity, int) and not isinstance(quantity, bool)
            codes[code] = quantity if valid else None
    return codes


def _fulfillment_patch(quantity: int) -> dict[str, Any]:
    # https://developer-docs.amazon.com/sp-api/docs/listings-items-api-v2021-08-01-use-case-guide
    # (attribute fulfillment_availability; reference/channel-apis.md 3.4)
    return {
        "op": "replace",
        "path": f"/attributes/{FULFILLMENT_ATTRIBUTE}",
        "value": [{"fulfillment_channel_code": MFN_CHANNEL, "quantity": quantity}],
    }


def _product_type(push: StockPush) -> str:
    return push.listing.ids.get("product_type") or DEFAULT_PRODUCT_TYPE


def _patch_body(push: StockPush) -> dict[str, Any]:
    """patchListingsItem's ListingsItemPatchRequest for one quantity."""
    return {"productType": _product_type(push), "patches": [_fulfillment_patch(push.quantity)]}


def feed_document(seller_id: str, pushes: Sequence[StockPush]) -> dict[str, Any]:
    """A JSON_LISTINGS_FEED (listings-feed-schema-v2.json): one PATCH message per push."""
    return {
        "header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"},
        "messages": [
            {
                "messageId": number,
                "sku": push.listing.sku,
                "operationType": "PATCH",
                "productType": _product_type(push),
                "patches": [_fulfillment_patch(push.quantity)],
            }
            for number, push in enumerate(pushes, start=1)
        ],
    }


def _report_errors(report: Any) -> dict[int | None, list[str]]:
    """ERROR issues of a processing report by messageId (None: about the whole feed)."""
    issues = report.get("issues") if isinstance(report, dict) else None
    errors: dict[int | None, list[str]] = {}
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict) or issue.get("severity") != "ERROR":
            continue
        number = issue.get("messageId")
        key = number if isinstance(number, int) and not isinstance(number, bool) else None
        text = f"{issue.get('code', 'error')}: {issue.get('message', '')}"
        errors.setdefault(key, []).append(text)
    return errors


def _issues(answer: Mapping[str, Any]) -> str:
    issues = answer.get("issues")
    texts = [
        f"{issue.get('code', '?')}: {issue.get('message', '')}"
        for issue in (issues if isinstance(issues, list) else [])
        if isinstance(issue, dict)
    ]
    return "; ".join(texts) or "no issues given"


def _failed(push: StockPush, exc: ConnectorError) -> PushResult:
    """One item's result when the request carrying it failed."""
    sku = push.listing.sku
    if isinstance(exc, RateLimited):
        return PushResult(sku, PushOutcome.RETRY, str(exc), retry_after=exc.retry_after)
    if isinstance(exc, ConflictError):
        return PushResult(sku, PushOutcome.CONFLICT, str(exc))
    if isinstance(exc, RetryableError | AuthError):
        return PushResult(sku, PushOutcome.RETRY, str(exc))
    return PushResult(sku, PushOutcome.PERMANENT, str(exc))


def package_reference(shipment_id: str) -> str:
    """A positive number naming the package: the shipment id itself when it is one."""
    # PackageReferenceId: "Only positive numeric values are supported" (ordersV0.json).
    if shipment_id.isascii() and shipment_id.isdigit() and int(shipment_id) > 0:
        return str(int(shipment_id))
    digest = hashlib.sha256(shipment_id.encode()).digest()
    return str(int.from_bytes(digest[:6], "big") + 1)  # at most 15 digits, stable


def items_key(order: dict[str, Any]) -> tuple[str, str]:
    """What an order's items are kept under: they change only with its LastUpdateDate."""
    return str(order.get("AmazonOrderId")), str(order.get("LastUpdateDate", ""))

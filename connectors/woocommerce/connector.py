"""The WooCommerce connector: the `Connector` protocol over the REST API wc/v3.

Orders. `GET /orders?modified_after=...&orderby=date&order=asc` pages by *creation* date, because
the API cannot order by modification date (docs `_orders.md`; woocommerce#35619), so page numbers
are taken over a set that changes while we read it. The cursor storesync commits is JSON,
`{"since": ISO, "page": N, "total": X-WP-Total | null}`: `page` resumes a run at the next page;
the run's last page moves `since` to the newest `date_modified_gmt` it saw, never past the moment
the run started, and each run reads from `since` minus the look-back. What instability does:

- an order that enters the set mid-run (modified now, created earlier) shifts later pages one
  place on: one order is read twice, and dedupe by version makes that free;
- an order that leaves the set mid-run (only trashing does: `status=any` excludes trash) shifts
  them back: one order can be skipped. The run notices X-WP-Total shrink and then keeps `since`
  where it was, so the next run reads the whole window again.

Stock. WooCommerce writes are absolute with no compare-and-set (woocommerce#21808): a sale that
lands between our read and our write is overwritten. The window is one request long, and the
next reconcile reads the channel's level and corrects it. Simple products go in
`POST /products/batch`, variations in `POST /products/{parent}/variations/batch`, at most 100
objects per request (more is a 413); a lone item is a plain PUT.

Shipments. Core WooCommerce has no shipment and no partial shipment: an order is `completed` or
not. A shipment adds its tracking (Shipment Tracking extension, or a customer note) and completes
the order once every unit has shipped. Units shipped by earlier partial shipments are remembered
in the order's `storesync_shipped` meta field, because nothing else in WooCommerce records them.
WooCommerce has no idempotency keys either: before adding a tracking or a note, the order's
trackings or notes are read and an existing one with the same tracking number is kept.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
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
)
from connectors.http import Limiter, NoLimit, RetryPolicy, Timeouts
from connectors.woocommerce.client import (
    MAX_PER_PAGE,
    AuthMode,
    Page,
    WooCommerceClient,
    is_id,
)
from connectors.woocommerce.webhooks import (
    format_time,
    map_status,
    parse_delivery,
    parse_order,
    verify_delivery,
)

MAX_BATCH = 100  # objects per batch request (`woocommerce_rest_batch_items_limit`), else 413
SHIPPED_META_KEY = "storesync_shipped"

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()
_CLOSED = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
_SIMPLE = ""  # the group key of products that are not variations


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WooCommerceConnector:
    """One WooCommerce store."""

    # Core WooCommerce has no rate limits; hosts and WAFs may answer 429 with Retry-After, which
    # send() honours through the limiter's pause.
    capabilities = Capabilities(
        webhooks=True, compare_and_set=False, max_batch=MAX_BATCH, rate_model=RateModel.NONE
    )

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        consumer_key: str,
        consumer_secret: str,
        webhook_secret: str | None,
        auth: AuthMode = "basic",
        shipment_tracking: bool = False,
        first_poll_window: timedelta,
        order_lookback: timedelta,
        policy: RetryPolicy = _DEFAULT_POLICY,
        limiter: Limiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        page_size: int = MAX_PER_PAGE,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> None:
        if not 1 <= page_size <= MAX_PER_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PER_PAGE}")
        self.name = name
        self._secret = webhook_secret
        self._tracking = shipment_tracking
        self._first_window = first_poll_window
        self._lookback = order_lookback
        self._clock = clock
        self._page_size = page_size
        self.limiter: Limiter = limiter or NoLimit()
        self._api = WooCommerceClient(
            api_url,
            consumer_key,
            consumer_secret,
            auth=auth,
            limiter=self.limiter,
            policy=policy,
            timeouts=timeouts,
            transport=transport,
        )

    # -- orders ------------------------------------------------------------------------------------

    async def fetch_orders(
        self, cursor: str | None, *, since: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        """Yield pages of orders modified since `cursor` (None: the configured first window).

        With `since`, read everything modified from that moment instead (a reconcile sweep).
        """
        started = self._clock()
        if since is not None:
            page, first_total = 1, None
        else:
            since, page, first_total = self._read_cursor(cursor, started)
        modified_after = format_time(since - self._lookback)
        newest: datetime | None = None
        shrank = False
        while True:
            result = await self._api.list_orders(
                modified_after=modified_after, page=page, per_page=self._page_size
            )
            orders = tuple(parse_order(self.name, item) for item in result.items)
            for order in orders:
                newest = order.updated_at if newest is None else max(newest, order.updated_at)
            if result.total is not None:
                if first_total is not None and result.total < first_total:
                    shrank = True  # an order left the set: a later one may have slid past us
                first_total = result.total if first_total is None else first_total
            if self._last_page(result, page):
                if newest is not None and not shrank:
                    # Never past the run's start (a change made while we read may be missing
                    # from what we read), never backwards.
                    since = max(since, min(newest, started))
                yield OrderPage(orders, _write_cursor(since, 1, None), done=True)
                return
            page += 1
            yield OrderPage(orders, _write_cursor(since, page, first_total), done=False)

    def _last_page(self, result: Page, page: int) -> bool:
        if not result.items:
            return True
        if result.total_pages is not None:
            return page >= result.total_pages
        return len(result.items) < self._page_size  # no headers (a proxy ate them): short page

    def _read_cursor(
        self, cursor: str | None, now: datetime
    ) -> tuple[datetime, int, int | None]:
        if cursor is None:
            return now - self._first_window, 1, None
        try:
            data = json.loads(cursor)
            since = datetime.fromisoformat(data["since"])
            page = data.get("page", 1)
            total = data.get("total")
            if (
                isinstance(page, bool)
                or not isinstance(page, int)
                or page < 1
                or not (total is None or (isinstance(total, int) and not isinstance(total, bool)))
            ):
                raise ValueError("bad field types")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PermanentError(f"{self.name}: unreadable orders cursor {cursor!r}") from exc
        # Written by us without an offset: WooCommerce's *_gmt convention.
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        return since, page, total

    async def fetch_order(self, order_id: str) -> ChannelOrder | None:
        """One order by the channel's id, or None when it does not exist."""
        if not is_id(order_id):
            return None  # WooCommerce ids are numbers: no such order can exist
        data = await self._api.get_order(order_id)
        return None if data is None else parse_order(self.name, data)

    # -- listings and levels -----------------------------------------------------------------------

    async def fetch_listings(self) -> list[ListingRef]:
        """Every product and variation with a SKU, with the ids stock pushes need."""
        refs: dict[tuple[str, str], ListingRef] = {}
        variable: list[str] = []
        async for item in self._all(lambda page: self._api.list_products(page=page)):
            ref = self._listing(item, parent=None)
            if item.get("type") == "variable":
                variable.append(str(item["id"]))
            if ref is not None:
                refs.setdefault((ref.ids["product_id"], ref.ids["variation_id"]), ref)
        for parent in variable:

            def variations(page: int, parent: str = parent) -> Awaitable[Page]:
                return self._api.list_variations(parent, page=page)

            async for item in self._all(variations):
                ref = self._listing(item, parent=parent)
                if ref is not None:
                    refs.setdefault((ref.ids["product_id"], ref.ids["variation_id"]), ref)
        return list(refs.values())

    async def _all(self, fetch: Callable[[int], Awaitable[Page]]) -> AsyncIterator[Any]:
        """Every item of a paged list; page numbers follow X-WP-TotalPages."""
        page = 1
        while True:
            result = await fetch(page)
            for item in result.items:
                if not isinstance(item, dict):
                    raise RetryableError(f"{self.name}: a list item is not a JSON object")
                yield item
            if not result.items:
                return
            if result.total_pages is not None:
                if page >= result.total_pages:
                    return
            elif len(result.items) < MAX_PER_PAGE:
                return
            page += 1

    def _listing(self, item: dict[str, Any], *, parent: str | None) -> ListingRef | None:
        item_id = item.get("id")
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise RetryableError(f"{self.name}: a product without an integer id")
        sku = item.get("sku")
        if not isinstance(sku, str) or not sku:
            return None  # storesync maps by SKU: nothing to push to
        # manage_stock is true, false, or "parent" on a variation whose stock is the parent's
        # pool (shared by its siblings): only a listing with its own stock takes pushes.
        managed = item.get("manage_stock") is True
        level = item.get("stock_quantity")
        return ListingRef(
            sku=sku,
            ids={
                "product_id": parent if parent is not None else str(item_id),
                "variation_id": str(item_id) if parent is not None else "",
            },
            status="listed" if managed else "untracked",
            level=level if managed and isinstance(level, int) and not isinstance(level, bool)
            else None,
        )

    async def fetch_levels(self, listings: Sequence[ListingRef]) -> dict[str, int]:
        """The quantity the channel shows now for each listing, by channel SKU."""
        groups = _group(listings)
        levels: dict[str, int] = {}
        for parent, refs in groups.items():
            by_id = {_item_id(ref): ref.sku for ref in refs}
            ids = sorted(by_id, key=int)
            for start in range(0, len(ids), MAX_PER_PAGE):
                chunk = ids[start : start + MAX_PER_PAGE]
                if parent == _SIMPLE:
                    page = await self._api.list_products(page=1, include=chunk)
                else:
                    page = await self._api.list_variations(parent, page=1, include=chunk)
                for item in page.items:
                    if not isinstance(item, dict):
                        continue
                    sku = by_id.get(str(item.get("id")))
                    level = item.get("stock_quantity")
                    if (
                        sku is not None
                        and item.get("manage_stock") is True
                        and isinstance(level, int)
                        and not isinstance(level, bool)
                    ):
                        levels[sku] = level
        return levels

    # -- stock -------------------------------------------------------------------------------------

    async def push_stock(self, batch: Sequence[StockPush]) -> list[PushResult]:
        """Set absolute quantities; one result per item, keyed by SKU.

        No compare-and-set exists (woocommerce#21808): `expected` is ignored, and a sale between
        our read and this write is overwritten until the next reconcile corrects it. A failure
        before anything landed raises; after that, failures become per-item results.
        """
        results: list[PushResult] = []
        pushes: list[StockPush] = []
        for push in batch:
            ids = push.listing.ids
            if ids.get("product_id"):
                if is_id(ids["product_id"]) and is_id(ids.get("variation_id") or "0"):
                    pushes.append(push)
                else:
                    results.append(PushResult(
                        push.listing.sku, PushOutcome.PERMANENT, f"not WooCommerce ids: {ids}"))
                continue
            resolved = await self._resolve(push)
            if isinstance(resolved, PushResult):
                results.append(resolved)
            else:
                pushes.append(resolved)
        requests = [
            (parent, group[start : start + MAX_BATCH])
            for parent, group in _group_pushes(pushes).items()
            for start in range(0, len(group), MAX_BATCH)
        ]
        landed = False
        for index, (parent, chunk) in enumerate(requests):
            try:
                results.extend(await self._push_chunk(parent, chunk))
            except AuthError:
                raise
            except RetryableError as exc:
                if not landed:
                    raise
                # The store is struggling: hold the remaining requests back too.
                rest = [push for _, later in requests[index:] for push in later]
                results.extend(_failed(rest, exc))
                break
            except ConnectorError as exc:
                results.extend(_failed(chunk, exc))
                continue
            landed = True
        return results

    async def _resolve(self, push: StockPush) -> StockPush | PushResult:
        """A push whose listing lacks ids, with the ids `GET /products?sku=` finds."""
        sku = push.listing.sku
        try:
            found = await self._api.products_by_sku(sku)
        except PermanentError as exc:
            return PushResult(sku, PushOutcome.PERMANENT, str(exc))
        for item in found:
            if not isinstance(item, dict) or item.get("sku") != sku:
                continue
            item_id, parent_id = item.get("id"), item.get("parent_id")
            if not isinstance(item_id, int) or isinstance(item_id, bool):
                continue
            if item.get("manage_stock") is not True:
                return PushResult(sku, PushOutcome.PERMANENT, "WooCommerce does not track it")
            is_variation = item.get("type") == "variation" and isinstance(parent_id, int)
            ids = {
                "product_id": str(parent_id) if is_variation else str(item_id),
                "variation_id": str(item_id) if is_variation else "",
            }
            listing = ListingRef(sku, ids, "listed", push.listing.level)
            return StockPush(listing, push.quantity, push.expected, push.idempotency_key)
        return PushResult(sku, PushOutcome.PERMANENT, f"no product or variation has SKU {sku!r}")

    async def _push_chunk(self, parent: str, chunk: Sequence[StockPush]) -> list[PushResult]:
        if len(chunk) == 1:
            (push,) = chunk
            if parent == _SIMPLE:
                answer = await self._api.set_product_stock(
                    push.listing.ids["product_id"], push.quantity
                )
            else:
                answer = await self._api.set_variation_stock(
                    parent, push.listing.ids["variation_id"], push.quantity
                )
            return [_stock_result(push, answer)]
        updates = [{"id": int(_item_id(p.listing)), "stock_quantity": p.quantity} for p in chunk]
        if parent == _SIMPLE:
            data = await self._api.batch_products(updates)
        else:
            data = await self._api.batch_variations(parent, updates)
        answers = data.get("update") if isinstance(data, dict) else None
        by_id = {
            str(item["id"]): item
            for item in (answers if isinstance(answers, list) else [])
            if isinstance(item, dict) and isinstance(item.get("id"), int | str)
        }
        return [_stock_result(push, by_id.get(_item_id(push.listing))) for push in chunk]

    # -- shipments ---------------------------------------------------------------------------------

    async def push_shipment(self, shipment: ShipmentPush) -> PushResult:
        """Add the tracking (once) and complete the order when nothing is left to ship."""
        key, order_id = shipment.shipment_id, shipment.order_id
        try:
            order = await self._api.get_order(order_id)
            if order is None:
                return PushResult(key, PushOutcome.PERMANENT, f"no order {order_id} in WooCommerce")
            status = order.get("status") if isinstance(order, dict) else None
            if not isinstance(status, str):
                raise RetryableError(f"{self.name}: GET /orders/{{id}} answered no status")
            if map_status(status) in _CLOSED:
                return PushResult(key, PushOutcome.PERMANENT, f"order {order_id} is {status}")
            added = await self._add_tracking_once(shipment)
            if status == "completed":
                return PushResult(key, PushOutcome.DONE, f"{added}; the order was completed")
            shipped = _recorded_shipments(order)
            if _completes(order, shipped, shipment):
                await self._api.update_order(order_id, {"status": "completed"})
                return PushResult(key, PushOutcome.DONE, f"{added}; order completed")
            if key not in shipped:
                units: Counter[str] = Counter()
                for line in shipment.lines:
                    units[line.line_id] += line.qty
                shipped[key] = dict(units)
                value = json.dumps(shipped, sort_keys=True, separators=(",", ":"))
                await self._api.update_order(
                    order_id, {"meta_data": [{"key": SHIPPED_META_KEY, "value": value}]}
                )
            # WooCommerce has no partial shipments: the order stays open until the rest ships.
            return PushResult(key, PushOutcome.DONE, f"{added}; partial shipment, order left open")
        except PermanentError as exc:
            return PushResult(key, PushOutcome.PERMANENT, str(exc))

    async def _add_tracking_once(self, shipment: ShipmentPush) -> str:
        """Add the shipment's tracking or note unless a retry already did; says which."""
        order_id, number = shipment.order_id, shipment.tracking_number
        if self._tracking and number:
            try:
                existing = await self._api.list_trackings(order_id)
            except PermanentError as exc:
                if exc.status == 404:
                    raise PermanentError(
                        "the Shipment Tracking extension does not answer at "
                        "/wp-json/wc-shipment-tracking/v3 (is it installed? else set "
                        f"shipment_tracking = false): {exc}"
                    ) from exc
                raise
            if any(isinstance(t, dict) and t.get("tracking_number") == number for t in existing):
                return "tracking already added"
            await self._api.add_tracking(order_id, self._tracking_body(shipment))
            return "tracking added"
        text = note_text(shipment)
        notes = await self._api.list_notes(order_id)
        for note in notes:
            written = note.get("note") if isinstance(note, dict) else None
            if isinstance(written, str) and (
                (number and number in written) or (not number and written.strip() == text)
            ):
                return "note already added"
        await self._api.add_note(order_id, {"note": text, "customer_note": True})
        return "note added"

    def _tracking_body(self, shipment: ShipmentPush) -> dict[str, str]:
        shipped_on = (shipment.shipped_at or self._clock()).astimezone(UTC).date().isoformat()
        body: dict[str, str] = {}
        if shipment.tracking_url:
            # The extension builds links only for its own provider list; a custom provider keeps
            # the link the merchant's carrier gave us.
            body["custom_tracking_provider"] = shipment.carrier or "Carrier"
            body["custom_tracking_link"] = shipment.tracking_url
        else:
            body["tracking_provider"] = shipment.carrier
        body["tracking_number"] = shipment.tracking_number
        body["date_shipped"] = shipped_on
        return body

    # -- webhooks ----------------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookDelivery:
        """Check X-WC-Webhook-Signature on the raw bytes; the activation ping comes back as ping."""
        return verify_delivery(self._secret, headers, raw_body)

    def parse_event(
        self, topic: str, headers: Mapping[str, str], raw_body: bytes
    ) -> ChannelEvent:
        """Order events, order references for deletions, levels for product updates."""
        return parse_delivery(self.name, topic, raw_body)

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._api.aclose()


# -- helpers ---------------------------------------------------------------------------------------


def _write_cursor(since: datetime, page: int, total: int | None) -> str:
    return json.dumps({"since": format_time(since), "page": page, "total": total})


def _item_id(listing: ListingRef) -> str:
    """The id a stock write addresses: the variation's, else the product's."""
    return listing.ids.get("variation_id") or listing.ids["product_id"]


def _group(listings: Sequence[ListingRef]) -> dict[str, list[ListingRef]]:
    """Listings by parent product id ("" for products that are not variations)."""
    groups: dict[str, list[ListingRef]] = {}
    for ref in listings:
        product_id = ref.ids.get("product_id", "")
        variation_id = ref.ids.get("variation_id", "")
        if not is_id(product_id) or (variation_id and not is_id(variation_id)):
            continue  # never listed by fetch_listings: nothing to read
        groups.setdefault(product_id if variation_id else _SIMPLE, []).append(ref)
    return groups


def _group_pushes(pushes: Sequence[StockPush]) -> dict[str, list[StockPush]]:
    groups: dict[str, list[StockPush]] = {}
    for push in pushes:
        parent = push.listing.ids["product_id"] if push.listing.ids.get("variation_id") else ""
        groups.setdefault(parent, []).append(push)
    return groups


def _stock_result(push: StockPush, answer: Any) -> PushResult:
    sku = push.listing.sku
    if not isinstance(answer, dict):
        # Absolute writes are safe to repeat: say "again" rather than guess.
        return PushResult(sku, PushOutcome.RETRY, "missing from WooCommerce's answer")
    error = answer.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return PushResult(
            sku, PushOutcome.PERMANENT, f"{code or 'error'}: {message or 'refused by WooCommerce'}"
        )
    if str(answer.get("id")) != _item_id(push.listing):
        return PushResult(sku, PushOutcome.RETRY, "WooCommerce answered for another item")
    level = answer.get("stock_quantity")
    observed = level if isinstance(level, int) and not isinstance(level, bool) else None
    return PushResult(sku, PushOutcome.DONE, observed=observed)


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


def note_text(shipment: ShipmentPush) -> str:
    """The customer note for a shipment: `Shipped with <carrier>, tracking <number> <url>`."""
    text = "Shipped"
    if shipment.carrier:
        text += f" with {shipment.carrier}"
    if shipment.tracking_number:
        text += f", tracking {shipment.tracking_number}"
    if shipment.tracking_url:
        text += f" {shipment.tracking_url}"
    return text


def _recorded_shipments(order: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Units per line of earlier partial shipments, from the order's storesync_shipped meta."""
    for meta in order.get("meta_data") or []:
        if not isinstance(meta, dict) or meta.get("key") != SHIPPED_META_KEY:
            continue
        value = meta.get("value")
        try:
            data = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return {}  # somebody edited it by hand: forget it rather than fail the shipment
        if not isinstance(data, dict):
            return {}
        return {
            str(shipment_id): {
                str(line): qty
                for line, qty in lines.items()
                if isinstance(qty, int) and not isinstance(qty, bool)
            }
            for shipment_id, lines in data.items()
            if isinstance(lines, dict)
        }
    return {}


def _completes(
    order: dict[str, Any], shipped: Mapping[str, Mapping[str, int]], shipment: ShipmentPush
) -> bool:
    """Whether this shipment, with the recorded earlier ones, ships every unit of the order."""
    if not shipment.lines:
        return True  # a shipment without lines is the whole order
    units: Counter[str] = Counter()
    for shipment_id, lines in shipped.items():
        if shipment_id != shipment.shipment_id:
            units.update(lines)
    for line in shipment.lines:
        units[line.line_id] += line.qty
    for item in order.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        quantity = item.get("quantity")
        if isinstance(quantity, int) and units[str(item.get("id"))] < quantity:
            return False
    return True

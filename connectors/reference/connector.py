"""The reference channel's connector: the `Connector` protocol over the reference API.

Orders are read with keyset pagination on (updated_at, id). The cursor storesync commits is JSON,
`{"since": ISO, "after": token | null}`: `after` resumes inside a run exactly after the last page
committed; a run that reaches the end leaves `after` null and moves `since` to the newest
`updated_at` it saw, but never past the moment the run started (Singer's signpost: a record
changed while the run was reading may be missing from it). Each new run reads from `since` minus
the look-back, so late-visible changes are read again; dedupe by version makes that free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
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
from connectors.http import Limiter, RetryPolicy, Timeouts, TokenBucket
from connectors.reference.client import ReferenceClient, format_time
from connectors.reference.webhooks import parse_delivery, parse_order, verify_delivery

MAX_BATCH = 50
MAX_PAGE_SIZE = 100
RATE_PER_S = 20.0
BURST = 40.0
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()

# The API's per-item stock statuses, and what each means for the outbox.
_STOCK_OUTCOMES = {
    "ok": PushOutcome.DONE,
    "stale": PushOutcome.CONFLICT,
    "not_found": PushOutcome.PERMANENT,
    "untracked": PushOutcome.PERMANENT,
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReferenceConnector:
    """One reference-channel account."""

    capabilities = Capabilities(
        webhooks=True, compare_and_set=True, max_batch=MAX_BATCH, rate_model=RateModel.TOKEN_BUCKET
    )

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        api_key: str,
        webhook_secret: str | None,
        first_poll_window: timedelta,
        order_lookback: timedelta,
        policy: RetryPolicy = _DEFAULT_POLICY,
        limiter: Limiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        page_size: int = MAX_PAGE_SIZE,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self.name = name
        self._secret = webhook_secret
        self._first_window = first_poll_window
        self._lookback = order_lookback
        self._clock = clock
        self._page_size = page_size
        self.limiter: Limiter = limiter or TokenBucket(
            RATE_PER_S, BURST, header_rate=LIMIT_HEADER, header_remaining=REMAINING_HEADER
        )
        self._api = ReferenceClient(
            api_url,
            api_key,
            limiter=self.limiter,
            policy=policy,
            timeouts=timeouts,
            transport=transport,
        )

    # -- orders ---------------------------------------------------------------------------------

    async def fetch_orders(
        self, cursor: str | None, *, since: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        """Yield pages of orders updated since `cursor` (None: the configured first window).

        With `since`, read everything updated from that moment instead (a reconcile sweep).
        """
        started = self._clock()
        if since is not None:
            after: str | None = None
            since = since.astimezone(UTC)
        else:
            since, after = self._read_cursor(cursor, started)
        newest: datetime | None = None
        while True:
            if after is None:
                data = await self._api.list_orders(
                    updated_since=since - self._lookback, cursor=None, limit=self._page_size
                )
            else:
                data = await self._api.list_orders(
                    updated_since=None, cursor=after, limit=self._page_size
                )
            orders, next_cursor = self._orders_page(data)
            for order in orders:
                newest = order.updated_at if newest is None else max(newest, order.updated_at)
            if next_cursor is None:
                if newest is not None:
                    # Never past the run's start, never backwards.
                    since = max(since, min(newest, started))
                yield OrderPage(orders, _write_cursor(since, None), done=True)
                return
            yield OrderPage(orders, _write_cursor(since, next_cursor), done=False)
            after = next_cursor

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

    def _orders_page(self, data: Any) -> tuple[tuple[ChannelOrder, ...], str | None]:
        if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
            raise RetryableError(f"{self.name}: GET /orders answered without an orders list")
        next_cursor = data.get("next_cursor")
        if next_cursor is not None and (not isinstance(next_cursor, str) or not next_cursor):
            raise RetryableError(f"{self.name}: GET /orders answered a bad next_cursor")
        return tuple(parse_order(self.name, item) for item in data["orders"]), next_cursor

    async def fetch_order(self, order_id: str) -> ChannelOrder | None:
        """One order by the channel's id, or None when it does not exist."""
        data = await self._api.get_order(order_id)
        return None if data is None else parse_order(self.name, data)

    # -- listings and levels -------------------------------------------------------------------

    async def fetch_listings(self) -> list[ListingRef]:
        """Every listing of the account, with the listing id pushes need."""
        refs: list[ListingRef] = []
        page: int | None = 1
        while page is not None:
            data = await self._api.list_listings(page=page, per_page=MAX_PAGE_SIZE)
            if not isinstance(data, dict) or not isinstance(data.get("listings"), list):
                raise RetryableError(f"{self.name}: GET /listings answered without a list")
            refs.extend(self._listing(item) for item in data["listings"])
            following = data.get("next_page")
            if following is not None and (
                isinstance(following, bool) or not isinstance(following, int) or following <= page
            ):
                raise RetryableError(f"{self.name}: GET /listings answered a bad next_page")
            page = following
        return refs

    def _listing(self, item: Any) -> ListingRef:
        try:
            listing_id, sku = item["id"], item["sku"]
            quantity, tracked = item["quantity"], item["tracked"]
        except (KeyError, TypeError) as exc:
            raise PermanentError(f"{self.name}: unreadable listing {item!r}") from exc
        if (
            not isinstance(listing_id, str)
            or not isinstance(sku, str)
            or isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not isinstance(tracked, bool)
        ):
            raise PermanentError(f"{self.name}: unreadable listing {item!r}")
        return ListingRef(
            sku=sku,
            ids={"listing_id": listing_id},
            status="listed" if tracked else "untracked",
            level=quantity,
        )

    async def fetch_levels(self, listings: Sequence[ListingRef]) -> dict[str, int]:
        """The quantity the channel shows now for each listing, by channel SKU."""
        # The API has no per-listing read: re-listing is 1 call per 100 listings.
        wanted_ids = {ref.ids.get("listing_id") for ref in listings} - {None}
        wanted_skus = {ref.sku for ref in listings}
        return {
            ref.sku: ref.level
            for ref in await self.fetch_listings()
            if ref.level is not None
            and (ref.ids.get("listing_id") in wanted_ids or ref.sku in wanted_skus)
        }

    # -- pushes ---------------------------------------------------------------------------------

    async def push_stock(self, batch: Sequence[StockPush]) -> list[PushResult]:
        """Push quantities, 50 per request; one result per item, keyed by SKU.

        A failure before anything was applied raises (the outbox knows what each error means);
        a failure after an earlier request went through becomes per-item results instead, so
        what did land is not reported as failed.
        """
        results = [
            PushResult(push.listing.sku, PushOutcome.PERMANENT, "no listing_id for this SKU")
            for push in batch
            if not push.listing.ids.get("listing_id")
        ]
        sendable = [push for push in batch if push.listing.ids.get("listing_id")]
        chunks = [sendable[i : i + MAX_BATCH] for i in range(0, len(sendable), MAX_BATCH)]
        for index, chunk in enumerate(chunks):
            try:
                data = await self._api.set_stock(
                    [_stock_item(push) for push in chunk], _batch_key(chunk)
                )
            except AuthError:
                raise
            except ConnectorError as exc:
                if index == 0:
                    raise
                if isinstance(exc, RetryableError):
                    # The channel is struggling: hold the remaining chunks back too.
                    results.extend(_failed([p for rest in chunks[index:] for p in rest], exc))
                    break
                results.extend(_failed(chunk, exc))
                continue
            results.extend(self._stock_results(chunk, data))
        return results

    def _stock_results(self, pushes: Sequence[StockPush], data: Any) -> list[PushResult]:
        answers = data.get("results") if isinstance(data, dict) else None
        if not isinstance(answers, list) or len(answers) != len(pushes):
            # Applied or not, the key makes a retry safe: the channel replays its answer.
            return [
                PushResult(p.listing.sku, PushOutcome.RETRY, "unreadable answer to a stock push")
                for p in pushes
            ]
        return [_stock_result(push, answer) for push, answer in zip(pushes, answers, strict=True)]

    async def push_shipment(self, shipment: ShipmentPush) -> PushResult:
        """Report one shipment; a refusal (422: too many units, a cancelled order) is PERMANENT."""
        body: dict[str, Any] = {
            "carrier": shipment.carrier,
            "tracking_number": shipment.tracking_number,
            "tracking_url": shipment.tracking_url,
        }
        if shipment.lines:
            body["lines"] = [{"line_id": ln.line_id, "quantity": ln.qty} for ln in shipment.lines]
        try:
            answer = await self._api.create_shipment(
                shipment.order_id, body, shipment.idempotency_key
            )
        except PermanentError as exc:
            return PushResult(shipment.shipment_id, PushOutcome.PERMANENT, str(exc))
        channel_id = answer.get("id") if isinstance(answer, dict) else None
        message = f"channel shipment {channel_id}" if isinstance(channel_id, str) else ""
        return PushResult(shipment.shipment_id, PushOutcome.DONE, message)

    # -- webhooks -------------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookDelivery:
        """Check the delivery's HMAC on the raw bytes; WebhookRejected if it fails."""
        return verify_delivery(self._secret, headers, raw_body)

    def parse_event(
        self, topic: str, headers: Mapping[str, str], raw_body: bytes
    ) -> ChannelEvent:
        """An order event for order.* topics; PermanentError for a body it cannot read."""
        return parse_delivery(self.name, topic, raw_body)

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._api.aclose()


def _write_cursor(since: datetime, after: str | None) -> str:
    return json.dumps({"since": format_time(since), "after": after})


def _stock_item(push: StockPush) -> dict[str, Any]:
    return {
        "listing_id": push.listing.ids["listing_id"],
        "quantity": push.quantity,
        "expected": push.expected,
    }


def _batch_key(pushes: Sequence[StockPush]) -> str:
    """One request's Idempotency-Key: the same pushes always make the same key."""
    joined = "\n".join(push.idempotency_key for push in pushes)
    return hashlib.sha256(joined.encode()).hexdigest()


def _stock_result(push: StockPush, answer: Any) -> PushResult:
    sku = push.listing.sku
    if not isinstance(answer, dict) or answer.get("listing_id") != push.listing.ids["listing_id"]:
        return PushResult(sku, PushOutcome.RETRY, "the answer does not match the pushed item")
    status = answer.get("status")
    quantity = answer.get("quantity")
    observed = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else None
    outcome = _STOCK_OUTCOMES.get(status) if isinstance(status, str) else None
    if outcome is None:
        return PushResult(sku, PushOutcome.RETRY, f"unknown item status {status!r}")
    if outcome is PushOutcome.DONE:
        return PushResult(sku, outcome, observed=observed)
    if outcome is PushOutcome.CONFLICT:
        return PushResult(
            sku, outcome, f"expected {push.expected}, channel shows {observed}", observed=observed
        )
    return PushResult(sku, outcome, f"listing {push.listing.ids['listing_id']} is {status}")


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

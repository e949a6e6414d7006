"""The reference channel's fake API, with its in-memory truth, on the shared sandbox machinery.

The API (all JSON, `Authorization: Bearer <api key>`):

    GET  /orders?updated_since=ISO&limit=N&cursor=TOKEN   keyset pages sorted by (updated_at, id)
    GET  /orders/{id}
    POST /orders/{id}/shipments                           Idempotency-Key; 201, 422
    GET  /listings?page=N&per_page=M
    POST /stock/batch                                     Idempotency-Key; <= 50 items, CAS

A token bucket (20 req/s, burst 40 unless configured) answers 429 with Retry-After, and every API
response carries X-RateLimit-Limit (requests per second) and X-RateLimit-Remaining. The channel
plays shopper through the control API (`/_control/listings`, `/_control/orders`, cancel, refund,
pay) and never oversells: an order that needs units a listing lacks is refused with 409. Orders
emit `order.created` / `order.updated` webhooks signed like Shopify's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.base import OrderStatus
from connectors.reference.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TOPIC_HEADER,
    TRIGGERED_AT_HEADER,
    sign_payload,
)
from connectors.sandbox.app import (
    JsonError,
    SandboxBase,
    json_response,
    read_json,
    read_order_lines,
)
from connectors.sandbox.clock import format_timestamp
from connectors.sandbox.ratelimit import TokenBucketRule

DEFAULT_API_KEY = "reference-key"
DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 40.0
MAX_BATCH = 50
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
DEFAULT_PRICE = Decimal("6.00")
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"

_ONE_MICROSECOND = timedelta(microseconds=1)
_CLOSED = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)


@dataclass(slots=True)
class Listing:
    """One listing of the fake channel."""

    id: str
    sku: str
    quantity: int
    tracked: bool = True
    title: str = ""
    price: Decimal = DEFAULT_PRICE

    def to_api(self) -> dict[str, Any]:
        """As `GET /listings` shows it."""
        return {"id": self.id, "sku": self.sku, "quantity": self.quantity, "tracked": self.tracked}


@dataclass(slots=True)
class Line:
    """One order line and what happened to its units."""

    id: str
    sku: str | None
    title: str
    quantity: int
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0

    @property
    def unshipped(self) -> int:
        """Units still due to ship."""
        return self.quantity - self.shipped - self.cancelled

    def to_api(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "id": self.id,
            "sku": self.sku,
            "title": self.title,
            "quantity": self.quantity,
            "shipped": self.shipped,
            "cancelled": self.cancelled,
            "returned": self.returned,
        }


@dataclass(slots=True)
class Order:
    """One order of the fake channel."""

    id: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    total: Decimal
    customer: str
    lines: list[Line]
    currency: str = "USD"
    paid: bool = True

    @property
    def sort_key(self) -> tuple[datetime, int]:
        """The keyset the orders endpoint pages on."""
        return (self.updated_at, int(self.id))

    def to_api(self) -> dict[str, Any]:
        """As the API and webhooks show it."""
        return {
            "id": self.id,
            "name": f"#{self.id}",
            "status": self.status.value,
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
            "currency": self.currency,
            "total": f"{self.total:.2f}",
            "customer": self.customer,
            "lines": [line.to_api() for line in self.lines],
        }


@dataclass(frozen=True, slots=True)
class _Replay:
    """A stored answer to an idempotent request, and the body it answered."""

    fingerprint: str
    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class _Truth:
    listings: dict[str, Listing] = field(default_factory=dict)  # by SKU
    orders: dict[str, Order] = field(default_factory=dict)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    replays: dict[tuple[str, str], _Replay] = field(default_factory=dict)
    stock_writes: int = 0
    effective_changes: int = 0
    listing_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    order_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def listing_by_id(self, listing_id: str) -> Listing | None:
        """The listing with channel id `listing_id`."""
        for listing in self.listings.values():
            if listing.id == listing_id:
                return listing
        return None


class ReferenceSandbox(SandboxBase):
    """The reference channel, faked: its API, its shopper controls, its truth."""

    kind = "reference"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.api_key = api_key
        self.limit = TokenBucketRule(rate_per_s, burst, clock=self.clock.monotonic)
        self.records = _Truth()

    # -- SandboxBase hooks ----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """The reference API and its shopper controls."""
        app.add_routes(
            [
                web.get("/orders", self._list_orders),
                web.get("/orders/{id}", self._get_order),
                web.post("/orders/{id}/shipments", self._create_shipment),
                web.get("/listings", self._list_listings),
                web.post("/stock/batch", self._stock_batch),
                web.post("/_control/listings", self._control_listings),
                web.post("/_control/orders", self._control_place_order),
                web.post("/_control/orders/{id}/cancel", self._control_cancel),
                web.post("/_control/orders/{id}/refund", self._control_refund),
                web.post("/_control/orders/{id}/pay", self._control_pay),
                web.put("/_control/config", self._control_config),
            ]
        )

    def api_middlewares(self) -> list[Middleware]:
        """Bearer auth, then the token bucket."""
        return [self._guard]

    def truth(self) -> dict[str, Any]:
        """Listings, orders, shipments and the push and limit counters."""
        t = self.records
        return {
            "listings": {
                sku: {"id": item.id, "quantity": item.quantity, "tracked": item.tracked}
                for sku, item in t.listings.items()
            },
            "orders": {order_id: order.to_api() for order_id, order in t.orders.items()},
            "shipments": list(t.shipments),
            "stock_writes": t.stock_writes,
            "effective_changes": t.effective_changes,
            "over_limit": self.limit.over_limit,
            "rate_limit": self.limit.snapshot(),
        }

    def reset_truth(self) -> None:
        """Empty catalog, no orders, counters at zero, a full bucket."""
        self.records = _Truth()
        self.limit.reset()

    def levels(self) -> dict[str, int | None]:
        """Each listing's quantity, by SKU."""
        return {sku: item.quantity for sku, item in self.records.listings.items()}

    def seed_catalog(self, levels: Mapping[str, int]) -> dict[str, str]:
        """Create or update tracked listings; returns SKU -> listing id."""
        return {sku: self.upsert_listing(sku, quantity).id for sku, quantity in levels.items()}

    def error_response(
        self, status: int, code: str, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """Injected errors look like the channel's own, rate-limit headers included."""
        response = json_response({"error": code}, status=status, headers=dict(headers))
        self._stamp_limits(response)
        return response

    # -- the shopper and the merchant, as Python calls (the control routes wrap these) -----------

    def configure(
        self,
        *,
        api_key: str | None = None,
        rate_per_s: float | None = None,
        burst: float | None = None,
    ) -> None:
        """Change the API key or the rate limit."""
        if api_key is not None:
            self.api_key = api_key
        if rate_per_s is not None or burst is not None:
            self.limit.reconfigure(rate_per_s=rate_per_s, burst=burst)

    def upsert_listing(
        self,
        sku: str,
        quantity: int,
        *,
        tracked: bool | None = None,
        title: str | None = None,
        price: Decimal | None = None,
    ) -> Listing:
        """Create a listing for `sku`, or set an existing one's quantity (and flags)."""
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        t = self.records
        listing = t.listings.get(sku)
        if listing is None:
            listing = Listing(
                id=f"L{next(t.listing_ids)}",
                sku=sku,
                quantity=quantity,
                tracked=True if tracked is None else tracked,
                title=title or _title_for(sku),
                price=DEFAULT_PRICE if price is None else price,
            )
            t.listings[sku] = listing
            return listing
        listing.quantity = quantity
        if tracked is not None:
            listing.tracked = tracked
        if title is not None:
            listing.title = title
        if price is not None:
            listing.price = price
        return listing

    def place_order(
        self,
        lines: list[tuple[str | None, int]],
        *,
        status: OrderStatus = OrderStatus.OPEN,
        customer: str = "buyer@example.com",
        currency: str = "USD",
    ) -> Order:
        """A shopper buys: check and take stock, create the order, emit `order.created`."""
        if status not in (OrderStatus.OPEN, OrderStatus.PENDING):
            raise JsonError(422, "invalid_status", "a new order is open or pending")
        if not lines:
            raise JsonError(422, "invalid_lines", "an order needs at least one line")
        t = self.records
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            if quantity <= 0:
                raise JsonError(422, "invalid_lines", "quantities must be positive")
            if sku is None:
                continue
            if sku not in t.listings:
                raise JsonError(422, "unknown_sku", f"no listing for SKU {sku!r}")
            wanted[sku] = wanted.get(sku, 0) + quantity
        for sku, quantity in wanted.items():
            listing = t.listings[sku]
            if listing.tracked and listing.quantity < quantity:
                raise JsonError(
                    409,
                    "insufficient_stock",
                    f"{sku}: {quantity} wanted, {listing.quantity} available",
                )
        for sku, quantity in wanted.items():
            listing = t.listings[sku]
            if listing.tracked:
                listing.quantity -= quantity
        now = self.clock.now()
        order_lines = []
        total = Decimal(0)
        for number, (sku, quantity) in enumerate(lines, start=1):
            item = t.listings.get(sku) if sku is not None else None
            title = item.title if item is not None else "Custom item"
            if item is not None:
                total += item.price * quantity
            order_lines.append(Line(str(number), sku, title, quantity))
        order = Order(
            id=str(next(t.order_ids)),
            status=status,
            created_at=now,
            updated_at=now,
            total=total,
            customer=customer,
            lines=order_lines,
            currency=currency,
            paid=status is OrderStatus.OPEN,
        )
        t.orders[order.id] = order
        self._emit(order, "order.created")
        return order

    def cancel_order(self, order_id: str) -> Order:
        """Cancel what has not shipped, restock it, emit `order.updated`."""
        order = self._order(order_id)
        if order.status in _CLOSED:
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status.value}")
        if order.status is OrderStatus.SHIPPED:
            raise JsonError(409, "invalid_state", f"order {order_id} has shipped")
        for line in order.lines:
            self._restock(line.sku, line.unshipped)
            line.cancelled += line.unshipped
        order.status = OrderStatus.CANCELLED
        self._changed(order)
        return order

    def refund_order(self, order_id: str, *, restock: bool) -> Order:
        """Refund the order; with `restock`, unshipped and shipped units go back on sale."""
        order = self._order(order_id)
        if order.status is OrderStatus.REFUNDED:
            raise JsonError(409, "invalid_state", f"order {order_id} is already refunded")
        for line in order.lines:
            unshipped = line.unshipped
            line.cancelled += unshipped  # refunded before shipping: removed from the order
            if restock:
                coming_back = line.shipped - line.returned
                line.returned += coming_back
                self._restock(line.sku, unshipped + coming_back)
        order.status = OrderStatus.REFUNDED
        self._changed(order)
        return order

    def pay_order(self, order_id: str) -> Order:
        """A pending order is paid: it becomes open."""
        order = self._order(order_id)
        if order.paid or order.status in _CLOSED:
            raise JsonError(409, "invalid_state", f"order {order_id} is not awaiting payment")
        order.paid = True
        self._recompute(order)
        self._changed(order)
        return order

    # -- internals ------------------------------------------------------------------------------

    def _order(self, order_id: str) -> Order:
        order = self.records.orders.get(order_id)
        if order is None:
            raise JsonError(404, "not_found", f"no order {order_id}")
        return order

    def _restock(self, sku: str | None, units: int) -> None:
        listing = self.records.listings.get(sku) if sku is not None else None
        if listing is not None and listing.tracked and units > 0:
            listing.quantity += units

    def _recompute(self, order: Order) -> None:
        if order.status in _CLOSED:
            return
        due = sum(line.quantity - line.cancelled for line in order.lines)
        shipped = sum(line.shipped for line in order.lines)
        if due > 0 and shipped >= due:
            order.status = OrderStatus.SHIPPED
        elif shipped > 0:
            order.status = OrderStatus.PARTIALLY_SHIPPED
        else:
            order.status = OrderStatus.OPEN if order.paid else OrderStatus.PENDING

    def _changed(self, order: Order) -> None:
        """Bump the version and tell the webhook subscriber."""
        # Strictly later than the last version, even when the clock has not moved (a manual
        # clock, or two changes in one microsecond): updated_at is the order's version.
        order.updated_at = max(self.clock.now(), order.updated_at + _ONE_MICROSECOND)
        self._emit(order, "order.updated")

    def _emit(self, order: Order, topic: str) -> None:
        body = json.dumps(order.to_api(), separators=(",", ":")).encode()
        delivery_id = self.new_delivery_id()
        headers = {
            "Content-Type": "application/json",
            TOPIC_HEADER: topic,
            DELIVERY_HEADER: delivery_id,
            TRIGGERED_AT_HEADER: self.now_text(),
            SIGNATURE_HEADER: sign_payload(self.webhook_secret, body),
        }
        self.emit_webhook(topic, body, headers, delivery_id)

    def _stamp_limits(self, response: web.StreamResponse) -> None:
        response.headers[LIMIT_HEADER] = _number_text(self.limit.rate_per_s)
        response.headers[REMAINING_HEADER] = str(math.floor(self.limit.remaining()))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        expected = f"Bearer {self.api_key}".encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(expected, given):
            response = json_response({"error": "unauthorized"}, status=401)
            self._stamp_limits(response)
            return response
        decision = self.limit.check(1.0)
        if not decision.allowed:
            retry_after = max(math.ceil(decision.retry_after_s), 1)
            limited = json_response(
                {"error": "rate_limited"}, status=429, headers={"Retry-After": str(retry_after)}
            )
            self._stamp_limits(limited)
            return limited
        try:
            answer = await handler(request)
        except web.HTTPException as exc:
            self._stamp_limits(exc)
            raise
        self._stamp_limits(answer)
        return answer

    # -- API handlers ---------------------------------------------------------------------------

    async def _list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        since = _query_time(query.get("updated_since"))
        limit = _query_int(query.get("limit"), "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        after = _decode_cursor(query["cursor"]) if query.get("cursor") else None
        candidates = sorted(
            (
                order
                for order in self.records.orders.values()
                if (since is None or order.updated_at >= since)
                and (after is None or order.sort_key > after)
            ),
            key=lambda order: order.sort_key,
        )
        page = candidates[:limit]
        more = len(candidates) > limit
        return json_response(
            {
                "orders": [order.to_api() for order in page],
                "next_cursor": _encode_cursor(page[-1]) if more else None,
            }
        )

    async def _get_order(self, request: web.Request) -> web.Response:
        return json_response(self._order(request.match_info["id"]).to_api())

    async def _create_shipment(self, request: web.Request) -> web.Response:
        order = self._order(request.match_info["id"])
        body = await read_json(request)
        scope = f"shipments:{order.id}"
        replayed = self._replay(request, scope, body)
        if replayed is not None:
            return replayed
        if not isinstance(body, dict):
            raise JsonError(400, "invalid_body", "expected a JSON object")
        carrier = _optional_text(body, "carrier")
        tracking_number = _optional_text(body, "tracking_number")
        tracking_url = _optional_text(body, "tracking_url")
        if order.status in _CLOSED:
            raise JsonError(422, "order_closed", f"order {order.id} is {order.status.value}")
        units = self._shipment_units(order, body.get("lines"))
        for line in order.lines:
            line.shipped += units.get(line.id, 0)
        self._recompute(order)
        t = self.records
        shipment = {
            "id": f"shp_{len(t.shipments) + 1}",
            "order_id": order.id,
            "carrier": carrier,
            "tracking_number": tracking_number,
            "tracking_url": tracking_url,
            "lines": [{"line_id": line_id, "quantity": qty} for line_id, qty in units.items()],
            "created_at": self.now_text(),
        }
        t.shipments.append(shipment)
        self._changed(order)
        self._remember(request, scope, body, 201, shipment)
        return json_response(shipment, status=201)

    def _shipment_units(self, order: Order, lines: Any) -> dict[str, int]:
        """Units to ship per line id: the lines asked for, or everything still unshipped."""
        by_id = {line.id: line for line in order.lines}
        if not lines:
            units = {line.id: line.unshipped for line in order.lines if line.unshipped > 0}
            if not units:
                raise JsonError(422, "nothing_to_ship", f"order {order.id} has nothing left")
            return units
        if not isinstance(lines, list):
            raise JsonError(400, "invalid_body", "lines must be a list")
        units = {}
        for item in lines:
            if not isinstance(item, dict) or not isinstance(item.get("line_id"), str):
                raise JsonError(400, "invalid_body", "each line needs a line_id string")
            quantity = item.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
                raise JsonError(400, "invalid_body", "each line needs a positive quantity")
            line_id = item["line_id"]
            if line_id not in by_id:
                raise JsonError(422, "unknown_line", f"order {order.id} has no line {line_id}")
            units[line_id] = units.get(line_id, 0) + quantity
        for line_id, quantity in units.items():
            left = by_id[line_id].unshipped
            if quantity > left:
                raise JsonError(
                    422,
                    "too_many_units",
                    f"line {line_id}: {quantity} units requested, {left} left to ship",
                )
        return units

    async def _list_listings(self, request: web.Request) -> web.Response:
        page = _query_int(request.query.get("page"), "page", 1, 1, 1_000_000)
        per_page = _query_int(
            request.query.get("per_page"), "per_page", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE
        )
        listings = sorted(self.records.listings.values(), key=lambda item: int(item.id[1:]))
        start = (page - 1) * per_page
        chunk = listings[start : start + per_page]
        more = len(listings) > start + per_page
        return json_response(
            {"listings": [item.to_api() for item in chunk], "next_page": page + 1 if more else None}
        )

    async def _stock_batch(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        replayed = self._replay(request, "stock", body)
        if replayed is not None:
            return replayed
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise JsonError(400, "invalid_body", 'expected {"items": [...]}')
        if len(items) > MAX_BATCH:
            raise JsonError(413, "too_many_items", f"at most {MAX_BATCH} items per batch")
        checked = [_stock_item(index, item) for index, item in enumerate(items)]
        t = self.records
        results: list[dict[str, Any]] = []
        for listing_id, quantity, expected in checked:
            listing = t.listing_by_id(listing_id)
            if listing is None:
                results.append({"listing_id": listing_id, "status": "not_found", "quantity": None})
                continue
            status = "ok"
            if not listing.tracked:
                status = "untracked"
            elif expected is not None and expected != listing.quantity:
                status = "stale"  # compare-and-set: the caller's view is out of date
            else:
                t.stock_writes += 1
                if quantity != listing.quantity:
                    t.effective_changes += 1
                listing.quantity = quantity
            results.append(
                {"listing_id": listing_id, "status": status, "quantity": listing.quantity}
            )
        answer = {"results": results}
        self._remember(request, "stock", body, 200, answer)
        return json_response(answer)

    def _replay(self, request: web.Request, scope: str, body: Any) -> web.Response | None:
        """The stored answer for a repeated Idempotency-Key, or 422 if the body differs."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return None
        stored = self.records.replays.get((scope, key))
        if stored is None:
            return None
        if stored.fingerprint != _fingerprint(body):
            raise JsonError(
                422, "idempotency_key_reused", "this Idempotency-Key was used with another body"
            )
        return json_response(stored.body, status=stored.status)

    def _remember(
        self, request: web.Request, scope: str, body: Any, status: int, answer: dict[str, Any]
    ) -> None:
        key = request.headers.get("Idempotency-Key")
        if key:
            self.records.replays[(scope, key)] = _Replay(_fingerprint(body), status, answer)

    # -- control handlers -----------------------------------------------------------------------

    async def _control_listings(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        items = body.get("listings") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise JsonError(400, "invalid_body", 'expected {"listings": [...]}')
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
                raise JsonError(400, "invalid_body", "each listing needs a sku string")
            quantity = item.get("quantity", 0)
            tracked = item.get("tracked")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                raise JsonError(400, "invalid_body", "quantity must be a non-negative integer")
            if tracked is not None and not isinstance(tracked, bool):
                raise JsonError(400, "invalid_body", "tracked must be true or false")
            price = item.get("price")
            listing = self.upsert_listing(
                item["sku"],
                quantity,
                tracked=tracked,
                title=item.get("title") if isinstance(item.get("title"), str) else None,
                price=Decimal(str(price)) if isinstance(price, int | float | str) else None,
            )
            out.append({"sku": listing.sku, **listing.to_api()})
        return json_response({"listings": out})

    async def _control_place_order(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        lines = read_order_lines(body)
        status_text = body.get("status", "open")
        if status_text not in ("open", "pending"):
            raise JsonError(400, "invalid_body", "status must be open or pending")
        customer = body.get("customer", "buyer@example.com")
        if not isinstance(customer, str):
            raise JsonError(400, "invalid_body", "customer must be a string")
        order = self.place_order(lines, status=OrderStatus(status_text), customer=customer)
        return json_response(order.to_api(), status=201)

    async def _control_cancel(self, request: web.Request) -> web.Response:
        return json_response(self.cancel_order(request.match_info["id"]).to_api())

    async def _control_refund(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        restock = body.get("restock", False) if isinstance(body, dict) else None
        if not isinstance(restock, bool):
            raise JsonError(400, "invalid_body", 'expected {"restock": true|false}')
        return json_response(self.refund_order(request.match_info["id"], restock=restock).to_api())

    async def _control_pay(self, request: web.Request) -> web.Response:
        return json_response(self.pay_order(request.match_info["id"]).to_api())

    async def _control_config(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict) or set(body) - {"api_key", "rate_per_s", "burst"}:
            raise JsonError(400, "invalid_body", "keys: api_key, rate_per_s, burst")
        api_key = body.get("api_key")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise JsonError(400, "invalid_body", "api_key must be a non-empty string")
        numbers = {}
        for name in ("rate_per_s", "burst"):
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise JsonError(400, "invalid_body", f"{name} must be a positive number")
            numbers[name] = float(value)
        self.configure(api_key=api_key, **numbers)
        return json_response(
            {"api_key_set": True, "rate_limit": self.limit.snapshot()},
        )


def _title_for(sku: str) -> str:
    """A readable default title: MUG -> Mug, TEA-CUP -> Tea cup."""
    return sku.replace("-", " ").replace("_", " ").capitalize()


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fingerprint(body: Any) -> str:
    # Same JSON, same request: key order and whitespace do not make a body different.
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _optional_text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise JsonError(400, "invalid_body", f"{key} must be a string")
    return value


def _stock_item(index: int, item: Any) -> tuple[str, int, int | None]:
    if not isinstance(item, dict):
        raise JsonError(400, "invalid_item", f"items[{index}] must be an object")
    listing_id, quantity, expected = (
        item.get("listing_id"),
        item.get("quantity"),
        item.get("expected"),
    )
    if not isinstance(listing_id, str):
        raise JsonError(400, "invalid_item", f"items[{index}].listing_id must be a string")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise JsonError(400, "invalid_item", f"items[{index}].quantity must be an integer >= 0")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise JsonError(400, "invalid_item", f"items[{index}].expected must be an integer or null")
    return listing_id, quantity, expected


def _query_int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise JsonError(400, f"invalid_{name}", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise JsonError(400, f"invalid_{name}", f"{name} must be between {low} and {high}")
    return value


def _query_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise JsonError(400, "invalid_updated_since", "updated_since must be ISO 8601") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _encode_cursor(order: Order) -> str:
    raw = json.dumps({"u": format_timestamp(order.updated_at), "i": order.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return datetime.fromisoformat(data["u"]).astimezone(UTC), int(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise JsonError(400, "invalid_cursor", "cursor is not one this API issued") from None

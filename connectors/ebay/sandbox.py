"""A fake eBay seller account: the identity, Sell Fulfillment and Sell Inventory endpoints storesync
uses, eBay's daily call quotas, and a shopper's controls.

The API (facts and sources: reference/channel-apis.md section 4; shapes from eBay's OAS)::

    POST /identity/v1/oauth2/token          refresh-token grant -> user token (expires_in 7200)
    GET  /sell/fulfillment/v1/order?filter&limit&offset&orderIds         getOrders
    GET  /sell/fulfillment/v1/order/{orderId}                            getOrder
    GET  /sell/fulfillment/v1/order/{orderId}/shipping_fulfillment       getShippingFulfillments
    POST /sell/fulfillment/v1/order/{orderId}/shipping_fulfillment       201 + Location
    GET  /sell/fulfillment/v1/order/{orderId}/shipping_fulfillment/{fulfillmentId}
    GET  /sell/inventory/v1/inventory_item?limit&offset                  getInventoryItems
    GET  /sell/inventory/v1/inventory_item/{sku}                         getInventoryItem
    POST /sell/inventory/v1/bulk_get_inventory_item      {requests: [{sku}]}, at most 25
    GET  /sell/inventory/v1/offer?sku&marketplace_id                     getOffers
    POST /sell/inventory/v1/bulk_update_price_quantity   {requests: [...]}, at most 25

Auth: the token endpoint takes HTTP Basic `client_id:client_secret` (DEFAULT_CLIENT_ID and
DEFAULT_CLIENT_SECRET) and the form `grant_type=refresh_token&refresh_token=<api_key>&scope=..`;
anything else is an OAuth error (`invalid_client` 401, `invalid_grant`, `invalid_scope`,
`unsupported_grant_type` 400). API calls need `Authorization: Bearer <user token>` (401
errorId 1001 otherwise, also once the token expired by the sandbox clock) and
`X-EBAY-C-MARKETPLACE-ID` (400 otherwise: errorId 25709 on Inventory, 32600 on Fulfillment,
the sandbox's choice). Errors are eBay's `{"errors": [{errorId, domain, category, message,
longMessage}]}`; injected faults answer 429 as errorId 2001 (ACCESS, "Too many requests") and
5xx as errorId 2003 (ACCESS, APPLICATION, "Internal error").

getOrders parses the filter for real: `creationdate:[a..b]`, `lastmodifieddate:[a..b]` (either
end may be left open, `[a..]`), `orderfulfillmentstatus:{NOT_STARTED|IN_PROGRESS}` or
`{FULFILLED|IN_PROGRESS}`; with both dates only creationdate is used; a start more than 90
days back is 30830; bad names 30700, bad values 30800, bad dates 30810, a missing start 30820,
start after end 30840, dates in the future 30850, offset 31000, limit 31100, more than 50
orderIds 30900. The brackets and braces must arrive percent-encoded, as eBay's note demands
(`strict_encoding`, on by default): a raw `[` is 30800. `limit` is at most 200: the OAS says
1000, sellers report errors above 200 (openlinker-project/openlinker#2880) [C], knob
`max_orders_limit`. eBay does not document the order of the result; the sandbox lists newest
creationDate first (`order_sort`: "newest_first" or "oldest_first"). Pages carry href, total,
limit, offset, and next/prev when there is such a page. getOrders returns
`cancelStatus.cancelRequests` always empty; getOrder fills it in.

Shipping fulfillments validate line item ids (32200), quantities (32600: at most the units not
shipped yet), the tracking number and carrier (both or neither, 32300) and the shipped date
(32500). Per the OAS the fulfillment id is the tracking number (without one, an arbitrary
number); a second fulfillment with the same tracking number on one order is refused (32300,
the sandbox's choice). Fulfilling lines moves lineItemFulfillmentStatus and
orderFulfillmentStatus (NOT_STARTED, IN_PROGRESS, FULFILLED).

Inventory: an item's `shipToLocationAvailability.quantity` and its offer's `availableQuantity`
are kept apart; buyers see the smaller. bulkUpdatePriceQuantity refuses more than 25 requests
(400, 25002) and answers per request (one entry per offer, or one for the SKU alone) with
statusCode, sku, offerId and errors: an unknown SKU (25702) or a foreign offer fails alone,
the others apply; the HTTP status is 200 when all succeeded, else 207. A published offer takes
at most 250 revisions per Pacific day (`revision_cap`). getInventoryItems' `offset` is a page
number, as the OAS says (`inventory_offset`: "pages" or "items"), with `next` links to follow.

Quotas: calls are counted per API (identity, fulfillment, inventory) per day, resetting at
midnight Pacific by the sandbox clock; over a limit the answer is 429 errorId 2001 (no
Retry-After: eBay's daily quota names none) and counts in `over_limit`.

The control API (no auth) plays shopper and merchant::

    POST /_control/listings  {"listings": [{"sku", "quantity", "title"?, "price"?,
                              "published"?, "offer_quantity"?}]}   create or set (both numbers)
    POST /_control/orders    {"lines": [{"sku", "quantity"}], "status"?: open|pending, "buyer"?}
                             409 insufficient_stock when buyers cannot see that many
    POST /_control/orders/{id}/cancel         cancelState CANCELED, unshipped units back
    POST /_control/orders/{id}/request_cancel a buyer's cancel request (cancelState IN_PROGRESS)
    POST /_control/orders/{id}/refund         {"restock"?: bool}: FULLY_REFUNDED
    POST /_control/orders/{id}/pay            PENDING -> PAID
    POST /_control/tokens/revoke              every user token stops working (401)
    PUT  /_control/config  {"limits": bool, "daily_limits": {api: n}, "api_key",
                            "max_orders_limit", "order_sort", "inventory_offset",
                            "strict_encoding", "revision_cap", "token_lifetime_s"}

Every change to an order sets its lastModifiedDate to the sandbox clock (at least 1 ms after
the previous one, so versions never tie).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.ebay.wire import (
    FULFILLMENT,
    INVENTORY,
    MARKETPLACE_HEADER,
    SCOPES,
    TOKEN_PATH,
    encode_filter,
    error_body,
    error_entry,
    format_time,
    parse_time,
)
from connectors.sandbox.app import (
    JsonError,
    SandboxBase,
    json_response,
    read_json,
    read_order_lines,
)

DEFAULT_CLIENT_ID = "storesync-sandbox-PRD-5f3a9c2e1-b7d04e6a"  # eBay's App ID
DEFAULT_CLIENT_SECRET = "PRD-f3a9c2e1b7d0-4e6a-4c1b-9d2e-sandbox"  # eBay's Cert ID
DEFAULT_REFRESH_TOKEN = "v^1.1#i^1#r^1#f^0#p^3#I^3#t^storesync-sandbox-refresh-token"
DEFAULT_MARKETPLACE = "EBAY_US"
SELLER_ID = "storesync_sandbox_seller"
CURRENCY = "USD"
DEFAULT_PRICE = Decimal("9.99")
MERCHANT_LOCATION = "warehouse-1"

TOKEN_LIFETIME_S = 7_200  # "User tokens typically expire within two hours"
MAX_ORDERS_LIMIT = 200
DEFAULT_ORDERS_LIMIT = 50
MAX_ORDER_IDS = 50
MAX_INVENTORY_LIMIT = 100
MAX_BULK = 25
FILTER_WINDOW = timedelta(days=90)
REVISION_CAP = 250
# Default daily limits (https://developer.ebay.com/develop/get-started/api-call-limits;
# refresh-token grants: https://developer.ebay.com/api-docs/static/oauth-rate-limits.html).
DAILY_LIMITS: Mapping[str, int] = {
    "identity": 50_000,
    "fulfillment": 100_000,
    "inventory": 2_000_000,
}
PACIFIC = ZoneInfo("America/Los_Angeles")
MARKETPLACES = frozenset(
    {"EBAY_US", "EBAY_MOTORS_US", "EBAY_CA", "EBAY_GB", "EBAY_AU", "EBAY_IE", "EBAY_DE",
     "EBAY_AT", "EBAY_CH", "EBAY_FR", "EBAY_IT", "EBAY_ES", "EBAY_NL", "EBAY_BE", "EBAY_PL"}
)  # fmt: skip
FULFILLMENT_STATUS_SETS = (
    frozenset({"NOT_STARTED", "IN_PROGRESS"}),
    frozenset({"FULFILLED", "IN_PROGRESS"}),
)
ORDER_SORTS = ("newest_first", "oldest_first")
INVENTORY_OFFSETS = ("pages", "items")

_FULFILLMENT_DOMAIN = "API_FULFILLMENT"
_INVENTORY_DOMAIN = "API_INVENTORY"
_ONE_MS = timedelta(milliseconds=1)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")
_ORDER_ID = re.compile(r"\d{2}-\d{5}-\d{5}|\d+-\d+")
_RAW_FILTER_CHARS = frozenset("[]{}|")


class EbayError(web.HTTPException):
    """An eBay error answered as `{"errors": [...]}`; raise it from handlers."""

    def __init__(
        self,
        status: int,
        error_id: int,
        domain: str,
        message: str,
        *,
        category: str = "REQUEST",
        long_message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status  # HTTPException reads the status from this attribute
        body = error_body(error_id, domain, category, message, long_message=long_message)
        super().__init__(
            text=_dumps(body),
            content_type="application/json",
            headers=dict(headers) if headers else None,
        )
        self.error_id = error_id


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _fulfillment_error(status: int, error_id: int, message: str) -> EbayError:
    return EbayError(status, error_id, _FULFILLMENT_DOMAIN, message)


def _inventory_error(status: int, error_id: int, message: str) -> EbayError:
    return EbayError(status, error_id, _INVENTORY_DOMAIN, message)


def _oauth_error(status: int, code: str, description: str) -> web.Response:
    # The identity endpoint speaks RFC 6749 errors, not eBay's errors array.
    return json_response({"error": code, "error_description": description}, status=status)


def _ms(moment: datetime) -> datetime:
    """A moment truncated to milliseconds, the precision eBay shows."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _amount(value: Decimal) -> dict[str, str]:
    return {"value": f"{value:.2f}", "currency": CURRENCY}


# -- the account's records -------------------------------------------------------------------------


@dataclass(slots=True)
class Offer:
    """A SKU's fixed-price offer on one marketplace; published offers are live listings."""

    offer_id: str
    sku: str
    marketplace_id: str
    available_quantity: int
    price: Decimal
    listing_id: str
    published: bool = True
    sold: int = 0

    def to_api(self) -> dict[str, Any]:
        """The EbayOfferDetailsWithAll shape."""
        data: dict[str, Any] = {
            "offerId": self.offer_id,
            "sku": self.sku,
            "marketplaceId": self.marketplace_id,
            "format": "FIXED_PRICE",
            "availableQuantity": self.available_quantity,
            "listingDuration": "GTC",
            "merchantLocationKey": MERCHANT_LOCATION,
            "categoryId": "20625",
            "pricingSummary": {"price": _amount(self.price)},
            "status": "PUBLISHED" if self.published else "UNPUBLISHED",
        }
        if self.published:
            data["listing"] = {
                "listingId": self.listing_id,
                "listingStatus": "ACTIVE",
                "soldQuantity": self.sold,
            }
        return data


@dataclass(slots=True)
class Item:
    """An inventory item: the seller's SKU and its ship-to-home quantity."""

    sku: str
    quantity: int
    title: str
    offers: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        """The InventoryItemWithSkuLocaleGroupid shape."""
        return {
            "sku": self.sku,
            "locale": "en_US",
            "condition": "NEW",
            "product": {"title": self.title},
            "availability": {"shipToLocationAvailability": {"quantity": self.quantity}},
        }


@dataclass(slots=True)
class Line:
    """One order line item."""

    line_id: str
    sku: str | None
    title: str
    quantity: int
    price: Decimal
    legacy_item_id: str
    shipped: int = 0

    @property
    def status(self) -> str:
        """lineItemFulfillmentStatus."""
        if self.shipped >= self.quantity:
            return "FULFILLED"
        return "IN_PROGRESS" if self.shipped > 0 else "NOT_STARTED"

    def to_api(self, marketplace_id: str) -> dict[str, Any]:
        """The LineItem shape (the fields a seller tool reads)."""
        cost = self.price * self.quantity
        data: dict[str, Any] = {
            "lineItemId": self.line_id,
            "legacyItemId": self.legacy_item_id,
            "title": self.title,
            "quantity": self.quantity,
            "lineItemCost": _amount(cost),
            "total": _amount(cost),
            "soldFormat": "FIXED_PRICE",
            "listingMarketplaceId": marketplace_id,
            "purchaseMarketplaceId": marketplace_id,
            "lineItemFulfillmentStatus": self.status,
            "appliedPromotions": [],
            "taxes": [],
            "refunds": [],
        }
        if self.sku is not None:
            data["sku"] = self.sku
        return data


@dataclass(slots=True)
class Fulfillment:
    """One package: its lines, carrier and tracking number."""

    fulfillment_id: str
    lines: list[tuple[str, int]]
    shipped_date: datetime
    carrier: str | None
    tracking: str | None

    def to_api(self) -> dict[str, Any]:
        """The ShippingFulfillment shape."""
        data: dict[str, Any] = {
            "fulfillmentId": self.fulfillment_id,
            "lineItems": [{"lineItemId": line, "quantity": qty} for line, qty in self.lines],
            "shippedDate": format_time(self.shipped_date),
        }
        if self.carrier is not None:
            data["shippingCarrierCode"] = self.carrier
        if self.tracking is not None:
            data["shipmentTrackingNumber"] = self.tracking
        return data


@dataclass(slots=True)
class Order:
    """An order that completed checkout."""

    order_id: str
    legacy_order_id: str
    sales_record: str
    created: datetime
    modified: datetime
    buyer: str
    marketplace_id: str
    lines: list[Line]
    payment_status: str = "PAID"
    cancel_state: str = "NONE_REQUESTED"
    cancelled: datetime | None = None
    cancel_requests: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    fulfillments: list[Fulfillment] = field(default_factory=list)

    @property
    def fulfillment_status(self) -> str:
        """orderFulfillmentStatus, from the lines."""
        if all(line.status == "FULFILLED" for line in self.lines):
            return "FULFILLED"
        return "IN_PROGRESS" if any(line.shipped for line in self.lines) else "NOT_STARTED"

    def total(self) -> Decimal:
        """What the buyer paid."""
        return sum((line.price * line.quantity for line in self.lines), Decimal("0"))

    def to_api(self, *, base_url: str, full: bool) -> dict[str, Any]:
        """The Order shape; getOrders (`full` False) leaves cancelRequests empty, as eBay does."""
        total = _amount(self.total())
        cancel: dict[str, Any] = {
            "cancelState": self.cancel_state,
            "cancelRequests": list(self.cancel_requests) if full else [],
        }
        if self.cancelled is not None:
            cancel["cancelledDate"] = format_time(self.cancelled)
        payment: dict[str, Any] = {
            "paymentMethod": "EBAY",
            "paymentStatus": "PAID" if self.payment_status != "PENDING" else "PENDING",
            "amount": total,
        }
        if self.payment_status != "PENDING":
            payment["paymentDate"] = format_time(self.created)
        base = f"{base_url}{FULFILLMENT}/order/{self.order_id}/shipping_fulfillment"
        return {
            "orderId": self.order_id,
            "legacyOrderId": self.legacy_order_id,
            "creationDate": format_time(self.created),
            "lastModifiedDate": format_time(self.modified),
            "orderFulfillmentStatus": self.fulfillment_status,
            "orderPaymentStatus": self.payment_status,
            "sellerId": SELLER_ID,
            "buyer": {"username": self.buyer},
            "salesRecordReference": self.sales_record,
            "pricingSummary": {
                "priceSubtotal": total,
                "deliveryCost": _amount(Decimal("0")),
                "total": total,
            },
            "cancelStatus": cancel,
            "paymentSummary": {
                "payments": [payment],
                "refunds": list(self.refunds),
                "totalDueSeller": total,
            },
            "fulfillmentHrefs": [f"{base}/{f.fulfillment_id}" for f in self.fulfillments],
            "fulfillmentStartInstructions": [
                {"fulfillmentInstructionsType": "SHIP_TO", "ebaySupportedFulfillment": False}
            ],
            "lineItems": [line.to_api(self.marketplace_id) for line in self.lines],
        }


@dataclass(slots=True)
class DailyCounter:
    """Calls to one API today (Pacific), and the calls refused over its limit."""

    limit: int
    day: date | None = None
    used: int = 0
    over_limit: int = 0

    def take(self, today: date, *, enforce: bool) -> bool:
        """Count one call; False (and an over-limit arrival) when today's calls are used up."""
        if today != self.day:
            self.day, self.used = today, 0
        if enforce and self.used >= self.limit:
            self.over_limit += 1
            return False
        self.used += 1
        return True

    def snapshot(self, today: date) -> dict[str, Any]:
        """Used, limit, over_limit, as of `today`."""
        used = self.used if today == self.day else 0
        return {"used": used, "limit": self.limit, "over_limit": self.over_limit}


@dataclass(slots=True)
class _Truth:
    items: dict[str, Item] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, datetime] = field(default_factory=dict)
    revisions: dict[tuple[str, date], int] = field(default_factory=dict)
    stock_writes: int = 0
    effective_changes: int = 0
    tokens_issued: int = 0


@dataclass(frozen=True, slots=True)
class _Filter:
    """A parsed getOrders filter."""

    creation: tuple[datetime, datetime | None] | None = None
    modified: tuple[datetime, datetime | None] | None = None
    statuses: frozenset[str] | None = None


class EbaySandbox(SandboxBase):
    """eBay, faked: OAuth refresh, Fulfillment and Inventory APIs, daily quotas, a shopper."""

    kind = "ebay"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_REFRESH_TOKEN,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        marketplace_id: str = DEFAULT_MARKETPLACE,
        daily_limits: Mapping[str, int] | None = None,
        limits: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.api_key = api_key  # the refresh token the account accepts
        self.client_id, self.client_secret = client_id, client_secret
        self.marketplace_id = marketplace_id
        self.limits = limits
        self.counters = {
            name: DailyCounter(limit)
            for name, limit in {**DAILY_LIMITS, **(daily_limits or {})}.items()
        }
        self.max_orders_limit = MAX_ORDERS_LIMIT
        self.order_sort = "newest_first"
        self.inventory_offset = "pages"
        self.strict_encoding = True
        self.revision_cap: int | None = REVISION_CAP
        self.token_lifetime_s = TOKEN_LIFETIME_S
        self.records = _Truth()
        self._numbers = itertools.count(1)

    # -- SandboxBase hooks -------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """The identity, Fulfillment and Inventory routes and the shopper controls."""
        order = f"{FULFILLMENT}/order/{{orderId}}"
        app.add_routes(
            [
                web.post(TOKEN_PATH, self._token),
                web.get(f"{FULFILLMENT}/order", self._get_orders),
                web.get(order, self._get_order),
                web.get(f"{order}/shipping_fulfillment", self._get_fulfillments),
                web.post(f"{order}/shipping_fulfillment", self._create_fulfillment),
                web.get(f"{order}/shipping_fulfillment/{{fulfillmentId}}", self._get_fulfillment),
                web.get(f"{INVENTORY}/inventory_item", self._get_items),
                web.get(f"{INVENTORY}/inventory_item/{{sku}}", self._get_item),
                web.post(f"{INVENTORY}/bulk_get_inventory_item", self._bulk_get_items),
                web.get(f"{INVENTORY}/offer", self._get_offers),
                web.post(f"{INVENTORY}/bulk_update_price_quantity", self._bulk_update),
                web.post("/_control/listings", self._control_listings),
                web.post("/_control/orders", self._control_place_order),
                web.post("/_control/orders/{id}/{action}", self._control_order_action),
                web.post("/_control/tokens/revoke", self._control_revoke),
                web.put("/_control/config", self._control_config),
            ]
        )

    def rate_scope(self, method: str, template: str, path: str) -> str:
        """eBay counts each API's calls on its own daily quota."""
        return _api_of(path) or "store"

    def api_middlewares(self) -> list[Middleware]:
        """Daily quotas, bearer auth, the marketplace header; eBay's answer for unknown routes."""
        return [self._guard]

    def levels(self) -> dict[str, int | None]:
        """The quantity buyers see for each SKU."""
        return {sku: self._shown(sku) for sku in self.records.items}

    def truth(self) -> dict[str, Any]:
        """Listings by SKU (the quantity buyers see), orders, shipments, counters, quotas."""
        t = self.records
        today = self._today()
        return {
            "listings": {sku: self._listing_truth(item) for sku, item in t.items.items()},
            "orders": {
                order_id: {"id": order_id, **order.to_api(base_url="", full=True)}
                for order_id, order in t.orders.items()
            },
            "shipments": list(t.shipments),
            "stock_writes": t.stock_writes,
            "effective_changes": t.effective_changes,
            "over_limit": sum(c.over_limit for c in self.counters.values()),
            "daily": {name: c.snapshot(today) for name, c in self.counters.items()},
            "limits": self.limits,
            "tokens_issued": t.tokens_issued,
        }

    def reset_truth(self) -> None:
        """An empty account, counters at zero, no tokens."""
        self.records = _Truth()
        for counter in self.counters.values():
            counter.day, counter.used, counter.over_limit = None, 0, 0

    def seed_catalog(self, levels: Mapping[str, int]) -> dict[str, str]:
        """Create or update published listings; returns SKU -> offerId."""
        return {
            sku: self.upsert_listing(sku, quantity).offer_id for sku, quantity in levels.items()
        }

    def error_response(
        self, status: int, code: str, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """Injected errors in eBay's shape."""
        if status == 429:
            body = error_body(
                2001,
                "ACCESS",
                "REQUEST",
                "Too many requests",
                long_message="The request limit has been reached for the resource.",
            )
        elif status >= 500:
            body = error_body(
                2003,
                "ACCESS",
                "APPLICATION",
                "Internal error",
                long_message="There was a problem with an eBay internal system or process.",
            )
        else:
            body = error_body(2004, "ACCESS", "REQUEST", "Request error")
        return json_response(body, status=status, headers=dict(headers))

    # -- the merchant and the shopper, as Python calls (the control routes wrap these) -------------

    def upsert_listing(
        self,
        sku: str,
        quantity: int,
        *,
        title: str | None = None,
        price: Decimal | None = None,
        published: bool | None = None,
        offer_quantity: int | None = None,
    ) -> Offer:
        """Create an item with a published offer, or set its quantities (as Seller Hub does)."""
        if quantity < 0 or (offer_quantity is not None and offer_quantity < 0):
            raise JsonError(400, "invalid_body", "quantities cannot be negative")
        t = self.records
        item = t.items.get(sku)
        if item is None:
            item = Item(sku, quantity, title or f"Sandbox item {sku}")
            t.items[sku] = item
            number = next(self._numbers)
            offer = Offer(
                offer_id=str(8_000_000_000 + number),
                sku=sku,
                marketplace_id=self.marketplace_id,
                available_quantity=quantity,
                price=price if price is not None else DEFAULT_PRICE,
                listing_id=str(110_000_000_000 + number),
            )
            t.offers[offer.offer_id] = offer
            item.offers.append(offer.offer_id)
        offer = t.offers[item.offers[0]]
        item.quantity = quantity
        offer.available_quantity = offer_quantity if offer_quantity is not None else quantity
        if title is not None:
            item.title = title
        if price is not None:
            offer.price = price
        if published is not None:
            offer.published = published
        return offer

    def place_order(
        self,
        lines: Sequence[tuple[str | None, int]],
        *,
        pending: bool = False,
        buyer: str = "sandbox_buyer",
    ) -> Order:
        """A shopper's checkout: takes the units off what buyers see, or 409 insufficient_stock."""
        t = self.records
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            if quantity < 1:
                raise JsonError(400, "invalid_body", "quantity must be at least 1")
            if sku is not None:
                wanted[sku] = wanted.get(sku, 0) + quantity
        for sku, quantity in wanted.items():
            shown = self._shown(sku)
            if shown < quantity:
                raise JsonError(
                    409, "insufficient_stock", f"{sku}: {quantity} wanted, {shown} listed"
                )
        number = next(self._numbers)
        now = self._now()
        order_lines = []
        for index, (sku, quantity) in enumerate(lines):
            offer = self._offer_of(sku) if sku is not None else None
            if sku is not None and offer is not None:
                t.items[sku].quantity -= quantity
                offer.available_quantity = max(offer.available_quantity - quantity, 0)
                offer.sold += quantity
            order_lines.append(
                Line(
                    line_id=str(10_000_000_000_000 + number * 100 + index),
                    sku=sku,
                    title=t.items[sku].title if sku in t.items else "Sandbox item",
                    quantity=quantity,
                    price=offer.price if offer is not None else DEFAULT_PRICE,
                    legacy_item_id=offer.listing_id if offer is not None else "110000000000",
                )
            )
        order_id = f"{10 + number // 100_000 % 90:02d}-{number % 100_000:05d}-" + (
            f"{self._ids.randrange(100_000):05d}"
        )
        order = Order(
            order_id=order_id,
            legacy_order_id=f"{order_lines[0].legacy_item_id}-{2_000_000_000_000 + number}"
            if order_lines
            else str(number),
            sales_record=str(1000 + number),
            created=now,
            modified=now,
            buyer=buyer,
            marketplace_id=self.marketplace_id,
            lines=order_lines,
            payment_status="PENDING" if pending else "PAID",
        )
        t.orders[order_id] = order
        return order

    def cancel_order(self, order_id: str) -> Order:
        """The seller cancels: cancelState CANCELED, the buyer refunded, unshipped units back."""
        order = self._control_order(order_id)
        if order.cancel_state == "CANCELED":
            return order
        now = self._now()
        self._restock(order)
        order.cancel_state = "CANCELED"
        order.cancelled = now
        request = {
            "cancelRequestId": f"5{order.sales_record}{len(order.cancel_requests) + 1:03d}",
            "cancelInitiator": "SELLER",
            "cancelReason": "OUT_OF_STOCK_OR_CANNOT_FULFILL",
            "cancelRequestState": "COMPLETED",
            "cancelRequestedDate": format_time(now),
            "cancelCompletedDate": format_time(now),
        }
        open_requests = [r for r in order.cancel_requests if r["cancelRequestState"] != "COMPLETED"]
        for existing in open_requests:
            existing["cancelRequestState"] = "COMPLETED"
            existing["cancelCompletedDate"] = format_time(now)
        if not open_requests:
            order.cancel_requests.append(request)
        if order.payment_status == "PAID":
            self._add_refund(order, now)
        self._touch(order)
        return order

    def request_cancel(self, order_id: str) -> Order:
        """A buyer asks to cancel: cancelState IN_PROGRESS, one open cancel request."""
        order = self._control_order(order_id)
        if order.cancel_state == "NONE_REQUESTED":
            now = self._now()
            order.cancel_state = "IN_PROGRESS"
            order.cancel_requests.append(
                {
                    "cancelRequestId": f"5{order.sales_record}{len(order.cancel_requests) + 1:03d}",
                    "cancelInitiator": "BUYER",
                    "cancelReason": "ORDER_PLACED_BY_MISTAKE",
                    "cancelRequestState": "REQUESTED",
                    "cancelRequestedDate": format_time(now),
                }
            )
            self._touch(order)
        return order

    def refund_order(self, order_id: str, *, restock: bool) -> Order:
        """A full refund; with `restock`, the unshipped units go back on sale."""
        order = self._control_order(order_id)
        if order.payment_status != "FULLY_REFUNDED":
            if restock:
                self._restock(order)
            self._add_refund(order, self._now())
            self._touch(order)
        return order

    def pay_order(self, order_id: str) -> Order:
        """A pending payment clears."""
        order = self._control_order(order_id)
        if order.payment_status == "PENDING":
            order.payment_status = "PAID"
            self._touch(order)
        return order

    def revoke_tokens(self) -> None:
        """Every user token stops working (expiry or revocation, as the client sees it)."""
        self.records.tokens.clear()

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Apply `PUT /_control/config` knobs (validated by the handler)."""
        if "limits" in changes:
            self.limits = changes["limits"]
        for name, limit in (changes.get("daily_limits") or {}).items():
            self.counters[name].limit = limit
        for key in (
            "api_key",
            "max_orders_limit",
            "order_sort",
            "inventory_offset",
            "strict_encoding",
            "token_lifetime_s",
        ):
            if key in changes:
                setattr(self, key, changes[key])
        if "revision_cap" in changes:
            self.revision_cap = changes["revision_cap"]

    # -- internals ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return _ms(self.clock.now())

    def _today(self) -> date:
        return self.clock.now().astimezone(PACIFIC).date()

    def _touch(self, order: Order) -> None:
        order.modified = max(self._now(), order.modified + _ONE_MS)

    def _offer_of(self, sku: str) -> Offer | None:
        item = self.records.items.get(sku)
        if item is None:
            return None
        offers = [self.records.offers[offer_id] for offer_id in item.offers]
        mine = [o for o in offers if o.marketplace_id == self.marketplace_id]
        return mine[0] if mine else None

    def _shown(self, sku: str) -> int:
        """What buyers can buy: min(item quantity, offer availableQuantity) of a live offer."""
        item, offer = self.records.items.get(sku), self._offer_of(sku)
        if item is None or offer is None or not offer.published:
            return 0
        return max(min(item.quantity, offer.available_quantity), 0)

    def _listing_truth(self, item: Item) -> dict[str, Any]:
        offer = self._offer_of(item.sku)
        return {
            "quantity": self._shown(item.sku),
            "item_quantity": item.quantity,
            "offer_quantity": offer.available_quantity if offer is not None else None,
            "offer_id": offer.offer_id if offer is not None else None,
            "listing_id": offer.listing_id if offer is not None else None,
            "published": offer.published if offer is not None else False,
        }

    def _restock(self, order: Order) -> None:
        for line in order.lines:
            units = line.quantity - line.shipped
            offer = self._offer_of(line.sku) if line.sku is not None else None
            if units > 0 and line.sku is not None and offer is not None:
                self.records.items[line.sku].quantity += units
                offer.available_quantity += units

    def _add_refund(self, order: Order, now: datetime) -> None:
        order.payment_status = "FULLY_REFUNDED"
        order.refunds.append(
            {
                "refundId": f"R{order.sales_record}{len(order.refunds) + 1:02d}",
                "refundDate": format_time(now),
                "refundStatus": "REFUNDED",
                "amount": _amount(order.total()),
            }
        )

    def _control_order(self, order_id: str) -> Order:
        order = self.records.orders.get(order_id)
        if order is None:
            raise JsonError(404, "not_found", f"no order {order_id}")
        return order

    def _api_order(self, request: web.Request, *, post: bool = False) -> Order:
        order_id = request.match_info["orderId"]
        order = self.records.orders.get(order_id)
        if order is None:
            if post or not _ORDER_ID.fullmatch(order_id):
                raise _fulfillment_error(400, 32100, f"Invalid order ID: {order_id}")
            raise _fulfillment_error(404, 32100, f"Invalid order ID: {order_id}")
        return order

    def _base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    # -- auth, quotas, unknown routes --------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        api = _api_of(request.path)
        if api == "identity":
            refused = self._over_quota(api)
            return refused if refused is not None else await handler(request)
        if api is None:
            return _not_found()
        if not self._authorized(request):
            return json_response(
                error_body(
                    1001,
                    "OAuth",
                    "REQUEST",
                    "Invalid access token",
                    long_message="Invalid access token. Check the value of the Authorization "
                    "HTTP request header.",
                ),
                status=401,
            )
        refused = self._over_quota(api)
        if refused is not None:
            return refused
        marketplace = request.headers.get(MARKETPLACE_HEADER)
        if marketplace not in MARKETPLACES:
            error_id = 25709 if api == "inventory" else 32600
            domain = _INVENTORY_DOMAIN if api == "inventory" else _FULFILLMENT_DOMAIN
            return json_response(
                error_body(
                    error_id, domain, "REQUEST", f"Invalid value for header {MARKETPLACE_HEADER}."
                ),
                status=400,
            )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if not isinstance(exc, EbayError) and exc.status in (404, 405):
                return _not_found()
            raise

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expires = self.records.tokens.get(token) if scheme == "Bearer" else None
        return expires is not None and self.clock.now() < expires

    def _over_quota(self, api: str) -> web.Response | None:
        if self.counters[api].take(self._today(), enforce=self.limits):
            return None
        return json_response(
            error_body(
                2001,
                "ACCESS",
                "REQUEST",
                "Too many requests",
                long_message=f"The daily call limit of the {api} API has been reached.",
            ),
            status=429,
        )

    # -- API: identity -----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        credentials = _basic(request)
        if credentials is None or not (
            hmac.compare_digest(credentials[0].encode(), self.client_id.encode())
            and hmac.compare_digest(credentials[1].encode(), self.client_secret.encode())
        ):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        form = dict(parse_qsl((await request.read()).decode("utf-8", "replace")))
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(
                400, "unsupported_grant_type", "grant type in request is not supported"
            )
        token = form.get("refresh_token", "")
        if not token or not hmac.compare_digest(token.encode(), self.api_key.encode()):
            return _oauth_error(
                400,
                "invalid_grant",
                "the provided authorization refresh token is invalid or was issued to another "
                "client",
            )
        scopes = form.get("scope", "").split()
        if any(scope not in SCOPES and not scope.endswith(".readonly") for scope in scopes):
            return _oauth_error(
                400, "invalid_scope", "the requested scope is invalid, unknown, or malformed"
            )
        self.records.tokens_issued += 1
        user_token = f"v^1.1#i^1#p^3#r^1#I^3#f^0#t^sandbox-{self._ids.getrandbits(64):016x}"
        self.records.tokens[user_token] = self.clock.now() + timedelta(
            seconds=self.token_lifetime_s
        )
        return json_response(
            {
                "access_token": user_token,
                "expires_in": self.token_lifetime_s,
                "token_type": "User Access Token",
            }
        )

    # -- API: Fulfillment --------------------------------------------------------------------------

    async def _get_orders(self, request: web.Request) -> web.Response:
        q = request.query
        limit = _paging_int(
            q.get("limit"), DEFAULT_ORDERS_LIMIT, 1, self.max_orders_limit, 31100, "limit"
        )
        offset = _paging_int(q.get("offset"), 0, 0, None, 31000, "offset")
        base = f"{self._base_url(request)}{FULFILLMENT}/order"
        order_ids = q.get("orderIds")
        if order_ids is not None:
            ids = [i.strip() for i in order_ids.split(",") if i.strip()]
            if len(ids) > MAX_ORDER_IDS:
                raise _fulfillment_error(
                    400,
                    30900,
                    f"Exceeded maximum number of order IDs (the current limit is {MAX_ORDER_IDS})",
                )
            found = [self.records.orders[i] for i in ids if i in self.records.orders]
            return json_response(
                {
                    "href": f"{base}?orderIds={quote(order_ids, safe=',-')}",
                    "total": len(found),
                    "limit": limit,
                    "offset": 0,
                    "orders": [
                        o.to_api(base_url=self._base_url(request), full=False) for o in found
                    ],
                }
            )
        text = q.get("filter")
        if (
            text is not None
            and self.strict_encoding
            and _raw_filter_chars(request.raw_path.partition("?")[2])
        ):
            raise _fulfillment_error(400, 30800, f"Invalid filter value {text} for filter filter")
        chosen = self._parse_filter(text) if text else _Filter()
        matches = [o for o in self.records.orders.values() if _matches(o, chosen)]
        newest_first = self.order_sort == "newest_first"
        matches.sort(key=lambda o: (o.created, o.sales_record.zfill(12)), reverse=newest_first)
        page = matches[offset : offset + limit]

        def link(at: int) -> str:
            query = f"limit={limit}&offset={at}"
            return f"{base}?filter={encode_filter(text)}&{query}" if text else f"{base}?{query}"

        body: dict[str, Any] = {
            "href": link(offset),
            "total": len(matches),
            "limit": limit,
            "offset": offset,
            "orders": [o.to_api(base_url=self._base_url(request), full=False) for o in page],
        }
        if offset + limit < len(matches):
            body["next"] = link(offset + limit)
        if offset > 0:
            body["prev"] = link(max(offset - limit, 0))
        return json_response(body)

    def _parse_filter(self, text: str) -> _Filter:
        """A getOrders filter, or the EbayError eBay answers for it."""
        creation = modified = None
        statuses: frozenset[str] | None = None
        now = self.clock.now()
        for criterion in (part.strip() for part in text.split(",")):
            name, colon, value = criterion.partition(":")
            if not colon or name not in (
                "creationdate",
                "lastmodifieddate",
                "orderfulfillmentstatus",
            ):
                raise _fulfillment_error(400, 30700, f"Invalid filter name: {name}")
            if name == "orderfulfillmentstatus":
                statuses = _status_set(name, value)
            else:
                window = _date_window(name, value, now)
                if name == "creationdate":
                    creation = window
                else:
                    modified = window
        # "If creationdate and lastmodifieddate are both included, only creationdate is used."
        return _Filter(creation, None if creation is not None else modified, statuses)

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self._api_order(request)
        return json_response(order.to_api(base_url=self._base_url(request), full=True))

    async def _get_fulfillments(self, request: web.Request) -> web.Response:
        order = self._api_order(request)
        return json_response(
            {
                "fulfillments": [f.to_api() for f in order.fulfillments],
                "total": len(order.fulfillments),
            }
        )

    async def _get_fulfillment(self, request: web.Request) -> web.Response:
        order = self._api_order(request)
        wanted = request.match_info["fulfillmentId"]
        for fulfillment in order.fulfillments:
            if fulfillment.fulfillment_id == wanted:
                return json_response(fulfillment.to_api())
        raise _fulfillment_error(404, 32110, f"Invalid shipping fulfillment ID: {wanted}")

    async def _create_fulfillment(self, request: web.Request) -> web.Response:
        order = self._api_order(request, post=True)
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("lineItems"), list):
            raise _fulfillment_error(400, 32600, "Invalid input data")
        if order.cancel_state == "CANCELED" or order.payment_status == "FULLY_REFUNDED":
            raise _fulfillment_error(400, 32600, "Invalid input data")
        lines = {line.line_id: line for line in order.lines}
        units: dict[str, int] = {}
        for entry in body["lineItems"]:
            line_id = entry.get("lineItemId") if isinstance(entry, dict) else None
            if not isinstance(line_id, str) or line_id not in lines:
                raise _fulfillment_error(400, 32200, "Invalid line item id")
            line = lines[line_id]
            quantity = entry.get("quantity", line.quantity - line.shipped)
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise _fulfillment_error(400, 32600, "Invalid input data")
            units[line_id] = units.get(line_id, 0) + quantity
        if not units or any(lines[i].shipped + q > lines[i].quantity for i, q in units.items()):
            raise _fulfillment_error(400, 32600, "Invalid input data")
        carrier, tracking = body.get("shippingCarrierCode"), body.get("trackingNumber")
        if (carrier is None) != (tracking is None) or any(
            value is not None and (not isinstance(value, str) or not value.strip())
            for value in (carrier, tracking)
        ):
            raise _fulfillment_error(400, 32300, "Invalid shipment tracking number or carrier")
        if tracking is not None and any(f.tracking == tracking for f in order.fulfillments):
            raise EbayError(
                400,
                32300,
                _FULFILLMENT_DOMAIN,
                "Invalid shipment tracking number or carrier",
                long_message="This order already has a fulfillment with this tracking number.",
            )
        shipped = body.get("shippedDate")
        if shipped is None:
            shipped_date = self._now()
        elif not isinstance(shipped, str) or not _DATE.fullmatch(shipped):
            raise _fulfillment_error(400, 32500, "Invalid shipped date")
        else:
            shipped_date = parse_time(shipped)
        # "the resulting fulfillment's ID ... is the tracking number"; else an arbitrary number
        fulfillment_id = (
            tracking if tracking is not None else str(999 + len(self.records.shipments))
        )
        fulfillment = Fulfillment(
            fulfillment_id, list(units.items()), shipped_date, carrier, tracking
        )
        for line_id, quantity in units.items():
            lines[line_id].shipped += quantity
        order.fulfillments.append(fulfillment)
        self._touch(order)
        self.records.shipments.append(
            {
                "order_id": order.order_id,
                "fulfillment_id": fulfillment_id,
                "tracking_number": tracking or "",
                "carrier": carrier or "",
                "lines": [{"line_id": line, "quantity": qty} for line, qty in units.items()],
                "shipped_date": format_time(shipped_date),
            }
        )
        location = (
            f"{self._base_url(request)}{FULFILLMENT}/order/{order.order_id}"
            f"/shipping_fulfillment/{quote(fulfillment_id, safe='')}"
        )
        # 201 with the fulfillment in Location and no body (OAS createShippingFulfillment).
        return web.Response(status=201, headers={"Location": location})

    # -- API: Inventory ----------------------------------------------------------------------------

    async def _get_items(self, request: web.Request) -> web.Response:
        q = request.query
        limit = _paging_int(
            q.get("limit"), MAX_INVENTORY_LIMIT, 1, MAX_INVENTORY_LIMIT, 25706, "limit"
        )
        offset = _paging_int(q.get("offset"), 0, 0, None, 25706, "offset")
        items = list(self.records.items.values())
        pages = self.inventory_offset == "pages"
        start = offset * limit if pages else offset
        chosen = items[start : start + limit]
        base = f"{self._base_url(request)}{INVENTORY}/inventory_item"

        def link(at: int) -> str:
            return f"{base}?limit={limit}&offset={at}"

        body: dict[str, Any] = {
            "href": link(offset),
            "limit": limit,
            "size": math.ceil(len(items) / limit) if items else 0,
            "total": len(items),
            "inventoryItems": [item.to_api() for item in chosen],
        }
        if start + limit < len(items):
            body["next"] = link(offset + 1 if pages else offset + limit)
        if start > 0:
            body["prev"] = link(offset - 1 if pages else max(offset - limit, 0))
        return json_response(body)

    async def _get_item(self, request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        item = self.records.items.get(sku)
        if item is None:
            raise _inventory_error(404, 25702, f"SKU {sku} is not available in the system")
        return json_response(item.to_api())

    async def _bulk_get_items(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        entries = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not entries:
            raise _inventory_error(400, 25709, "Invalid request. Invalid value for field requests")
        if len(entries) > MAX_BULK:
            raise _inventory_error(
                400, 25727, f"The number of InventoryItems in the request cannot exceed {MAX_BULK}."
            )
        skus = [entry.get("sku") if isinstance(entry, dict) else None for entry in entries]
        if any(not isinstance(sku, str) or not sku or len(sku) > 50 for sku in skus):
            raise _inventory_error(400, 25708, "Invalid SKU.")
        if len(set(skus)) != len(skus):
            raise _inventory_error(400, 25734, "SKU should be unique in the request.")
        responses = []
        for sku in skus:
            assert isinstance(sku, str)
            item = self.records.items.get(sku)
            if item is None:
                missing = f"SKU {sku} is not available in the system"
                error = error_entry(25702, _INVENTORY_DOMAIN, "REQUEST", missing)
                responses.append({"statusCode": 404, "sku": sku, "errors": [error]})
            else:
                responses.append({"statusCode": 200, "sku": sku, "inventoryItem": item.to_api()})
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return json_response({"responses": responses}, status=status)

    async def _get_offers(self, request: web.Request) -> web.Response:
        q = request.query
        sku = q.get("sku")
        if not sku:
            raise _inventory_error(400, 25709, "Invalid value for sku.")
        limit = _paging_int(q.get("limit"), MAX_INVENTORY_LIMIT, 1, None, 25706, "limit")
        offset = _paging_int(q.get("offset"), 0, 0, None, 25706, "offset")
        marketplace = q.get("marketplace_id")
        item = self.records.items.get(sku)
        offers = [self.records.offers[i] for i in item.offers] if item is not None else []
        offers = [o for o in offers if marketplace is None or o.marketplace_id == marketplace]
        if not offers:
            # getOffers answers a SKU without offers as "This Offer is not available".
            raise _inventory_error(404, 25713, "This Offer is not available.")
        chosen = offers[offset * limit : offset * limit + limit]
        return json_response(
            {
                "href": f"{self._base_url(request)}{INVENTORY}/offer?sku={quote(sku, safe='')}",
                "limit": limit,
                "size": len(chosen),
                "total": len(offers),
                "offers": [offer.to_api() for offer in chosen],
            }
        )

    async def _bulk_update(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        entries = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not entries:
            raise _inventory_error(400, 25709, "Invalid value for requests.")
        if len(entries) > MAX_BULK:
            raise _inventory_error(
                400,
                25002,
                f"A user error has occurred. The number of requests cannot exceed {MAX_BULK}.",
            )
        responses: list[dict[str, Any]] = []
        for entry in entries:
            responses.extend(self._update_one(entry))
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return json_response({"responses": responses}, status=status)

    def _update_one(self, entry: Any) -> list[dict[str, Any]]:
        """Apply one PriceQuantity request; its entries for `responses[]`."""
        t = self.records
        sku = entry.get("sku") if isinstance(entry, dict) else None
        offers_in = entry.get("offers", []) if isinstance(entry, dict) else None
        offer_ids = [o.get("offerId") if isinstance(o, dict) else None for o in offers_in or []]

        def failed(status: int, error_id: int, message: str) -> list[dict[str, Any]]:
            error = [error_entry(error_id, _INVENTORY_DOMAIN, "REQUEST", message)]
            base = {"statusCode": status, **({"sku": sku} if isinstance(sku, str) else {})}
            if not offer_ids:
                return [{**base, "errors": error}]
            return [{**base, "offerId": str(o), "errors": error} for o in offer_ids]

        if not isinstance(entry, dict) or not isinstance(offers_in, list):
            return failed(400, 25709, "Invalid value for requests.")
        item = t.items.get(sku) if isinstance(sku, str) else None
        if item is None:
            return failed(400, 25702, f"SKU {sku} is not available in the system")
        quantity: int | None = None
        ship_to = entry.get("shipToLocationAvailability")
        if ship_to is not None:
            quantity = ship_to.get("quantity") if isinstance(ship_to, dict) else None
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                return failed(400, 25709, "Invalid value for shipToLocationAvailability.quantity.")
        changes: list[tuple[Offer, int | None, Decimal | None]] = []
        for offer_in, offer_id in zip(offers_in, offer_ids, strict=True):
            offer = t.offers.get(offer_id) if isinstance(offer_id, str) else None
            if offer is None or offer.sku != item.sku:
                return failed(
                    400,
                    25002,
                    f"A user error has occurred. Offer {offer_id} is not an offer of SKU {sku}.",
                )
            available = offer_in.get("availableQuantity")
            if available is not None and (
                isinstance(available, bool) or not isinstance(available, int) or available < 0
            ):
                return failed(400, 25709, "Invalid value for availableQuantity.")
            price = _price(offer_in.get("price"))
            if offer_in.get("price") is not None and price is None:
                return failed(400, 25709, "Invalid value for price.")
            if available is None and price is None:
                return failed(400, 25709, "Either availableQuantity or price is required.")
            changes.append((offer, available, price))
        if quantity is None and not changes:
            return failed(400, 25709, "Nothing to update.")
        # Plan first, so a refused revision changes nothing.
        new_quantity = quantity if quantity is not None else item.quantity
        planned = {
            offer.offer_id: (
                available if available is not None else offer.available_quantity,
                price if price is not None else offer.price,
            )
            for offer, available, price in changes
        }
        revised = [
            offer
            for offer in (t.offers[i] for i in item.offers)
            if offer.published
            and (
                new_quantity != item.quantity
                or planned.get(offer.offer_id, (offer.available_quantity, offer.price))
                != (offer.available_quantity, offer.price)
            )
        ]
        today = self._today()
        if self.revision_cap is not None and any(
            t.revisions.get((o.offer_id, today), 0) >= self.revision_cap for o in revised
        ):
            return failed(
                400,
                25002,
                "A user error has occurred. A listing can be revised at most "
                f"{self.revision_cap} times a day.",
            )
        t.stock_writes += 1
        changed = new_quantity != item.quantity or any(
            planned[o.offer_id] != (o.available_quantity, o.price) for o, _, _ in changes
        )
        item.quantity = new_quantity
        for offer, _, _ in changes:
            offer.available_quantity, offer.price = planned[offer.offer_id]
        if changed:
            t.effective_changes += 1
        for offer in revised:
            t.revisions[(offer.offer_id, today)] = t.revisions.get((offer.offer_id, today), 0) + 1
        if not changes:
            return [{"statusCode": 200, "sku": item.sku}]
        return [{"statusCode": 200, "sku": item.sku, "offerId": o.offer_id} for o, _, _ in changes]

    # -- control handlers --------------------------------------------------------------------------

    async def _control_listings(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        items = body.get("listings") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise JsonError(400, "invalid_body", 'expected {"listings": [...]}')
        out = []
        for entry in items:
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sku"), str)
                or not entry["sku"]
            ):
                raise JsonError(400, "invalid_body", "each listing needs a sku string")
            quantity = entry.get("quantity", 0)
            offer_quantity = entry.get("offer_quantity")
            for name, value in (("quantity", quantity), ("offer_quantity", offer_quantity)):
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise JsonError(400, "invalid_body", f"{name} must be an integer")
            title, published = entry.get("title"), entry.get("published")
            if title is not None and not isinstance(title, str):
                raise JsonError(400, "invalid_body", "title must be a string")
            if published is not None and not isinstance(published, bool):
                raise JsonError(400, "invalid_body", "published must be true or false")
            price = None
            if entry.get("price") is not None:
                try:
                    price = Decimal(str(entry["price"]))
                except InvalidOperation:
                    raise JsonError(400, "invalid_body", "price must be a number") from None
            offer = self.upsert_listing(
                entry["sku"],
                quantity,
                title=title,
                price=price,
                published=published,
                offer_quantity=offer_quantity,
            )
            out.append({"sku": offer.sku, **self._listing_truth(self.records.items[offer.sku])})
        return json_response({"listings": out})

    async def _control_place_order(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        lines = read_order_lines(body)
        if not lines:
            raise JsonError(400, "invalid_body", "an order needs at least one line")
        status = body.get("status", "open")
        if status not in ("open", "pending"):
            raise JsonError(400, "invalid_body", "status must be open or pending")
        buyer = body.get("buyer", "sandbox_buyer")
        if not isinstance(buyer, str) or not buyer:
            raise JsonError(400, "invalid_body", "buyer must be a string")
        order = self.place_order(lines, pending=status == "pending", buyer=buyer)
        return json_response(self._control_view(request, order), status=201)

    async def _control_order_action(self, request: web.Request) -> web.Response:
        order_id, action = request.match_info["id"], request.match_info["action"]
        if action == "refund":
            body = await read_json(request) or {}
            restock = body.get("restock", False) if isinstance(body, dict) else None
            if not isinstance(restock, bool):
                raise JsonError(400, "invalid_body", 'expected {"restock": true|false}')
            order = self.refund_order(order_id, restock=restock)
        elif action == "cancel":
            order = self.cancel_order(order_id)
        elif action == "request_cancel":
            order = self.request_cancel(order_id)
        elif action == "pay":
            order = self.pay_order(order_id)
        else:
            raise JsonError(404, "unknown_action", f"no order action {action!r}")
        return json_response(self._control_view(request, order))

    def _control_view(self, request: web.Request, order: Order) -> dict[str, Any]:
        return {"id": order.order_id, **order.to_api(base_url=self._base_url(request), full=True)}

    async def _control_revoke(self, request: web.Request) -> web.Response:
        self.revoke_tokens()
        return json_response({"revoked": True})

    async def _control_config(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict):
            raise JsonError(400, "invalid_body", "expected a JSON object")
        self.configure(_config_changes(body, set(self.counters)))
        return json_response(self._config_view())

    def _config_view(self) -> dict[str, Any]:
        return {
            "limits": self.limits,
            "daily_limits": {name: c.limit for name, c in self.counters.items()},
            "max_orders_limit": self.max_orders_limit,
            "order_sort": self.order_sort,
            "inventory_offset": self.inventory_offset,
            "strict_encoding": self.strict_encoding,
            "revision_cap": self.revision_cap,
            "token_lifetime_s": self.token_lifetime_s,
        }


# -- request helpers -------------------------------------------------------------------------------


def _api_of(path: str) -> str | None:
    if path == TOKEN_PATH:
        return "identity"
    if path.startswith(FULFILLMENT + "/"):
        return "fulfillment"
    if path.startswith(INVENTORY + "/"):
        return "inventory"
    return None


def _not_found() -> web.Response:
    return json_response(error_body(2002, "ACCESS", "REQUEST", "Resource not found"), status=404)


def _basic(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _raw_filter_chars(query_string: str) -> bool:
    """Whether the raw `filter` parameter carries a bracket, brace or bar not percent-encoded."""
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if name == "filter" and any(char in _RAW_FILTER_CHARS for char in value):
            return True
    return False


def _paging_int(
    text: str | None, default: int, low: int, high: int | None, error_id: int, name: str
) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < low or (high is not None and value > high):
        domain = _INVENTORY_DOMAIN if error_id // 1000 == 25 else _FULFILLMENT_DOMAIN
        message = (
            f"You have provided invalid pagination values. {name}: {text}."
            if error_id == 25706
            else f"Invalid {name}: {text}"
        )
        raise EbayError(400, error_id, domain, message)
    return value


def _status_set(name: str, value: str) -> frozenset[str]:
    if not (value.startswith("{") and value.endswith("}")):
        raise _fulfillment_error(400, 30800, f"Invalid filter value {value} for filter {name}")
    wanted = frozenset(part.strip() for part in value[1:-1].split("|"))
    if wanted not in FULFILLMENT_STATUS_SETS:
        raise _fulfillment_error(400, 30800, f"Invalid filter value {value} for filter {name}")
    return wanted


def _date_window(name: str, value: str, now: datetime) -> tuple[datetime, datetime | None]:
    if not (value.startswith("[") and value.endswith("]")) or ".." not in value:
        raise _fulfillment_error(400, 30800, f"Invalid filter value {value} for filter {name}")
    start_text, _, end_text = value[1:-1].partition("..")
    if not start_text:
        raise _fulfillment_error(400, 30820, "Start date is missing")
    for text in (start_text, end_text):
        if text and not _DATE.fullmatch(text):
            raise _fulfillment_error(400, 30810, "Invalid date format")
    start = parse_time(start_text)
    end = parse_time(end_text) if end_text else None
    if start > now or (end is not None and end > now):
        raise _fulfillment_error(400, 30850, "Start and end dates can't be in the future")
    if end is not None and start > end:
        raise _fulfillment_error(400, 30840, "Start date should be before end date")
    if start < now - FILTER_WINDOW:
        raise _fulfillment_error(
            400, 30830, "Start date must be within 90 days of end date and current date."
        )
    return start, end


def _within(moment: datetime, window: tuple[datetime, datetime | None]) -> bool:
    start, end = window
    return start <= moment and (end is None or moment <= end)


def _matches(order: Order, chosen: _Filter) -> bool:
    if chosen.creation is not None and not _within(order.created, chosen.creation):
        return False
    if chosen.modified is not None and not _within(order.modified, chosen.modified):
        return False
    return chosen.statuses is None or order.fulfillment_status in chosen.statuses


def _price(value: Any) -> Decimal | None:
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        return None
    try:
        price = Decimal(value["value"])
    except InvalidOperation:
        return None
    return price if price.is_finite() and price >= 0 else None


def _config_changes(body: Mapping[str, Any], apis: set[str]) -> dict[str, Any]:
    """`PUT /_control/config` JSON, checked; a JsonError naming the first bad key."""
    allowed = {
        "limits",
        "daily_limits",
        "api_key",
        "max_orders_limit",
        "order_sort",
        "inventory_offset",
        "strict_encoding",
        "revision_cap",
        "token_lifetime_s",
    }
    unknown = set(body) - allowed
    if unknown:
        raise JsonError(
            400, "invalid_body", f"unknown keys {sorted(unknown)}; keys: {sorted(allowed)}"
        )

    def positive_int(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise JsonError(400, "invalid_body", f"{name} must be a positive integer")
        return value

    changes: dict[str, Any] = {}
    for key in ("limits", "strict_encoding"):
        if key in body:
            if not isinstance(body[key], bool):
                raise JsonError(400, "invalid_body", f"{key} must be true or false")
            changes[key] = body[key]
    if "daily_limits" in body:
        limits = body["daily_limits"]
        if not isinstance(limits, dict) or set(limits) - apis:
            raise JsonError(
                400, "invalid_body", f"daily_limits: {{api: n}} for apis {sorted(apis)}"
            )
        changes["daily_limits"] = {
            name: positive_int(f"daily_limits.{name}", n) for name, n in limits.items()
        }
    if "api_key" in body:
        if not isinstance(body["api_key"], str) or not body["api_key"]:
            raise JsonError(400, "invalid_body", "api_key must be a non-empty string")
        changes["api_key"] = body["api_key"]
    for key in ("max_orders_limit", "token_lifetime_s"):
        if key in body:
            changes[key] = positive_int(key, body[key])
    for key, options in (("order_sort", ORDER_SORTS), ("inventory_offset", INVENTORY_OFFSETS)):
        if key in body:
            if body[key] not in options:
                raise JsonError(400, "invalid_body", f"{key} must be one of {list(options)}")
            changes[key] = body[key]
    if "revision_cap" in body:
        cap = body["revision_cap"]
        changes["revision_cap"] = None if cap is None else positive_int("revision_cap", cap)
    return changes

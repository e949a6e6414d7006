"""A fake Amazon seller account: the SP-API operations storesync uses, LWA, and a shopper.

The API (facts and sources: reference/channel-apis.md section 3; shapes: the official models
ordersV0.json, listingsItems_2021-08-01.json, feeds_2021-06-30.json)::

    POST  /auth/o2/token                      LWA refresh-token grant (form) -> Atza|... (3600 s)
    GET   /orders/v0/orders                   getOrders
    GET   /orders/v0/orders/{orderId}         getOrder
    GET   /orders/v0/orders/{orderId}/orderItems                  getOrderItems
    POST  /orders/v0/orders/{orderId}/shipmentConfirmation        confirmShipment (204)
    GET   /listings/2021-08-01/items/{sellerId}                   searchListingsItems
    GET   /listings/2021-08-01/items/{sellerId}/{sku}             getListingsItem
    PATCH /listings/2021-08-01/items/{sellerId}/{sku}             patchListingsItem
    POST  /feeds/2021-06-30/documents         createFeedDocument (201, a presigned URL)
    GET   /feeds/2021-06-30/documents/{id}    getFeedDocument
    POST  /feeds/2021-06-30/feeds             createFeed (202)
    GET   /feeds/2021-06-30/feeds/{id}        getFeed
    PUT|GET /_documents/{id}?X-Amz-Signature  the "S3" behind the presigned URLs

Rules it enforces, as Amazon documents them: every SP-API call needs a live
`x-amz-access-token` (else 403 Unauthorized); getOrders takes exactly one of CreatedAfter and
LastUpdatedAfter, a Before no earlier than the After and at least `min_age_s` (120) seconds
before now, MaxResultsPerPage 1-100, and a NextToken only with the same filters it was issued
for (a NextToken holds '+' and '/', so a client must URL-encode it); searchListingsItems pages
at most 20 and through at most 1000 items of one search. Each operation has its own token
bucket at the documented rate and burst (table 3.6): a call over it is 429 with the
QuotaExceeded body, no Retry-After, and is counted in `over_limit`; every other answer carries
`x-amzn-RateLimit-Limit` and `x-amzn-RequestId`. Errors are `{"errors": [{"code", "message",
"details"}]}`.

Writes behave like Amazon's: `patchListingsItem` answers ACCEPTED at once and applies the
quantity `apply_delay_s` later (reads before then show the old value); a wrong attribute name
(`fulfillmentAvailability`) is INVALID with issue 90000900 (selling-partner-api-docs#2068); a
`fulfillment_availability` entry replaces the entry of its own fulfillment_channel_code only
(models#2061). A JSON_LISTINGS_FEED goes IN_QUEUE, IN_PROGRESS, then DONE `feed_delay_s` after
creation, when its messages apply and its processing report (gzip, as Amazon serves reports)
lists ERROR issues per message: unknown SKUs, bad patches, messages the listings feed schema
v2 forbids. An unreadable document ends FATAL. confirmShipment checks the required fields, the
order's items and unshipped quantities, and answers 400 "... has already been confirmed" for a
package reference it has seen; the order becomes PartiallyShipped or Shipped. Every change of
an order stamps LastUpdateDate with the sandbox clock (at least one second after the previous
stamp: Amazon prints whole seconds). Issue codes other than 90000900 are the sandbox's own.

The control API (no auth) plays shopper and merchant::

    POST /_control/listings  {"listings": [{"sku", "quantity", "product_type"?, "title"?,
                              "fba_quantity"?}]}         (quantities set at once, as in the UI)
    POST /_control/orders    {"lines": [{"sku", "quantity"}], "status"?: "open"|"pending",
                              "fba"?: bool}             (409 insufficient_stock when short)
    POST /_control/orders/{id}/cancel | pay | ship
    PUT  /_control/config    {"limits", "min_age_s", "apply_delay_s", "feed_delay_s",
                              "gzip_reports", "order_items_page_size", "api_key",
                              "revoke_tokens", "rates": {operation: {"rate_per_s", "burst"}}}

With `limits` false nothing is throttled and `x-amzn-RateLimit-Limit` reports a generous usage
plan (UNLIMITED_RATE), as a raised dynamic usage plan would, so clients pace up too.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.amazon.limits import USAGE_PLANS
from connectors.sandbox.app import (
    JsonError,
    SandboxBase,
    json_response,
    read_json,
    read_order_lines,
)
from connectors.sandbox.ratelimit import TokenBucketRule

CLIENT_ID = "amzn1.application-oa2-client.storesyncsandbox"
CLIENT_SECRET = "amzn1.oa2-cs.v1.storesync-sandbox-client-secret"
DEFAULT_REFRESH_TOKEN = "Atzr|storesync-sandbox-refresh-token"
SELLER_ID = "A2STORESYNCSBX1"
MARKETPLACE_ID = "ATVPDKIKX0DER"  # amazon.com
TOKEN_PATH = "/auth/o2/token"
TOKEN_LIFETIME_S = 3600
DEFAULT_MIN_AGE_S = 120.0
DEFAULT_APPLY_DELAY_S = 0.2
DEFAULT_FEED_DELAY_S = 1.0
DEFAULT_ITEMS_PAGE = 100
UNLIMITED_RATE = 1000.0
MAX_ORDERS_PAGE = 100
MAX_SEARCH_PAGE = 20
DEFAULT_SEARCH_PAGE = 10
MAX_IDENTIFIERS = 20
SEARCH_CAP = 1000
MAX_FEED_MESSAGES = 25_000
FEED_TYPE = "JSON_LISTINGS_FEED"
FULFILLMENT = "fulfillment_availability"
MFN = "DEFAULT"
DEFAULT_PRICE = Decimal("12.00")
QUOTA_MESSAGE = "You exceeded your quota for the requested resource."
DENIED = "Access to requested resource is denied."
INCLUDED_DATA = (
    "summaries",
    "attributes",
    "issues",
    "offers",
    "fulfillmentAvailability",
    "procurement",
    "relationships",
    "productTypes",
)

_ONE_SECOND = timedelta(seconds=1)
_ATTRIBUTE = re.compile(r"/attributes/(?P<name>[^/]+)")
_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
_ORDER_ID = r"{order_id:[A-Za-z0-9-]+}"
_OPEN = ("Unshipped", "PartiallyShipped")


def format_time(moment: datetime) -> str:
    """An SP-API date-time: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal) -> dict[str, str]:
    return {"CurrencyCode": "USD", "Amount": f"{value:.2f}"}


class AmazonError(Exception):
    """An SP-API error answer: `{"errors": [{"code", "message", "details"}]}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str = "",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """The error as Amazon answers it."""
        return json_response(
            error_body(self.code, self.message, self.details),
            status=self.status,
            headers=self.headers,
        )


def error_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    """Amazon's ErrorList."""
    return {"errors": [{"code": code, "message": message, "details": details}]}


def _invalid(message: str, details: str = "") -> AmazonError:
    return AmazonError(400, "InvalidInput", message, details)


# -- the account's records -------------------------------------------------------------------------


@dataclass(slots=True)
class Listing:
    """A listings item: its offer's fulfillment availability per channel code."""

    sku: str
    asin: str
    product_type: str
    title: str
    created: datetime
    updated: datetime
    availability: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def quantity(self) -> int:
        """The merchant-fulfilled (DEFAULT) quantity buyers see; 0 without one."""
        return self.availability.get(MFN, 0)

    def to_item(self, included: Sequence[str], marketplace_id: str) -> dict[str, Any]:
        """As searchListingsItems and getListingsItem show it, with the data sets asked for."""
        item: dict[str, Any] = {"sku": self.sku}
        if "summaries" in included:
            status = ["BUYABLE", "DISCOVERABLE"] if self.quantity > 0 else ["DISCOVERABLE"]
            item["summaries"] = [
                {
                    "marketplaceId": marketplace_id,
                    "asin": self.asin,
                    "productType": self.product_type,
                    "conditionType": "new_new",
                    "status": status,
                    "itemName": self.title,
                    "createdDate": format_time(self.created),
                    "lastUpdatedDate": format_time(self.updated),
                }
            ]
        if "attributes" in included:
            attributes = dict(self.attributes)
            attributes[FULFILLMENT] = [
                {"fulfillment_channel_code": code, "quantity": qty}
                for code, qty in self.availability.items()
            ]
            item["attributes"] = attributes
        if "issues" in included:
            item["issues"] = []
        if "fulfillmentAvailability" in included:
            item["fulfillmentAvailability"] = [
                {"fulfillmentChannelCode": code, "quantity": qty}
                for code, qty in self.availability.items()
            ]
        return item


@dataclass(slots=True)
class Item:
    """One OrderItem."""

    item_id: str
    sku: str
    asin: str
    title: str
    quantity: int
    price: Decimal
    shipped: int = 0

    def to_api(self, pending: bool) -> dict[str, Any]:
        """As getOrderItems shows it (no prices while the order is Pending, per the model)."""
        item: dict[str, Any] = {
            "ASIN": self.asin,
            "SellerSKU": self.sku,
            "OrderItemId": self.item_id,
            "Title": self.title,
            "QuantityOrdered": self.quantity,
            "QuantityShipped": self.shipped,
            "ProductInfo": {"NumberOfItems": "1"},
            "ConditionId": "New",
            "ConditionSubtypeId": "New",
            "IsTransparency": False,
            "BuyerRequestedCancel": {"IsBuyerRequestedCancel": "false", "BuyerCancelReason": ""},
        }
        if not pending:
            item["ItemPrice"] = _money(self.price * self.quantity)
            item["ItemTax"] = _money(Decimal(0))
            item["IsGift"] = "false"
        return item


@dataclass(slots=True)
class Order:
    """One order with its items and the packages confirmed for it."""

    order_id: str
    status: str
    purchased: datetime
    updated: datetime
    channel: str  # MFN | AFN
    marketplace_id: str
    items: list[Item]
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        """The order total."""
        return sum((item.price * item.quantity for item in self.items), Decimal(0))

    def to_api(self) -> dict[str, Any]:
        """As getOrders and getOrder show it."""
        shipped = sum(item.shipped for item in self.items)
        ordered = sum(item.quantity for item in self.items)
        unshipped = 0 if self.status in ("Canceled", "Unfulfillable") else ordered - shipped
        order: dict[str, Any] = {
            "AmazonOrderId": self.order_id,
            "PurchaseDate": format_time(self.purchased),
            "LastUpdateDate": format_time(self.updated),
            "OrderStatus": self.status,
            "FulfillmentChannel": self.channel,
            "SalesChannel": "Amazon.com",
            "ShipServiceLevel": "Std US D2D Dom",
            "NumberOfItemsShipped": shipped,
            "NumberOfItemsUnshipped": unshipped,
            "PaymentMethod": "Other",
            "PaymentMethodDetails": ["Standard"],
            "MarketplaceId": self.marketplace_id,
            "ShipmentServiceLevelCategory": "Standard",
            "OrderType": "StandardOrder",
            "EarliestShipDate": format_time(self.purchased + timedelta(days=1)),
            "LatestShipDate": format_time(self.purchased + timedelta(days=3)),
            "IsBusinessOrder": False,
            "IsPrime": False,
            "IsPremiumOrder": False,
            "IsGlobalExpressEnabled": False,
            "IsReplacementOrder": False,
            "IsSoldByAB": False,
            "IsISPU": False,
            "IsAccessPointOrder": False,
            "HasRegulatedItems": False,
        }
        if self.status != "Pending":
            order["OrderTotal"] = _money(self.total)
        return order


@dataclass(slots=True)
class Document:
    """A feed document: uploaded content, or a processing report."""

    document_id: str
    content_type: str
    signature: str
    content: bytes | None = None
    compression: str | None = None


@dataclass(slots=True)
class Feed:
    """A submitted feed; its status follows from its age on the sandbox clock."""

    feed_id: str
    feed_type: str
    marketplace_ids: list[str]
    document_id: str
    created: datetime
    created_mono: float
    status: str = "IN_QUEUE"
    started: datetime | None = None
    ended: datetime | None = None
    result_document_id: str | None = None
    report: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """As getFeed shows it."""
        feed: dict[str, Any] = {
            "feedId": self.feed_id,
            "feedType": self.feed_type,
            "marketplaceIds": list(self.marketplace_ids),
            "createdTime": format_time(self.created),
            "processingStatus": self.status,
        }
        if self.started is not None:
            feed["processingStartTime"] = format_time(self.started)
        if self.ended is not None:
            feed["processingEndTime"] = format_time(self.ended)
        if self.result_document_id is not None:
            feed["resultFeedDocumentId"] = self.result_document_id
        return feed


@dataclass(frozen=True, slots=True)
class _Effect:
    """A change Amazon accepted and applies later: a patch submission."""

    due: float  # monotonic
    seq: int
    sku: str
    patches: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class _Truth:
    listings: dict[str, Listing] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)
    effects: list[_Effect] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    tokens_issued: int = 0
    submissions: int = 0
    stock_writes: int = 0
    effective_changes: int = 0
    feed_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(50_001_000_000))
    seq: itertools.count[int] = field(default_factory=itertools.count)
    # Bumped whenever a listing is created, deleted or dated anew: a search's sorted results
    # are kept per filter set until then, so paging a 100k catalog does not re-sort it for
    # every page of 20.
    listings_generation: int = 0
    searches: dict[str, tuple[int, list[Listing]]] = field(default_factory=dict)


# The operation each API route is metered as, by (method, route template).
OPERATIONS: Mapping[tuple[str, str], str] = {
    ("GET", "/orders/v0/orders"): "getOrders",
    ("GET", "/orders/v0/orders/{order_id}"): "getOrder",
    ("GET", "/orders/v0/orders/{order_id}/orderItems"): "getOrderItems",
    ("POST", "/orders/v0/orders/{order_id}/shipmentConfirmation"): "confirmShipment",
    ("GET", "/listings/2021-08-01/items/{seller_id}"): "searchListingsItems",
    ("GET", "/listings/2021-08-01/items/{seller_id}/{sku}"): "getListingsItem",
    ("PATCH", "/listings/2021-08-01/items/{seller_id}/{sku}"): "patchListingsItem",
    ("POST", "/feeds/2021-06-30/documents"): "createFeedDocument",
    ("GET", "/feeds/2021-06-30/documents/{document_id}"): "getFeedDocument",
    ("POST", "/feeds/2021-06-30/feeds"): "createFeed",
    ("GET", "/feeds/2021-06-30/feeds/{feed_id}"): "getFeed",
}


class AmazonSandbox(SandboxBase):
    """Amazon SP-API, faked: LWA, orders, listings, feeds, usage plans, a shopper."""

    kind = "amazon"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_REFRESH_TOKEN,
        seller_id: str = SELLER_ID,
        marketplace_id: str = MARKETPLACE_ID,
        min_age_s: float = DEFAULT_MIN_AGE_S,
        apply_delay_s: float = DEFAULT_APPLY_DELAY_S,
        feed_delay_s: float = DEFAULT_FEED_DELAY_S,
        gzip_reports: bool = True,
        limits: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.refresh_token = api_key
        self.seller_id = seller_id
        self.marketplace_id = marketplace_id
        self.min_age_s = min_age_s
        self.apply_delay_s = apply_delay_s
        self.feed_delay_s = feed_delay_s
        self.gzip_reports = gzip_reports
        self.limits = limits
        self.order_items_page_size = DEFAULT_ITEMS_PAGE
        self.rules: dict[str, TokenBucketRule] = {
            operation: TokenBucketRule(plan.rate_per_s, plan.burst, clock=self.clock.monotonic)
            for operation, plan in USAGE_PLANS.items()
        }
        self.records = _Truth()
        self._sign_key = hashlib.sha256(f"{seller_id}:{self._ids.random()}".encode()).digest()

    # -- SandboxBase hooks -------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """LWA, the SP-API routes, the document store and the shopper controls."""
        orders, listings, feeds = (
            "/orders/v0/orders",
            "/listings/2021-08-01/items",
            "/feeds/2021-06-30",
        )
        app.add_routes(
            [
                web.post(TOKEN_PATH, self._token),
                web.get(orders, self._get_orders),
                web.get(f"{orders}/{_ORDER_ID}", self._get_order),
                web.get(f"{orders}/{_ORDER_ID}/orderItems", self._get_order_items),
                web.post(f"{orders}/{_ORDER_ID}/shipmentConfirmation", self._confirm_shipment),
                web.get(f"{listings}/{{seller_id}}", self._search_listings),
                web.get(f"{listings}/{{seller_id}}/{{sku}}", self._get_listing),
                web.patch(f"{listings}/{{seller_id}}/{{sku}}", self._patch_listing),
                web.post(f"{feeds}/documents", self._create_document),
                web.get(f"{feeds}/documents/{{document_id}}", self._get_document),
                web.post(f"{feeds}/feeds", self._create_feed),
                web.get(f"{feeds}/feeds/{{feed_id}}", self._get_feed),
                web.put("/_documents/{document_id}", self._upload),
                web.get("/_documents/{document_id}", self._download),
                web.post("/_control/listings", self._control_listings),
                web.post("/_control/orders", self._control_place_order),
                web.post(r"/_control/orders/{order_id}/{action}", self._control_order_action),
                web.put("/_control/config", self._control_config),
            ]
        )

    def rate_scope(self, method: str, template: str, path: str) -> str:
        """SP-API meters each operation on its own usage plan."""
        return OPERATIONS.get((method, template), "store")

    def api_middlewares(self) -> list[Middleware]:
        """Token check, usage plans, Amazon's headers and error shape."""
        return [self._guard]

    def levels(self) -> dict[str, int | None]:
        """Each listing's applied merchant-fulfilled quantity."""
        self._settle()
        return {sku: listing.quantity for sku, listing in self.records.listings.items()}

    def truth(self) -> dict[str, Any]:
        """Listings by SKU (applied quantities), orders, shipments, feeds and counters."""
        self._settle()
        t = self.records
        return {
            "listings": {
                sku: {
                    "quantity": listing.quantity,
                    "asin": listing.asin,
                    "product_type": listing.product_type,
                    "fulfillment_availability": dict(listing.availability),
                    "pending": sum(1 for effect in t.effects if effect.sku == sku),
                }
                for sku, listing in t.listings.items()
            },
            "orders": {
                order_id: {
                    **order.to_api(),
                    "id": order_id,
                    "items": [item.to_api(False) for item in order.items],
                    "packages": dict(order.packages),
                }
                for order_id, order in t.orders.items()
            },
            "shipments": list(t.shipments),
            "feeds": {
                feed_id: {**feed.to_api(), "summary": (feed.report or {}).get("summary")}
                for feed_id, feed in t.feeds.items()
            },
            "submissions": t.submissions,
            "stock_writes": t.stock_writes,
            "effective_changes": t.effective_changes,
            "tokens_issued": t.tokens_issued,
            "over_limit": sum(rule.over_limit for rule in self.rules.values()),
            "limits": self.limits,
            "rate_limits": {op: rule.snapshot() for op, rule in self.rules.items()},
            "config": self._config(),
        }

    def reset_truth(self) -> None:
        """No listings, orders, feeds or tokens; full buckets, counters at zero."""
        self.records = _Truth()
        for rule in self.rules.values():
            rule.reset()

    def seed_catalog(self, levels: Mapping[str, int]) -> dict[str, str]:
        """Create or update MFN listings; returns SKU -> ASIN.

        New listings are dated as a catalog built over time, a second apart and ending now:
        searchListingsItems pages at most 1000 results per search, and a seller's listings are
        read in windows of creation date (more than 1000 created in one second cannot be read
        by search at all; Amazon's listings reports are the way for such catalogs).
        """
        asins = {}
        fresh = [sku for sku in levels if sku not in self.records.listings]
        for sku, quantity in levels.items():
            listing = self.upsert_listing(sku, quantity)
            asins[sku] = listing.asin
        for age, sku in enumerate(reversed(fresh)):
            listing = self.records.listings[sku]
            listing.created = listing.created - timedelta(seconds=age)
            listing.updated = listing.created
        self.records.listings_generation += 1
        return asins

    def error_response(
        self, status: int, code: str, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """Injected errors in Amazon's shape (QuotaExceeded for 429s)."""
        codes = {
            429: ("QuotaExceeded", QUOTA_MESSAGE),
            503: ("ServiceUnavailable", "Service temporarily unavailable."),
            500: ("InternalFailure", "We encountered an internal error. Please try again."),
            403: ("Unauthorized", DENIED),
            404: ("NotFound", "The requested resource was not found."),
        }
        name, message = codes.get(
            status, ("InternalFailure" if status >= 500 else "InvalidInput", "Injected.")
        )
        return json_response(
            error_body(name, message),
            status=status,
            headers={**dict(headers), "x-amzn-RequestId": self._request_id()},
        )

    # -- the merchant and the shopper, as Python calls (the control routes wrap these) -------------

    def upsert_listing(
        self,
        sku: str,
        quantity: int | None,
        *,
        product_type: str | None = None,
        title: str | None = None,
        fba_quantity: int | None = None,
    ) -> Listing:
        """Create a listing or set its quantities directly, as an edit in Seller Central."""
        self._settle()
        now = self._now()
        listing = self.records.listings.get(sku)
        if listing is None:
            listing = Listing(
                sku=sku,
                asin=self._asin(),
                product_type=product_type or "PRODUCT",
                title=title or f"Sandbox item {sku}",
                created=now,
                updated=now,
            )
            self.records.listings[sku] = listing
        elif product_type or title:
            listing.product_type = product_type or listing.product_type
            listing.title = title or listing.title
        if quantity is not None:
            listing.availability[MFN] = quantity
        if fba_quantity is not None:
            listing.availability["AMAZON_NA"] = fba_quantity
        listing.updated = now
        self.records.listings_generation += 1
        return listing

    def place_order(
        self,
        lines: Sequence[tuple[str | None, int]],
        *,
        status: str = "Unshipped",
        fba: bool = False,
    ) -> Order:
        """A shopper buys: the listings' quantities drop at once (Pending holds units too)."""
        self._settle()
        if status not in ("Unshipped", "Pending"):
            raise JsonError(422, "invalid_status", "a new order is Unshipped or Pending")
        if not lines:
            raise JsonError(422, "invalid_lines", "an order needs at least one line")
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            if sku is None or quantity <= 0:
                raise JsonError(422, "invalid_lines", "every line needs a SKU and a quantity > 0")
            if sku not in self.records.listings:
                raise JsonError(422, "unknown_sku", f"no listing has SKU {sku!r}")
            wanted[sku] = wanted.get(sku, 0) + quantity
        code = "AMAZON_NA" if fba else MFN
        for sku, quantity in wanted.items():
            shown = self.records.listings[sku].availability.get(code, 0)
            if shown < quantity:
                raise JsonError(
                    409, "insufficient_stock", f"{sku}: {quantity} wanted, {shown} available"
                )
        now = self._now()
        for sku, quantity in wanted.items():
            self.records.listings[sku].availability[code] -= quantity
        order = Order(
            order_id=self._order_id(),
            status=status,
            purchased=now,
            updated=now,
            channel="AFN" if fba else "MFN",
            marketplace_id=self.marketplace_id,
            items=[
                Item(
                    item_id=self._item_id(),
                    sku=sku,
                    asin=self.records.listings[sku].asin,
                    title=self.records.listings[sku].title,
                    quantity=quantity,
                    price=DEFAULT_PRICE,
                )
                for sku, quantity in lines
                if sku is not None
            ],
        )
        self.records.orders[order.order_id] = order
        return order

    def pay_order(self, order_id: str) -> Order:
        """Payment authorised: Pending becomes Unshipped."""
        order = self._control_order(order_id)
        if order.status != "Pending":
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        self._set_status(order, "Unshipped")
        return order

    def cancel_order(self, order_id: str) -> Order:
        """Cancel an order not shipped yet; MFN units go back on the listings."""
        order = self._control_order(order_id)
        if order.status not in ("Pending", "Unshipped", "PendingAvailability"):
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        code = "AMAZON_NA" if order.channel == "AFN" else MFN
        for item in order.items:
            listing = self.records.listings.get(item.sku)
            if listing is not None:
                listing.availability[code] = listing.availability.get(code, 0) + item.quantity
        self._set_status(order, "Canceled")
        return order

    def ship_order(self, order_id: str) -> Order:
        """Everything left ships outside storesync (Buy Shipping in Seller Central)."""
        order = self._control_order(order_id)
        if order.status not in _OPEN:
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        for item in order.items:
            item.shipped = item.quantity
        self._set_status(order, "Shipped")
        return order

    def configure(self, **changes: Any) -> None:
        """Apply control-API config changes (already validated)."""
        for name in ("min_age_s", "apply_delay_s", "feed_delay_s", "gzip_reports"):
            if name in changes:
                setattr(self, name, changes[name])
        if "limits" in changes:
            self.limits = changes["limits"]
        if "order_items_page_size" in changes:
            self.order_items_page_size = changes["order_items_page_size"]
        if "api_key" in changes:
            self.refresh_token = changes["api_key"]
        if changes.get("revoke_tokens"):
            self.records.tokens.clear()
        for operation, rate in (changes.get("rates") or {}).items():
            self.rules[operation].reconfigure(
                rate_per_s=rate.get("rate_per_s"), burst=rate.get("burst")
            )

    # -- internals ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC).replace(microsecond=0)

    def _stamp(self, previous: datetime) -> datetime:
        """A new LastUpdateDate: now, but a second past the previous one (a new version)."""
        return max(self._now(), previous + _ONE_SECOND)

    def _set_status(self, order: Order, status: str) -> None:
        order.status = status
        order.updated = self._stamp(order.updated)

    def _control_order(self, order_id: str) -> Order:
        self._settle()
        order = self.records.orders.get(order_id)
        if order is None:
            raise JsonError(404, "not_found", f"no order {order_id}")
        return order

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _order_id(self) -> str:
        while True:
            rng = self._ids
            order_id = (
                f"{rng.randint(111, 999)}-{rng.randint(0, 9_999_999):07d}-"
                f"{rng.randint(0, 9_999_999):07d}"
            )
            if order_id not in self.records.orders:
                return order_id

    def _item_id(self) -> str:
        return f"{self._ids.randint(10**13, 10**14 - 1)}"

    def _asin(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return "B0" + "".join(self._ids.choice(alphabet) for _ in range(8))

    def _signature(self, document_id: str) -> str:
        return hmac.new(self._sign_key, document_id.encode(), hashlib.sha256).hexdigest()

    def _config(self) -> dict[str, Any]:
        return {
            "limits": self.limits,
            "min_age_s": self.min_age_s,
            "apply_delay_s": self.apply_delay_s,
            "feed_delay_s": self.feed_delay_s,
            "gzip_reports": self.gzip_reports,
            "order_items_page_size": self.order_items_page_size,
            "seller_id": self.seller_id,
            "marketplace_id": self.marketplace_id,
        }

    # -- what Amazon does later: apply patches, process feeds --------------------------------------

    def _settle(self) -> None:
        """Apply every accepted change and feed step that is due by now, oldest first."""
        now = self.clock.monotonic()
        t = self.records
        for feed in t.feeds.values():
            if feed.status == "IN_QUEUE" and now >= feed.created_mono + self.feed_delay_s / 2:
                feed.status, feed.started = "IN_PROGRESS", self._now()
        due_feeds = [
            feed
            for feed in t.feeds.values()
            if feed.status == "IN_PROGRESS" and now >= feed.created_mono + self.feed_delay_s
        ]
        steps: list[tuple[float, int, _Effect | Feed]] = [
            (effect.due, effect.seq, effect) for effect in t.effects if effect.due <= now
        ]
        steps += [(feed.created_mono + self.feed_delay_s, -1, feed) for feed in due_feeds]
        t.effects = [effect for effect in t.effects if effect.due > now]
        for _, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
            if isinstance(step, Feed):
                self._process_feed(step)
            else:
                self._apply_effect(step)

    def _apply_effect(self, effect: _Effect) -> None:
        listing = self.records.listings.get(effect.sku)
        if listing is not None:
            self._apply_patches(listing, effect.patches)

    def _apply_patches(self, listing: Listing, patches: Sequence[Mapping[str, Any]]) -> None:
        """Apply validated patches to a listing, counting stock writes that changed it."""
        before = listing.quantity
        for patch in patches:
            match = _ATTRIBUTE.fullmatch(patch["path"])
            assert match is not None  # validated on submission
            name, op, value = match.group("name"), patch["op"], patch.get("value")
            if name != FULFILLMENT:
                if op == "delete":
                    listing.attributes.pop(name, None)
                else:
                    listing.attributes[name] = value
                continue
            self.records.stock_writes += 1
            entries = value if isinstance(value, list) else []
            if op == "delete":
                codes = {e.get("fulfillment_channel_code") for e in entries} or set(
                    listing.availability
                )
                for code in codes:
                    listing.availability.pop(str(code), None)
                continue
            for entry in entries:
                # An entry replaces the entry of its own channel code only (models#2061).
                listing.availability[entry["fulfillment_channel_code"]] = int(
                    entry.get("quantity", 0)
                )
        listing.updated = self._now()
        self.records.listings_generation += 1
        if listing.quantity != before:
            self.records.effective_changes += 1

    def _process_feed(self, feed: Feed) -> None:
        """A feed's messages apply now; its processing report is written."""
        document = self.records.documents.get(feed.document_id)
        feed.ended = self._now()
        issues: list[dict[str, Any]] = []
        try:
            raw = document.content if document is not None else None
            data = json.loads(raw or b"")
        except ValueError:
            data = None
        header_problem = _feed_header_problem(data, self.seller_id)
        if header_problem is not None:
            feed.status = "FATAL"
            issues.append({"severity": "ERROR", "code": "FATAL", "message": header_problem})
            self._write_report(feed, issues, processed=0, accepted=0, invalid=0)
            return
        assert isinstance(data, dict)
        messages = data["messages"]
        accepted = invalid = 0
        seen: set[int] = set()
        for message in messages:
            problems = _message_problems(message, seen)
            sku = message.get("sku") if isinstance(message, dict) else None
            number = message.get("messageId") if isinstance(message, dict) else None
            if not problems and isinstance(sku, str):
                problems = self._apply_message(message)
            if problems:
                invalid += 1
                for text in problems:
                    issue: dict[str, Any] = {
                        "severity": "ERROR",
                        "code": "4000001",
                        "message": text,
                    }
                    if isinstance(number, int) and not isinstance(number, bool) and number >= 1:
                        issue["messageId"] = number
                    if isinstance(sku, str) and sku:
                        issue["sku"] = sku
                    issues.append(issue)
            else:
                accepted += 1
        feed.status = "DONE"
        self._write_report(
            feed, issues, processed=len(messages), accepted=accepted, invalid=invalid
        )

    def _apply_message(self, message: dict[str, Any]) -> list[str]:
        """Apply one valid feed message; the problems that stop it, if any."""
        sku, operation = message["sku"], message["operationType"]
        listing = self.records.listings.get(sku)
        if operation == "DELETE":
            if listing is None:
                return [f"SKU '{sku}' has no listing to delete."]
            del self.records.listings[sku]
            self.records.listings_generation += 1
            return []
        if operation == "UPDATE" and listing is None:
            listing = self.upsert_listing(sku, None, product_type=message["productType"])
        if listing is None:
            return [f"SKU '{sku}' does not exist; a {operation} needs an existing listing."]
        if operation == "PATCH":
            patches = message["patches"]
        else:
            patches = [
                {"op": "replace", "path": f"/attributes/{name}", "value": value}
                for name, value in message["attributes"].items()
            ]
        problems = [issue["message"] for issue in _patch_issues(patches, listing.product_type)]
        if problems:
            return problems
        self._apply_patches(listing, patches)
        return []

    def _write_report(
        self,
        feed: Feed,
        issues: list[dict[str, Any]],
        *,
        processed: int,
        accepted: int,
        invalid: int,
    ) -> None:
        errors = sum(1 for issue in issues if issue["severity"] == "ERROR")
        feed.report = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "feedId": feed.feed_id},
            "issues": issues,
            "summary": {
                "errors": errors,
                "warnings": len(issues) - errors,
                "messagesProcessed": processed,
                "messagesAccepted": accepted,
                "messagesInvalid": invalid,
            },
        }
        content = json.dumps(feed.report, separators=(",", ":")).encode()
        document = self._new_document("application/json; charset=UTF-8")
        if self.gzip_reports:
            # mtime=0: the same report is the same bytes, whatever the clock says.
            document.content, document.compression = gzip.compress(content, mtime=0), "GZIP"
        else:
            document.content = content
        feed.result_document_id = document.document_id

    def _new_document(self, content_type: str) -> Document:
        document_id = f"amzn1.tortuga.4.na.{self._request_id()}"
        document = Document(document_id, content_type, self._signature(document_id))
        self.records.documents[document_id] = document
        return document

    # -- auth, usage plans, headers, error shape ---------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._settle()
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else ""
        operation = OPERATIONS.get((request.method, template))
        if operation is None:
            try:
                return await handler(request)
            except AmazonError as exc:
                return exc.response()
            except web.HTTPException as exc:
                if exc.status in (404, 405):
                    return AmazonError(404, "NotFound", "Resource not found.").response()
                raise
        request_id = {"x-amzn-RequestId": self._request_id()}
        if not self._token_ok(request.headers.get("x-amz-access-token")):
            return AmazonError(
                403,
                "Unauthorized",
                DENIED,
                "The access token you provided is revoked, malformed or invalid.",
                headers={**request_id, "x-amzn-ErrorType": "AccessDeniedException"},
            ).response()
        rule = self.rules[operation]
        if self.limits and not rule.check(1.0).allowed:
            return AmazonError(429, "QuotaExceeded", QUOTA_MESSAGE, headers=request_id).response()
        rate = rule.rate_per_s if self.limits else UNLIMITED_RATE
        headers = {**request_id, "x-amzn-RateLimit-Limit": f"{rate:g}"}
        try:
            response = await handler(request)
        except AmazonError as exc:
            exc.headers.update(headers)
            return exc.response()
        response.headers.update(headers)
        return response

    def _token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        expiry = self.records.tokens.get(token)
        return expiry is not None and self.clock.monotonic() < expiry

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()

        def field_(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        if field_("grant_type") != "refresh_token":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant"},
                status=400,
            )
        if not (
            hmac.compare_digest(field_("client_id"), CLIENT_ID)
            and hmac.compare_digest(field_("client_secret"), CLIENT_SECRET)
        ):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                status=401,
            )
        if not hmac.compare_digest(field_("refresh_token"), self.refresh_token):
            return json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : "
                    "refresh_token",
                },
                status=400,
            )
        token = f"Atza|{self._ids.getrandbits(256):064x}"
        self.records.tokens[token] = self.clock.monotonic() + TOKEN_LIFETIME_S
        self.records.tokens_issued += 1
        return json_response(
            {
                "access_token": token,
                "refresh_token": self.refresh_token,
                "token_type": "bearer",
                "expires_in": TOKEN_LIFETIME_S,
            }
        )

    # -- ordersV0 ---------------------------------------------------------------------------------

    async def _get_orders(self, request: web.Request) -> web.Response:
        q = request.query
        marketplaces = _csv(q.get("MarketplaceIds"))
        if not marketplaces:
            raise _invalid("MarketplaceIds is required.")
        if len(marketplaces) > 50:
            raise _invalid("MarketplaceIds accepts at most 50 values.")
        created_after = _time_param(q, "CreatedAfter")
        updated_after = _time_param(q, "LastUpdatedAfter")
        created_before = _time_param(q, "CreatedBefore")
        updated_before = _time_param(q, "LastUpdatedBefore")
        if (created_after is None) == (updated_after is None):
            raise _invalid("Exactly one of CreatedAfter and LastUpdatedAfter must be specified.")
        if created_after is not None and updated_before is not None:
            raise _invalid("LastUpdatedBefore cannot be set when CreatedAfter is set.")
        if updated_after is not None and created_before is not None:
            raise _invalid("CreatedBefore cannot be set when LastUpdatedAfter is set.")
        by_update = updated_after is not None
        after = updated_after if by_update else created_after
        assert after is not None
        name = "LastUpdatedBefore" if by_update else "CreatedBefore"
        latest = self._now() - timedelta(seconds=self.min_age_s)
        before = updated_before if by_update else created_before
        if before is not None and before > latest:
            raise _invalid(f"{name} must be at least {self.min_age_s:g} seconds before now.")
        if after > latest:
            raise _invalid(
                f"{'LastUpdatedAfter' if by_update else 'CreatedAfter'} must be at least "
                f"{self.min_age_s:g} seconds before now."
            )
        before = before if before is not None else latest.replace(microsecond=0)
        if before < after:
            raise _invalid(f"{name} must be equal to or after the After date.")
        size = _int_param(q, "MaxResultsPerPage", MAX_ORDERS_PAGE, 1, MAX_ORDERS_PAGE)
        statuses = set(_csv(q.get("OrderStatuses")))
        channels = set(_csv(q.get("FulfillmentChannels")))
        filters = "&".join(
            f"{key}={q[key]}" for key in sorted(q) if key not in ("NextToken", "MaxResultsPerPage")
        )
        fingerprint = hashlib.sha256(filters.encode()).hexdigest()[:16]
        start: tuple[str, str] | None = None
        if "NextToken" in q:
            start = _read_token(q["NextToken"], fingerprint)

        def stamp(order: Order) -> datetime:
            return order.updated if by_update else order.purchased

        matching = sorted(
            (
                order
                for order in self.records.orders.values()
                if order.marketplace_id in marketplaces
                and after <= stamp(order) <= before
                and (not statuses or order.status in statuses)
                and (not channels or order.channel in channels)
            ),
            key=lambda o: (format_time(stamp(o)), o.order_id),
        )
        if start is not None:
            matching = [o for o in matching if (format_time(stamp(o)), o.order_id) > start]
        page = matching[:size]
        payload: dict[str, Any] = {"Orders": [order.to_api() for order in page]}
        if len(matching) > size:
            last = page[-1]
            payload["NextToken"] = _write_token(
                fingerprint, format_time(stamp(last)), last.order_id
            )
        payload[name] = format_time(before)
        return json_response({"payload": payload})

    def _api_order(self, request: web.Request) -> Order:
        order_id = request.match_info["order_id"]
        if not re.fullmatch(r"[0-9A-Z]{3}-\d{7}-\d{7}", order_id):
            raise _invalid(f"Invalid AmazonOrderId: {order_id}")
        order = self.records.orders.get(order_id)
        if order is None:
            raise AmazonError(404, "NotFound", f"Order {order_id} was not found.")
        return order

    async def _get_order(self, request: web.Request) -> web.Response:
        return json_response({"payload": self._api_order(request).to_api()})

    async def _get_order_items(self, request: web.Request) -> web.Response:
        order = self._api_order(request)
        size = self.order_items_page_size
        start = 0
        token = request.query.get("NextToken")
        if token is not None:
            try:
                start = int(base64.b64decode(token.encode(), validate=True).decode())
            except ValueError:
                raise _invalid("Invalid NextToken.") from None
            if not 0 < start < len(order.items):
                raise _invalid("Invalid NextToken.")
        items = order.items[start : start + size]
        payload: dict[str, Any] = {
            "AmazonOrderId": order.order_id,
            "OrderItems": [item.to_api(order.status == "Pending") for item in items],
        }
        if start + size < len(order.items):
            payload["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return json_response({"payload": payload})

    async def _confirm_shipment(self, request: web.Request) -> web.Response:
        order = self._api_order(request)
        body = await _json_object(request)
        marketplace = body.get("marketplaceId")
        package = body.get("packageDetail")
        if not isinstance(marketplace, str) or not marketplace:
            raise _invalid("marketplaceId is required.")
        if marketplace != order.marketplace_id:
            raise _invalid(f"Order {order.order_id} is not in marketplace {marketplace}.")
        if not isinstance(package, dict):
            raise _invalid("packageDetail is required.")
        reference = package.get("packageReferenceId")
        carrier = package.get("carrierCode")
        number = package.get("trackingNumber")
        ship_date = package.get("shipDate")
        lines = package.get("orderItems")
        for key, value in (
            ("packageReferenceId", reference),
            ("carrierCode", carrier),
            ("trackingNumber", number),
            ("shipDate", ship_date),
        ):
            if not isinstance(value, str) or not value:
                raise _invalid(f"packageDetail.{key} is required.")
        assert isinstance(reference, str) and isinstance(carrier, str)
        if not reference.isascii() or not reference.isdigit() or int(reference) <= 0:
            raise _invalid("packageReferenceId must be a positive number.")
        if carrier == "Other" and not package.get("carrierName"):
            raise _invalid("carrierName is required when carrierCode is Other.")
        try:
            shipped_at = datetime.fromisoformat(str(ship_date).replace("Z", "+00:00"))
        except ValueError:
            raise _invalid("shipDate must be an ISO 8601 date-time.") from None
        if shipped_at.tzinfo is None:
            raise _invalid("shipDate must carry a time zone.")
        if not isinstance(lines, list) or not lines:
            raise _invalid("packageDetail.orderItems must list at least one item.")
        if reference in order.packages:
            raise _invalid(
                f"Package {reference} has already been confirmed for order {order.order_id}."
            )
        if order.status in ("Shipped", "InvoiceUnconfirmed"):
            raise _invalid(f"Order {order.order_id} has already been shipped.")
        if order.status not in _OPEN:
            raise _invalid(f"Order {order.order_id} is {order.status} and cannot be shipped.")
        by_id = {item.item_id: item for item in order.items}
        units: dict[str, int] = {}
        for line in lines:
            item_id = line.get("orderItemId") if isinstance(line, dict) else None
            quantity = line.get("quantity") if isinstance(line, dict) else None
            if not isinstance(item_id, str) or item_id not in by_id:
                raise _invalid(f"orderItemId {item_id} is not an item of {order.order_id}.")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise _invalid(f"orderItems quantity for {item_id} must be a positive integer.")
            units[item_id] = units.get(item_id, 0) + quantity
        for item_id, quantity in units.items():
            item = by_id[item_id]
            if quantity > item.quantity - item.shipped:
                raise _invalid(
                    f"Quantity {quantity} for orderItemId {item_id} exceeds the "
                    f"{item.quantity - item.shipped} unshipped."
                )
        for item_id, quantity in units.items():
            by_id[item_id].shipped += quantity
        done = all(item.shipped >= item.quantity for item in order.items)
        self._set_status(order, "Shipped" if done else "PartiallyShipped")
        record = {
            "order_id": order.order_id,
            "package_reference_id": reference,
            "carrier": carrier if carrier != "Other" else str(package.get("carrierName")),
            "carrier_code": carrier,
            "tracking_number": number,
            "ship_date": ship_date,
            "items": units,
        }
        order.packages[reference] = record
        self.records.shipments.append(record)
        return web.Response(status=204)

    # -- listingsItems 2021-08-01 -----------------------------------------------------------------

    def _check_seller(self, request: web.Request) -> None:
        if request.match_info["seller_id"] != self.seller_id:
            raise AmazonError(403, "Unauthorized", DENIED, "The seller id is not yours.")

    def _marketplace(self, query: Mapping[str, str]) -> str:
        marketplaces = _csv(query.get("marketplaceIds"))
        if not marketplaces:
            raise _invalid("marketplaceIds is required.")
        if self.marketplace_id not in marketplaces:
            raise _invalid(f"The seller does not sell in marketplace {marketplaces[0]}.")
        return self.marketplace_id

    async def _search_listings(self, request: web.Request) -> web.Response:
        self._check_seller(request)
        q = request.query
        marketplace = self._marketplace(q)
        included = _included(q, INCLUDED_DATA, ("summaries",))
        size = _int_param(q, "pageSize", DEFAULT_SEARCH_PAGE, 1, MAX_SEARCH_PAGE)
        identifiers = _csv(q.get("identifiers"))
        kind = q.get("identifiersType")
        if bool(identifiers) != (kind is not None):
            raise _invalid("identifiers and identifiersType go together.")
        if len(identifiers) > MAX_IDENTIFIERS:
            raise _invalid(f"identifiers accepts at most {MAX_IDENTIFIERS} values.")
        sort_by = _choice(q, "sortBy", ("sku", "createdDate", "lastUpdatedDate"), "lastUpdatedDate")
        descending = _choice(q, "sortOrder", ("ASC", "DESC"), "DESC") == "DESC"
        bounds = {
            name: _time_param(q, name)
            for name in ("createdAfter", "createdBefore", "lastUpdatedAfter", "lastUpdatedBefore")
        }

        def keep(listing: Listing) -> bool:
            if identifiers and (kind != "SKU" or listing.sku not in identifiers):
                return False
            checks = (
                (bounds["createdAfter"], listing.created, 1),
                (bounds["createdBefore"], listing.created, -1),
                (bounds["lastUpdatedAfter"], listing.updated, 1),
                (bounds["lastUpdatedBefore"], listing.updated, -1),
            )
            return all(
                bound is None or (value >= bound if sign > 0 else value <= bound)
                for bound, value, sign in checks
            )

        def key(listing: Listing) -> tuple[Any, ...]:
            value = {
                "sku": listing.sku,
                "createdDate": format_time(listing.created),
                "lastUpdatedDate": format_time(listing.updated),
            }[sort_by]
            return (value, listing.sku)

        filters = "&".join(f"{k}={q[k]}" for k in sorted(q) if k != "pageToken")
        fingerprint = hashlib.sha256(filters.encode()).hexdigest()[:16]
        t = self.records
        if identifiers:
            candidates = [t.listings[s] for s in identifiers if s in t.listings]
            found = sorted(filter(keep, candidates), key=key, reverse=descending)
        else:
            cached = t.searches.get(fingerprint)
            if cached is not None and cached[0] == t.listings_generation:
                found = cached[1]
            else:
                found = sorted(filter(keep, t.listings.values()), key=key, reverse=descending)
                if len(t.searches) > 64:
                    t.searches.clear()
                t.searches[fingerprint] = (t.listings_generation, found)
        offset = 0
        if "pageToken" in q:
            offset = _read_page_token(q["pageToken"], fingerprint)
        reachable = min(len(found), SEARCH_CAP)  # "at most 1000 items can be paged through"
        page = found[offset : min(offset + size, reachable)]
        body: dict[str, Any] = {
            "numberOfResults": len(found),
            "items": [listing.to_item(included, marketplace) for listing in page],
        }
        pagination: dict[str, str] = {}
        if offset + size < reachable:
            pagination["nextToken"] = _write_page_token(fingerprint, offset + size)
        if offset > 0:
            pagination["previousToken"] = _write_page_token(fingerprint, max(offset - size, 0))
        if pagination:
            body["pagination"] = pagination
        return json_response(body)

    async def _get_listing(self, request: web.Request) -> web.Response:
        self._check_seller(request)
        marketplace = self._marketplace(request.query)
        included = _included(request.query, INCLUDED_DATA, ("summaries",))
        sku = request.match_info["sku"]
        listing = self.records.listings.get(sku)
        if listing is None:
            raise AmazonError(
                404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace {marketplace}"
            )
        return json_response(listing.to_item(included, marketplace))

    async def _patch_listing(self, request: web.Request) -> web.Response:
        self._check_seller(request)
        q = request.query
        marketplace = self._marketplace(q)
        _included(q, ("identifiers", "issues"), ("issues",))
        preview = q.get("mode")
        if preview not in (None, "VALIDATION_PREVIEW"):
            raise _invalid(f"Unknown mode {preview}.")
        sku = request.match_info["sku"]
        body = await _json_object(request)
        product_type, patches = body.get("productType"), body.get("patches")
        if not isinstance(product_type, str) or not product_type:
            raise _invalid("productType is required.")
        if not isinstance(patches, list) or not patches:
            raise _invalid("patches must list at least one operation.")
        listing = self.records.listings.get(sku)
        issues = (
            _patch_issues(patches, product_type)
            if listing is not None
            else [
                _issue(
                    "LISTING_NOT_FOUND",
                    f"SKU '{sku}' has no listing in marketplace {marketplace}; "
                    "create it with putListingsItem first.",
                )
            ]
        )
        submission = uuid.UUID(int=self._ids.getrandbits(128), version=4).hex
        if issues:
            status = "INVALID"
        elif preview:
            status = "VALID"
        else:
            status = "ACCEPTED"
            self.records.submissions += 1
            self.records.effects.append(
                _Effect(
                    due=self.clock.monotonic() + self.apply_delay_s,
                    seq=next(self.records.seq),
                    sku=sku,
                    patches=tuple(dict(p) for p in patches),
                )
            )
        return json_response(
            {"sku": sku, "status": status, "submissionId": submission, "issues": issues}
        )

    # -- feeds 2021-06-30 -------------------------------------------------------------------------

    async def _create_document(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        content_type = body.get("contentType")
        if not isinstance(content_type, str) or not content_type:
            raise _invalid("contentType is required.")
        document = self._new_document(content_type)
        return json_response(
            {"feedDocumentId": document.document_id, "url": self._document_url(request, document)},
            status=201,
        )

    def _document_url(self, request: web.Request, document: Document) -> str:
        origin = str(request.url.origin())
        return f"{origin}/_documents/{document.document_id}?X-Amz-Signature={document.signature}"

    async def _get_document(self, request: web.Request) -> web.Response:
        document = self.records.documents.get(request.match_info["document_id"])
        if document is None or document.content is None:
            raise AmazonError(404, "NotFound", "The feed document was not found.")
        answer: dict[str, Any] = {
            "feedDocumentId": document.document_id,
            "url": self._document_url(request, document),
        }
        if document.compression:
            answer["compressionAlgorithm"] = document.compression
        return json_response(answer)

    def _signed_document(self, request: web.Request) -> Document:
        document = self.records.documents.get(request.match_info["document_id"])
        signature = request.query.get("X-Amz-Signature", "")
        if document is None or not hmac.compare_digest(signature, document.signature):
            raise web.HTTPForbidden(
                text="<Error><Code>SignatureDoesNotMatch</Code></Error>",
                content_type="application/xml",
            )
        return document

    async def _upload(self, request: web.Request) -> web.Response:
        document = self._signed_document(request)
        if document.content is not None:
            raise web.HTTPForbidden(
                text="<Error><Code>AccessDenied</Code></Error>", content_type="application/xml"
            )
        document.content = await request.read()
        return web.Response(status=200)

    async def _download(self, request: web.Request) -> web.Response:
        document = self._signed_document(request)
        if document.content is None:
            raise web.HTTPNotFound(
                text="<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml"
            )
        return web.Response(body=document.content, content_type="application/octet-stream")

    async def _create_feed(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        feed_type = body.get("feedType")
        marketplaces = body.get("marketplaceIds")
        document_id = body.get("inputFeedDocumentId")
        if not isinstance(feed_type, str) or not feed_type:
            raise _invalid("feedType is required.")
        if feed_type != FEED_TYPE:
            raise _invalid(f"The sandbox processes {FEED_TYPE} only, not {feed_type}.")
        if (
            not isinstance(marketplaces, list)
            or not 1 <= len(marketplaces) <= 25
            or not all(isinstance(m, str) for m in marketplaces)
        ):
            raise _invalid("marketplaceIds must list 1 to 25 marketplace ids.")
        if self.marketplace_id not in marketplaces:
            raise _invalid(f"The seller does not sell in marketplace {marketplaces[0]}.")
        document = self.records.documents.get(document_id) if isinstance(document_id, str) else None
        if document is None:
            raise _invalid(f"inputFeedDocumentId {document_id} does not exist.")
        if document.content is None:
            raise _invalid(f"Feed document {document_id} has no content uploaded.")
        feed = Feed(
            feed_id=str(next(self.records.feed_ids)),
            feed_type=feed_type,
            marketplace_ids=list(marketplaces),
            document_id=document.document_id,
            created=self._now(),
            created_mono=self.clock.monotonic(),
        )
        self.records.feeds[feed.feed_id] = feed
        return json_response({"feedId": feed.feed_id}, status=202)

    async def _get_feed(self, request: web.Request) -> web.Response:
        feed = self.records.feeds.get(request.match_info["feed_id"])
        if feed is None:
            raise AmazonError(404, "NotFound", "The feed was not found.")
        return json_response(feed.to_api())

    # -- control handlers --------------------------------------------------------------------------

    async def _control_listings(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        items = body.get("listings") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise JsonError(400, "invalid_body", 'expected {"listings": [...]}')
        out = []
        for item in items:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("sku"), str)
                or not item["sku"]
            ):
                raise JsonError(400, "invalid_body", "each listing needs a sku string")
            quantity, fba = item.get("quantity"), item.get("fba_quantity")
            for name, value in (("quantity", quantity), ("fba_quantity", fba)):
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0
                ):
                    raise JsonError(400, "invalid_body", f"{name} must be an integer >= 0")
            if quantity is None and fba is None:
                quantity = 0
            product_type, title = item.get("product_type"), item.get("title")
            listing = self.upsert_listing(
                item["sku"],
                quantity,
                product_type=product_type if isinstance(product_type, str) else None,
                title=title if isinstance(title, str) else None,
                fba_quantity=fba,
            )
            out.append(listing.to_item(INCLUDED_DATA, self.marketplace_id))
        return json_response({"listings": out})

    async def _control_place_order(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        lines = read_order_lines(body)
        status = body.get("status", "open")
        statuses = {"open": "Unshipped", "pending": "Pending"}
        if status not in statuses:
            raise JsonError(400, "invalid_body", "status must be open or pending")
        fba = body.get("fba", False)
        if not isinstance(fba, bool):
            raise JsonError(400, "invalid_body", "fba must be true or false")
        order = self.place_order(lines, status=statuses[status], fba=fba)
        return json_response(
            {
                **order.to_api(),
                "id": order.order_id,
                "items": [item.to_api(False) for item in order.items],
            },
            status=201,
        )

    async def _control_order_action(self, request: web.Request) -> web.Response:
        order_id, action = request.match_info["order_id"], request.match_info["action"]
        actions: dict[str, Callable[[str], Order]] = {
            "cancel": self.cancel_order,
            "pay": self.pay_order,
            "ship": self.ship_order,
        }
        if action not in actions:
            raise JsonError(404, "unknown_action", f"no order action {action!r}")
        order = actions[action](order_id)
        return json_response({**order.to_api(), "id": order.order_id})

    async def _control_config(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict):
            raise JsonError(400, "invalid_body", "expected a JSON object")
        changes = _config_changes(body, set(self.rules))
        self.configure(**changes)
        return json_response(
            {**self._config(), "rate_limits": {op: r.snapshot() for op, r in self.rules.items()}}
        )


# -- validation helpers ----------------------------------------------------------------------------


def _issue(code: str, message: str, attribute: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "code": code,
        "message": message,
        "severity": "ERROR",
        "categories": ["INVALID_ATTRIBUTE"],
    }
    if attribute:
        issue["attributeNames"] = [attribute]
    return issue


def _patch_issues(patches: Sequence[Any], product_type: str) -> list[dict[str, Any]]:
    """What Amazon would refuse in a list of JSON Patch operations on listing attributes."""
    issues: list[dict[str, Any]] = []
    for patch in patches:
        if not isinstance(patch, dict):
            issues.append(_issue("4000001", "Each patch must be a JSON object."))
            continue
        op, path, value = patch.get("op"), patch.get("path"), patch.get("value")
        if op not in ("add", "replace", "merge", "delete"):
            issues.append(_issue("4000001", f"Unsupported patch op {op!r}."))
            continue
        match = _ATTRIBUTE.fullmatch(path) if isinstance(path, str) else None
        if match is None:
            issues.append(_issue("4000001", f"Patch path {path!r} is not a top-level attribute."))
            continue
        name = match.group("name")
        if not _SNAKE.fullmatch(name):
            # selling-partner-api-docs#2068: camelCase names are not attributes.
            issues.append(
                _issue(
                    "90000900",
                    f"The attribute '{name}' is not valid for the product type {product_type}.",
                    name,
                )
            )
            continue
        if op != "delete" and not isinstance(value, list):
            issues.append(_issue("4000001", f"The value of '{name}' must be an array.", name))
            continue
        if name == FULFILLMENT:
            issues.extend(_fulfillment_issues(value if isinstance(value, list) else [], op))
    return issues


def _fulfillment_issues(entries: Sequence[Any], op: str) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    for entry in entries:
        code = entry.get("fulfillment_channel_code") if isinstance(entry, dict) else None
        if not isinstance(code, str) or not code:
            issues.append(_issue("4000001", "fulfillment_channel_code is required.", FULFILLMENT))
            continue
        quantity = entry.get("quantity")
        if op != "delete" and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0
        ):
            issues.append(
                _issue(
                    "4000001",
                    f"quantity for {code} must be an integer greater than or equal to 0.",
                    FULFILLMENT,
                )
            )
    return issues


def _feed_header_problem(data: Any, seller_id: str) -> str | None:
    """Why a feed document cannot be processed at all (FATAL), or None."""
    if not isinstance(data, dict):
        return "The feed document is not a JSON object."
    header, messages = data.get("header"), data.get("messages")
    if not isinstance(header, dict) or header.get("version") != "2.0":
        return 'The feed header must be an object with "version": "2.0".'
    if header.get("sellerId") != seller_id:
        return f"The feed header's sellerId is not {seller_id}."
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_FEED_MESSAGES:
        return f"A feed carries 1 to {MAX_FEED_MESSAGES} messages."
    return None


_ALLOWED = {
    # listings-feed-schema-v2.json: what each operationType requires and forbids
    "UPDATE": ({"productType", "attributes"}, {"patches"}),
    "PARTIAL_UPDATE": ({"productType", "attributes"}, {"patches", "requirements"}),
    "PATCH": ({"productType", "patches"}, {"attributes", "requirements"}),
    "DELETE": (set(), {"requirements", "attributes", "productType", "patches"}),
}


_SHAPES: Mapping[str, tuple[type, str]] = {
    "productType": (str, "a non-empty string"),
    "patches": (list, "a non-empty list of operations"),
    "attributes": (dict, "a non-empty object"),
}


def _message_problems(message: Any, seen: set[int]) -> list[str]:
    """What listings-feed-schema-v2.json forbids in one message."""
    if not isinstance(message, dict):
        return ["A message must be a JSON object."]
    number, sku, operation = (
        message.get("messageId"),
        message.get("sku"),
        message.get("operationType"),
    )
    problems = []
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 2**31 - 1:
        problems.append("messageId must be an integer from 1 to 2147483647.")
    elif number in seen:
        problems.append(f"messageId {number} is used twice.")
    else:
        seen.add(number)
    if not isinstance(sku, str) or not sku:
        problems.append("sku is required.")
    if operation not in _ALLOWED:
        problems.append(f"operationType {operation!r} is not one of {sorted(_ALLOWED)}.")
        return problems
    required, forbidden = _ALLOWED[operation]
    problems += [f"{name} is required for {operation}." for name in sorted(required - set(message))]
    problems += [
        f"{name} is not allowed for {operation}." for name in sorted(forbidden & set(message))
    ]
    for name in sorted(required & set(message)):
        kind, wanted = _SHAPES[name]
        if not isinstance(message[name], kind) or not message[name]:
            problems.append(f"{name} must be {wanted}.")
    return problems


def _config_changes(body: Mapping[str, Any], operations: set[str]) -> dict[str, Any]:
    allowed = {
        "limits",
        "min_age_s",
        "apply_delay_s",
        "feed_delay_s",
        "gzip_reports",
        "order_items_page_size",
        "api_key",
        "revoke_tokens",
        "rates",
    }
    unknown = set(body) - allowed
    if unknown:
        raise JsonError(
            400, "invalid_config", f"unknown keys {sorted(unknown)}; keys: {sorted(allowed)}"
        )
    for name in ("limits", "gzip_reports", "revoke_tokens"):
        if name in body and not isinstance(body[name], bool):
            raise JsonError(400, "invalid_config", f"{name} must be true or false")
    for name in ("min_age_s", "apply_delay_s", "feed_delay_s"):
        value = body.get(name)
        if name in body and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value < math.inf
        ):
            raise JsonError(400, "invalid_config", f"{name} must be a number >= 0")
    size = body.get("order_items_page_size")
    if "order_items_page_size" in body and (
        isinstance(size, bool) or not isinstance(size, int) or size < 1
    ):
        raise JsonError(400, "invalid_config", "order_items_page_size must be an integer >= 1")
    if "api_key" in body and (not isinstance(body["api_key"], str) or not body["api_key"]):
        raise JsonError(400, "invalid_config", "api_key must be a non-empty string")
    rates = body.get("rates")
    if "rates" in body:
        if not isinstance(rates, dict):
            raise JsonError(400, "invalid_config", "rates must map operations to rate and burst")
        for operation, rate in rates.items():
            if operation not in operations or not isinstance(rate, dict):
                raise JsonError(400, "invalid_config", f"no usage plan for {operation!r}")
            for key, value in rate.items():
                if (
                    key not in ("rate_per_s", "burst")
                    or isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or value <= 0
                ):
                    raise JsonError(
                        400, "invalid_config", f"{operation}.{key} must be a number > 0"
                    )
    return dict(body)


# -- request helpers -------------------------------------------------------------------------------


def _csv(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _time_param(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"{name} must be an ISO 8601 date-time, not {raw!r}.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"{name} must be an integer.") from None
    if not low <= value <= high:
        raise _invalid(f"{name} must be between {low} and {high}.")
    return value


def _choice(query: Mapping[str, str], name: str, options: Sequence[str], default: str) -> str:
    value = query.get(name, default)
    if value not in options:
        raise _invalid(f"{name} must be one of {', '.join(options)}.")
    return value


def _included(
    query: Mapping[str, str], options: Sequence[str], default: Sequence[str]
) -> list[str]:
    values = _csv(query.get("includedData")) or list(default)
    unknown = [value for value in values if value not in options]
    if unknown:
        raise _invalid(f"includedData {unknown[0]!r} is not one of {', '.join(options)}.")
    return values


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise _invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    return body


def _write_token(fingerprint: str, stamp: str, order_id: str) -> str:
    # Standard base64 (with '+', '/' and '='), as Amazon's tokens are: clients must encode it.
    data = json.dumps({"f": fingerprint, "k": [stamp, order_id]})
    return base64.b64encode(data.encode()).decode()


def _read_token(token: str, fingerprint: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.b64decode(token.encode(), validate=True))
        stamp, order_id = data["k"]
        same = data["f"] == fingerprint
    except (ValueError, KeyError, TypeError):
        raise _invalid("Invalid NextToken.") from None
    if not same:
        raise _invalid("NextToken was issued for other filters; resend the same filters.")
    return str(stamp), str(order_id)


def _write_page_token(fingerprint: str, offset: int) -> str:
    return base64.b64encode(json.dumps({"f": fingerprint, "o": offset}).encode()).decode()


def _read_page_token(token: str, fingerprint: str) -> int:
    try:
        data = json.loads(base64.b64decode(token.encode(), validate=True))
        offset, same = int(data["o"]), data["f"] == fingerprint
    except (ValueError, KeyError, TypeError):
        raise _invalid("Invalid pageToken.") from None
    if not same or offset < 0:
        raise _invalid("pageToken was issued for another search.")
    return offset

"""A fake WooCommerce store: the REST API storesync uses, its webhooks, and a shopper's controls.

The API, under `/wp-json` (facts and sources: reference/channel-apis.md section 2)::

    GET  /wc/v3/orders?modified_after&dates_are_gmt&status&orderby&order&page&per_page
    GET  /wc/v3/orders/{id}                  PUT /wc/v3/orders/{id} {status, meta_data}
    GET  /wc/v3/orders/{id}/notes            POST /wc/v3/orders/{id}/notes {note, customer_note}
    GET  /wc/v3/products?page&per_page&include&sku&type&orderby&order
    GET  /wc/v3/products/{id}                PUT /wc/v3/products/{id} {stock_quantity, manage_stock}
    POST /wc/v3/products/batch {update: [...]}                  (over 100 objects: 413)
    GET  /wc/v3/products/{id}/variations     GET|PUT /wc/v3/products/{id}/variations/{vid}
    POST /wc/v3/products/{id}/variations/batch {update: [...]}
    GET|POST /wc-shipment-tracking/v3/orders/{id}/shipment-trackings   (the extension; 201)
    GET  /wc-shipment-tracking/v3/shipment-trackings/providers

Auth is HTTP Basic with the consumer key and secret, or the `consumer_key` / `consumer_secret`
query parameters; without either the answer is 401 `woocommerce_rest_cannot_view`, with wrong
ones 401 `woocommerce_rest_authentication_error` (the real store also insists on HTTPS for
Basic auth; a loopback sandbox does not). Errors are WP REST objects
`{"code", "message", "data": {"status"}}`; an unknown route is 404 `rest_no_route`. Lists carry
X-WP-Total, X-WP-TotalPages and a Link header; per_page is at most 100. Stock writes are
absolute with no compare-and-set; `effective_changes` counts writes that changed a level. Core
WooCommerce has no rate limit; an optional host-level token bucket (off unless `rate_per_s` is
set) answers 429 with Retry-After.

Webhooks behave like `class-wc-webhook.php` and `wc-webhook-functions.php`: one webhook record
(id 1) stands for the merchant's webhooks on `order.created`, `order.updated`, `order.deleted`,
`order.restored` and `product.updated`, all pointing at the configured URL (WooCommerce keeps one
webhook per topic; the sandbox keeps one status and failure count). Each delivery's payload is
the resource as `GET /wc/v3/{resource}s/{id}` shows it *when the delivery is sent*, `{"id": N}`
for `order.deleted`, or the REST error when the resource is gone by then. A delivery is not
queued while one for the same (topic, resource) is still pending (`wc_webhook_execute_queue`:
"only schedule one webhook every 10 minutes"). There are no retries; any answer but 2xx/301/302
is a failure, and a failure arriving when `failure_count` is already above `max_failures` (5)
sets the webhook `disabled` (`failed_delivery()`: with the default, the 7th consecutive failure)
until re-enabled through the control API. A checkout emits both `order.created` and
`order.updated`. Setting a webhook URL (or re-activating) sends the unsigned form-encoded ping
`webhook_id=1`.

The control API (no auth) plays shopper and merchant::

    POST /_control/listings  {"listings": [{"sku", "quantity", "tracked"?, "title"?, "price"?}]}
    POST /_control/variable  {"name", "sku"?, "variations": [{"sku", "quantity", "option"?}]}
    POST /_control/orders    {"lines": [{"sku", "quantity"}], "status"?: processing|pending|
                              on-hold ("open" means processing), "customer"?}
    POST /_control/orders/{id}/pay | complete | cancel | trash | restore | delete
    POST /_control/orders/{id}/refund {"restock": bool}
    GET|PUT /_control/webhook {"status": active|paused|disabled}
    PUT  /_control/config    {"consumer_key", "consumer_secret", "rate_per_s", "burst",
                              "max_failures", "shipment_tracking"}

Deliberate differences from a real store: `date_modified` moves at least one second per change
(WooCommerce stamps whole seconds, so two changes in one second share a version there); the
site's timezone is UTC; pending orders hold no stock until paid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from connectors.sandbox.app import (
    UNSET,
    JsonError,
    SandboxBase,
    _Unset,
    json_response,
    read_json,
    read_order_lines,
)
from connectors.sandbox.ratelimit import TokenBucketRule
from connectors.sandbox.webhooks import WebhookSender, _Job
from connectors.woocommerce.webhooks import (
    DELIVERY_ID_HEADER,
    EVENT_HEADER,
    RESOURCE_HEADER,
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    format_time,
    sign_payload,
)

DEFAULT_CONSUMER_KEY = "ck_storesync_sandbox"
DEFAULT_CONSUMER_SECRET = "cs_storesync_sandbox"
DEFAULT_SITE_URL = "http://localhost/"
DEFAULT_PRICE = Decimal("6.00")
WEBHOOK_TIMEOUT_S = 60.0  # deliver(): 'timeout' => MINUTE_IN_SECONDS
MAX_FAILURES = 5  # the woocommerce_max_webhook_delivery_failures default
COALESCE_S = 600.0
MAX_BATCH = 100
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 10
WC_VERSION = "9.9.0"
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/6.8)"
WEBHOOK_TOPICS = (
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
    "product.updated",
)
ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
)
# A few of the extension's predefined providers and their link templates (%1$s = number).
PROVIDERS: Mapping[str, str] = {
    "UPS": "https://www.ups.com/track?tracknum=%1$s",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction_input?qtc_tLabels1=%1$s",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr=%1$s",
    "DHL": "https://www.dhl.com/en/express/tracking.html?AWB=%1$s",
}

_ONE_SECOND = timedelta(seconds=1)
_STOCK_HOLDING = ("processing", "on-hold", "completed")
_AUTH_PARAMS = ("consumer_key", "consumer_secret")


class WPError(web.HTTPException):
    """A WP REST error answered as `{"code", "message", "data": {"status", ...}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status  # HTTPException reads the status from this attribute
        super().__init__(
            text=json.dumps(wp_error_body(status, code, message, params), separators=(",", ":")),
            content_type="application/json",
            headers=dict(headers) if headers else None,
        )
        self.code = code


def wp_error_body(
    status: int, code: str, message: str, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A WP REST error object."""
    data: dict[str, Any] = {"status": status}
    if params:
        data["params"] = dict(params)
    return {"code": code, "message": message, "data": data}


def wp_json_encode(payload: Any) -> bytes:
    """JSON as PHP's json_encode writes it by default: compact, `\\/`, `\\uXXXX` escapes."""
    # The signature covers these exact bytes: a client must verify the raw body, not a re-dump.
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def wp_time(moment: datetime | None) -> str | None:
    """A WooCommerce date field: `2017-03-22T16:28:02` (the site runs on UTC)."""
    return format_time(moment) if moment is not None else None


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


# -- the store's records ---------------------------------------------------------------------------


@dataclass(slots=True)
class Product:
    """A simple or variable product, or a variation (type "variation", with a parent)."""

    id: int
    name: str
    type: str
    sku: str
    manage_stock: bool
    stock: int  # kept while not managed; the API shows null then, as WooCommerce does
    price: Decimal
    created: datetime
    modified: datetime
    parent_id: int = 0
    variations: list[int] = field(default_factory=list)
    option: str = ""  # a variation's attribute value

    @property
    def stock_quantity(self) -> int | None:
        """The level the API shows."""
        return self.stock if self.manage_stock else None

    @property
    def stock_status(self) -> str:
        """instock or outofstock."""
        return "outofstock" if self.manage_stock and self.stock <= 0 else "instock"

    def _common(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date_created": wp_time(self.created),
            "date_created_gmt": wp_time(self.created),
            "date_modified": wp_time(self.modified),
            "date_modified_gmt": wp_time(self.modified),
            "status": "publish",
            "sku": self.sku,
            "price": _money(self.price),
            "regular_price": _money(self.price),
            "sale_price": "",
            "manage_stock": self.manage_stock,
            "stock_quantity": self.stock_quantity,
            "stock_status": self.stock_status,
            "backorders": "no",
        }

    def to_api(self) -> dict[str, Any]:
        """As `GET /products/{id}` (and the product webhooks) show it."""
        slug = self.name.lower().replace(" ", "-")
        attributes = (
            [{"id": 0, "name": "Option", "option": self.option}] if self.type == "variation" else []
        )
        return {
            **self._common(),
            "name": self.name,
            "slug": slug,
            "type": self.type,
            "parent_id": self.parent_id,
            "variations": list(self.variations),
            "attributes": attributes,
        }

    def to_variation_api(self) -> dict[str, Any]:
        """As `GET /products/{id}/variations` shows a variation."""
        return {
            **self._common(),
            "description": "",
            "attributes": [{"id": 0, "name": "Option", "option": self.option}],
        }


@dataclass(slots=True)
class LineItem:
    """One order line."""

    id: int
    product_id: int
    variation_id: int
    sku: str
    name: str
    quantity: int
    price: Decimal

    def to_api(self) -> dict[str, Any]:
        """As the order shows it."""
        total = _money(self.price * self.quantity)
        return {
            "id": self.id,
            "name": self.name,
            "product_id": self.product_id,
            "variation_id": self.variation_id,
            "quantity": self.quantity,
            "tax_class": "",
            "subtotal": total,
            "subtotal_tax": "0.00",
            "total": total,
            "total_tax": "0.00",
            "taxes": [],
            "meta_data": [],
            "sku": self.sku,
            "price": float(self.price),
        }


@dataclass(slots=True)
class Order:
    """One order."""

    id: int
    status: str
    created: datetime
    modified: datetime
    email: str
    line_items: list[LineItem]
    currency: str = "USD"
    paid: datetime | None = None
    completed: datetime | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)
    meta_data: list[dict[str, Any]] = field(default_factory=list)
    stock_reduced: bool = False
    status_before_trash: str = ""

    @property
    def total(self) -> Decimal:
        """The order total."""
        return sum((item.price * item.quantity for item in self.line_items), Decimal(0))

    def to_api(self) -> dict[str, Any]:
        """As `GET /orders/{id}` (and the order webhooks) show it."""
        address = {"first_name": "Sam", "last_name": "Shopper", "country": "US"}
        return {
            "id": self.id,
            "parent_id": 0,
            "number": str(self.id),
            "order_key": f"wc_order_{self.id:08d}",
            "created_via": "checkout",
            "version": WC_VERSION,
            "status": self.status,
            "currency": self.currency,
            "date_created": wp_time(self.created),
            "date_created_gmt": wp_time(self.created),
            "date_modified": wp_time(self.modified),
            "date_modified_gmt": wp_time(self.modified),
            "discount_total": "0.00",
            "shipping_total": "0.00",
            "total": _money(self.total),
            "total_tax": "0.00",
            "prices_include_tax": False,
            "customer_id": 0,
            "billing": {**address, "email": self.email},
            "shipping": dict(address),
            "payment_method": "bacs",
            "payment_method_title": "Direct bank transfer",
            "date_paid": wp_time(self.paid),
            "date_paid_gmt": wp_time(self.paid),
            "date_completed": wp_time(self.completed),
            "date_completed_gmt": wp_time(self.completed),
            "meta_data": [dict(meta) for meta in self.meta_data],
            "line_items": [item.to_api() for item in self.line_items],
            "refunds": [dict(refund) for refund in self.refunds],
        }


@dataclass(slots=True)
class Webhook:
    """The webhook record: status and consecutive failures, as WooCommerce keeps them."""

    id: int = 1
    status: str = "active"  # active | paused | disabled
    failure_count: int = 0
    max_failures: int = MAX_FAILURES
    coalesced: int = 0  # deliveries not queued because one was pending
    not_active: int = 0  # events not delivered because the webhook was not active
    pings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, pending: int) -> dict[str, Any]:
        """The record as control-API JSON."""
        return {
            "id": self.id,
            "status": self.status,
            "failure_count": self.failure_count,
            "max_failures": self.max_failures,
            "topics": list(WEBHOOK_TOPICS),
            "coalesced": self.coalesced,
            "not_active": self.not_active,
            "pending": pending,
            "pings": list(self.pings),
        }


@dataclass(frozen=True, slots=True)
class _Event:
    """What one queued delivery is about; its payload is built when it is sent."""

    topic: str
    resource_id: int

    @property
    def resource(self) -> str:
        """order or product."""
        return self.topic.split(".", 1)[0]


@dataclass(slots=True)
class _Truth:
    products: dict[int, Product] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    trackings: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    stock_writes: int = 0
    effective_changes: int = 0
    # Products, variations, orders and refunds are all WordPress posts: one id sequence.
    post_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    item_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    note_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    meta_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # SKU -> product or variation id; SKUs never change once a product exists.
    sku_index: dict[str, int] = field(default_factory=dict)

    def add(self, product: Product) -> None:
        """Keep a new product, variation or variable parent."""
        self.products[product.id] = product
        if product.sku:
            self.sku_index[product.sku] = product.id

    def by_sku(self, sku: str) -> Product | None:
        """The product or variation with this SKU."""
        product_id = self.sku_index.get(sku)
        return None if product_id is None else self.products.get(product_id)


class _HookshotSender(WebhookSender):
    """The shared sender, with WooCommerce's habit of building the payload when it sends."""

    def __init__(
        self,
        *,
        render: Callable[[str], tuple[bytes, dict[str, str]] | None],
        settle: Callable[[str, int | None], None],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._render = render
        self._settle = settle

    async def _post(self, job: _Job) -> tuple[int | None, str | None]:
        rendered = self._render(job.delivery_id)
        if rendered is not None:
            job.body, job.headers = rendered
        status, error = await super()._post(job)
        self._settle(job.delivery_id, status)
        return status, error


# -- the sandbox -----------------------------------------------------------------------------------


class WooCommerceSandbox(SandboxBase):
    """WooCommerce, faked: its REST API, webhooks, the Shipment Tracking extension, a shopper."""

    kind = "woocommerce"

    def __init__(
        self,
        *,
        consumer_key: str = DEFAULT_CONSUMER_KEY,
        consumer_secret: str = DEFAULT_CONSUMER_SECRET,
        api_key: str | None = None,
        rate_per_s: float | None = None,
        burst: float | None = None,
        max_failures: int = MAX_FAILURES,
        shipment_tracking: bool = True,
        site_url: str = DEFAULT_SITE_URL,
        retry_delays: Sequence[float] = (),
        webhook_timeout_s: float = WEBHOOK_TIMEOUT_S,
        **options: Any,
    ) -> None:
        # No retries by default: WooCommerce never retries a delivery (failed_delivery()).
        super().__init__(retry_delays=retry_delays, webhook_timeout_s=webhook_timeout_s, **options)
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        if api_key:
            # `storesync sandbox woocommerce --api-key K`: K is the consumer secret, or
            # "ck_...:cs_..." for both.
            key, colon, secret = api_key.partition(":")
            if colon:
                self.consumer_key, self.consumer_secret = key, secret
            else:
                self.consumer_secret = api_key
        self.limit: TokenBucketRule | None = None
        if rate_per_s is not None:
            self.limit = TokenBucketRule(
                rate_per_s, burst if burst is not None else rate_per_s, clock=self.clock.monotonic
            )
        self.shipment_tracking = shipment_tracking
        self.site_url = site_url
        self.hook = Webhook(max_failures=max_failures)
        base = self.sender
        self.sender = _HookshotSender(
            render=self._render_delivery,
            settle=self._settle_delivery,
            faults=self.faults,
            clock=self.clock,
            url=base.url,
            retry_delays=base.retry_delays,
            speed=base.speed,
            timeout_s=base.timeout_s,
        )
        self.records = _Truth()
        self._events: dict[str, _Event] = {}
        self._scheduled: dict[tuple[str, int], tuple[str, float]] = {}
        self._pings: set[str] = set()
        self._delivery_numbers = itertools.count(1)

    # -- SandboxBase hooks -------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """The WooCommerce API, the Shipment Tracking extension and the shopper controls."""
        core, track = "/wp-json/wc/v3", "/wp-json/wc-shipment-tracking/v3"
        order, product = r"{id:\d+}", r"{id:\d+}"
        app.add_routes(
            [
                web.get(f"{core}/orders", self._list_orders),
                web.get(f"{core}/orders/{order}", self._get_order),
                web.put(f"{core}/orders/{order}", self._update_order),
                web.get(f"{core}/orders/{order}/notes", self._list_notes),
                web.post(f"{core}/orders/{order}/notes", self._add_note),
                web.get(f"{core}/products", self._list_products),
                web.post(f"{core}/products/batch", self._batch_products),
                web.get(f"{core}/products/{product}", self._get_product),
                web.put(f"{core}/products/{product}", self._update_product),
                web.get(f"{core}/products/{product}/variations", self._list_variations),
                web.post(f"{core}/products/{product}/variations/batch", self._batch_variations),
                web.get(f"{core}/products/{product}/variations/{{vid:\\d+}}", self._get_variation),
                web.put(
                    f"{core}/products/{product}/variations/{{vid:\\d+}}", self._update_variation
                ),
                web.get(f"{track}/orders/{order}/shipment-trackings", self._list_trackings),
                web.post(f"{track}/orders/{order}/shipment-trackings", self._add_tracking),
                web.get(f"{track}/shipment-trackings/providers", self._providers),
                web.post("/_control/listings", self._control_listings),
                web.post("/_control/variable", self._control_variable),
                web.post("/_control/orders", self._control_place_order),
                web.post(r"/_control/orders/{id:\d+}/{action}", self._control_order_action),
                web.get("/_control/webhook", self._control_get_webhook),
                web.put("/_control/webhook", self._control_put_webhook),
                web.put("/_control/config", self._control_config),
            ]
        )

    def api_middlewares(self) -> list[Middleware]:
        """Consumer key auth, the optional host rate limit, WP's answer for unknown routes."""
        return [self._guard]

    def truth(self) -> dict[str, Any]:
        """Listings by SKU, orders, notes, trackings, counters and the webhook record."""
        t = self.records
        return {
            "listings": {
                item.sku: {
                    "id": str(item.id),
                    "product_id": str(item.parent_id or item.id),
                    "variation_id": str(item.id) if item.type == "variation" else "",
                    "type": item.type,
                    "quantity": item.stock,
                    "tracked": item.manage_stock,
                }
                for item in sorted(t.products.values(), key=lambda p: p.id)
                if item.sku
            },
            "orders": {str(o.id): o.to_api() for o in t.orders.values()},
            "notes": {str(order_id): list(notes) for order_id, notes in t.notes.items()},
            "trackings": {str(order_id): list(items) for order_id, items in t.trackings.items()},
            # The same shipments in the shape every sandbox's truth shares.
            "shipments": [
                {
                    "order_id": str(order_id),
                    "tracking_number": item["tracking_number"],
                    "carrier": item["tracking_provider"],
                }
                for order_id, items in t.trackings.items()
                for item in items
            ],
            "stock_writes": t.stock_writes,
            "effective_changes": t.effective_changes,
            "over_limit": self.limit.over_limit if self.limit is not None else 0,
            "rate_limit": self.limit.snapshot() if self.limit is not None else None,
            "webhook": self.hook.to_dict(pending=len(self._scheduled)),
        }

    def reset_truth(self) -> None:
        """Empty store, counters at zero, the webhook active again, a full bucket."""
        self.records = _Truth()
        self.hook = Webhook(id=self.hook.id, max_failures=self.hook.max_failures)
        self._events.clear()
        self._scheduled.clear()
        self._pings.clear()
        if self.limit is not None:
            self.limit.reset()

    def levels(self) -> dict[str, int | None]:
        """Each SKU's stock quantity."""
        return {item.sku: item.stock for item in self.records.products.values() if item.sku}

    def seed_catalog(
        self, levels: Mapping[str, int], *, variations: int | None = None
    ) -> dict[str, str]:
        """Create or update managed-stock products; returns SKU -> product or variation id.

        The last `variations` SKUs (by default up to 3, when 4 or more are seeded) become the
        variations of one variable product, so a seeded store has both kinds.
        """
        skus = list(levels)
        count = (
            variations
            if variations is not None
            else (min(3, len(skus) // 2) if len(skus) >= 4 else 0)
        )
        count = max(0, min(count, len(skus)))
        simple, varied = skus[: len(skus) - count], skus[len(skus) - count :]
        ids = {sku: str(self.upsert_product(sku, levels[sku]).id) for sku in simple}
        new = {sku: levels[sku] for sku in varied if self.records.by_sku(sku) is None}
        for sku in varied:
            if sku not in new:
                ids[sku] = str(self.upsert_product(sku, levels[sku]).id)
        if new:
            parent = self.add_variable_product("Variable product", new)
            for variation_id in parent.variations:
                item = self.records.products[variation_id]
                ids[item.sku] = str(item.id)
        return ids

    def error_response(
        self, status: int, code: str, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """Injected errors in the WP REST shape."""
        return json_response(
            wp_error_body(status, code, "Injected by the sandbox."),
            status=status,
            headers=dict(headers),
        )

    async def on_startup(self) -> None:
        """Ping the webhook URL given at construction, as activating a webhook does."""
        if self.sender.url:
            self._send_ping()

    def configure_webhooks(
        self,
        *,
        url: str | None | _Unset = UNSET,
        secret: str | None = None,
        retry_delays: Sequence[float] | None = None,
        speed: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """The base settings; a new delivery URL is pinged, as WooCommerce does on activation."""
        super().configure_webhooks(
            url=url, secret=secret, retry_delays=retry_delays, speed=speed, timeout_s=timeout_s
        )
        if isinstance(url, str) and url:
            self._send_ping()

    # -- the merchant and the shopper, as Python calls (the control routes wrap these) -------------

    def configure(
        self,
        *,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        rate_per_s: float | None | _Unset = UNSET,
        burst: float | None = None,
        max_failures: int | None = None,
        shipment_tracking: bool | None = None,
    ) -> None:
        """Change credentials, the host rate limit (None: off), failures allowed, the extension."""
        if consumer_key is not None:
            self.consumer_key = consumer_key
        if consumer_secret is not None:
            self.consumer_secret = consumer_secret
        if rate_per_s is None:
            self.limit = None
        elif isinstance(rate_per_s, float | int):
            if self.limit is None:
                self.limit = TokenBucketRule(
                    rate_per_s, burst or rate_per_s, clock=self.clock.monotonic
                )
            else:
                self.limit.reconfigure(rate_per_s=rate_per_s, burst=burst)
        elif burst is not None and self.limit is not None:
            self.limit.reconfigure(burst=burst)
        if max_failures is not None:
            self.hook.max_failures = max_failures
        if shipment_tracking is not None:
            self.shipment_tracking = shipment_tracking

    def set_webhook_status(self, status: str) -> None:
        """Pause, disable or re-activate the webhook; activating resets failures and pings."""
        if status not in ("active", "paused", "disabled"):
            raise JsonError(400, "invalid_status", "status is active, paused or disabled")
        was = self.hook.status
        self.hook.status = status
        if status == "active" and was != "active":
            self.hook.failure_count = 0
            self._send_ping()

    def upsert_product(
        self,
        sku: str,
        quantity: int,
        *,
        tracked: bool | None = None,
        title: str | None = None,
        price: Decimal | None = None,
    ) -> Product:
        """Create a simple product for `sku`, or set the stock of the product or variation."""
        t = self.records
        product = t.by_sku(sku)
        if product is None:
            now = self._now()
            product = Product(
                id=next(t.post_ids),
                name=title or _title_for(sku),
                type="simple",
                sku=sku,
                manage_stock=True if tracked is None else tracked,
                stock=quantity,
                price=DEFAULT_PRICE if price is None else price,
                created=now,
                modified=now,
            )
            t.add(product)
            return product
        changed = product.stock != quantity or (
            tracked is not None and tracked != product.manage_stock
        )
        product.stock = quantity
        if tracked is not None:
            product.manage_stock = tracked
        if title is not None:
            product.name = title
            changed = True
        if price is not None:
            product.price = price
            changed = True
        if changed:
            self._product_changed(product)
        return product

    def add_variable_product(
        self, name: str, variations: Mapping[str, int], *, sku: str = ""
    ) -> Product:
        """A variable product (stock managed per variation) with one variation per SKU."""
        t = self.records
        taken = [s for s in [sku, *variations] if s and t.by_sku(s) is not None]
        if taken:
            raise JsonError(400, "product_invalid_sku", f"SKU already in use: {taken[0]}")
        now = self._now()
        parent = Product(
            id=next(t.post_ids),
            name=name,
            type="variable",
            sku=sku,
            manage_stock=False,
            stock=0,
            price=DEFAULT_PRICE,
            created=now,
            modified=now,
        )
        t.add(parent)
        for variation_sku, quantity in variations.items():
            option = variation_sku.rsplit("-", 1)[-1]
            variation = Product(
                id=next(t.post_ids),
                name=f"{name} - {option}",
                type="variation",
                sku=variation_sku,
                manage_stock=True,
                stock=quantity,
                price=DEFAULT_PRICE,
                created=now,
                modified=now,
                parent_id=parent.id,
                option=option,
            )
            t.add(variation)
            parent.variations.append(variation.id)
        return parent

    def place_order(
        self,
        lines: Sequence[tuple[str | None, int]],
        *,
        status: str = "processing",
        customer: str = "buyer@example.com",
    ) -> Order:
        """A shopper checks out: reduce stock when paid (409 if short), emit the webhooks."""
        if status not in ("processing", "pending", "on-hold"):
            raise JsonError(422, "invalid_status", "a new order is processing, pending or on-hold")
        if not lines:
            raise JsonError(422, "invalid_lines", "an order needs at least one line")
        t = self.records
        items: list[tuple[Product | None, int]] = []
        for sku, quantity in lines:
            if quantity <= 0:
                raise JsonError(422, "invalid_lines", "quantities must be positive")
            product = t.by_sku(sku) if sku is not None else None
            if sku is not None and (product is None or product.type == "variable"):
                raise JsonError(422, "unknown_sku", f"no purchasable product has SKU {sku!r}")
            items.append((product, quantity))
        self._check_stock(items)
        now = self._now()
        order = Order(
            id=next(t.post_ids),
            status=status,
            created=now,
            modified=now,
            email=customer,
            line_items=[
                LineItem(
                    id=next(t.item_ids),
                    product_id=(product.parent_id or product.id) if product else 0,
                    variation_id=product.id if product and product.parent_id else 0,
                    sku=product.sku if product else "",
                    name=product.name if product else "Custom item",
                    quantity=quantity,
                    price=product.price if product else Decimal(0),
                )
                for product, quantity in items
            ],
        )
        t.orders[order.id] = order
        if status in _STOCK_HOLDING:
            self._reduce_stock(order)
        if status == "processing":
            order.paid = now
        # A checkout fires woocommerce_new_order and then woocommerce_update_order.
        self._emit("order.created", order.id)
        self._emit("order.updated", order.id)
        return order

    def pay_order(self, order_id: int) -> Order:
        """A pending order is paid: processing, stock reduced."""
        order = self._order(order_id)
        if order.status != "pending":
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        self._set_status(order, "processing")
        return order

    def complete_order(self, order_id: int) -> Order:
        """The merchant marks the order completed (shipped)."""
        order = self._order(order_id)
        if order.status in ("cancelled", "refunded", "trash", "completed"):
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        self._set_status(order, "completed")
        return order

    def cancel_order(self, order_id: int) -> Order:
        """Cancel the order; reduced stock comes back (wc_maybe_increase_stock_levels)."""
        order = self._order(order_id)
        if order.status in ("cancelled", "refunded", "trash", "completed"):
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        self._set_status(order, "cancelled")
        return order

    def refund_order(self, order_id: int, *, restock: bool) -> Order:
        """Refund everything: status refunded; with `restock`, the units go back on sale."""
        order = self._order(order_id)
        if order.status in ("refunded", "trash"):
            raise JsonError(409, "invalid_state", f"order {order_id} is {order.status}")
        refund_id = next(self.records.post_ids)
        order.refunds.append({"id": refund_id, "reason": "", "total": f"-{_money(order.total)}"})
        if restock and order.stock_reduced:
            self._restock(order)
        self._set_status(order, "refunded")
        return order

    def trash_order(self, order_id: int) -> Order:
        """Move the order to the trash: `order.deleted` (payload `{"id": N}`)."""
        order = self._order(order_id)
        if order.status == "trash":
            raise JsonError(409, "invalid_state", f"order {order_id} is in the trash already")
        order.status_before_trash = order.status
        order.status = "trash"
        order.modified = self._stamp(order.modified)
        self._emit("order.deleted", order.id)
        return order

    def restore_order(self, order_id: int) -> Order:
        """Take the order out of the trash: `order.restored`."""
        order = self._order(order_id)
        if order.status != "trash":
            raise JsonError(409, "invalid_state", f"order {order_id} is not in the trash")
        order.status = order.status_before_trash or "pending"
        order.modified = self._stamp(order.modified)
        self._emit("order.restored", order.id)
        return order

    def delete_order(self, order_id: int) -> None:
        """Delete the order for good. No webhook: order.deleted hooks only trashing."""
        self._order(order_id)
        del self.records.orders[order_id]
        self.records.notes.pop(order_id, None)
        self.records.trackings.pop(order_id, None)

    # -- internals ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC).replace(microsecond=0)

    def _stamp(self, previous: datetime) -> datetime:
        """A new date_modified: now, but always a second past the last one (one version each)."""
        return max(self._now(), previous + _ONE_SECOND)

    def _order(self, order_id: int) -> Order:
        order = self.records.orders.get(order_id)
        if order is None:
            raise JsonError(404, "not_found", f"no order {order_id}")
        return order

    def _check_stock(self, items: Sequence[tuple[Product | None, int]]) -> None:
        wanted: dict[int, int] = {}
        for product, quantity in items:
            if product is not None and product.manage_stock:
                wanted[product.id] = wanted.get(product.id, 0) + quantity
        for product_id, quantity in wanted.items():
            product = self.records.products[product_id]
            if product.stock < quantity:
                raise JsonError(
                    409,
                    "insufficient_stock",
                    f"{product.sku}: {quantity} wanted, {product.stock} in stock",
                )

    def _stocked_items(self, order: Order) -> list[tuple[Product, int]]:
        out = []
        for item in order.line_items:
            product = self.records.products.get(item.variation_id or item.product_id)
            if product is not None and product.manage_stock:
                out.append((product, item.quantity))
        return out

    def _reduce_stock(self, order: Order) -> None:
        for product, quantity in self._stocked_items(order):
            product.stock -= quantity
            self._product_changed(product)
        order.stock_reduced = True

    def _restock(self, order: Order) -> None:
        for product, quantity in self._stocked_items(order):
            product.stock += quantity
            self._product_changed(product)
        order.stock_reduced = False

    def _set_status(self, order: Order, status: str) -> None:
        """Change status with WooCommerce's stock and date side effects; emit order.updated."""
        if status in _STOCK_HOLDING and not order.stock_reduced:
            self._reduce_stock(order)  # wc_maybe_reduce_stock_levels
        elif status in ("cancelled", "pending") and order.stock_reduced:
            self._restock(order)  # wc_maybe_increase_stock_levels
        now = self._now()
        if status in ("processing", "completed") and order.paid is None:
            order.paid = now
        if status == "completed" and order.completed is None:
            order.completed = now
        order.status = status
        order.modified = self._stamp(order.modified)
        self._emit("order.updated", order.id)

    def _product_changed(self, product: Product) -> None:
        product.modified = self._stamp(product.modified)
        self._emit("product.updated", product.id)

    def _write_stock(self, product: Product, fields: Mapping[str, Any]) -> None:
        """Apply `manage_stock` / `stock_quantity` from a request: absolute, no compare-and-set."""
        changed = False
        managed = fields.get("manage_stock")
        if managed is not None:
            if not isinstance(managed, bool):
                raise _invalid_param("manage_stock", "manage_stock is not of type boolean.")
            changed = managed != product.manage_stock
            product.manage_stock = managed
        if "stock_quantity" in fields:
            quantity = _integer(fields["stock_quantity"], "stock_quantity")
            self.records.stock_writes += 1
            # WooCommerce ignores stock_quantity on a product that does not manage stock.
            if product.manage_stock and quantity != product.stock:
                self.records.effective_changes += 1
                product.stock = quantity
                changed = True
        if changed:
            self._product_changed(product)

    # -- webhooks ----------------------------------------------------------------------------------

    def _emit(self, topic: str, resource_id: int) -> None:
        """Queue a delivery, unless the webhook is off or one for this resource is pending."""
        if self.hook.status != "active":
            self.hook.not_active += 1
            return
        key = (topic, resource_id)
        now = self.clock.monotonic()
        pending = self._scheduled.get(key)
        # wc_webhook_execute_queue: a new one is queued only when none is scheduled within
        # the next 10 minutes (and an async delivery is scheduled for "now").
        if pending is not None and pending[1] < now + COALESCE_S:
            self.hook.coalesced += 1
            return
        delivery_id = f"wc-{next(self._delivery_numbers)}"
        self._events[delivery_id] = _Event(topic, resource_id)
        if self.emit_webhook(topic, b"", {}, delivery_id):
            self._scheduled[key] = (delivery_id, now + self.faults.delay_s)
        else:
            del self._events[delivery_id]

    def _send_ping(self) -> None:
        delivery_id = f"ping-{next(self._delivery_numbers)}"
        self._pings.add(delivery_id)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT}
        self.emit_webhook("ping", f"webhook_id={self.hook.id}".encode(), headers, delivery_id)

    def _render_delivery(self, delivery_id: str) -> tuple[bytes, dict[str, str]] | None:
        """Build a delivery's body and headers now, from the store as it is now."""
        event = self._events.get(delivery_id)
        if event is None:
            return None  # a ping: sent as queued
        key = (event.topic, event.resource_id)
        if self._scheduled.get(key, ("",))[0] == delivery_id:
            del self._scheduled[key]  # running now: no longer pending
        body = wp_json_encode(self._payload(event))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SOURCE_HEADER: self.site_url,
            TOPIC_HEADER: event.topic,
            RESOURCE_HEADER: event.resource,
            EVENT_HEADER: event.topic.split(".", 1)[1],
            SIGNATURE_HEADER: sign_payload(self.webhook_secret, body),
            WEBHOOK_ID_HEADER: str(self.hook.id),
            DELIVERY_ID_HEADER: self._delivery_hash(),
        }
        return body, headers

    def _payload(self, event: _Event) -> dict[str, Any]:
        if event.topic.endswith(".deleted"):
            return {"id": event.resource_id}
        if event.resource == "order":
            order = self.records.orders.get(event.resource_id)
            if order is None:
                return wp_error_body(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            return order.to_api()
        product = self.records.products.get(event.resource_id)
        if product is None:
            return wp_error_body(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return product.to_api()

    def _delivery_hash(self) -> str:
        """wp_hash(webhook_id . time()): the same for every delivery within one second."""
        stamp = int(self.clock.now().timestamp())
        return hashlib.md5(f"sandbox-salt{self.hook.id}{stamp}".encode()).hexdigest()

    def _settle_delivery(self, delivery_id: str, status: int | None) -> None:
        """Count a delivery's outcome the way log_delivery() and failed_delivery() do."""
        if delivery_id in self._pings:
            self.hook.pings.append({"status": status, "at": self.now_text()})
            return
        if status is not None and 200 <= status < 303:
            self.hook.failure_count = 0
        elif self.hook.failure_count > self.hook.max_failures:
            self.hook.status = "disabled"
        else:
            self.hook.failure_count += 1

    # -- auth, limits, unknown routes --------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        credentials = _credentials(request)
        if credentials is None:
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        key, secret = credentials
        if not hmac.compare_digest(key.encode(), self.consumer_key.encode()):
            return _error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(secret.encode(), self.consumer_secret.encode()):
            return _error(
                401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."
            )
        if self.limit is not None:
            decision = self.limit.check(1.0)
            if not decision.allowed:
                return _error(
                    429,
                    "too_many_requests",
                    "Too many requests.",
                    headers={"Retry-After": str(max(math.ceil(decision.retry_after_s), 1))},
                )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if not isinstance(exc, WPError) and exc.status in (404, 405):
                return _error(
                    404, "rest_no_route", "No route was found matching the URL and request method."
                )
            raise

    # -- API: orders -------------------------------------------------------------------------------

    async def _list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        per_page, page = _paging(q)
        statuses = _list_param(q, "status", ("any", *ORDER_STATUSES)) or ["any"]
        orderby = _choice(q, "orderby", ("date", "id", "include", "title", "slug"), "date")
        descending = _choice(q, "order", ("asc", "desc"), "desc") == "desc"
        modified_after = _date_param(q, "modified_after")
        modified_before = _date_param(q, "modified_before")
        after, before = _date_param(q, "after"), _date_param(q, "before")
        orders = [
            order
            for order in self.records.orders.values()
            if (order.status in statuses or ("any" in statuses and order.status != "trash"))
            and (modified_after is None or order.modified > modified_after)
            and (modified_before is None or order.modified < modified_before)
            and (after is None or order.created > after)
            and (before is None or order.created < before)
        ]
        if orderby == "date":
            orders.sort(key=lambda o: (o.created, o.id), reverse=descending)
        else:
            orders.sort(key=lambda o: o.id, reverse=descending)
        return _page_response(request, orders, page, per_page, Order.to_api)

    async def _get_order(self, request: web.Request) -> web.Response:
        return json_response(self._api_order(request, 404).to_api())

    def _api_order(self, request: web.Request, status: int) -> Order:
        order = self.records.orders.get(int(request.match_info["id"]))
        if order is None:
            raise WPError(status, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return order

    async def _update_order(self, request: web.Request) -> web.Response:
        order = self._api_order(request, 400)
        body = await _json_object(request)
        status = body.get("status")
        if status is not None and status not in ORDER_STATUSES:
            raise _invalid_param("status", f"status is not one of {', '.join(ORDER_STATUSES)}.")
        meta = body.get("meta_data")
        if meta is not None:
            self._update_meta(order, meta)
        if status is not None and status != order.status:
            self._set_status(order, status)
        elif meta is not None:
            order.modified = self._stamp(order.modified)
            self._emit("order.updated", order.id)
        return json_response(order.to_api())

    def _update_meta(self, order: Order, meta: Any) -> None:
        if not isinstance(meta, list) or not all(
            isinstance(m, dict) and isinstance(m.get("key"), str) for m in meta
        ):
            raise _invalid_param("meta_data", "meta_data[0][key] is not of type string.")
        for item in meta:
            existing = next((m for m in order.meta_data if m["key"] == item["key"]), None)
            if existing is None:
                meta_id = next(self.records.meta_ids)
                value = item.get("value")
                order.meta_data.append({"id": meta_id, "key": item["key"], "value": value})
            else:
                existing["value"] = item.get("value")

    async def _list_notes(self, request: web.Request) -> web.Response:
        order = self._api_order(request, 404)
        notes = self.records.notes.get(order.id, [])
        return json_response(list(reversed(notes)))  # newest first, as WooCommerce lists them

    async def _add_note(self, request: web.Request) -> web.Response:
        order = self._api_order(request, 404)
        body = await _json_object(request)
        text = body.get("note")
        if not isinstance(text, str) or not text:
            raise WPError(
                400,
                "rest_missing_callback_param",
                "Missing parameter(s): note",
            )
        customer_note = body.get("customer_note", False)
        if not isinstance(customer_note, bool):
            raise _invalid_param("customer_note", "customer_note is not of type boolean.")
        now = self._now()
        note = {
            "id": next(self.records.note_ids),
            "author": "system",
            "date_created": wp_time(now),
            "date_created_gmt": wp_time(now),
            "note": text,
            "customer_note": customer_note,
        }
        self.records.notes.setdefault(order.id, []).append(note)
        return json_response(note, status=201)

    # -- API: products and variations --------------------------------------------------------------

    async def _list_products(self, request: web.Request) -> web.Response:
        q = request.query
        per_page, page = _paging(q)
        include = _ids_param(q, "include")
        skus = [s for s in q.get("sku", "").split(",") if s] if q.get("sku") else []
        types = _list_param(q, "type", ("simple", "grouped", "external", "variable"))
        orderby = _choice(
            q,
            "orderby",
            (
                "date",
                "id",
                "include",
                "title",
                "slug",
                "price",
                "popularity",
                "rating",
                "menu_order",
            ),
            "date",
        )
        descending = _choice(q, "order", ("asc", "desc"), "desc") == "desc"
        products = [
            p
            for p in self.records.products.values()
            # A SKU search covers variations too (the products controller widens post_type).
            if (p.type != "variation" or skus)
            and (not skus or p.sku in skus)
            and (include is None or p.id in include)
            and (not types or p.type in types)
        ]
        if orderby == "date":
            products.sort(key=lambda p: (p.created, p.id), reverse=descending)
        elif orderby in ("title", "slug"):
            products.sort(key=lambda p: (p.name, p.id), reverse=descending)
        else:
            products.sort(key=lambda p: p.id, reverse=descending)
        return _page_response(request, products, page, per_page, Product.to_api)

    def _api_product(self, request: web.Request, status: int) -> Product:
        product = self.records.products.get(int(request.match_info["id"]))
        if product is None:
            raise WPError(status, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return product

    async def _get_product(self, request: web.Request) -> web.Response:
        return json_response(self._api_product(request, 404).to_api())

    async def _update_product(self, request: web.Request) -> web.Response:
        product = self._api_product(request, 400)
        self._write_stock(product, await _json_object(request))
        return json_response(product.to_api())

    async def _batch_products(self, request: web.Request) -> web.Response:
        async def update(item: dict[str, Any]) -> dict[str, Any]:
            product = self.records.products.get(_batch_id(item))
            if product is None or product.type == "variation":
                return _item_error(item, "woocommerce_rest_product_invalid_id")
            self._write_stock(product, item)
            return product.to_api()

        return await self._batch(request, update)

    def _variation(self, request: web.Request, status: int) -> tuple[Product, Product]:
        parent = self._api_product(request, 404)
        variation = self.records.products.get(int(request.match_info["vid"]))
        if variation is None or variation.parent_id != parent.id:
            raise WPError(status, "woocommerce_rest_product_variation_invalid_id", "Invalid ID.")
        return parent, variation

    async def _list_variations(self, request: web.Request) -> web.Response:
        parent = self._api_product(request, 404)
        q = request.query
        per_page, page = _paging(q)
        include = _ids_param(q, "include")
        _choice(q, "orderby", ("date", "id", "include", "title", "slug", "menu_order"), "date")
        descending = _choice(q, "order", ("asc", "desc"), "desc") == "desc"
        items = sorted(
            (
                self.records.products[vid]
                for vid in parent.variations
                if vid in self.records.products and (include is None or vid in include)
            ),
            key=lambda v: v.id,
            reverse=descending,
        )
        return _page_response(request, items, page, per_page, Product.to_variation_api)

    async def _get_variation(self, request: web.Request) -> web.Response:
        return json_response(self._variation(request, 404)[1].to_variation_api())

    async def _update_variation(self, request: web.Request) -> web.Response:
        _, variation = self._variation(request, 400)
        self._write_stock(variation, await _json_object(request))
        return json_response(variation.to_variation_api())

    async def _batch_variations(self, request: web.Request) -> web.Response:
        parent = self._api_product(request, 404)

        async def update(item: dict[str, Any]) -> dict[str, Any]:
            variation = self.records.products.get(_batch_id(item))
            if variation is None or variation.parent_id != parent.id:
                return _item_error(item, "woocommerce_rest_product_variation_invalid_id")
            self._write_stock(variation, item)
            return variation.to_variation_api()

        return await self._batch(request, update)

    async def _batch(
        self,
        request: web.Request,
        update: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> web.Response:
        """WooCommerce's batch endpoint: create / update / delete lists, 100 objects at most."""
        body = await _json_object(request)
        lists = {name: body.get(name) for name in ("create", "update", "delete") if name in body}
        if any(not isinstance(value, list) for value in lists.values()):
            raise _invalid_param("update", "update is not of type array.")
        count = sum(len(value) for value in lists.values() if isinstance(value, list))
        if count > MAX_BATCH:
            raise WPError(
                413,
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {MAX_BATCH} items for this request.",
            )
        answer: dict[str, list[dict[str, Any]]] = {}
        for name, items in lists.items():
            out: list[dict[str, Any]] = []
            for item in items or []:
                if name != "update" or not isinstance(item, dict):
                    out.append(
                        _item_error(
                            item,
                            "woocommerce_rest_sandbox_unsupported",
                            "The sandbox only takes updates.",
                        )
                    )
                    continue
                try:
                    out.append(await update(item))
                except WPError as exc:
                    out.append({"id": _batch_id(item), "error": json.loads(exc.text or "{}")})
            answer[name] = out
        return json_response(answer)

    # -- API: the Shipment Tracking extension ------------------------------------------------------

    def _tracking_order(self, request: web.Request) -> Order:
        if not self.shipment_tracking:
            raise WPError(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        return self._api_order(request, 404)

    async def _list_trackings(self, request: web.Request) -> web.Response:
        order = self._tracking_order(request)
        return json_response(list(self.records.trackings.get(order.id, [])))

    async def _add_tracking(self, request: web.Request) -> web.Response:
        order = self._tracking_order(request)
        body = await _json_object(request)
        number = body.get("tracking_number")
        if not isinstance(number, str) or not number:
            raise WPError(
                400, "rest_missing_callback_param", "Missing parameter(s): tracking_number"
            )
        custom = body.get("custom_tracking_provider")
        if isinstance(custom, str) and custom:
            provider, link = custom, body.get("custom_tracking_link") or ""
        else:
            provider = body.get("tracking_provider") or ""
            template = PROVIDERS.get(provider) if isinstance(provider, str) else None
            link = template.replace("%1$s", number) if template else ""
        shipped_on = body.get("date_shipped") or self._now().date().isoformat()
        try:
            date.fromisoformat(shipped_on)
        except (TypeError, ValueError):
            raise _invalid_param("date_shipped", "date_shipped is not a YYYY-MM-DD date.") from None
        existing = self.records.trackings.setdefault(order.id, [])
        tracking = {
            "tracking_id": hashlib.md5(f"{provider}-{number}-{len(existing)}".encode()).hexdigest(),
            "tracking_provider": provider,
            "tracking_link": link,
            "tracking_number": number,
            "date_shipped": shipped_on,
        }
        existing.append(tracking)
        return json_response(tracking, status=201)

    async def _providers(self, request: web.Request) -> web.Response:
        if not self.shipment_tracking:
            raise WPError(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        return json_response({"United States": dict(PROVIDERS)})

    # -- control handlers --------------------------------------------------------------------------

    async def _control_listings(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        items = body.get("listings") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise JsonError(400, "invalid_body", 'expected {"listings": [...]}')
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
                raise JsonError(400, "invalid_body", "each listing needs a sku string")
            quantity, tracked = item.get("quantity", 0), item.get("tracked")
            if isinstance(quantity, bool) or not isinstance(quantity, int):
                raise JsonError(400, "invalid_body", "quantity must be an integer")
            if tracked is not None and not isinstance(tracked, bool):
                raise JsonError(400, "invalid_body", "tracked must be true or false")
            title, price = item.get("title"), item.get("price")
            try:
                product = self.upsert_product(
                    item["sku"],
                    quantity,
                    tracked=tracked,
                    title=title if isinstance(title, str) else None,
                    price=Decimal(str(price)) if isinstance(price, int | float | str) else None,
                )
            except InvalidOperation:
                raise JsonError(400, "invalid_body", "price must be a number") from None
            out.append({"sku": product.sku, **product.to_api()})
        return json_response({"listings": out})

    async def _control_variable(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        variations = body.get("variations") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(variations, list) or not variations:
            raise JsonError(400, "invalid_body", 'expected {"name", "variations": [...]}')
        levels: dict[str, int] = {}
        for item in variations:
            sku = item.get("sku") if isinstance(item, dict) else None
            quantity = item.get("quantity", 0) if isinstance(item, dict) else None
            if (
                not isinstance(sku, str)
                or isinstance(quantity, bool)
                or not isinstance(quantity, int)
            ):
                raise JsonError(400, "invalid_body", "each variation needs sku and quantity")
            levels[sku] = quantity
        name, sku = body.get("name", "Variable product"), body.get("sku") or ""
        if not isinstance(name, str) or not isinstance(sku, str):
            raise JsonError(400, "invalid_body", "name and sku must be strings")
        parent = self.add_variable_product(name, levels, sku=sku)
        return json_response(
            {
                **parent.to_api(),
                "variation_items": [
                    self.records.products[v].to_variation_api() for v in parent.variations
                ],
            },
            status=201,
        )

    async def _control_place_order(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        lines = read_order_lines(body)
        status = body.get("status", "processing")
        status = "processing" if status == "open" else status
        if status not in ("processing", "pending", "on-hold"):
            raise JsonError(400, "invalid_body", "status must be processing, pending or on-hold")
        customer = body.get("customer", "buyer@example.com")
        if not isinstance(customer, str):
            raise JsonError(400, "invalid_body", "customer must be a string")
        order = self.place_order(lines, status=status, customer=customer)
        return json_response(order.to_api(), status=201)

    async def _control_order_action(self, request: web.Request) -> web.Response:
        order_id, action = int(request.match_info["id"]), request.match_info["action"]
        if action == "refund":
            body = await read_json(request) or {}
            restock = body.get("restock", False) if isinstance(body, dict) else None
            if not isinstance(restock, bool):
                raise JsonError(400, "invalid_body", 'expected {"restock": true|false}')
            return json_response(self.refund_order(order_id, restock=restock).to_api())
        actions: dict[str, Callable[[int], Order]] = {
            "pay": self.pay_order,
            "complete": self.complete_order,
            "cancel": self.cancel_order,
            "trash": self.trash_order,
            "restore": self.restore_order,
        }
        if action == "delete":
            self.delete_order(order_id)
            return json_response({"deleted": True, "id": order_id})
        if action not in actions:
            raise JsonError(404, "unknown_action", f"no order action {action!r}")
        return json_response(actions[action](order_id).to_api())

    async def _control_get_webhook(self, request: web.Request) -> web.Response:
        return json_response(self.hook.to_dict(pending=len(self._scheduled)))

    async def _control_put_webhook(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict) or set(body) - {"status"}:
            raise JsonError(400, "invalid_body", 'expected {"status": "active"|...}')
        status = body.get("status")
        if isinstance(status, str):
            self.set_webhook_status(status)
        return json_response(self.hook.to_dict(pending=len(self._scheduled)))

    async def _control_config(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        allowed = {
            "consumer_key",
            "consumer_secret",
            "rate_per_s",
            "burst",
            "max_failures",
            "shipment_tracking",
        }
        if not isinstance(body, dict) or set(body) - allowed:
            raise JsonError(400, "invalid_body", f"keys: {', '.join(sorted(allowed))}")
        for name in ("consumer_key", "consumer_secret"):
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise JsonError(400, "invalid_body", f"{name} must be a non-empty string")
        rate: float | None | _Unset = UNSET
        if "rate_per_s" in body:
            rate = _positive(body["rate_per_s"], "rate_per_s", allow_null=True)
        burst = _positive(body.get("burst"), "burst", allow_null=True)
        failures = body.get("max_failures")
        if failures is not None and (
            isinstance(failures, bool) or not isinstance(failures, int) or failures < 0
        ):
            raise JsonError(400, "invalid_body", "max_failures must be a non-negative integer")
        tracking = body.get("shipment_tracking")
        if tracking is not None and not isinstance(tracking, bool):
            raise JsonError(400, "invalid_body", "shipment_tracking must be true or false")
        self.configure(
            consumer_key=body.get("consumer_key"),
            consumer_secret=body.get("consumer_secret"),
            rate_per_s=rate,
            burst=burst,
            max_failures=failures,
            shipment_tracking=tracking,
        )
        return json_response(
            {
                "credentials_set": True,
                "rate_limit": self.limit.snapshot() if self.limit is not None else None,
                "max_failures": self.hook.max_failures,
                "shipment_tracking": self.shipment_tracking,
            }
        )


# -- request helpers -------------------------------------------------------------------------------


def _error(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response(
        wp_error_body(status, code, message), status=status, headers=dict(headers or {})
    )


def _invalid_param(name: str, why: str) -> WPError:
    return WPError(400, "rest_invalid_param", f"Invalid parameter(s): {name}", params={name: why})


def _credentials(request: web.Request) -> tuple[str, str] | None:
    """The consumer key and secret from Basic auth, else from the query string."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, ValueError):
            return None
        key, colon, secret = decoded.partition(":")
        return (key, secret) if colon else None
    query_key = request.query.get("consumer_key")
    query_secret = request.query.get("consumer_secret")
    if query_key and query_secret:
        return query_key, query_secret
    return None


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WPError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
    if not isinstance(data, dict):
        raise WPError(400, "rest_invalid_json", "Invalid JSON body passed.")
    return data


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    page = _int_param(query, "page", 1, 1, None)
    return per_page, page


def _int_param(
    query: Mapping[str, str], name: str, default: int, low: int, high: int | None
) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid_param(name, f"{name} is not of type integer.") from None
    if value < low or (high is not None and value > high):
        upper = f" and {high} (inclusive)" if high is not None else ""
        raise _invalid_param(name, f"{name} must be between {low} (inclusive){upper}.")
    return value


def _choice(query: Mapping[str, str], name: str, options: Sequence[str], default: str) -> str:
    value = query.get(name, default)
    if value not in options:
        raise _invalid_param(name, f"{name} is not one of {', '.join(options)}.")
    return value


def _list_param(query: Mapping[str, str], name: str, options: Sequence[str]) -> list[str]:
    raw = query.get(name)
    if not raw:
        return []
    values = [value.strip() for value in raw.split(",") if value.strip()]
    for value in values:
        if value not in options:
            raise _invalid_param(name, f"{name}[0] is not one of {', '.join(options)}.")
    return values


def _ids_param(query: Mapping[str, str], name: str) -> set[int] | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return {int(value) for value in raw.split(",") if value.strip()}
    except ValueError:
        raise _invalid_param(name, f"{name}[0] is not of type integer.") from None


def _date_param(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid_param(name, "Invalid date.") from None
    # With dates_are_gmt the value is GMT; without, it is site time, and the site runs on UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


T = TypeVar("T")

def _page_response(
    request: web.Request,
    items: Sequence[T],
    page: int,
    per_page: int,
    render: Callable[[T], dict[str, Any]],
) -> web.Response:
    """One page of a list with WP's X-WP-Total, X-WP-TotalPages and Link headers; only the
    page's items are rendered (rendering all 100k products for each page was quadratic)."""
    total = len(items)
    total_pages = math.ceil(total / per_page) if total else 0
    chunk = [render(item) for item in items[(page - 1) * per_page : page * per_page]]
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages)}
    link = _link_header(request, page, total_pages)
    if link:
        headers["Link"] = link
    return json_response(chunk, headers=headers)


def _link_header(request: web.Request, page: int, total_pages: int) -> str:
    # The query minus the credentials: a Link header is for paging, not for copying secrets.
    query = {k: v for k, v in request.query.items() if k not in _AUTH_PARAMS and k != "page"}

    def url(number: int) -> str:
        return str(request.url.with_query({**query, "page": str(number)}))

    links = []
    if total_pages:
        links.append(f'<{url(1)}>; rel="first"')
    if page > 1 and total_pages:
        links.append(f'<{url(min(page - 1, total_pages))}>; rel="prev"')
    if page < total_pages:
        links.append(f'<{url(page + 1)}>; rel="next"')
    if total_pages:
        links.append(f'<{url(total_pages)}>; rel="last"')
    return ", ".join(links)


def _integer(value: Any, name: str) -> int:
    """A WP REST integer: a JSON number or a numeric string (WP coerces both)."""
    if isinstance(value, bool):
        raise _invalid_param(name, f"{name} is not of type integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _invalid_param(name, f"{name} is not of type integer.")


def _batch_id(item: Any) -> int:
    raw = item.get("id") if isinstance(item, dict) else None
    if isinstance(raw, bool):
        return 0
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    return 0


def _item_error(item: Any, code: str, message: str = "Invalid ID.") -> dict[str, Any]:
    return {"id": _batch_id(item), "error": wp_error_body(400, code, message)}


def _positive(value: Any, name: str, *, allow_null: bool = False) -> float | None:
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise JsonError(400, "invalid_body", f"{name} must be a positive number")
    return float(value)


def _title_for(sku: str) -> str:
    """A readable default title: MUG -> Mug, TEA-CUP -> Tea cup."""
    return sku.replace("-", " ").replace("_", " ").capitalize()

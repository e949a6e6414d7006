"""A fake Shopify shop: the GraphQL Admin API over in-memory truth, on the shared sandbox machinery.

The API, as storesync's connector and a curious person with curl see it:

    POST /admin/api/{version}/graphql.json   X-Shopify-Access-Token; every query is parsed and
                                             validated against `connectors.shopify.schema`, then
                                             executed; Shopify-like `errors` (HTTP 200) for
                                             unknown fields, bad variables, MAX_COST_EXCEEDED
                                             and THROTTLED; `extensions.cost` on every answer
    POST /admin/oauth/access_token           client-credentials grant: a 24 h token

Query cost is a leaky bucket of points (1 000, 100/s unless configured): objects cost 1, scalars
0, connections `first` (or `last`) times their node, list fields their size, mutations 10; the
bucket takes the requested cost up front and refunds the unused part after the call, as Shopify
does (https://shopify.dev/docs/api/usage/rate-limits).

Write semantics reproduced: `inventorySetQuantities` takes at most 250 quantities, needs
`changeFromQuantity` on each from 2026-04 (null opts out) and answers a mismatch with
CHANGE_FROM_QUANTITY_STALE; `@idempotent(key:)` replays the first answer for the same key and
arguments; any userError means nothing of that call is applied (see the connector for why that
is the safe reading). `fulfillmentCreate` works on fulfillment orders, which can be put ON_HOLD,
SCHEDULED or moved to a third-party fulfillment service through the control API.

The shop plays shopper through the control API (place, pay, cancel, refund, fulfil orders) and
sends REST-shaped webhooks signed like Shopify's: orders/create, orders/updated,
orders/cancelled and refunds/create by default, retried with the original payload on Shopify's
schedule of 8 retries over 4 hours (https://shopify.dev/changelog/updates-to-webhook-retry-mechanism),
scaled by the sender's `speed`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_composite_type,
    is_interface_type,
    is_list_type,
    is_object_type,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

from connectors.sandbox.app import (
    JsonError,
    SandboxBase,
    json_response,
    read_json,
    read_order_lines,
)
from connectors.sandbox.clock import format_timestamp
from connectors.sandbox.ratelimit import CostBucketRule
from connectors.shopify.orders import gid
from connectors.shopify.schema import admin_schema
from connectors.shopify.webhooks import (
    API_VERSION_HEADER,
    EVENT_ID_HEADER,
    HMAC_HEADER,
    SHOP_HEADER,
    TOPIC_HEADER,
    TRIGGERED_AT_HEADER,
    WEBHOOK_ID_HEADER,
    sign_payload,
)

DEFAULT_API_KEY = "shpat_sandbox"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_SHOP = "storesync-sandbox.myshopify.com"
DEFAULT_API_VERSION = "2026-07"
DEFAULT_CAPACITY = 1000.0
DEFAULT_RESTORE_RATE = 100.0
TOKEN_TTL_S = 86_399  # what the client-credentials grant answers in expires_in
MUTATION_COST = 10
MAX_INPUT_ITEMS = 250  # https://shopify.dev/changelog/graphql-input-objects-limited-to-250-items
MAX_PAGE = 250
MAX_QUANTITY = 1_000_000_000
DEFAULT_PRICE = Decimal("6.00")
PRIMARY_LOCATION = "Shop location"
SECOND_LOCATION = "Backroom"
# 8 retries over 4 hours, exponential; Shopify publishes the totals, not each delay, so this
# doubles from one minute and lets the last delay close the four hours.
SHOPIFY_RETRY_DELAYS: tuple[float, ...] = (60, 120, 240, 480, 960, 1920, 3840, 6780)
DEFAULT_TOPICS = frozenset(
    {"orders/create", "orders/updated", "orders/cancelled", "refunds/create"}
)
KNOWN_TOPICS = DEFAULT_TOPICS | {
    "orders/paid",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "inventory_levels/update",
}
SCOPES = (
    "read_orders,read_products,read_inventory,write_inventory,read_locations,"
    "read_merchant_managed_fulfillment_orders,write_merchant_managed_fulfillment_orders"
)
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
# InventoryAdjustmentGroup reasons the API accepts (the `reason` argument's documented list).
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
QUANTITY_NAMES = frozenset(
    {
        "available",
        "committed",
        "damaged",
        "incoming",
        "on_hand",
        "quality_control",
        "reserved",
        "safety_stock",
    }
)
_GID = re.compile(r"gid://shopify/([A-Za-z]+)/(\d+)(?:\?.*)?")
_SEARCH_TIME = re.compile(r"\b(updated_at|created_at):(>=|<=|>|<)?'?\"?([0-9T:.+\-Z]+)'?\"?")
_OPEN_FO = frozenset({"OPEN", "IN_PROGRESS"})


class _Ids:
    """Counters for every kind of id, far apart so an id never passes for another kind's."""

    def __init__(self) -> None:
        self.order = itertools.count(6_000_001)
        self.number = itertools.count(1001)
        self.line = itertools.count(13_000_001)
        self.product = itertools.count(7_000_001)
        self.variant = itertools.count(40_000_001)
        self.item = itertools.count(45_000_001)
        self.location = itertools.count(60_001)
        self.fulfillment_order = itertools.count(5_500_001)
        self.fo_line = itertools.count(11_000_001)
        self.fulfillment = itertools.count(4_000_001)
        self.refund = itertools.count(9_000_001)
        self.refund_line = itertools.count(10_000_001)
        self.adjustment = itertools.count(3_000_001)


@dataclass(slots=True)
class Location:
    """A place stock sits; a third-party one belongs to a fulfillment service app."""

    id: int
    name: str
    active: bool = True
    primary: bool = False
    third_party: bool = False


@dataclass(slots=True)
class Variant:
    """A product variant with its 1:1 inventory item."""

    id: int
    product_id: int
    item_id: int
    sku: str | None
    title: str
    price: Decimal = DEFAULT_PRICE
    tracked: bool = True


@dataclass(slots=True)
class Line:
    """An order line as the shopper bought it."""

    id: int
    variant_id: int | None
    product_id: int | None
    sku: str | None
    title: str
    quantity: int
    price: Decimal


@dataclass(slots=True)
class RefundLine:
    """Units of one line in one refund; `shipped` says which units (Shopify's restock type)."""

    id: int
    line_id: int
    quantity: int
    restock_type: str  # cancel | return | no_restock
    shipped: bool
    location_id: int | None


@dataclass(slots=True)
class Refund:
    """A refund with its line items."""

    id: int
    order_id: int
    created_at: datetime
    note: str
    restock: bool
    lines: list[RefundLine]


@dataclass(slots=True)
class FoLine:
    """One fulfillment order line: units of an order line still to fulfil from one location."""

    id: int
    line_id: int
    total: int
    remaining: int


@dataclass(slots=True)
class FulfillmentOrder:
    """The work of fulfilling (part of) an order from one location."""

    id: int
    order_id: int
    location_id: int
    status: str
    lines: list[FoLine]


@dataclass(slots=True)
class Fulfillment:
    """Units that left, with tracking."""

    id: int
    order_id: int
    location_id: int
    created_at: datetime
    company: str
    number: str
    url: str
    lines: list[tuple[int, int]]  # (line id, units)


@dataclass(slots=True)
class Order:
    """An order with everything that happened to it."""

    id: int
    number: int
    created_at: datetime
    updated_at: datetime
    email: str
    currency: str
    lines: list[Line]
    financial_status: str  # REST spelling: pending, paid, partially_refunded, refunded, voided
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    refunds: list[Refund] = field(default_factory=list)
    fulfillments: list[Fulfillment] = field(default_factory=list)
    fulfillment_orders: list[int] = field(default_factory=list)

    @property
    def gid(self) -> str:
        """gid://shopify/Order/{id}."""
        return gid("Order", self.id)

    def refunded(self, line_id: int, *, shipped: bool | None = None) -> int:
        """Units of a line refunded (only shipped or unshipped ones, when asked)."""
        return sum(
            r.quantity
            for refund in self.refunds
            for r in refund.lines
            if r.line_id == line_id and (shipped is None or r.shipped == shipped)
        )

    def fulfilled(self, line_id: int) -> int:
        """Units of a line that left in fulfillments."""
        return sum(q for f in self.fulfillments for lid, q in f.lines if lid == line_id)

    def current(self, line: Line) -> int:
        """Shopify's currentQuantity: ordered minus refunded and removed units."""
        return line.quantity - self.refunded(line.id)

    @property
    def total(self) -> Decimal:
        """What the shopper paid for, before refunds."""
        return sum((line.price * line.quantity for line in self.lines), Decimal(0))


@dataclass(frozen=True, slots=True)
class _Replay:
    fingerprint: str
    payload: dict[str, Any]


@dataclass(slots=True)
class _Truth:
    ids: _Ids = field(default_factory=_Ids)
    locations: dict[int, Location] = field(default_factory=dict)
    variants: dict[int, Variant] = field(default_factory=dict)
    levels: dict[tuple[int, int], int] = field(default_factory=dict)  # (item, location) -> avail
    orders: dict[int, Order] = field(default_factory=dict)
    fulfillment_orders: dict[int, FulfillmentOrder] = field(default_factory=dict)
    replays: dict[tuple[str, str], _Replay] = field(default_factory=dict)
    tokens: dict[str, datetime] = field(default_factory=dict)  # minted token -> expiry
    tokens_minted: int = 0
    stock_writes: int = 0
    effective_changes: int = 0
    adjustment_groups: int = 0
    # Indexes over `variants`; neither a SKU nor an inventory item changes once a variant exists.
    first_by_sku: dict[str, int] = field(default_factory=dict)
    by_item: dict[int, int] = field(default_factory=dict)

    def add_variant(self, variant: Variant) -> None:
        """Keep a new variant."""
        self.variants[variant.id] = variant
        self.by_item[variant.item_id] = variant.id
        if variant.sku:
            self.first_by_sku.setdefault(variant.sku, variant.id)

    def variant_by_sku(self, sku: str) -> Variant | None:
        """The first variant with this SKU (Shopify does not enforce uniqueness)."""
        variant_id = self.first_by_sku.get(sku)
        return None if variant_id is None else self.variants.get(variant_id)

    def variant_by_item(self, item_id: int) -> Variant | None:
        """The variant of an inventory item."""
        variant_id = self.by_item.get(item_id)
        return None if variant_id is None else self.variants.get(variant_id)

    @property
    def primary(self) -> Location:
        """The shop's primary location."""
        return next(loc for loc in self.locations.values() if loc.primary)


class ShopifySandbox(SandboxBase):
    """A Shopify shop, faked: the GraphQL Admin API, token minting, shopper controls, truth."""

    kind = "shopify"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        shop: str = DEFAULT_SHOP,
        api_version: str = DEFAULT_API_VERSION,
        cost_capacity: float = DEFAULT_CAPACITY,
        cost_restore_rate: float = DEFAULT_RESTORE_RATE,
        token_ttl_s: float = TOKEN_TTL_S,
        topics: Sequence[str] = tuple(sorted(DEFAULT_TOPICS)),
        **options: Any,
    ) -> None:
        options.setdefault("retry_delays", SHOPIFY_RETRY_DELAYS)
        super().__init__(**options)
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.shop = shop
        self.api_version = api_version
        self.token_ttl_s = float(token_ttl_s)
        self.topics = _checked_topics(topics)
        self.schema: GraphQLSchema = admin_schema()
        self.limit = CostBucketRule(cost_capacity, cost_restore_rate, clock=self.clock.monotonic)
        self.records = _Truth()
        self._seed_locations()

    # -- SandboxBase hooks ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """The GraphQL endpoint, the token endpoint, and the shopper and merchant controls."""
        app.add_routes(
            [
                web.post("/admin/api/{version}/graphql.json", self._graphql),
                web.post("/admin/oauth/access_token", self._mint_token),
                web.post("/_control/listings", self._control_listings),
                web.post("/_control/locations", self._control_locations),
                web.post("/_control/orders", self._control_place_order),
                web.post("/_control/orders/{id}/cancel", self._control_cancel),
                web.post("/_control/orders/{id}/refund", self._control_refund),
                web.post("/_control/orders/{id}/pay", self._control_pay),
                web.post("/_control/orders/{id}/fulfill", self._control_fulfill),
                web.put("/_control/orders/{id}/fulfillment_orders", self._control_hold),
                web.post("/_control/tokens/expire", self._control_expire_tokens),
                web.put("/_control/config", self._control_config),
            ]
        )

    def api_middlewares(self) -> list[Middleware]:
        """The access token on every Admin API call (the token endpoint needs none)."""
        return [self._auth]

    def truth(self) -> dict[str, Any]:
        """Listings and orders shaped like the reference sandbox's, plus Shopify's own state."""
        t = self.records
        primary = t.primary
        return {
            "listings": {
                variant.sku: {
                    "id": str(variant.id),
                    "quantity": t.levels.get((variant.item_id, primary.id)),
                    "inventory_item_id": str(variant.item_id),
                    "tracked": variant.tracked,
                }
                for variant in t.variants.values()
                if variant.sku
            },
            "orders": {str(o.id): self.order_summary(o) for o in t.orders.values()},
            "fulfillments": [
                {
                    "id": str(f.id),
                    "order_id": str(f.order_id),
                    "tracking_number": f.number,
                    "company": f.company,
                    "url": f.url,
                    "location_id": str(f.location_id),
                    "lines": [{"line_id": str(lid), "quantity": q} for lid, q in f.lines],
                }
                for o in t.orders.values()
                for f in o.fulfillments
            ],
            # The fulfillments in the shape every sandbox's truth shares.
            "shipments": [
                {"order_id": str(f.order_id), "tracking_number": f.number, "carrier": f.company}
                for o in t.orders.values()
                for f in o.fulfillments
            ],
            "fulfillment_orders": {
                str(fo.id): {
                    "order_id": str(fo.order_id),
                    "status": fo.status,
                    "location_id": str(fo.location_id),
                    "lines": [
                        {"id": str(ln.id), "line_id": str(ln.line_id), "remaining": ln.remaining}
                        for ln in fo.lines
                    ],
                }
                for fo in t.fulfillment_orders.values()
            },
            "locations": [
                {
                    "id": str(loc.id),
                    "name": loc.name,
                    "active": loc.active,
                    "primary": loc.primary,
                    "third_party": loc.third_party,
                }
                for loc in t.locations.values()
            ],
            "levels": {
                f"{item}@{location}": available for (item, location), available in t.levels.items()
            },
            "stock_writes": t.stock_writes,
            "effective_changes": t.effective_changes,
            "over_limit": self.limit.over_limit,
            "rate_limit": self.limit.snapshot(),
            "tokens_minted": t.tokens_minted,
            "api_version": self.api_version,
            "topics": sorted(self.topics),
        }

    def reset_truth(self) -> None:
        """No catalog, no orders, the two default locations, counters at zero, a full bucket."""
        self.records = _Truth()
        self.limit.reset()
        self._seed_locations()

    def levels(self) -> dict[str, int | None]:
        """Each SKU's available quantity at the primary location."""
        t = self.records
        primary = t.primary
        return {
            v.sku: t.levels.get((v.item_id, primary.id)) for v in t.variants.values() if v.sku
        }

    def seed_catalog(self, levels: Mapping[str, int]) -> dict[str, str]:
        """Create or update tracked variants stocked at the primary location; SKU -> variant id."""
        return {sku: str(self.upsert_listing(sku, qty).id) for sku, qty in levels.items()}

    def error_response(
        self, status: int, code: str, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """Injected errors in Shopify's REST error shape: {"errors": "..."}."""
        text = {
            429: "Exceeded 2 calls per second for api client. Reduce request rates to resume "
            "uninterrupted service.",
            503: "Unavailable Shop",
        }.get(status, "Internal Server Error" if status >= 500 else code)
        return json_response({"errors": text}, status=status, headers=dict(headers))

    # -- merchant and shopper, as Python calls (the control routes wrap these) --------------------

    def configure(
        self,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        capacity: float | None = None,
        restore_rate: float | None = None,
        token_ttl_s: float | None = None,
        topics: Sequence[str] | None = None,
        api_version: str | None = None,
    ) -> None:
        """Change credentials, the cost bucket, token lifetime, webhook topics or API version."""
        if api_key is not None:
            self.api_key = api_key
        if client_id is not None:
            self.client_id = client_id
        if client_secret is not None:
            self.client_secret = client_secret
        if capacity is not None or restore_rate is not None:
            self.limit.reconfigure(capacity=capacity, restore_per_s=restore_rate)
        if token_ttl_s is not None:
            self.token_ttl_s = float(token_ttl_s)
        if topics is not None:
            self.topics = _checked_topics(topics)
        if api_version is not None:
            self.api_version = api_version

    def add_location(
        self, name: str, *, active: bool = True, third_party: bool = False
    ) -> Location:
        """A new location (a third-party one stands for a fulfillment service's warehouse)."""
        t = self.records
        if any(loc.name == name for loc in t.locations.values()):
            raise JsonError(409, "name_taken", f"a location named {name!r} exists")
        location = Location(next(t.ids.location), name, active, False, third_party)
        t.locations[location.id] = location
        return location

    def upsert_listing(
        self,
        sku: str,
        quantity: int,
        *,
        tracked: bool | None = None,
        title: str | None = None,
        price: Decimal | None = None,
        locations: Sequence[str] | None = None,
    ) -> Variant:
        """Create a variant for `sku`, or update one; `quantity` is `available` at the primary
        location (or at each of `locations`, by name, which also stocks the item there)."""
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        t = self.records
        variant = t.variant_by_sku(sku)
        if variant is None:
            variant = Variant(
                id=next(t.ids.variant),
                product_id=next(t.ids.product),
                item_id=next(t.ids.item),
                sku=sku,
                title=title or _title_for(sku),
                price=DEFAULT_PRICE if price is None else price,
                tracked=True if tracked is None else tracked,
            )
            t.add_variant(variant)
        else:
            if tracked is not None:
                variant.tracked = tracked
            if title is not None:
                variant.title = title
            if price is not None:
                variant.price = price
        for location in self._locations_named(locations):
            t.levels[(variant.item_id, location.id)] = quantity
        return variant

    def place_order(
        self,
        lines: Sequence[tuple[str | None, int]],
        *,
        paid: bool = True,
        customer: str = "buyer@example.com",
        currency: str = "USD",
    ) -> Order:
        """A shopper checks out: take `available` at the primary location, open one fulfillment
        order there, emit orders/create. 409 when a tracked SKU lacks the units."""
        if not lines:
            raise JsonError(422, "invalid_lines", "an order needs at least one line")
        t = self.records
        primary = t.primary
        wanted: dict[int, int] = {}
        for sku, quantity in lines:
            if quantity <= 0:
                raise JsonError(422, "invalid_lines", "quantities must be positive")
            if sku is None:
                continue
            variant = t.variant_by_sku(sku)
            if variant is None:
                raise JsonError(422, "unknown_sku", f"no variant with SKU {sku!r}")
            wanted[variant.id] = wanted.get(variant.id, 0) + quantity
        for variant_id, quantity in wanted.items():
            variant = t.variants[variant_id]
            level = t.levels.get((variant.item_id, primary.id))
            if variant.tracked and level is None:
                raise JsonError(
                    409, "not_stocked", f"{variant.sku} is not stocked at {primary.name}"
                )
            if variant.tracked and level is not None and level < quantity:
                raise JsonError(
                    409,
                    "insufficient_stock",
                    f"{variant.sku}: {quantity} wanted, {level} available",
                )
        for variant_id, quantity in wanted.items():
            variant = t.variants[variant_id]
            if variant.tracked:
                t.levels[(variant.item_id, primary.id)] -= quantity
        now = self.clock.now()
        order_lines = []
        for sku, quantity in lines:
            variant = t.variant_by_sku(sku) if sku is not None else None
            order_lines.append(
                Line(
                    id=next(t.ids.line),
                    variant_id=variant.id if variant else None,
                    product_id=variant.product_id if variant else None,
                    sku=sku,
                    title=variant.title if variant else "Custom item",
                    quantity=quantity,
                    price=variant.price if variant else DEFAULT_PRICE,
                )
            )
        order = Order(
            id=next(t.ids.order),
            number=next(t.ids.number),
            created_at=now,
            updated_at=now,
            email=customer,
            currency=currency,
            lines=order_lines,
            financial_status="paid" if paid else "pending",
        )
        fo = FulfillmentOrder(
            id=next(t.ids.fulfillment_order),
            order_id=order.id,
            location_id=primary.id,
            status="OPEN",
            lines=[
                FoLine(next(t.ids.fo_line), line.id, line.quantity, line.quantity)
                for line in order_lines
            ],
        )
        t.fulfillment_orders[fo.id] = fo
        order.fulfillment_orders.append(fo.id)
        t.orders[order.id] = order
        self._emit("orders/create", self.order_rest(order))
        return order

    def pay_order(self, order_id: str | int) -> Order:
        """A pending order is paid."""
        order = self._order(order_id)
        if order.financial_status != "pending" or order.cancelled_at is not None:
            raise JsonError(409, "invalid_state", f"order {order.id} is not awaiting payment")
        order.financial_status = "paid"
        self._changed(order, "orders/paid")
        return order

    def cancel_order(self, order_id: str | int, *, restock: bool = True) -> Order:
        """Cancel what has not shipped (restocked unless told otherwise); emit orders/cancelled."""
        order = self._order(order_id)
        if order.cancelled_at is not None:
            raise JsonError(409, "invalid_state", f"order {order.id} is already cancelled")
        due = self._due_units(order)
        if not any(due.values()):
            raise JsonError(409, "invalid_state", f"order {order.id} has nothing left to cancel")
        self._refund_units(order, due, restock=restock, note="Order cancelled")
        order.cancelled_at = self.clock.now()
        order.cancel_reason = "customer"
        # Cancelling in admin refunds what was paid for the cancelled units by default.
        if order.financial_status == "pending":
            order.financial_status = "voided"
        elif order.financial_status in ("paid", "partially_refunded"):
            shipped = sum(order.fulfilled(line.id) for line in order.lines)
            order.financial_status = "partially_refunded" if shipped else "refunded"
        order.updated_at = self.clock.now()
        self._emit("orders/cancelled", self.order_rest(order))
        return order

    def refund_order(
        self,
        order_id: str | int,
        *,
        restock: bool,
        lines: Mapping[int, int] | None = None,
    ) -> Refund:
        """Refund units (all still on the order by default): unshipped ones first, then shipped
        ones; restocked when asked (CANCEL / RETURN), else NO_RESTOCK. Emits refunds/create."""
        order = self._order(order_id)
        if order.financial_status not in ("paid", "partially_refunded"):
            raise JsonError(
                409,
                "invalid_state",
                f"order {order.id} is {order.financial_status}: nothing was paid to refund",
            )
        if lines is None:
            wanted = {line.id: order.current(line) for line in order.lines}
        else:
            wanted = dict(lines)
        by_id = {line.id: line for line in order.lines}
        for line_id, units in wanted.items():
            if line_id not in by_id:
                raise JsonError(422, "unknown_line", f"order {order.id} has no line {line_id}")
            if units < 0 or units > order.current(by_id[line_id]):
                raise JsonError(
                    422,
                    "too_many_units",
                    f"line {line_id}: {units} to refund, "
                    f"{order.current(by_id[line_id])} refundable",
                )
        if not any(wanted.values()):
            raise JsonError(422, "nothing_to_refund", f"order {order.id}: no units to refund")
        refund = self._refund_units(order, wanted, restock=restock, note="Refund")
        all_units = sum(line.quantity for line in order.lines)
        refunded = sum(order.refunded(line.id) for line in order.lines)
        order.financial_status = "refunded" if refunded >= all_units else "partially_refunded"
        order.updated_at = self.clock.now()
        self._emit("refunds/create", self._refund_rest(order, refund))
        self._emit("orders/updated", self.order_rest(order))
        return refund

    def fulfil_order(
        self,
        order_id: str | int,
        *,
        lines: Mapping[int, int] | None = None,
        company: str = "UPS",
        number: str = "",
        url: str = "",
    ) -> Fulfillment:
        """The merchant ships from Shopify admin: lines (all that is due by default) leave."""
        order = self._order(order_id)
        plan: dict[int, list[tuple[FoLine, int]]] = {}
        due = dict(lines) if lines is not None else self._due_units(order)
        for line_id, units in due.items():
            need = units
            for fo_id in order.fulfillment_orders:
                fo = self.records.fulfillment_orders[fo_id]
                if fo.status not in _OPEN_FO:
                    continue
                for fo_line in fo.lines:
                    if need and fo_line.line_id == line_id and fo_line.remaining:
                        take = min(need, fo_line.remaining)
                        plan.setdefault(fo.id, []).append((fo_line, take))
                        need -= take
            if need:
                raise JsonError(
                    422,
                    "too_many_units",
                    f"line {line_id}: {need} unit(s) are not open for fulfilment",
                )
        if not plan:
            raise JsonError(422, "nothing_to_fulfil", f"order {order.id} has nothing to fulfil")
        fulfillments = [
            self._fulfil(order, self.records.fulfillment_orders[fo_id], picks, company, number, url)
            for fo_id, picks in plan.items()
        ]
        self._fulfilled_webhooks(order)
        return fulfillments[-1]

    def set_fulfillment_orders(
        self, order_id: str | int, *, status: str | None = None, location: str | None = None
    ) -> list[FulfillmentOrder]:
        """Hold, schedule or reopen an order's unfinished fulfillment orders, or move them."""
        order = self._order(order_id)
        if status is not None and status not in ("OPEN", "ON_HOLD", "SCHEDULED"):
            raise JsonError(400, "invalid_status", "status must be OPEN, ON_HOLD or SCHEDULED")
        target = None
        if location is not None:
            (target,) = self._locations_named([location])
        changed = []
        for fo_id in order.fulfillment_orders:
            fo = self.records.fulfillment_orders[fo_id]
            if fo.status in ("CLOSED", "CANCELLED"):
                continue
            if status is not None:
                fo.status = status
            if target is not None:
                fo.location_id = target.id
            changed.append(fo)
        order.updated_at = self.clock.now()
        return changed

    # -- internals: orders ------------------------------------------------------------------------

    def _order(self, order_id: str | int) -> Order:
        try:
            order = self.records.orders.get(int(order_id))
        except ValueError:
            order = None
        if order is None:
            raise JsonError(404, "not_found", f"no order {order_id}")
        return order

    def _due_units(self, order: Order) -> dict[int, int]:
        """Units per line still waiting in (any non-closed) fulfillment orders."""
        due: dict[int, int] = {}
        for fo_id in order.fulfillment_orders:
            fo = self.records.fulfillment_orders[fo_id]
            if fo.status in ("CLOSED", "CANCELLED"):
                continue
            for fo_line in fo.lines:
                due[fo_line.line_id] = due.get(fo_line.line_id, 0) + fo_line.remaining
        return due

    def _refund_units(
        self, order: Order, wanted: Mapping[int, int], *, restock: bool, note: str
    ) -> Refund:
        """Record a refund of units per line: unshipped first (taken out of the fulfillment
        orders), then shipped; restock them at the location they came from when asked."""
        t = self.records
        refund = Refund(next(t.ids.refund), order.id, self.clock.now(), note, restock, [])
        due = self._due_units(order)
        for line_id, units in wanted.items():
            if units <= 0:
                continue
            unshipped = min(units, due.get(line_id, 0))
            shipped = units - unshipped
            if unshipped:
                location = self._take_from_fulfillment_orders(order, line_id, unshipped)
                refund.lines.append(
                    RefundLine(
                        next(t.ids.refund_line),
                        line_id,
                        unshipped,
                        "cancel" if restock else "no_restock",
                        False,
                        location,
                    )
                )
                if restock:
                    self._restock(order, line_id, unshipped, location)
            if shipped:
                location = next(
                    (
                        f.location_id
                        for f in order.fulfillments
                        for lid, _ in f.lines
                        if lid == line_id
                    ),
                    t.primary.id,
                )
                refund.lines.append(
                    RefundLine(
                        next(t.ids.refund_line),
                        line_id,
                        shipped,
                        "return" if restock else "no_restock",
                        True,
                        location,
                    )
                )
                if restock:
                    self._restock(order, line_id, shipped, location)
        order.refunds.append(refund)
        return refund

    def _take_from_fulfillment_orders(self, order: Order, line_id: int, units: int) -> int:
        """Remove units from the fulfillment orders still holding them; their location."""
        location = self.records.primary.id
        for fo_id in order.fulfillment_orders:
            fo = self.records.fulfillment_orders[fo_id]
            if fo.status in ("CLOSED", "CANCELLED"):
                continue
            for fo_line in fo.lines:
                if units and fo_line.line_id == line_id and fo_line.remaining:
                    take = min(units, fo_line.remaining)
                    fo_line.remaining -= take
                    units -= take
                    location = fo.location_id
            if all(ln.remaining == 0 for ln in fo.lines):
                # IN_PROGRESS means part of it shipped: it closes; untouched, it is cancelled.
                fo.status = "CLOSED" if fo.status == "IN_PROGRESS" else "CANCELLED"
        return location

    def _restock(self, order: Order, line_id: int, units: int, location_id: int | None) -> None:
        line = next(line for line in order.lines if line.id == line_id)
        variant = self.records.variants.get(line.variant_id) if line.variant_id else None
        if variant is None or not variant.tracked or units <= 0:
            return
        key = (variant.item_id, location_id or self.records.primary.id)
        if key in self.records.levels:
            self.records.levels[key] += units

    def _fulfil(
        self,
        order: Order,
        fo: FulfillmentOrder,
        picks: Sequence[tuple[FoLine, int]],
        company: str,
        number: str,
        url: str,
    ) -> Fulfillment:
        for fo_line, units in picks:
            fo_line.remaining -= units
        fo.status = "CLOSED" if all(ln.remaining == 0 for ln in fo.lines) else "IN_PROGRESS"
        fulfillment = Fulfillment(
            id=next(self.records.ids.fulfillment),
            order_id=order.id,
            location_id=fo.location_id,
            created_at=self.clock.now(),
            company=company,
            number=number,
            url=url,
            lines=[(fo_line.line_id, units) for fo_line, units in picks],
        )
        order.fulfillments.append(fulfillment)
        order.updated_at = self.clock.now()
        return fulfillment

    def _fulfilled_webhooks(self, order: Order) -> None:
        status = self._rest_fulfillment_status(order)
        extra = "orders/fulfilled" if status == "fulfilled" else "orders/partially_fulfilled"
        self._changed(order, extra)

    def _changed(self, order: Order, extra_topic: str | None = None) -> None:
        order.updated_at = self.clock.now()
        payload = self.order_rest(order)
        if extra_topic is not None:
            self._emit(extra_topic, payload)
        self._emit("orders/updated", payload)

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        """Sign and queue a delivery, if the shop is subscribed to the topic."""
        if topic not in self.topics:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        webhook_id = self.new_delivery_id()
        headers = {
            "Content-Type": "application/json",
            TOPIC_HEADER: topic,
            # Shopify signs with the app's client secret; a configured webhook secret stands in.
            HMAC_HEADER: sign_payload(self.webhook_secret or self.client_secret, body),
            SHOP_HEADER: self.shop,
            API_VERSION_HEADER: self.api_version,
            WEBHOOK_ID_HEADER: webhook_id,
            EVENT_ID_HEADER: self.new_delivery_id(),
            TRIGGERED_AT_HEADER: format_timestamp(self.clock.now()),
        }
        self.emit_webhook(topic, body, headers, webhook_id)

    def _locations_named(self, names: Sequence[str] | None) -> list[Location]:
        t = self.records
        if names is None:
            return [t.primary]
        found = []
        for name in names:
            match = next((loc for loc in t.locations.values() if loc.name == name), None)
            if match is None:
                raise JsonError(422, "unknown_location", f"no location named {name!r}")
            found.append(match)
        return found

    def _seed_locations(self) -> None:
        t = self.records
        for name, primary in ((PRIMARY_LOCATION, True), (SECOND_LOCATION, False)):
            location = Location(next(t.ids.location), name, True, primary, False)
            t.locations[location.id] = location

    # -- the REST shape (webhook bodies, control answers) -----------------------------------------

    def order_rest(self, order: Order) -> dict[str, Any]:
        """The order as REST and webhooks show it."""
        return {
            "id": order.id,
            "admin_graphql_api_id": order.gid,
            "name": f"#{order.number}",
            "order_number": order.number,
            "number": order.number - 1000,
            "email": order.email,
            "contact_email": order.email,
            "created_at": _rest_time(order.created_at),
            "updated_at": _rest_time(order.updated_at),
            "processed_at": _rest_time(order.created_at),
            "cancelled_at": _rest_time(order.cancelled_at) if order.cancelled_at else None,
            "cancel_reason": order.cancel_reason,
            "closed_at": None,
            "currency": order.currency,
            "presentment_currency": order.currency,
            "financial_status": order.financial_status,
            "fulfillment_status": self._rest_fulfillment_status(order),
            "total_price": f"{order.total:.2f}",
            "subtotal_price": f"{order.total:.2f}",
            "total_tax": "0.00",
            "taxes_included": False,
            "test": False,
            "source_name": "web",
            "line_items": [self._line_rest(order, line) for line in order.lines],
            "fulfillments": [self._fulfillment_rest(order, f) for f in order.fulfillments],
            "refunds": [self._refund_rest(order, r) for r in order.refunds],
        }

    def _line_rest(self, order: Order, line: Line, quantity: int | None = None) -> dict[str, Any]:
        fulfilled = order.fulfilled(line.id)
        current = order.current(line)
        due = self._due_units(order).get(line.id, 0)
        status = None if fulfilled == 0 else ("fulfilled" if fulfilled >= current else "partial")
        return {
            "id": line.id,
            "admin_graphql_api_id": gid("LineItem", line.id),
            "variant_id": line.variant_id,
            "product_id": line.product_id,
            "sku": line.sku,
            "title": line.title,
            "name": line.title,
            "variant_title": None,
            "vendor": None,
            "quantity": line.quantity if quantity is None else quantity,
            "current_quantity": current,
            "fulfillable_quantity": due,
            "fulfillment_status": status,
            "fulfillment_service": "manual",
            "price": f"{line.price:.2f}",
            "requires_shipping": True,
            "taxable": True,
            "gift_card": False,
            "product_exists": line.product_id is not None,
            "properties": [],
        }

    def _fulfillment_rest(self, order: Order, fulfillment: Fulfillment) -> dict[str, Any]:
        by_id = {line.id: line for line in order.lines}
        return {
            "id": fulfillment.id,
            "admin_graphql_api_id": gid("Fulfillment", fulfillment.id),
            "order_id": order.id,
            "name": f"#{order.number}.{order.fulfillments.index(fulfillment) + 1}",
            "status": "success",
            "service": "manual",
            "location_id": fulfillment.location_id,
            "created_at": _rest_time(fulfillment.created_at),
            "updated_at": _rest_time(fulfillment.created_at),
            "tracking_company": fulfillment.company or None,
            "tracking_number": fulfillment.number or None,
            "tracking_numbers": [fulfillment.number] if fulfillment.number else [],
            "tracking_url": fulfillment.url or None,
            "tracking_urls": [fulfillment.url] if fulfillment.url else [],
            "line_items": [
                self._line_rest(order, by_id[line_id], units)
                for line_id, units in fulfillment.lines
            ],
        }

    def _refund_rest(self, order: Order, refund: Refund) -> dict[str, Any]:
        by_id = {line.id: line for line in order.lines}
        return {
            "id": refund.id,
            "admin_graphql_api_id": gid("Refund", refund.id),
            "order_id": order.id,
            "created_at": _rest_time(refund.created_at),
            "processed_at": _rest_time(refund.created_at),
            "note": refund.note,
            "restock": refund.restock,
            "user_id": None,
            "refund_line_items": [
                {
                    "id": item.id,
                    "quantity": item.quantity,
                    "line_item_id": item.line_id,
                    "location_id": item.location_id,
                    "restock_type": item.restock_type,
                    "subtotal": f"{by_id[item.line_id].price * item.quantity:.2f}",
                    "total_tax": "0.00",
                    "line_item": self._line_rest(order, by_id[item.line_id]),
                }
                for item in refund.lines
            ],
            "transactions": [],
            "order_adjustments": [],
        }

    def _rest_fulfillment_status(self, order: Order) -> str | None:
        shipped = sum(order.fulfilled(line.id) for line in order.lines)
        if shipped == 0:
            return None
        due = sum(self._due_units(order).values())
        return "fulfilled" if due == 0 else "partial"

    def order_summary(self, order: Order) -> dict[str, Any]:
        """The order as storesync should understand it, worked out from the shop's own records
        (not through the connector's normalizer): the shape the reference sandbox's truth uses."""
        if order.cancelled_at is not None:
            status = "cancelled"
        elif order.financial_status == "refunded":
            status = "refunded"
        elif order.financial_status in ("pending", "voided", "expired"):
            status = "pending"
        else:
            status = "open"
        lines = []
        for line in order.lines:
            cancelled = sum(
                r.quantity
                for refund in order.refunds
                for r in refund.lines
                if r.line_id == line.id and not r.shipped
            )
            returned = sum(
                r.quantity
                for refund in order.refunds
                for r in refund.lines
                if r.line_id == line.id and r.shipped and r.restock_type == "return"
            )
            lines.append(
                {
                    "id": str(line.id),
                    "sku": line.sku,
                    "title": line.title,
                    "quantity": line.quantity,
                    "shipped": order.fulfilled(line.id),
                    "cancelled": cancelled,
                    "returned": returned,
                }
            )
        return {
            "id": str(order.id),
            "name": f"#{order.number}",
            "status": status,
            "financial_status": order.financial_status,
            "fulfillment_status": self._rest_fulfillment_status(order),
            "created_at": format_timestamp(order.created_at),
            "updated_at": format_timestamp(order.updated_at),
            "cancelled_at": format_timestamp(order.cancelled_at) if order.cancelled_at else None,
            "currency": order.currency,
            "total": f"{order.total:.2f}",
            "customer": order.email,
            "lines": lines,
        }

    # -- auth and tokens --------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/admin/api/"):
            token = request.headers.get("X-Shopify-Access-Token", "")
            if not self._token_ok(token):
                return json_response({"errors": INVALID_TOKEN}, status=401)
        return await handler(request)

    def _token_ok(self, token: str) -> bool:
        if token and secrets.compare_digest(token, self.api_key):
            return True
        expires = self.records.tokens.get(token)
        return expires is not None and self.clock.now() < expires

    async def _mint_token(self, request: web.Request) -> web.Response:
        raw = await request.read()
        fields: Mapping[str, Any]
        if request.content_type == "application/json":
            try:
                parsed = json.loads(raw or b"{}")
            except (UnicodeDecodeError, json.JSONDecodeError):
                parsed = None
            fields = parsed if isinstance(parsed, dict) else {}
        else:
            fields = await request.post()
        if fields.get("grant_type") != "client_credentials":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "use client_credentials"},
                status=400,
            )
        client_ok = fields.get("client_id") == self.client_id and secrets.compare_digest(
            str(fields.get("client_secret") or ""), self.client_secret
        )
        if not client_ok:
            return json_response(
                {"error": "invalid_client", "error_description": "unknown client or bad secret"},
                status=400,
            )
        token = "shpat_" + secrets.token_hex(16)
        self.records.tokens[token] = self.clock.now() + timedelta(seconds=self.token_ttl_s)
        self.records.tokens_minted += 1
        return json_response(
            {"access_token": token, "scope": SCOPES, "expires_in": int(self.token_ttl_s)}
        )

    # -- GraphQL ----------------------------------------------------------------------------------

    async def _graphql(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        body = await read_json_or_none(request)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return json_response(
                {"errors": {"query": "Required parameter missing or invalid"}}, status=400
            )
        variables = body.get("variables") or {}
        operation_name = body.get("operationName")
        if not isinstance(variables, dict) or not (
            operation_name is None or isinstance(operation_name, str)
        ):
            return json_response(
                {"errors": {"variables": "Required parameter missing or invalid"}}, status=400
            )
        return json_response(self.run_graphql(body["query"], variables, operation_name, version))

    def run_graphql(
        self,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Validate, cost, throttle and execute one operation; the JSON body Shopify answers."""
        try:
            document = parse(query)
        except GraphQLError as exc:
            return self._failed([_error_json(exc, "parseError")], 0)
        problems = validate(self.schema, document)
        if problems:
            return self._failed([_validation_error(p) for p in problems], 0)
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = (
                "An operation name is required"
                if operation_name is None
                else (f'No operation named "{operation_name}"')
            )
            return self._failed(
                [{"message": message, "extensions": {"code": "operationNotFound"}}], 0
            )
        coerced = get_variable_values(self.schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return self._failed([_variable_error(operation, e) for e in coerced], 0)
        try:
            requested = _Coster(self.schema, document, coerced).operation(operation)
        except GraphQLError as exc:
            return self._failed([_error_json(exc, "BAD_REQUEST")], 0)
        if requested > self.limit.capacity:
            message = (
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({int(self.limit.capacity)})."
            )
            return self._failed(
                [
                    {
                        "message": message,
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": int(self.limit.capacity),
                        },
                    }
                ],
                requested,
            )
        if not self.limit.check(requested).allowed:
            # https://shopify.dev/docs/api/usage/rate-limits: HTTP 200, no data, code THROTTLED.
            return self._failed(
                [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                requested,
            )
        context = _Context(version=version or self.api_version)
        result = execute(
            self.schema,
            document,
            root_value=self._root(),
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_resolve,
        )
        if not isinstance(result, ExecutionResult):
            raise TypeError("the sandbox's resolvers are synchronous")
        data = result.data
        if operation.operation == OperationType.MUTATION:
            actual = requested
        else:
            actual = min(_objects_in(data), requested)
        self.limit.refund(requested - actual)
        answer: dict[str, Any] = {}
        if result.errors:
            answer["errors"] = [_execution_error(e) for e in result.errors]
        answer["data"] = data
        answer["extensions"] = {"cost": self._cost(requested, actual)}
        return answer

    def _failed(self, errors: list[dict[str, Any]], requested: int) -> dict[str, Any]:
        return {
            "errors": errors,
            "extensions": {"cost": self._cost(requested, None)},
        }

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.limit.capacity,
                "currentlyAvailable": round(self.limit.remaining(), 3),
                "restoreRate": self.limit.restore_per_s,
            },
        }

    # -- GraphQL resolvers: views over the truth --------------------------------------------------
    #
    # Every view is a dict; a value that needs arguments (or would recurse) is a callable taking
    # (info, **arguments), which `_resolve` calls.

    def _root(self) -> dict[str, Any]:
        t = self.records
        return {
            "orders": self._orders_connection,
            "order": lambda info, id: self._maybe(
                t.orders, _parse_gid(id, "Order"), self._order_view
            ),
            "refund": lambda info, id: self._refund_by_gid(id),
            "fulfillmentOrder": lambda info, id: self._maybe(
                t.fulfillment_orders, _parse_gid(id, "FulfillmentOrder"), self._fo_view
            ),
            "productVariants": self._variants_connection,
            "productVariant": lambda info, id: self._maybe(
                t.variants, _parse_gid(id, "ProductVariant"), self._variant_view
            ),
            "inventoryItem": lambda info, id: self._item_by_gid(id),
            "locations": self._locations_connection,
            "location": lambda info, id=None: (
                self._location_view(t.primary)
                if id is None
                else self._maybe(t.locations, _parse_gid(id, "Location"), self._location_view)
            ),
            "node": lambda info, id: self._node(id),
            "nodes": lambda info, ids: [self._node(one) for one in ids],
            "inventorySetQuantities": self._set_quantities,
            "fulfillmentCreate": self._fulfillment_create,
        }

    @staticmethod
    def _maybe(table: Mapping[int, Any], key: int | None, view: Callable[[Any], Any]) -> Any:
        item = table.get(key) if key is not None else None
        return view(item) if item is not None else None

    def _node(self, value: str) -> dict[str, Any] | None:
        match = _GID.fullmatch(value)
        if match is None:
            raise GraphQLError(f"Invalid global id '{value}'")
        kind = match.group(1)
        if kind == "InventoryItem":
            return self._item_by_gid(value)
        if kind == "Refund":
            return self._refund_by_gid(value)
        tables: dict[str, tuple[Mapping[int, Any], Callable[[Any], Any]]] = {
            "Order": (self.records.orders, self._order_view),
            "ProductVariant": (self.records.variants, self._variant_view),
            "Location": (self.records.locations, self._location_view),
            "FulfillmentOrder": (self.records.fulfillment_orders, self._fo_view),
        }
        if kind not in tables:
            return None
        table, view = tables[kind]
        return self._maybe(table, int(match.group(2)), view)

    def _item_by_gid(self, value: str) -> dict[str, Any] | None:
        item_id = _parse_gid(value, "InventoryItem")
        variant = self.records.variant_by_item(item_id) if item_id is not None else None
        return self._item_view(variant) if variant is not None else None

    def _refund_by_gid(self, value: str) -> dict[str, Any] | None:
        refund_id = _parse_gid(value, "Refund")
        for order in self.records.orders.values():
            for refund in order.refunds:
                if refund.id == refund_id:
                    return self._refund_view(order, refund)
        return None

    def _orders_connection(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        orders = list(self.records.orders.values())
        for name, op, moment in _time_filters(args.get("query")):
            orders = [o for o in orders if _compare(getattr(o, name), op, moment)]
        sort_key = args.get("sortKey") or "ID"
        key: Callable[[Order], tuple[Any, ...]]
        if sort_key == "UPDATED_AT":
            key = lambda o: (format_timestamp(o.updated_at), o.id)  # noqa: E731
        elif sort_key in ("CREATED_AT", "PROCESSED_AT"):
            key = lambda o: (format_timestamp(o.created_at), o.id)  # noqa: E731
        else:
            key = lambda o: (o.id,)  # noqa: E731
        return _connection(orders, args, key, self._order_view)

    def _variants_connection(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        variants = list(self.records.variants.values())
        query = args.get("query") or ""
        sku = re.search(r"\bsku:'?\"?([^'\"\s]+)", query)
        if sku:
            variants = [v for v in variants if v.sku == sku.group(1)]
        return _connection(variants, args, lambda v: (v.id,), self._variant_view)

    def _locations_connection(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        locations = [
            loc
            for loc in self.records.locations.values()
            if loc.active or args.get("includeInactive")
        ]
        return _connection(locations, args, lambda loc: (loc.id,), self._location_view)

    def _order_view(self, order: Order) -> dict[str, Any]:
        money = {"amount": f"{order.total:.2f}", "currencyCode": order.currency}
        fos = [self.records.fulfillment_orders[i] for i in order.fulfillment_orders]
        return {
            "__typename": "Order",
            "id": order.gid,
            "name": f"#{order.number}",
            "email": order.email,
            "createdAt": format_timestamp(order.created_at),
            "updatedAt": format_timestamp(order.updated_at),
            "cancelledAt": format_timestamp(order.cancelled_at) if order.cancelled_at else None,
            "cancelReason": order.cancel_reason.upper() if order.cancel_reason else None,
            "closed": False,
            "closedAt": None,
            "displayFinancialStatus": order.financial_status.upper(),
            "displayFulfillmentStatus": self._display_fulfillment_status(order, fos),
            "currencyCode": order.currency,
            "totalPriceSet": {"shopMoney": money, "presentmentMoney": money},
            "lineItems": lambda info, **args: _connection(
                order.lines, args, lambda ln: (ln.id,), lambda ln: self._line_view(order, ln)
            ),
            "refunds": lambda info, first=None: [
                self._refund_view(order, r) for r in order.refunds[:first]
            ],
            "fulfillments": lambda info, first=None: [
                self._fulfillment_view(order, f) for f in order.fulfillments[:first]
            ],
            "fulfillmentOrders": lambda info, **args: _connection(
                fos, args, lambda fo: (fo.id,), self._fo_view
            ),
        }

    def _display_fulfillment_status(self, order: Order, fos: Sequence[FulfillmentOrder]) -> str:
        status = self._rest_fulfillment_status(order)
        if status == "fulfilled":
            return "FULFILLED"
        if status == "partial":
            return "PARTIALLY_FULFILLED"
        if fos and all(fo.status == "ON_HOLD" for fo in fos):
            return "ON_HOLD"
        return "UNFULFILLED"

    def _line_view(self, order: Order, line: Line) -> dict[str, Any]:
        current = order.current(line)
        fulfilled = order.fulfilled(line.id)
        variant = self.records.variants.get(line.variant_id) if line.variant_id else None
        return {
            "__typename": "LineItem",
            "id": gid("LineItem", line.id),
            "sku": line.sku,
            "name": line.title,
            "title": line.title,
            "quantity": line.quantity,
            "currentQuantity": current,
            # currentQuantity minus fulfilled units; negative after a fulfilled unit is refunded,
            # as Shopify reports it (community.shopify.dev/t/27826).
            "unfulfilledQuantity": current - fulfilled,
            "refundableQuantity": current,
            "nonFulfillableQuantity": line.quantity - current,
            "variant": (lambda info: self._variant_view(variant)) if variant else None,
        }

    def _refund_view(self, order: Order, refund: Refund) -> dict[str, Any]:
        by_id = {line.id: line for line in order.lines}
        return {
            "__typename": "Refund",
            "id": gid("Refund", refund.id),
            "createdAt": format_timestamp(refund.created_at),
            "note": refund.note,
            "order": lambda info: self._order_view(order),
            "refundLineItems": lambda info, **args: _connection(
                refund.lines,
                args,
                lambda item: (item.id,),
                lambda item: {
                    "id": gid("RefundLineItem", item.id),
                    "lineItem": self._line_view(order, by_id[item.line_id]),
                    "quantity": item.quantity,
                    "restockType": item.restock_type.upper(),
                    "restocked": item.restock_type in ("cancel", "return"),
                    "location": self._maybe(
                        self.records.locations, item.location_id, self._location_view
                    ),
                },
            ),
        }

    def _fulfillment_view(self, order: Order, fulfillment: Fulfillment) -> dict[str, Any]:
        by_id = {line.id: line for line in order.lines}
        tracking = (
            [
                {
                    "company": fulfillment.company or None,
                    "number": fulfillment.number,
                    "url": fulfillment.url or None,
                }
            ]
            if fulfillment.number
            else []
        )
        return {
            "__typename": "Fulfillment",
            "id": gid("Fulfillment", fulfillment.id),
            "name": f"#{order.number}.{order.fulfillments.index(fulfillment) + 1}",
            "status": "SUCCESS",
            "createdAt": format_timestamp(fulfillment.created_at),
            "location": self._maybe(
                self.records.locations, fulfillment.location_id, self._location_view
            ),
            "order": lambda info: self._order_view(order),
            "trackingInfo": lambda info, first=None: tracking[:first],
            "fulfillmentLineItems": lambda info, **args: _connection(
                list(enumerate(fulfillment.lines)),
                args,
                lambda pair: (pair[0],),
                lambda pair: {
                    "id": gid("FulfillmentLineItem", fulfillment.id * 1000 + pair[0]),
                    "lineItem": self._line_view(order, by_id[pair[1][0]]),
                    "quantity": pair[1][1],
                },
            ),
        }

    def _fo_view(self, fo: FulfillmentOrder) -> dict[str, Any]:
        order = self.records.orders[fo.order_id]
        location = self.records.locations[fo.location_id]
        by_id = {line.id: line for line in order.lines}
        if location.third_party:
            actions = ["REQUEST_FULFILLMENT"] if fo.status == "OPEN" else []
        elif fo.status in _OPEN_FO:
            actions = ["CREATE_FULFILLMENT", "HOLD", "MOVE"]
        elif fo.status == "ON_HOLD":
            actions = ["RELEASE_HOLD"]
        elif fo.status == "SCHEDULED":
            actions = ["MARK_AS_OPEN"]
        else:
            actions = []
        return {
            "__typename": "FulfillmentOrder",
            "id": gid("FulfillmentOrder", fo.id),
            "orderId": order.gid,
            "order": lambda info: self._order_view(order),
            "status": fo.status,
            "assignedLocation": {"name": location.name, "location": self._location_view(location)},
            "supportedActions": [{"action": a, "externalUrl": None} for a in actions],
            "lineItems": lambda info, **args: _connection(
                fo.lines,
                args,
                lambda ln: (ln.id,),
                lambda ln: {
                    "id": gid("FulfillmentOrderLineItem", ln.id),
                    "sku": by_id[ln.line_id].sku,
                    "totalQuantity": ln.total,
                    "remainingQuantity": ln.remaining,
                    "lineItem": self._line_view(order, by_id[ln.line_id]),
                },
            ),
        }

    def _location_view(self, location: Location) -> dict[str, Any]:
        service = (
            {
                "id": gid("FulfillmentService", location.id),
                "handle": _handle(location.name),
                "serviceName": location.name,
                "type": "THIRD_PARTY",
            }
            if location.third_party
            else None
        )
        return {
            "__typename": "Location",
            "id": gid("Location", location.id),
            "name": location.name,
            "isActive": location.active,
            "isPrimary": location.primary,
            "fulfillmentService": service,
            "inventoryLevel": lambda info, inventoryItemId: self._level_view(
                _parse_gid(inventoryItemId, "InventoryItem"), location.id
            ),
        }

    def _variant_view(self, variant: Variant) -> dict[str, Any]:
        return {
            "__typename": "ProductVariant",
            "id": gid("ProductVariant", variant.id),
            "sku": variant.sku,
            "title": variant.title,
            "displayName": variant.title,
            "price": f"{variant.price:.2f}",
            "product": {
                "__typename": "Product",
                "id": gid("Product", variant.product_id),
                "title": variant.title,
            },
            "inventoryItem": lambda info: self._item_view(variant),
        }

    def _item_view(self, variant: Variant) -> dict[str, Any]:
        return {
            "__typename": "InventoryItem",
            "id": gid("InventoryItem", variant.item_id),
            "sku": variant.sku,
            "tracked": variant.tracked,
            "variant": lambda info: self._variant_view(variant),
            "inventoryLevel": lambda info, locationId: self._level_view(
                variant.item_id, _parse_gid(locationId, "Location")
            ),
        }

    def _level_view(self, item_id: int | None, location_id: int | None) -> dict[str, Any] | None:
        t = self.records
        if item_id is None or location_id is None or (item_id, location_id) not in t.levels:
            return None  # not stocked there: Shopify answers null
        variant = t.variant_by_item(item_id)
        location = t.locations.get(location_id)
        if variant is None or location is None:
            return None
        available = t.levels[(item_id, location_id)]
        committed = self._committed(item_id, location_id)

        def quantities(info: GraphQLResolveInfo, names: list[str]) -> list[dict[str, Any]]:
            values = {
                "available": available,
                "committed": committed,
                "on_hand": available + committed,
            }
            unknown = [n for n in names if n not in QUANTITY_NAMES]
            if unknown:
                raise GraphQLError(f"Invalid quantity name(s): {', '.join(unknown)}")
            return [
                {
                    "id": f"{gid('InventoryQuantity', item_id)}?name={n}",
                    "name": n,
                    "quantity": values.get(n, 0),
                    "updatedAt": None,
                }
                for n in names
            ]

        return {
            "__typename": "InventoryLevel",
            "id": f"{gid('InventoryLevel', location_id)}?inventory_item_id={item_id}",
            "item": lambda info: self._item_view(variant),
            "location": lambda info: self._location_view(location),
            "quantities": quantities,
            "updatedAt": self.now_text(),
        }

    def _committed(self, item_id: int, location_id: int) -> int:
        """Units of open fulfillment orders at the location waiting to ship this item."""
        t = self.records
        total = 0
        for fo in t.fulfillment_orders.values():
            if fo.location_id != location_id or fo.status in ("CLOSED", "CANCELLED"):
                continue
            order = t.orders[fo.order_id]
            for fo_line in fo.lines:
                line = next(ln for ln in order.lines if ln.id == fo_line.line_id)
                variant = t.variants.get(line.variant_id) if line.variant_id else None
                if variant is not None and variant.item_id == item_id:
                    total += fo_line.remaining
        return total

    # -- mutations --------------------------------------------------------------------------------

    def _set_quantities(self, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
        context: _Context = info.context
        quantities = input["quantities"]
        if len(quantities) > MAX_INPUT_ITEMS:
            raise GraphQLError(
                f"The input array size of {len(quantities)} is greater than the maximum allowed "
                f"of {MAX_INPUT_ITEMS}.",
                extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"},
            )
        if context.version >= "2026-04":
            missing = [i for i, q in enumerate(quantities) if "changeFromQuantity" not in q]
            if missing:
                raise GraphQLError(
                    f"changeFromQuantity is required on every quantity from 2026-04 (pass null "
                    f"to skip the check); missing at quantities {missing}",
                    extensions={"code": "INVALID_FIELD_ARGUMENTS"},
                )
        return self._idempotent(info, input, lambda: self._apply_quantities(input))

    def _apply_quantities(self, input: dict[str, Any]) -> dict[str, Any]:
        t = self.records
        errors: list[dict[str, Any]] = []

        def error(code: str, path: list[str], message: str) -> None:
            errors.append({"code": code, "field": ["input", *path], "message": message})

        name = input["name"]
        if name not in ("available", "on_hand"):
            error("INVALID_NAME", ["name"], "The quantity name must be 'available' or 'on_hand'.")
        if input["reason"] not in REASONS:
            error("INVALID_REASON", ["reason"], "The specified reason is invalid.")
        uri = input.get("referenceDocumentUri")
        if uri is not None and not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", uri):
            error(
                "INVALID_REFERENCE_DOCUMENT",
                ["referenceDocumentUri"],
                "The reference document URI is invalid.",
            )
        changes: list[tuple[Variant, int, int, int]] = []  # variant, location, old, new
        for index, item in enumerate(input["quantities"]):
            at = ["quantities", str(index)]
            item_id = _parse_gid(item["inventoryItemId"], "InventoryItem")
            variant = t.variant_by_item(item_id) if item_id is not None else None
            location_id = _parse_gid(item["locationId"], "Location")
            location = t.locations.get(location_id) if location_id is not None else None
            quantity = item["quantity"]
            if variant is None:
                error(
                    "INVALID_INVENTORY_ITEM",
                    [*at, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                )
                continue
            if location is None or not location.active:
                error(
                    "INVALID_LOCATION",
                    [*at, "locationId"],
                    "The specified location could not be found.",
                )
                continue
            if quantity < 0:
                error(
                    "INVALID_QUANTITY_NEGATIVE",
                    [*at, "quantity"],
                    "The quantity can't be negative.",
                )
                continue
            if quantity > MAX_QUANTITY:
                error(
                    "INVALID_QUANTITY_TOO_HIGH",
                    [*at, "quantity"],
                    "The quantity can't be higher than 1,000,000,000.",
                )
                continue
            key = (variant.item_id, location.id)
            if key not in t.levels:
                error(
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                    [*at, "locationId"],
                    "The specified inventory item is not stocked at the location.",
                )
                continue
            committed = self._committed(variant.item_id, location.id)
            current = t.levels[key] + (committed if name == "on_hand" else 0)
            expected = item.get("changeFromQuantity")
            if expected is not None and expected != current:
                # The message does not say what the quantity is now: clients re-read it.
                error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    [*at, "changeFromQuantity"],
                    "The changeFromQuantity does not match the current quantity.",
                )
                continue
            new_available = quantity - (committed if name == "on_hand" else 0)
            if new_available < 0:
                error(
                    "INVALID_QUANTITY_NEGATIVE",
                    [*at, "quantity"],
                    "The resulting available quantity can't be negative.",
                )
                continue
            changes.append((variant, location.id, t.levels[key], new_available))
        if errors:
            # All or nothing: one refused quantity and none of the call is applied.
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        rows = []
        for variant, location_id, old, new in changes:
            t.levels[(variant.item_id, location_id)] = new
            t.stock_writes += 1
            if new != old:
                t.effective_changes += 1
                self._emit(
                    "inventory_levels/update",
                    {
                        "inventory_item_id": variant.item_id,
                        "location_id": location_id,
                        "available": new,
                        "updated_at": _rest_time(self.clock.now()),
                        "admin_graphql_api_id": (
                            f"{gid('InventoryLevel', location_id)}"
                            f"?inventory_item_id={variant.item_id}"
                        ),
                    },
                )
            for quantity_name in ("available", "on_hand"):
                rows.append(
                    {
                        "name": quantity_name,
                        "delta": new - old,
                        "quantityAfterChange": new
                        + (
                            self._committed(variant.item_id, location_id)
                            if quantity_name == "on_hand"
                            else 0
                        ),
                        "item": self._item_view(variant),
                        "location": self._location_view(t.locations[location_id]),
                    }
                )
        t.adjustment_groups += 1
        group = {
            "__typename": "InventoryAdjustmentGroup",
            "id": gid("InventoryAdjustmentGroup", next(t.ids.adjustment)),
            "createdAt": self.now_text(),
            "reason": input["reason"],
            "referenceDocumentUri": input.get("referenceDocumentUri"),
            "changes": lambda info, **args: [
                row
                for row in rows
                if not args.get("quantityNames") or row["name"] in args["quantityNames"]
            ],
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    def _fulfillment_create(
        self, info: GraphQLResolveInfo, fulfillment: dict[str, Any], message: str | None = None
    ) -> dict[str, Any]:
        return self._idempotent(
            info,
            {"fulfillment": fulfillment, "message": message},
            lambda: self._apply_fulfillment(fulfillment),
        )

    def _apply_fulfillment(self, data: dict[str, Any]) -> dict[str, Any]:
        t = self.records
        groups = data["lineItemsByFulfillmentOrder"]

        def refuse(message: str, *path: str) -> dict[str, Any]:
            field_path = ["fulfillment", *path] if path else None
            return {"fulfillment": None, "userErrors": [{"field": field_path, "message": message}]}

        if not groups:
            return refuse(
                "Line items by fulfillment order can't be blank.", "lineItemsByFulfillmentOrder"
            )
        plan: list[tuple[FulfillmentOrder, list[tuple[FoLine, int]]]] = []
        for index, group in enumerate(groups):
            at = ("lineItemsByFulfillmentOrder", str(index))
            fo_id = _parse_gid(group["fulfillmentOrderId"], "FulfillmentOrder")
            fo = t.fulfillment_orders.get(fo_id) if fo_id is not None else None
            if fo is None:
                return refuse("Fulfillment order does not exist.", *at, "fulfillmentOrderId")
            location = t.locations[fo.location_id]
            if location.third_party:
                return refuse(
                    f"Fulfillment order {fo.id} is assigned to the fulfillment service "
                    f"{location.name}; only that service can fulfill it.",
                    *at,
                    "fulfillmentOrderId",
                )
            if fo.status not in _OPEN_FO:
                return refuse(
                    f"Fulfillment order {fo.id} has an unfulfillable status= {fo.status.lower()}.",
                    *at,
                    "fulfillmentOrderId",
                )
            wanted = group.get("fulfillmentOrderLineItems")
            picks: list[tuple[FoLine, int]] = []
            if wanted is None:
                picks = [(ln, ln.remaining) for ln in fo.lines if ln.remaining > 0]
            else:
                by_id = {ln.id: ln for ln in fo.lines}
                for item_index, item in enumerate(wanted):
                    fo_line = by_id.get(_parse_gid(item["id"], "FulfillmentOrderLineItem") or -1)
                    if fo_line is None:
                        return refuse(
                            "Fulfillment order line item does not exist.",
                            *at,
                            "fulfillmentOrderLineItems",
                            str(item_index),
                            "id",
                        )
                    if not 0 < item["quantity"] <= fo_line.remaining:
                        return refuse(
                            "Invalid fulfillment order line item quantity requested.",
                            *at,
                            "fulfillmentOrderLineItems",
                            str(item_index),
                            "quantity",
                        )
                    picks.append((fo_line, item["quantity"]))
            if not picks:
                return refuse(f"Fulfillment order {fo.id} has nothing left to fulfill.", *at)
            plan.append((fo, picks))
        orders = {fo.order_id for fo, _ in plan}
        locations = {fo.location_id for fo, _ in plan}
        if len(orders) > 1 or len(locations) > 1:
            return refuse(
                "All fulfillment orders must belong to the same order and be "
                "assigned to the same location.",
                "lineItemsByFulfillmentOrder",
            )
        tracking = data.get("trackingInfo") or {}
        order = t.orders[plan[0][0].order_id]
        numbers = (
            [tracking.get("number")]
            if tracking.get("number")
            else (tracking.get("numbers") or [""])
        )
        urls = [tracking.get("url")] if tracking.get("url") else (tracking.get("urls") or [""])
        # Several fulfillment orders of one location become one fulfillment.
        merged: list[tuple[FoLine, int]] = []
        for fo, picks in plan:
            for fo_line, units in picks:
                fo_line.remaining -= units
            fo.status = "CLOSED" if all(ln.remaining == 0 for ln in fo.lines) else "IN_PROGRESS"
            merged.extend(picks)
        result = Fulfillment(
            id=next(t.ids.fulfillment),
            order_id=order.id,
            location_id=plan[0][0].location_id,
            created_at=self.clock.now(),
            company=tracking.get("company") or "",
            number=numbers[0] or "",
            url=urls[0] or "",
            lines=[(fo_line.line_id, units) for fo_line, units in merged],
        )
        order.fulfillments.append(result)
        self._fulfilled_webhooks(order)
        return {"fulfillment": self._fulfillment_view(order, result), "userErrors": []}

    def _idempotent(
        self,
        info: GraphQLResolveInfo,
        arguments: dict[str, Any],
        run: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """Run a mutation once per @idempotent key; a repeat with the same arguments replays."""
        key = _directive_key(self.schema, info)
        field_name = info.field_name
        if key is None:
            if field_name == "inventorySetQuantities" and info.context.version >= "2026-04":
                raise GraphQLError(
                    "The @idempotent directive is required for this mutation.",
                    extensions={"code": "BAD_REQUEST"},
                )
            return run()
        fingerprint = json.dumps(arguments, sort_keys=True, default=str)
        stored = self.records.replays.get((field_name, key))
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise GraphQLError(
                    "This idempotency key was already used with different arguments.",
                    extensions={"code": "BAD_REQUEST"},
                )
            return stored.payload
        payload = run()
        self.records.replays[(field_name, key)] = _Replay(fingerprint, payload)
        return payload

    # -- control handlers -------------------------------------------------------------------------

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
            locations = item.get("locations")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                raise JsonError(400, "invalid_body", "quantity must be a non-negative integer")
            if tracked is not None and not isinstance(tracked, bool):
                raise JsonError(400, "invalid_body", "tracked must be true or false")
            if locations is not None and not (
                isinstance(locations, list) and all(isinstance(n, str) for n in locations)
            ):
                raise JsonError(400, "invalid_body", "locations must be a list of names")
            price = item.get("price")
            variant = self.upsert_listing(
                item["sku"],
                quantity,
                tracked=tracked,
                title=item.get("title") if isinstance(item.get("title"), str) else None,
                price=Decimal(str(price)) if isinstance(price, int | float | str) else None,
                locations=locations,
            )
            out.append(
                {
                    "sku": variant.sku,
                    "id": str(variant.id),
                    "inventory_item_id": str(variant.item_id),
                    "tracked": variant.tracked,
                }
            )
        return json_response({"listings": out})

    async def _control_locations(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise JsonError(400, "invalid_body", 'expected {"name", "active", "third_party"}')
        active, third_party = body.get("active", True), body.get("third_party", False)
        if not isinstance(active, bool) or not isinstance(third_party, bool):
            raise JsonError(400, "invalid_body", "active and third_party must be booleans")
        location = self.add_location(body["name"], active=active, third_party=third_party)
        return json_response({"id": str(location.id), "name": location.name}, status=201)

    async def _control_place_order(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        lines = read_order_lines(body)
        status = body.get("status", "open")
        if status not in ("open", "pending"):
            raise JsonError(400, "invalid_body", "status must be open or pending")
        customer = body.get("customer", "buyer@example.com")
        if not isinstance(customer, str):
            raise JsonError(400, "invalid_body", "customer must be a string")
        order = self.place_order(lines, paid=status == "open", customer=customer)
        return json_response(self.order_summary(order), status=201)

    async def _control_cancel(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        restock = body.get("restock", True) if isinstance(body, dict) else None
        if not isinstance(restock, bool):
            raise JsonError(400, "invalid_body", 'expected {"restock": true|false}')
        order = self.cancel_order(request.match_info["id"], restock=restock)
        return json_response(self.order_summary(order))

    async def _control_refund(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict) or not isinstance(body.get("restock", False), bool):
            raise JsonError(400, "invalid_body", 'expected {"restock": true|false, "lines"?}')
        lines = _line_units(body.get("lines"))
        order_id = request.match_info["id"]
        self.refund_order(order_id, restock=body.get("restock", False), lines=lines)
        return json_response(self.order_summary(self._order(order_id)))

    async def _control_pay(self, request: web.Request) -> web.Response:
        return json_response(self.order_summary(self.pay_order(request.match_info["id"])))

    async def _control_fulfill(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict):
            raise JsonError(400, "invalid_body", "expected a JSON object")
        texts = {}
        for name in ("company", "tracking_number", "url"):
            value = body.get(name, "")
            if not isinstance(value, str):
                raise JsonError(400, "invalid_body", f"{name} must be a string")
            texts[name] = value
        order_id = request.match_info["id"]
        self.fulfil_order(
            order_id,
            lines=_line_units(body.get("lines")),
            company=texts["company"] or "UPS",
            number=texts["tracking_number"],
            url=texts["url"],
        )
        return json_response(self.order_summary(self._order(order_id)))

    async def _control_hold(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        if not isinstance(body, dict) or set(body) - {"status", "location"}:
            raise JsonError(400, "invalid_body", "keys: status, location")
        status, location = body.get("status"), body.get("location")
        if not (status is None or isinstance(status, str)) or not (
            location is None or isinstance(location, str)
        ):
            raise JsonError(400, "invalid_body", "status and location must be strings")
        changed = self.set_fulfillment_orders(
            request.match_info["id"], status=status, location=location
        )
        return json_response(
            {
                "fulfillment_orders": [
                    {"id": str(fo.id), "status": fo.status, "location_id": str(fo.location_id)}
                    for fo in changed
                ]
            }
        )

    async def _control_expire_tokens(self, request: web.Request) -> web.Response:
        expired = len(self.records.tokens)
        self.records.tokens.clear()
        return json_response({"expired": expired})

    async def _control_config(self, request: web.Request) -> web.Response:
        body = await read_json(request) or {}
        allowed = {
            "api_key",
            "client_id",
            "client_secret",
            "capacity",
            "restore_rate",
            "token_ttl_s",
            "topics",
            "api_version",
        }
        if not isinstance(body, dict) or set(body) - allowed:
            raise JsonError(400, "invalid_body", f"keys: {', '.join(sorted(allowed))}")
        for name in ("api_key", "client_id", "client_secret", "api_version"):
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise JsonError(400, "invalid_body", f"{name} must be a non-empty string")
        for name in ("capacity", "restore_rate", "token_ttl_s"):
            value = body.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise JsonError(400, "invalid_body", f"{name} must be a positive number")
        topics = body.get("topics")
        if topics is not None and not (
            isinstance(topics, list) and all(isinstance(x, str) for x in topics)
        ):
            raise JsonError(400, "invalid_body", "topics must be a list of topic names")
        try:
            self.configure(**body)
        except ValueError as exc:
            raise JsonError(400, "invalid_body", str(exc)) from exc
        return json_response(
            {
                "rate_limit": self.limit.snapshot(),
                "topics": sorted(self.topics),
                "api_version": self.api_version,
            }
        )


# -- GraphQL machinery ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    version: str


def _resolve(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Views are dicts; callables in them take (info, **arguments)."""
    value = source.get(info.field_name) if isinstance(source, dict) else None
    return value(info, **args) if callable(value) else value


def _connection(
    items: Sequence[Any],
    args: Mapping[str, Any],
    key: Callable[[Any], tuple[Any, ...]],
    view: Callable[[Any], Any],
) -> dict[str, Any]:
    """A Relay connection over `items` with cursors that encode each item's sort key."""
    ordered = sorted(items, key=key, reverse=bool(args.get("reverse")))
    after, before = args.get("after"), args.get("before")
    if after is not None:
        mark = _decode_cursor(after)
        ordered = [i for i in ordered if (key(i) < mark if args.get("reverse") else key(i) > mark)]
    if before is not None:
        mark = _decode_cursor(before)
        ordered = [i for i in ordered if (key(i) > mark if args.get("reverse") else key(i) < mark)]
    has_next = has_previous = False
    first, last = args.get("first"), args.get("last")
    if first is not None:
        has_next = len(ordered) > first
        ordered = ordered[:first]
    if last is not None:
        has_previous = len(ordered) > last
        ordered = ordered[-last:] if last else []
    edges = [{"cursor": _encode_cursor(key(i)), "node": view(i)} for i in ordered]
    return {
        "edges": edges,
        "nodes": [edge["node"] for edge in edges],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous or after is not None,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _encode_cursor(key: tuple[Any, ...]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[Any, ...]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(data, list):
            raise ValueError("not a list")
        return tuple(data)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {token}") from None


def _parse_gid(value: Any, kind: str) -> int | None:
    """The numeric id of a gid of `kind`; None for another kind; an error for a malformed one."""
    if not isinstance(value, str):
        return None
    match = _GID.fullmatch(value)
    if match is None:
        raise GraphQLError(f"Invalid global id '{value}'")
    return int(match.group(2)) if match.group(1) == kind else None


def _directive_key(schema: GraphQLSchema, info: GraphQLResolveInfo) -> str | None:
    directive = schema.get_directive("idempotent")
    for node in info.field_nodes:
        for used in node.directives or ():
            if used.name.value == "idempotent" and directive is not None:
                values = get_argument_values(directive, used, info.variable_values)
                key = values.get("key")
                return key if isinstance(key, str) and key else None
    return None


class _Coster:
    """Shopify's requested query cost: objects 1, scalars 0, connections `first` x node,
    list fields their size, each mutation field 10."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Any) -> None:
        self._schema = schema
        self._variables = variables
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def operation(self, operation: OperationDefinitionNode) -> int:
        """The requested cost of one operation."""
        if operation.operation == OperationType.MUTATION:
            mutation = self._schema.mutation_type
            assert mutation is not None
            return MUTATION_COST * len(self._fields(mutation, operation.selection_set))
        query = self._schema.query_type
        assert query is not None
        return self._selection(query, operation.selection_set)

    def _fields(self, parent: Any, selection_set: SelectionSetNode) -> list[tuple[Any, FieldNode]]:
        """The fields selected on `parent`, fragments flattened, with the type each runs on."""
        out: list[tuple[Any, FieldNode]] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append((parent, selection))
            elif isinstance(selection, InlineFragmentNode):
                on = (
                    self._schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                out.extend(self._fields(on, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self._fragments[selection.name.value]
                on = self._schema.get_type(fragment.type_condition.name.value)
                out.extend(self._fields(on, fragment.selection_set))
        return out

    def _selection(self, parent: Any, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        return sum(self._field(on, node) for on, node in self._fields(parent, selection_set))

    def _field(self, parent: Any, node: FieldNode) -> int:
        name = node.name.value
        if name.startswith("__") or not (is_object_type(parent) or is_interface_type(parent)):
            return 0
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        if not is_composite_type(named):
            return 0
        args = get_argument_values(definition, node, self._variables)
        if named.name.endswith("Connection"):
            size = args.get("first") if args.get("first") is not None else args.get("last")
            if size is None:
                raise GraphQLError(
                    f"you must provide one of first or last (field '{name}')", [node]
                )
            if size > MAX_PAGE:
                raise GraphQLError(
                    f"The argument first or last on field '{name}' cannot exceed {MAX_PAGE}.",
                    [node],
                )
            return self._connection(named, node.selection_set, size)
        child = self._selection(named, node.selection_set)
        if is_list_type(get_nullable_type(definition.type)):
            size = args.get("first")
            if size is None:
                sized = args.get("ids") or args.get("names")
                size = len(sized) if isinstance(sized, list) else 1
            return size * (1 + child)
        return 1 + child

    def _connection(
        self, connection: Any, selection_set: SelectionSetNode | None, size: int
    ) -> int:
        if selection_set is None:
            return 0
        per_node = 0
        extra = 0
        for on, node in self._fields(connection, selection_set):
            name = node.name.value
            field_type = get_named_type(on.fields[name].type) if name in on.fields else None
            if name == "nodes" and field_type is not None:
                per_node += 1 + self._selection(field_type, node.selection_set)
            elif name == "edges" and field_type is not None and node.selection_set is not None:
                for edge_on, edge_field in self._fields(field_type, node.selection_set):
                    if edge_field.name.value == "node":
                        node_type = get_named_type(edge_on.fields["node"].type)
                        per_node += 1 + self._selection(node_type, edge_field.selection_set)
            elif name == "pageInfo":
                extra += 1
        return size * per_node + extra


def _objects_in(data: Any) -> int:
    """The actual cost of a query's result: one point per object returned (the root excluded)."""

    def count(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + sum(count(v) for v in value.values())
        if isinstance(value, list):
            return sum(count(v) for v in value)
        return 0

    return count(data) - 1 if isinstance(data, dict) else 0


def _error_json(error: GraphQLError, code: str) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    extensions = dict(error.extensions or {})
    extensions.setdefault("code", code)
    out["extensions"] = extensions
    return out


def _execution_error(error: GraphQLError) -> dict[str, Any]:
    """A resolver's error; a crash inside the sandbox reads as Shopify's internal error."""
    original = error.original_error
    crashed = original is not None and not isinstance(original, GraphQLError)
    return _error_json(error, "INTERNAL_SERVER_ERROR" if crashed else "BAD_REQUEST")


_UNKNOWN_FIELD = re.compile(r"Cannot query field '(\w+)' on type '(\w+)'")
_UNKNOWN_ARGUMENT = re.compile(r"Unknown argument '(\w+)' on field '(\w+)\.(\w+)'")


def _validation_error(error: GraphQLError) -> dict[str, Any]:
    """A validation failure worded the way Shopify (graphql-ruby) words it."""
    out = _error_json(error, "validationError")
    if match := _UNKNOWN_FIELD.search(error.message):
        field_name, type_name = match.groups()
        out["message"] = f"Field '{field_name}' doesn't exist on type '{type_name}'"
        out["extensions"] = {
            "code": "undefinedField",
            "typeName": type_name,
            "fieldName": field_name,
        }
    elif match := _UNKNOWN_ARGUMENT.search(error.message):
        argument, type_name, field_name = match.groups()
        out["message"] = f"Field '{field_name}' doesn't accept argument '{argument}'"
        out["extensions"] = {
            "code": "argumentNotAccepted",
            "name": field_name,
            "typeName": "Field",
            "argumentName": argument,
        }
    elif "is required, but it was not provided" in error.message:
        out["extensions"]["code"] = "missingRequiredArguments"
    return out


def _variable_error(operation: OperationDefinitionNode, error: GraphQLError) -> dict[str, Any]:
    """A variable that does not fit its type, in Shopify's wording."""
    match = re.search(r"Variable '\$(\w+)'", error.message)
    name = match.group(1) if match else "?"
    type_text = "?"
    for definition in operation.variable_definitions or ():
        if definition.variable.name.value == name:
            type_text = _type_text(definition.type)
    return {
        "message": f"Variable ${name} of type {type_text} was provided invalid value",
        "locations": [{"line": loc.line, "column": loc.column} for loc in error.locations or ()],
        "extensions": {
            "code": "INVALID_VARIABLE",
            "problems": [{"path": [], "explanation": error.message}],
        },
    }


def _type_text(node: Any) -> str:
    kind = type(node).__name__
    if kind == "NonNullTypeNode":
        return _type_text(node.type) + "!"
    if kind == "ListTypeNode":
        return f"[{_type_text(node.type)}]"
    return str(node.name.value)


# -- small helpers -------------------------------------------------------------------------------


async def read_json_or_none(request: web.Request) -> Any:
    """The body as JSON, or None when it is not JSON (GraphQL answers that with its own 400)."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _time_filters(query: Any) -> list[tuple[str, str, datetime]]:
    """`updated_at:>='…'` style terms of Shopify's search syntax (others are ignored, as
    Shopify ignores terms it cannot use)."""
    if not isinstance(query, str):
        return []
    terms = []
    for name, op, text in _SEARCH_TIME.findall(query):
        try:
            moment = datetime.fromisoformat(text.rstrip("'\""))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        terms.append((name, op or ">=", moment.astimezone(UTC)))
    return terms


def _compare(value: datetime, op: str, moment: datetime) -> bool:
    return {
        ">=": value >= moment,
        ">": value > moment,
        "<=": value <= moment,
        "<": value < moment,
    }[op]


def _rest_time(moment: datetime) -> str:
    """REST timestamps carry an offset, not `Z` (Shopify prints the shop's zone)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _title_for(sku: str) -> str:
    return sku.replace("-", " ").replace("_", " ").capitalize()


def _handle(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _checked_topics(topics: Sequence[str]) -> frozenset[str]:
    unknown = set(topics) - KNOWN_TOPICS
    if unknown:
        raise ValueError(f"unknown webhook topics: {sorted(unknown)}")
    return frozenset(topics)


def _line_units(value: Any) -> dict[int, int] | None:
    """{"lines": [{"line_id", "quantity"}]} from a control body, as line id -> units."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise JsonError(400, "invalid_body", "lines must be a list")
    units: dict[int, int] = {}
    for item in value:
        line_id = item.get("line_id") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if (
            not isinstance(line_id, str | int)
            or isinstance(quantity, bool)
            or not isinstance(quantity, int)
        ):
            raise JsonError(400, "invalid_body", "each line needs line_id and quantity")
        try:
            key = int(line_id)
        except ValueError:
            raise JsonError(400, "invalid_body", f"not a line id: {line_id!r}") from None
        units[key] = units.get(key, 0) + quantity
    return units

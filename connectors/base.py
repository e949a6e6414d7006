"""The connector contract: normalized types, the error taxonomy, and the `Connector` protocol.

A connector turns a channel's order (Shopify GraphQL, a WooCommerce REST body, an SP-API order)
into a `ChannelOrder`, pushes stock and shipments, and verifies and parses webhooks. It knows its
channel's API and nothing else: no SQLite, no scheduler, no other channel. The loops that call it
(polling, retries across time, cursors, logging, metrics) live in `agent/sync/`.

Errors carry what to do about them::

    ConnectorError
     +-- RetryableError          try again later (timeouts, resets, 5xx, garbage bodies)
     |    +-- RateLimited        try again after `retry_after` seconds (429, THROTTLED)
     +-- AuthError               credentials refused: pause the channel, keep its outbox
     +-- PermanentError          this request will never succeed: dead-letter that item
     +-- ConflictError           a compare-and-set was stale: re-read, recompute, push again
     +-- WebhookRejected         a delivery failed verification: answer 401, store nothing
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class OrderStatus(enum.StrEnum):
    """An order's state as storesync understands it, whatever the channel calls it."""

    PENDING = "pending"  # placed, not paid yet (reserves stock when [stock].unpaid_reserves)
    OPEN = "open"  # paid or otherwise due to ship
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of a channel order, with quantities as the channel reports them.

    `cancelled` counts units removed before they shipped (order edits, cancellations, refunds
    of unshipped units). `returned` counts shipped units refunded with restock. The engine
    decides what these mean for stock, under the merchant's rules.
    """

    line_id: str
    sku: str | None
    quantity: int
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0
    title: str = ""


@dataclass(frozen=True, slots=True)
class ChannelOrder:
    """An order as one channel reports it at one moment (`updated_at` is its version)."""

    channel: str
    external_id: str
    updated_at: datetime
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    created_at: datetime | None = None
    name: str = ""
    currency: str = ""
    total: str = ""
    customer: str = ""
    # Fulfilled by the channel itself (Amazon FBA): recorded, never touches the merchant's stock.
    fulfilled_by_channel: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


# -- errors -------------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Something went wrong talking to a channel; the subclass says what to do."""

    #: The HTTP status that caused it, when one did (set by connectors.http.raise_for_status).
    status: int | None = None


class RetryableError(ConnectorError):
    """A transient failure: the same request may succeed later."""


class RateLimited(RetryableError):
    """The channel asked us to slow down; wait `retry_after` seconds before the next call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(float(retry_after), 0.0)


class AuthError(ConnectorError):
    """The channel refused our credentials (401/403): a person must fix them."""


class PermanentError(ConnectorError):
    """The channel will never accept this request as it is (400, 404, 422, a bad SKU)."""


class ConflictError(ConnectorError):
    """A compare-and-set found the channel's value changed since we last read it."""

    def __init__(self, message: str, observed: int | None = None) -> None:
        super().__init__(message)
        self.observed = observed


class WebhookRejected(ConnectorError):
    """A webhook delivery failed verification (signature, shape); nothing may be stored."""


# -- what a connector can do ---------------------------------------------------------------------


class RateModel(enum.StrEnum):
    """How a channel limits calls."""

    NONE = "none"
    TOKEN_BUCKET = "token_bucket"  # requests per second with a burst (Amazon, WooCommerce hosts)
    COST_BUCKET = "cost_bucket"  # a leaky bucket of query cost points (Shopify GraphQL)
    DAILY_QUOTA = "daily_quota"  # calls per day per API (eBay)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the runtime may expect of a connector."""

    webhooks: bool
    compare_and_set: bool
    max_batch: int
    rate_model: RateModel = RateModel.NONE


# -- what flows through it ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of orders and the cursor to resume from after it.

    Commit `cursor` in the same transaction as the page's orders. `done` says the run reached the
    end; the cursor of the last page then starts the next poll (the connector re-reads its
    look-back window from there, so nothing updated meanwhile is missed).
    """

    orders: tuple[ChannelOrder, ...]
    cursor: str
    done: bool
    # With `done`: every update before this moment has been read. None: every update before
    # the poll began. A poll that reads behind the clock (Amazon's settle) says how far.
    read_through: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListingRef:
    """A SKU as one channel lists it, with the channel's own ids for pushing to it."""

    sku: str  # the channel's SKU text
    ids: Mapping[str, str] = field(default_factory=dict)
    # 'listed', or why it cannot take stock pushes: 'untracked', 'not_stocked', 'inactive'
    status: str = "listed"
    level: int | None = None  # the channel's current quantity, when listing it reveals it

    @property
    def pushable(self) -> bool:
        """Whether stock pushes may be sent for this listing."""
        return self.status == "listed"


@dataclass(frozen=True, slots=True)
class StockPush:
    """Set one listing's sellable quantity, if the channel still shows `expected` (when CAS)."""

    listing: ListingRef
    quantity: int
    expected: int | None
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    """Units of one order line in a shipment."""

    line_id: str
    sku: str | None
    qty: int


@dataclass(frozen=True, slots=True)
class ShipmentPush:
    """A shipment to report to the order's channel, with carrier and tracking."""

    order_id: str
    shipment_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    lines: tuple[ShipmentLine, ...]
    idempotency_key: str
    shipped_at: datetime | None = None


class PushOutcome(enum.StrEnum):
    """What happened to one pushed item."""

    DONE = "done"  # the channel accepted it
    RETRY = "retry"  # try again later (transient)
    CONFLICT = "conflict"  # compare-and-set was stale: re-read and recompute
    PERMANENT = "permanent"  # never going to work as it is: dead-letter it
    # The channel takes no more of this item for now (eBay's daily revision cap): not a
    # failure, so no attempt is counted; try again after `retry_after` seconds.
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class PushResult:
    """One item's result: the key it was pushed under, the outcome, and why."""

    key: str
    outcome: PushOutcome
    message: str = ""
    retry_after: float | None = None
    observed: int | None = None  # the channel's current value, when it told us


class EventKind(enum.StrEnum):
    """What a webhook delivery carries."""

    ORDER = "order"  # a complete order: apply it
    ORDER_REF = "order_ref"  # a thin notice: fetch the order by id, then apply it
    LEVEL = "level"  # a stock level the channel shows now
    IGNORE = "ignore"  # a ping, or a topic storesync has no use for


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A verified delivery: the key it is deduplicated on, and its topic."""

    delivery_key: str
    topic: str
    triggered_at: datetime | None = None
    # A channel's unsigned liveness check (WooCommerce's activation ping): 200, store nothing.
    ping: bool = False


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """A parsed delivery."""

    kind: EventKind
    order: ChannelOrder | None = None
    order_id: str | None = None
    sku: str | None = None
    level: int | None = None


# -- the protocol ---------------------------------------------------------------------------------


@runtime_checkable
class Connector(Protocol):
    """One channel account. Every method may raise the errors above, and only those."""

    name: str
    capabilities: Capabilities

    def fetch_orders(
        self, cursor: str | None, *, since: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        """Yield pages of orders updated since `cursor` (None: the configured first window).

        With `since`, ignore the cursor and read every order updated from that moment (the
        reconcile sweep's look-back; its pages' cursors are not committed).
        """
        ...

    async def fetch_order(self, order_id: str) -> ChannelOrder | None:
        """One order by the channel's id, or None when it does not exist."""
        ...

    async def fetch_listings(self) -> list[ListingRef]:
        """Every listing of the account, with the ids pushes need."""
        ...

    async def fetch_levels(self, listings: Sequence[ListingRef]) -> dict[str, int]:
        """The quantity the channel shows now for each listing, by channel SKU."""
        ...

    async def push_stock(self, batch: Sequence[StockPush]) -> list[PushResult]:
        """Push up to `capabilities.max_batch` quantities; one result per item, keyed by SKU.

        When the whole call fails before anything landed, raise the error; when part landed,
        return DONE for those items and RETRY (or PERMANENT) results for the rest.
        """
        ...

    async def push_shipment(self, shipment: ShipmentPush) -> PushResult:
        """Report one shipment to the channel."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookDelivery:
        """Check a delivery's signature on the raw bytes; raise WebhookRejected if it fails."""
        ...

    def parse_event(
        self, topic: str, headers: Mapping[str, str], raw_body: bytes
    ) -> ChannelEvent:
        """Turn a verified delivery into an event; PermanentError for a body it cannot read."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP client."""
        ...

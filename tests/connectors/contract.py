"""The contract every connector must meet, run against its sandbox over real sockets.

In the spirit of the Singer SDK's built-in tap tests and Airbyte's standard tests: one suite,
written once, that any (connector, sandbox) pair must pass. A channel plugs in by subclassing
`ConnectorContract` with a `contract` fixture that yields a `ContractAdapter`: the few things
only the channel knows (how to build its connector, seed orders and listings, read the fake's
effective-change counter, start a 429 storm, and capture real webhook deliveries)::

    class TestShopifyContract(ConnectorContract):
        @pytest.fixture
        async def contract(self) -> AsyncIterator[ContractAdapter]:
            ...  # serve the Shopify sandbox on 127.0.0.1:0, yield an adapter, clean up

The suite checks what the runtime relies on: pagination reaches the end; a committed cursor
resumes on a new connector instance with no gap and no duplicate; a stock push replayed after a
crash changes nothing twice; bad credentials raise AuthError; a 429 raises RateLimited with the
server's Retry-After; a tampered delivery is rejected; a replayed delivery keeps its key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
from aiohttp import web

from connectors.base import (
    AuthError,
    Connector,
    EventKind,
    ListingRef,
    OrderPage,
    PushOutcome,
    RateLimited,
    StockPush,
    WebhookRejected,
)
from connectors.http import RetryPolicy
from connectors.sandbox import Served, serve


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook POST as the receiving endpoint saw it."""

    headers: dict[str, str]
    body: bytes


class ContractAdapter(Protocol):
    """What the contract suite needs from one channel's sandbox."""

    # Orders per API page the adapter's connectors request; the suite seeds more than two pages.
    page_size: int
    # The header carrying the webhook signature, which the suite tampers with.
    signature_header: str
    # An order id the channel has never issued.
    missing_order_id: str

    def connector(
        self, *, bad_credentials: bool = False, policy: RetryPolicy | None = None
    ) -> Connector:
        """A new connector instance for the sandbox's account (or with credentials it refuses)."""
        ...

    async def seed_listings(self, levels: Mapping[str, int]) -> None:
        """Create or update listings with these quantities."""
        ...

    async def seed_orders(self, count: int) -> list[str]:
        """Place `count` orders as a shopper would; their channel ids."""
        ...

    async def effective_changes(self) -> int:
        """How many stock writes changed a value, by the sandbox's own count."""
        ...

    async def start_rate_limit_storm(self, retry_after_s: int) -> None:
        """Make every API call answer the channel's rate-limit error with this Retry-After."""
        ...

    async def capture_deliveries(self, copies: int) -> list[Delivery]:
        """Trigger one order event and return it as delivered `copies` times (duplicates)."""
        ...


class WebhookReceiver:
    """A loopback endpoint that records every webhook POST and answers 200 (or `statuses`)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.statuses: list[int] = []  # answers for the next POSTs, before 200s resume
        self._served: Served | None = None

    @property
    def url(self) -> str:
        """Where to point the sandbox's webhooks."""
        assert self._served is not None, "start() first"
        return f"{self._served.url}/hook"

    async def start(self) -> WebhookReceiver:
        """Listen on 127.0.0.1 and a free port."""
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._served = await serve(app)
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._served is not None:
            await self._served.close()

    def take(self) -> list[Delivery]:
        """The deliveries received so far, forgetting them."""
        taken, self.deliveries = self.deliveries, []
        return taken

    async def _receive(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200, text="ok")


@asynccontextmanager
async def opened(connector: Connector) -> AsyncIterator[Connector]:
    """Use a connector and always close it."""
    try:
        yield connector
    finally:
        await connector.aclose()


async def read_all(connector: Connector, cursor: str | None) -> list[OrderPage]:
    """Every page of one poll, to the end."""
    return [page async for page in connector.fetch_orders(cursor)]


async def read_first(connector: Connector, cursor: str | None) -> OrderPage:
    """The first page of a poll, closing the poll there (a crash after committing it)."""
    pages = connector.fetch_orders(cursor)
    try:
        return await anext(pages)
    finally:
        close = getattr(pages, "aclose", None)
        if close is not None:
            await close()


class SandboxControlAdapter:
    """The ContractAdapter parts every sandbox built on connectors/sandbox shares.

    A channel's adapter subclasses it and adds `connector()` (and `keeps()` when the sandbox
    sends deliveries the contract does not look at).
    """

    #: A SKU the contract's orders buy; stocked once, generously.
    SKU = "CONTRACT-MUG"

    def __init__(self, sandbox_url: str, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.control = httpx.AsyncClient(base_url=f"{sandbox_url}/_control", timeout=10)
        self._stocked = False

    async def call(self, method: str, path: str, body: object = None) -> Any:
        """One control-API call, which must succeed."""
        response = await self.control.request(method, path, json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def seed_listings(self, levels: Mapping[str, int]) -> None:
        listings = [{"sku": sku, "quantity": qty} for sku, qty in levels.items()]
        await self.call("POST", "/listings", {"listings": listings})

    async def seed_orders(self, count: int) -> list[str]:
        if not self._stocked:
            await self.seed_listings({self.SKU: 10_000})
            self._stocked = True
        ids = []
        for _ in range(count):
            line = {"sku": self.SKU, "quantity": 1}
            order = await self.call("POST", "/orders", {"lines": [line]})
            ids.append(str(order["id"]))  # WooCommerce ids are numbers
        await self.call("POST", "/webhooks/flush")
        self.receiver.take()  # order webhooks are not what these tests look at
        return ids

    async def effective_changes(self) -> int:
        return int((await self.call("GET", "/state"))["effective_changes"])

    async def start_rate_limit_storm(self, retry_after_s: int) -> None:
        await self.call("PUT", "/faults", {"storm_s": 60, "storm_retry_after_s": retry_after_s})

    async def capture_deliveries(self, copies: int) -> list[Delivery]:
        await self.call(
            "PUT",
            "/faults",
            {"duplicate_rate": 1.0 if copies > 1 else 0.0, "duplicate_max": max(copies - 1, 0)},
        )
        await self.seed_orders(0)
        self.receiver.take()
        await self.call("POST", "/orders", {"lines": [{"sku": self.SKU, "quantity": 1}]})
        flushed = await self.call("POST", "/webhooks/flush", {"timeout_s": 10})
        assert flushed["idle"], flushed
        await self.call("PUT", "/faults", {"duplicate_rate": 0.0})
        return [d for d in self.receiver.take() if self.keeps(d)]

    def keeps(self, delivery: Delivery) -> bool:
        """Whether a captured delivery is one the contract looks at (all, by default)."""
        return True

    async def aclose(self) -> None:
        await self.control.aclose()


def ids_of(pages: list[OrderPage]) -> list[str]:
    """Order ids in the order the pages carried them."""
    return [order.external_id for page in pages for order in page.orders]


@dataclass
class _Tampered:
    headers: dict[str, str]
    body: bytes
    why: str = field(default="")


def _tamper_signature(value: str) -> str:
    """The same signature with one character changed (still well-formed where it can be)."""
    index = len(value) // 2
    swap = "A" if value[index] != "A" else "B"
    return value[:index] + swap + value[index + 1 :]


class ConnectorContract:
    """The suite; subclass it as `Test<Channel>Contract` and provide the `contract` fixture."""

    # -- shape ----------------------------------------------------------------------------------

    async def test_is_a_connector(self, contract: ContractAdapter) -> None:
        """It satisfies the Connector protocol and can push at least one item per call."""
        async with opened(contract.connector()) as connector:
            assert isinstance(connector, Connector)
            assert connector.capabilities.max_batch >= 1

    # -- orders ---------------------------------------------------------------------------------

    async def test_pagination_runs_to_the_end(self, contract: ContractAdapter) -> None:
        """A poll follows the channel's pages to the end; only the last page is done."""
        seeded = await contract.seed_orders(2 * contract.page_size + contract.page_size // 2 + 1)
        async with opened(contract.connector()) as connector:
            pages = await read_all(connector, None)
        assert len(pages) >= 3, "expected more than two pages"
        assert [page.done for page in pages] == [False] * (len(pages) - 1) + [True]
        seen = ids_of(pages)
        assert set(seeded) <= set(seen)
        assert len(seen) == len(set(seen)), "an order was returned twice in one quiet poll"

    async def test_cursor_resumes_on_a_new_instance_without_gaps_or_duplicates(
        self, contract: ContractAdapter
    ) -> None:
        """A committed page cursor resumes on a new instance: no order lost, none repeated."""
        seeded = await contract.seed_orders(2 * contract.page_size + 1)
        async with opened(contract.connector()) as first:
            page = await read_first(first, None)
        assert not page.done
        committed = page.cursor  # what the runtime stores with the page's orders
        async with opened(contract.connector()) as second:
            rest = await read_all(second, committed)
        before, after = ids_of([page]), ids_of(rest)
        assert not set(before) & set(after), "the resumed poll repeated a committed order"
        assert len(after) == len(set(after))
        assert set(before) | set(after) >= set(seeded), "the resumed poll skipped orders"
        assert rest[-1].done

    async def test_the_final_cursor_starts_the_next_poll(self, contract: ContractAdapter) -> None:
        """The last page's cursor starts the next poll, which sees orders placed since."""
        await contract.seed_orders(3)
        async with opened(contract.connector()) as connector:
            pages = await read_all(connector, None)
            later = await contract.seed_orders(2)
            next_poll = await read_all(connector, pages[-1].cursor)
        assert set(later) <= set(ids_of(next_poll)), "orders placed after a poll were missed"

    async def test_fetch_order_by_id(self, contract: ContractAdapter) -> None:
        """One order by id, and None for an id the channel never issued."""
        (order_id,) = await contract.seed_orders(1)
        async with opened(contract.connector()) as connector:
            order = await connector.fetch_order(order_id)
            missing = await connector.fetch_order(contract.missing_order_id)
        assert order is not None and order.external_id == order_id
        assert order.lines and all(line.quantity > 0 for line in order.lines)
        assert missing is None

    # -- stock ----------------------------------------------------------------------------------

    async def test_push_stock_is_idempotent(self, contract: ContractAdapter) -> None:
        """The same batch pushed twice (a crash before the ack) changes each level once."""
        levels = {"CONTRACT-A": 5, "CONTRACT-B": 7}
        await contract.seed_listings(levels)
        async with opened(contract.connector()) as connector:
            refs = _pick(await connector.fetch_listings(), levels)
            cas = connector.capabilities.compare_and_set
            batch = [
                StockPush(
                    ref,
                    quantity=levels[ref.sku] + 3,
                    expected=levels[ref.sku] if cas else None,
                    idempotency_key=f"contract:stock:{ref.sku}:1",
                )
                for ref in refs
            ]
            before = await contract.effective_changes()
            first = await connector.push_stock(batch)
        # The same batch again from a new instance: the outbox replaying after a crash.
        async with opened(contract.connector()) as connector:
            second = await connector.push_stock(batch)
            shown = await connector.fetch_levels(refs)
        assert {r.key: r.outcome for r in first} == {sku: PushOutcome.DONE for sku in levels}
        for result in second:
            replayed = result.outcome is PushOutcome.DONE or (
                result.outcome is PushOutcome.CONFLICT and result.observed == levels[result.key] + 3
            )
            assert replayed, result
        assert await contract.effective_changes() - before == len(levels)
        assert shown == {sku: qty + 3 for sku, qty in levels.items()}

    # -- errors ---------------------------------------------------------------------------------

    async def test_refused_credentials_raise_auth_error(self, contract: ContractAdapter) -> None:
        """Refused credentials raise AuthError, for reads and polls alike."""
        async with opened(contract.connector(bad_credentials=True)) as connector:
            with pytest.raises(AuthError):
                await connector.fetch_listings()
            with pytest.raises(AuthError):
                await read_all(connector, None)

    async def test_rate_limit_raises_rate_limited_with_the_servers_retry_after(
        self, contract: ContractAdapter
    ) -> None:
        """A 429 surfaces as RateLimited carrying the server's Retry-After."""
        await contract.start_rate_limit_storm(retry_after_s=7)
        async with opened(contract.connector(policy=RetryPolicy(attempts=1))) as connector:
            with pytest.raises(RateLimited) as caught:
                await connector.fetch_listings()
        assert caught.value.retry_after == pytest.approx(7)

    # -- webhooks -------------------------------------------------------------------------------

    async def test_tampered_deliveries_are_rejected(self, contract: ContractAdapter) -> None:
        """A real delivery verifies; every spoiled copy of it is rejected."""
        async with opened(contract.connector()) as connector:
            if not connector.capabilities.webhooks:
                pytest.skip("this channel has no HTTP webhooks")
            (delivery,) = await contract.capture_deliveries(1)
            verified = connector.verify_webhook(delivery.headers, delivery.body)
            assert verified.delivery_key
            for tampered in _tamperings(delivery, contract.signature_header):
                with pytest.raises(WebhookRejected):
                    connector.verify_webhook(tampered.headers, tampered.body)
                    pytest.fail(f"accepted a delivery with {tampered.why}")

    async def test_a_replayed_delivery_keeps_its_key(self, contract: ContractAdapter) -> None:
        """Copies of one delivery share its key (dedupe); another event gets another key."""
        async with opened(contract.connector()) as connector:
            if not connector.capabilities.webhooks:
                pytest.skip("this channel has no HTTP webhooks")
            copies = await contract.capture_deliveries(2)
            assert len(copies) == 2
            verified = [connector.verify_webhook(d.headers, d.body) for d in copies]
            events = [
                connector.parse_event(v.topic, d.headers, d.body)
                for v, d in zip(verified, copies, strict=True)
            ]
            (other,) = await contract.capture_deliveries(1)
            other_key = connector.verify_webhook(other.headers, other.body).delivery_key
        assert verified[0].delivery_key == verified[1].delivery_key
        assert other_key != verified[0].delivery_key, "two events shared a delivery key"
        assert events[0] == events[1]
        assert events[0].kind in (EventKind.ORDER, EventKind.ORDER_REF)


def _pick(listings: list[ListingRef], levels: Mapping[str, int]) -> list[ListingRef]:
    refs = [ref for ref in listings if ref.sku in levels]
    assert sorted(ref.sku for ref in refs) == sorted(levels), "seeded listings are missing"
    return refs


def _tamperings(delivery: Delivery, signature_header: str) -> list[_Tampered]:
    """The same delivery spoiled in each way an attacker or a broken proxy would."""
    headers = dict(delivery.headers)
    name = next(k for k in headers if k.lower() == signature_header.lower())
    body = delivery.body
    flipped = bytes([body[-1] ^ 0x01]) if body else b"x"
    without = {k: v for k, v in headers.items() if k != name}
    return [
        _Tampered(headers, body[:-1] + flipped, "one body byte changed"),
        _Tampered(headers, body + b" ", "a byte appended to the body"),
        _Tampered({**headers, name: _tamper_signature(headers[name])}, body, "a changed signature"),
        _Tampered(without, body, "no signature"),
        _Tampered({**headers, name: ""}, body, "an empty signature"),
        _Tampered({**headers, name: "%%not-a-signature%%"}, body, "a malformed signature"),
    ]

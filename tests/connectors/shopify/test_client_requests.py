"""The Shopify connector's exact requests (respx, strict): documents, variables, headers, tokens.

Each GraphQL document is written out here in full and compared byte for byte with what the
connector sends, so a change to a query is a deliberate change to this file too; each is also
validated against the sandbox's schema subset. respx runs with assert_all_called and
assert_all_mocked: an unexpected request, or an expected one never made, fails the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from graphql import parse, validate

from connectors.base import (
    AuthError,
    ListingRef,
    OrderStatus,
    PermanentError,
    PushOutcome,
    RateLimited,
    RetryableError,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)
from connectors.http import CostBucket, RetryPolicy
from connectors.shopify.connector import ShopifyConnector, batch_key
from connectors.shopify.schema import admin_schema

SHOP = "pin.myshopify.com"
API = f"https://{SHOP}/admin/api/2026-07"
GRAPHQL = f"{API}/graphql.json"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
TOKEN = "shpat_pinned"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ONCE = RetryPolicy(attempts=1)
LOCATION = "gid://shopify/Location/11"

LINE_FIELDS = """
fragment StoresyncLine on LineItem {
  id
  sku
  name
  quantity
  currentQuantity
  unfulfilledQuantity
}
"""

ORDER_FIELDS = """
fragment StoresyncOrder on Order {
  id
  name
  email
  createdAt
  updatedAt
  cancelledAt
  displayFinancialStatus
  displayFulfillmentStatus
  currencyCode
  totalPriceSet { shopMoney { amount } }
  lineItems(first: 20) {
    pageInfo { hasNextPage endCursor }
    nodes { ...StoresyncLine }
  }
  refunds(first: 10) { id }
}
""" + LINE_FIELDS

ORDERS_DOC = """
query StoresyncOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes { ...StoresyncOrder }
  }
}
""" + ORDER_FIELDS

ORDER_DOC = """
query StoresyncOrderById($id: ID!) {
  order(id: $id) { ...StoresyncOrder }
}
""" + ORDER_FIELDS

ORDER_LINES_DOC = """
query StoresyncOrderLines($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { ...StoresyncLine }
    }
  }
}
""" + LINE_FIELDS

REFUND_LINES_DOC = """
query StoresyncRefundLines($id: ID!, $after: String) {
  refund(id: $id) {
    refundLineItems(first: 50, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { quantity restockType lineItem { id } }
    }
  }
}
"""

LOCATIONS_DOC = """
query StoresyncLocations {
  locations(first: 50) {
    nodes { id name isActive }
  }
}
"""

VARIANTS_DOC = """
query StoresyncVariants($first: Int!, $after: String, $locationId: ID!) {
  productVariants(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      sku
      inventoryItem {
        id
        tracked
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
  }
}
"""

LEVELS_DOC = """
query StoresyncLevels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevel(locationId: $locationId) {
        quantities(names: ["available"]) { name quantity }
      }
    }
  }
}
"""

SET_QUANTITIES_DOC = """
mutation StoresyncSetQuantities($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

FULFILLMENT_ORDERS_DOC = """
query StoresyncFulfillmentOrders($id: ID!, $after: String) {
  order(id: $id) {
    id
    fulfillments(first: 10) { id location { id } trackingInfo(first: 3) { number } }
    fulfillmentOrders(first: 3, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id
        status
        assignedLocation { name location { id fulfillmentService { type } } }
        lineItems(first: 50) {
          pageInfo { hasNextPage }
          nodes { id remainingQuantity lineItem { id } }
        }
      }
    }
  }
}
"""

FULFILLMENT_CREATE_DOC = """
mutation StoresyncFulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}
"""

ALL_DOCUMENTS = [
    ORDERS_DOC,
    ORDER_DOC,
    ORDER_LINES_DOC,
    REFUND_LINES_DOC,
    LOCATIONS_DOC,
    VARIANTS_DOC,
    LEVELS_DOC,
    SET_QUANTITIES_DOC,
    FULFILLMENT_ORDERS_DOC,
    FULFILLMENT_CREATE_DOC,
]


# -- helpers -------------------------------------------------------------------------------------


@dataclass
class Clock:
    """A settable UTC clock for cursors and token expiry."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def cost(
    requested: float = 10, available: float = 990, actual: float | None = 5, maximum: float = 1000
) -> dict[str, Any]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": maximum,
            "currentlyAvailable": available,
            "restoreRate": 100.0,
        },
    }


def answer(data: dict[str, Any], **cost_args: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data, "extensions": {"cost": cost(**cost_args)}})


def failure(code: str, message: str, **cost_args: Any) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "errors": [{"message": message, "extensions": {"code": code}}],
            "extensions": {"cost": cost(**cost_args)},
        },
    )


@dataclass
class Script:
    """The GraphQL calls a test expects, in order: document, variables, token -> answer."""

    steps: list[tuple[str, dict[str, Any], httpx.Response | Exception]] = field(
        default_factory=list
    )
    token: str = TOKEN
    tokens_seen: list[str] = field(default_factory=list)

    def expect(
        self, document: str, variables: dict[str, Any], response: httpx.Response | Exception
    ) -> None:
        self.steps.append((document, variables, response))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert self.steps, f"unexpected GraphQL call: {body}"
        document, variables, response = self.steps.pop(0)
        assert body["query"] == document
        assert body["variables"] == variables
        assert set(body) == {"query", "variables"}
        self.tokens_seen.append(request.headers["X-Shopify-Access-Token"])
        assert request.headers["Content-Type"] == "application/json"
        if isinstance(response, Exception):
            raise response
        return response

    def done(self) -> None:
        assert not self.steps, f"expected calls never made: {[s[1] for s in self.steps]}"


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def script(api: respx.MockRouter) -> Iterator[Script]:
    steps = Script()
    api.post(GRAPHQL).mock(side_effect=steps)
    yield steps
    steps.done()


def make(**options: Any) -> ShopifyConnector:
    settings: dict[str, Any] = {
        "shop": SHOP,
        "api_url": None,
        "api_version": "2026-07",
        "access_token": TOKEN,
        "client_id": None,
        "client_secret": None,
        "webhook_secret": "whsec",
        "location": None,
        "first_poll_window": timedelta(days=1),
        "order_lookback": timedelta(minutes=5),
        "clock": Clock(),
        "policy": ONCE,
        "page_size": 2,
    }
    settings.update(options)
    return ShopifyConnector("shopify", **settings)


@pytest.fixture
async def connector() -> Any:
    conn = make()
    yield conn
    await conn.aclose()


def order_node(
    number: int = 1001,
    updated_at: str = "2026-03-01T10:00:00Z",
    *,
    lines: list[dict[str, Any]] | None = None,
    more_lines: str | None = None,
    refunds: list[str] = (),  # type: ignore[assignment]
    **changes: Any,
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": f"gid://shopify/Order/{number}",
        "name": f"#{number}",
        "email": "buyer@example.com",
        "createdAt": "2026-03-01T09:00:00Z",
        "updatedAt": updated_at,
        "cancelledAt": None,
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "UNFULFILLED",
        "currencyCode": "USD",
        "totalPriceSet": {"shopMoney": {"amount": "12.0"}},
        "lineItems": {
            "pageInfo": {"hasNextPage": more_lines is not None, "endCursor": more_lines},
            "nodes": lines if lines is not None else [line(number * 10, "MUG", 2)],
        },
        "refunds": [{"id": refund} for refund in refunds],
    }
    node.update(changes)
    return node


def line(
    line_id: int, sku: str | None, quantity: int, current: int | None = None,
    unfulfilled: int | None = None,
) -> dict[str, Any]:
    current = quantity if current is None else current
    return {
        "id": f"gid://shopify/LineItem/{line_id}",
        "sku": sku,
        "name": f"{sku} thing",
        "quantity": quantity,
        "currentQuantity": current,
        "unfulfilledQuantity": current if unfulfilled is None else unfulfilled,
    }


def listing(sku: str, item: int, *, status: str = "listed") -> ListingRef:
    return ListingRef(
        sku,
        {
            "variant_id": f"gid://shopify/ProductVariant/{item + 1000}",
            "inventory_item_id": f"gid://shopify/InventoryItem/{item}",
            "location_id": LOCATION,
        },
        status,
        5,
    )


# -- the documents themselves --------------------------------------------------------------------


@pytest.mark.parametrize("document", ALL_DOCUMENTS)
def test_every_pinned_document_is_valid_against_the_schema_subset(document: str) -> None:
    assert validate(admin_schema(), parse(document)) == []


# -- orders --------------------------------------------------------------------------------------


async def test_the_orders_query_its_variables_and_the_cursor_it_commits(
    script: Script, connector: ShopifyConnector
) -> None:
    search = "updated_at:>='2026-02-28T11:55:00Z'"  # now - first window - look-back, seconds
    script.expect(
        ORDERS_DOC,
        {"first": 2, "after": None, "query": search},
        answer({"orders": {
            "pageInfo": {"hasNextPage": True, "endCursor": "c1"},
            "nodes": [order_node(1001), order_node(1002)],
        }}, requested=149),
    )
    script.expect(
        ORDERS_DOC,
        {"first": 2, "after": "c1", "query": search},
        answer({"orders": {
            "pageInfo": {"hasNextPage": False, "endCursor": "c2"},
            "nodes": [order_node(1003, "2026-03-01T11:00:00.5Z")],
        }}),
    )
    pages = [page async for page in connector.fetch_orders(None)]
    assert [p.done for p in pages] == [False, True]
    assert json.loads(pages[0].cursor) == {"since": "2026-02-28T12:00:00.000000Z", "after": "c1"}
    assert json.loads(pages[1].cursor) == {"since": "2026-03-01T11:00:00.500000Z", "after": None}
    first = pages[0].orders[0]
    assert first.external_id == "1001"  # the numeric id REST webhooks carry too
    assert first.status is OrderStatus.OPEN
    assert first.total == "12.00" and first.currency == "USD" and first.name == "#1001"
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in first.lines] == [("10010", "MUG", 2)]
    assert script.tokens_seen == [TOKEN, TOKEN]


async def test_a_resumed_run_sends_the_same_search_with_the_cursor(
    script: Script, connector: ShopifyConnector
) -> None:
    # Shopify's cursors are only valid for the query they came from: rebuild it from `since`.
    script.expect(
        ORDERS_DOC,
        {"first": 2, "after": "tok", "query": "updated_at:>='2026-03-01T07:55:00Z'"},
        answer({"orders": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}}),
    )
    cursor = json.dumps({"since": "2026-03-01T08:00:00.000000Z", "after": "tok"})
    (page,) = [p async for p in connector.fetch_orders(cursor)]
    assert page.done and page.orders == ()
    assert json.loads(page.cursor) == {"since": "2026-03-01T08:00:00.000000Z", "after": None}


async def test_a_reconcile_sweep_reads_from_since_and_ignores_the_cursor(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        ORDERS_DOC,
        {"first": 2, "after": None, "query": "updated_at:>='2026-03-01T11:25:00Z'"},
        answer({"orders": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}}),
    )
    since = datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    cursor = json.dumps({"since": "2026-01-01T00:00:00.000000Z", "after": "tok"})
    pages = [p async for p in connector.fetch_orders(cursor, since=since)]
    assert [p.done for p in pages] == [True]


async def test_fetch_order_reads_every_line_and_every_refund_line(
    script: Script, connector: ShopifyConnector
) -> None:
    node = order_node(
        1001,
        # Shopify's unfulfilledQuantity is currentQuantity minus fulfilled units: 1 - 2.
        lines=[line(1, "MUG", 3, current=1, unfulfilled=-1)],
        more_lines="l1",
        refunds=["gid://shopify/Refund/7"],
        displayFinancialStatus="PARTIALLY_REFUNDED",
    )
    script.expect(ORDER_DOC, {"id": "gid://shopify/Order/1001"}, answer({"order": node}))
    script.expect(
        ORDER_LINES_DOC,
        {"id": "gid://shopify/Order/1001", "after": "l1"},
        answer({"order": {"lineItems": {
            "pageInfo": {"hasNextPage": False, "endCursor": "l2"},
            "nodes": [line(2, "CAP", 1)],
        }}}),
    )
    script.expect(
        REFUND_LINES_DOC,
        {"id": "gid://shopify/Refund/7", "after": None},
        answer({"refund": {"refundLineItems": {
            "pageInfo": {"hasNextPage": False, "endCursor": "r1"},
            "nodes": [
                {"quantity": 1, "restockType": "CANCEL",
                 "lineItem": {"id": "gid://shopify/LineItem/1"}},
                {"quantity": 1, "restockType": "RETURN",
                 "lineItem": {"id": "gid://shopify/LineItem/1"}},
            ],
        }}}),
    )
    order = await connector.fetch_order("1001")
    assert order is not None and order.status is OrderStatus.OPEN
    mug, cap = order.lines
    # 3 ordered: 1 cancelled before shipping, 2 shipped of which 1 came back with restock.
    assert (mug.quantity, mug.shipped, mug.cancelled, mug.returned) == (3, 2, 1, 1)
    assert (cap.line_id, cap.quantity, cap.shipped) == ("2", 1, 0)


async def test_fetch_order_for_a_missing_or_impossible_id_is_none(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(ORDER_DOC, {"id": "gid://shopify/Order/42"}, answer({"order": None}))
    assert await connector.fetch_order("42") is None
    assert await connector.fetch_order("not-an-id") is None  # no request at all


# -- listings and levels -------------------------------------------------------------------------


def locations_answer() -> httpx.Response:
    return answer({"locations": {"nodes": [
        {"id": "gid://shopify/Location/10", "name": "Shop location", "isActive": True},
        {"id": LOCATION, "name": "Warehouse", "isActive": True},
    ]}})


def variant(number: int, sku: str | None, *, tracked: bool = True, level: int | None = 4) -> dict:
    return {
        "id": f"gid://shopify/ProductVariant/{number}",
        "sku": sku,
        "inventoryItem": {
            "id": f"gid://shopify/InventoryItem/{number + 100}",
            "tracked": tracked,
            "inventoryLevel": None if level is None else {
                "quantities": [{"name": "available", "quantity": level}]
            },
        },
    }


async def test_locations_then_variants_pages_with_the_chosen_location(
    script: Script,
) -> None:
    connector = make(location="warehouse")  # by name, case aside
    script.expect(LOCATIONS_DOC, {}, locations_answer())
    script.expect(
        VARIANTS_DOC,
        {"first": 100, "after": None, "locationId": LOCATION},
        answer({"productVariants": {
            "pageInfo": {"hasNextPage": True, "endCursor": "v1"},
            "nodes": [
                variant(1, "MUG"),
                variant(2, None),  # no SKU: not synced
                variant(3, "GIFT", tracked=False, level=None),
            ],
        }}),
    )
    script.expect(
        VARIANTS_DOC,
        {"first": 100, "after": "v1", "locationId": LOCATION},
        answer({"productVariants": {
            "pageInfo": {"hasNextPage": False, "endCursor": "v2"},
            "nodes": [variant(4, "CAP", level=None), variant(5, "MUG", level=99)],
        }}),
    )
    try:
        refs = await connector.fetch_listings()
    finally:
        await connector.aclose()
    assert [(r.sku, r.status, r.level) for r in refs] == [
        ("MUG", "listed", 4),
        ("GIFT", "untracked", None),
        ("CAP", "not_stocked", None),
    ]  # the second MUG variant is skipped: SKUs key everything in storesync
    assert refs[0].ids == {
        "variant_id": "gid://shopify/ProductVariant/1",
        "inventory_item_id": "gid://shopify/InventoryItem/101",
        "location_id": LOCATION,
    }


async def test_an_unknown_location_is_a_permanent_error_naming_the_choices(
    script: Script,
) -> None:
    connector = make(location="Basement")
    script.expect(LOCATIONS_DOC, {}, locations_answer())
    try:
        with pytest.raises(PermanentError, match="'Shop location', 'Warehouse'"):
            await connector.fetch_listings()
    finally:
        await connector.aclose()


async def test_fetch_levels_reads_the_items_at_the_location(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(LOCATIONS_DOC, {}, locations_answer())
    script.expect(
        LEVELS_DOC,
        {"ids": ["gid://shopify/InventoryItem/1", "gid://shopify/InventoryItem/2"],
         "locationId": LOCATION},
        answer({"nodes": [
            {"id": "gid://shopify/InventoryItem/1",
             "inventoryLevel": {"quantities": [{"name": "available", "quantity": 7}]}},
            None,
        ]}),
    )
    levels = await connector.fetch_levels([listing("MUG", 1), listing("CAP", 2)])
    assert levels == {"MUG": 7}


# -- stock ---------------------------------------------------------------------------------------


DONE = answer({"inventorySetQuantities": {
    "inventoryAdjustmentGroup": {"id": "gid://shopify/InventoryAdjustmentGroup/2"},
    "userErrors": [],
}})


def set_quantities_variables(pushes: list[StockPush]) -> dict[str, Any]:
    key = batch_key(pushes)
    return {
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://storesync/Push/{key}",
            "quantities": [
                {
                    "inventoryItemId": p.listing.ids["inventory_item_id"],
                    "locationId": LOCATION,
                    "quantity": p.quantity,
                    "changeFromQuantity": p.expected,
                }
                for p in pushes
            ],
        },
        "idempotencyKey": key,
    }


async def test_push_stock_sends_one_idempotent_compare_and_set_mutation(
    script: Script, connector: ShopifyConnector
) -> None:
    pushes = [
        StockPush(listing("MUG", 1), 8, 5, "stock:MUG:1"),
        StockPush(listing("CAP", 2), 3, None, "stock:CAP:1"),  # no CAS: explicit null
    ]
    variables = set_quantities_variables(pushes)
    # The key is a UUID5 of the pushes' keys: the same batch always gets the same key.
    # Pinned: a change here would make every replay after an upgrade a new mutation.
    assert variables["idempotencyKey"] == "bd75fcc8-fcbe-50ec-9ec7-43ce6d012552"
    assert batch_key(pushes[:1]) != variables["idempotencyKey"]
    assert variables["input"]["quantities"][1]["changeFromQuantity"] is None
    script.expect(
        SET_QUANTITIES_DOC,
        variables,
        answer({"inventorySetQuantities": {
            "inventoryAdjustmentGroup": {"id": "gid://shopify/InventoryAdjustmentGroup/1"},
            "userErrors": [],
        }}),
    )
    results = await connector.push_stock(pushes)
    assert [(r.key, r.outcome) for r in results] == [
        ("MUG", PushOutcome.DONE), ("CAP", PushOutcome.DONE)
    ]


def test_the_idempotency_key_is_a_stable_uuid5() -> None:
    pushes = [StockPush(listing("MUG", 1), 8, 5, "stock:MUG:1")]
    key = batch_key(pushes)
    assert key == batch_key([StockPush(listing("MUG", 1), 8, 5, "stock:MUG:1")])
    assert key.count("-") == 4 and key[14] == "5"  # RFC 4122 version 5
    assert key != batch_key([StockPush(listing("MUG", 1), 8, 5, "stock:MUG:2")])


async def test_a_stale_item_is_a_conflict_and_only_that_item(
    script: Script, connector: ShopifyConnector
) -> None:
    pushes = [
        StockPush(listing("A", 1), 8, 5, "k:A"),
        StockPush(listing("B", 2), 8, 5, "k:B"),
        StockPush(listing("C", 3), 8, 5, "k:C"),
    ]
    script.expect(
        SET_QUANTITIES_DOC,
        set_quantities_variables(pushes),
        answer({"inventorySetQuantities": {
            "inventoryAdjustmentGroup": None,
            "userErrors": [{
                "code": "CHANGE_FROM_QUANTITY_STALE",
                "field": ["input", "quantities", "1", "changeFromQuantity"],
                "message": "The changeFromQuantity does not match.",
            }],
        }}),
    )
    # The message does not say what Shopify shows now: the connector re-reads that one item.
    script.expect(LOCATIONS_DOC, {}, locations_answer())
    script.expect(
        LEVELS_DOC,
        {"ids": ["gid://shopify/InventoryItem/2"], "locationId": LOCATION},
        answer({"nodes": [{"id": "gid://shopify/InventoryItem/2", "inventoryLevel": {
            "quantities": [{"name": "available", "quantity": 9}]}}]}),
    )
    # A and C were sent back only because B was refused: they go again at once, on their own.
    script.expect(SET_QUANTITIES_DOC, set_quantities_variables([pushes[0], pushes[2]]), DONE)
    results = await connector.push_stock(pushes)
    assert [(r.key, r.outcome, r.observed) for r in results] == [
        ("A", PushOutcome.DONE, None),
        ("B", PushOutcome.CONFLICT, 9),
        ("C", PushOutcome.DONE, None),
    ]
    assert "stale" in results[1].message and "9" in results[1].message


def refused(index: int, code: str = "CHANGE_FROM_QUANTITY_STALE") -> httpx.Response:
    return answer({"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": [{
        "code": code,
        "field": ["input", "quantities", str(index), "changeFromQuantity"],
        "message": "refused",
    }]}})


async def test_items_refused_for_company_are_resent_at_most_three_times_in_all(
    script: Script, connector: ShopifyConnector
) -> None:
    pushes = [StockPush(listing(sku, n), 8, 5, f"k:{sku}") for n, sku in enumerate("ABCD", 1)]
    script.expect(SET_QUANTITIES_DOC, set_quantities_variables(pushes), refused(0, "OTHER"))
    script.expect(SET_QUANTITIES_DOC, set_quantities_variables(pushes[1:]), refused(0, "OTHER"))
    script.expect(SET_QUANTITIES_DOC, set_quantities_variables(pushes[2:]), refused(0, "OTHER"))
    results = await connector.push_stock(pushes)
    assert [(r.key, r.outcome) for r in results] == [
        ("A", PushOutcome.PERMANENT),
        ("B", PushOutcome.PERMANENT),
        ("C", PushOutcome.PERMANENT),
        ("D", PushOutcome.RETRY),  # the outbox takes it from here
    ]


async def test_item_user_errors_are_permanent_for_that_item(
    script: Script, connector: ShopifyConnector
) -> None:
    pushes = [StockPush(listing("A", 1), 8, 5, "k:A"), StockPush(listing("B", 2), 8, 5, "k:B")]
    script.expect(
        SET_QUANTITIES_DOC,
        set_quantities_variables(pushes),
        answer({"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": [{
            "code": "ITEM_NOT_STOCKED_AT_LOCATION",
            "field": ["input", "quantities", "0", "locationId"],
            "message": "The specified inventory item is not stocked at the location.",
        }]}}),
    )
    script.expect(SET_QUANTITIES_DOC, set_quantities_variables(pushes[1:]), DONE)
    results = await connector.push_stock(pushes)
    assert [(r.key, r.outcome) for r in results] == [
        ("A", PushOutcome.PERMANENT), ("B", PushOutcome.DONE)
    ]
    assert results[0].message.startswith("ITEM_NOT_STOCKED_AT_LOCATION")


async def test_unpushable_listings_never_reach_shopify(connector: ShopifyConnector) -> None:
    untracked = listing("GIFT", 9, status="untracked")
    bare = ListingRef("BARE", {}, "listed", 0)
    results = await connector.push_stock(
        [StockPush(untracked, 1, None, "k1"), StockPush(bare, 1, None, "k2")]
    )
    assert [r.outcome for r in results] == [PushOutcome.PERMANENT, PushOutcome.PERMANENT]


# -- errors and the cost bucket ------------------------------------------------------------------


async def test_throttled_as_http_200_is_rate_limited_with_the_time_to_refill(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        LOCATIONS_DOC, {},
        failure("THROTTLED", "Throttled", requested=741, available=41, actual=None),
    )
    with pytest.raises(RateLimited) as caught:
        await connector.fetch_listings()
    assert caught.value.retry_after == pytest.approx(7.0)  # (741 - 41) / 100 points per second
    assert connector.limiter.snapshot()["available"] == pytest.approx(41, abs=1)


async def test_a_throttle_needing_less_than_a_second_still_waits_one(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(LOCATIONS_DOC, {}, failure("THROTTLED", "Throttled", requested=50, available=49))
    with pytest.raises(RateLimited) as caught:
        await connector.fetch_listings()
    assert caught.value.retry_after == 1.0


async def test_a_throttle_is_retried_after_the_bucket_refills(script: Script) -> None:
    slept: list[float] = []
    moment = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        moment[0] += seconds

    limiter = CostBucket(1000, 100, clock=lambda: moment[0], sleep=sleep)
    connector = make(policy=RetryPolicy(attempts=2, max_delay_s=30), limiter=limiter)
    script.expect(LOCATIONS_DOC, {}, failure("THROTTLED", "Throttled", requested=50, available=0))
    script.expect(LOCATIONS_DOC, {}, locations_answer())
    try:
        assert await connector.location_gid() == "gid://shopify/Location/10"
    finally:
        await connector.aclose()
    assert sum(slept) == pytest.approx(0.5)  # the bucket, resynced to 0, waited for 50 points


async def test_every_answer_resyncs_the_cost_bucket(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(LOCATIONS_DOC, {}, answer(
        {"locations": {"nodes": [{"id": LOCATION, "name": "W", "isActive": True}]}},
        requested=50, actual=3, available=1500.5, maximum=2000,
    ))
    await connector.location_gid()
    snapshot = connector.limiter.snapshot()
    assert snapshot["capacity"] == 2000
    assert snapshot["available"] == pytest.approx(1500.5, abs=1)
    assert (snapshot["last_requested"], snapshot["last_actual"]) == (50, 3)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ACCESS_DENIED", AuthError),
        ("INTERNAL_SERVER_ERROR", RetryableError),
        ("undefinedField", PermanentError),
        ("MAX_COST_EXCEEDED", PermanentError),
    ],
)
async def test_top_level_error_codes(
    script: Script, connector: ShopifyConnector, code: str, error: type[Exception]
) -> None:
    script.expect(LOCATIONS_DOC, {}, failure(code, "nope"))
    with pytest.raises(error):
        await connector.fetch_listings()


async def test_a_401_with_a_static_token_is_an_auth_error(
    api: respx.MockRouter, connector: ShopifyConnector
) -> None:
    api.post(GRAPHQL).mock(return_value=httpx.Response(401, json={"errors": "[API] Invalid"}))
    with pytest.raises(AuthError):
        await connector.fetch_listings()


# -- shipments -----------------------------------------------------------------------------------


def fulfillment_order(
    number: int,
    status: str = "OPEN",
    *,
    location: str = LOCATION,
    service: str | None = None,
    lines: list[tuple[int, int, int]] = ((501, 10010, 2),),  # type: ignore[assignment]
) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/FulfillmentOrder/{number}",
        "status": status,
        "assignedLocation": {
            "name": "Warehouse",
            "location": {
                "id": location,
                "fulfillmentService": {"type": service} if service else None,
            },
        },
        "lineItems": {
            "pageInfo": {"hasNextPage": False},
            "nodes": [
                {
                    "id": f"gid://shopify/FulfillmentOrderLineItem/{fo_line}",
                    "remainingQuantity": remaining,
                    "lineItem": {"id": f"gid://shopify/LineItem/{line_id}"},
                }
                for fo_line, line_id, remaining in lines
            ],
        },
    }


def fulfillment_orders_answer(*nodes: dict[str, Any], tracking: list[str] = ()) -> httpx.Response:  # type: ignore[assignment]
    return answer({"order": {
        "id": "gid://shopify/Order/1001",
        "fulfillments": [
            {"id": "gid://shopify/Fulfillment/1", "location": {"id": LOCATION},
             "trackingInfo": [{"number": n}]}
            for n in tracking
        ],
        "fulfillmentOrders": {
            "pageInfo": {"hasNextPage": False, "endCursor": None},
            "nodes": list(nodes),
        },
    }})


def shipment(*lines: tuple[str, int]) -> ShipmentPush:
    return ShipmentPush(
        order_id="1001",
        shipment_id="ship-1",
        carrier="UPS",
        tracking_number="1Z999",
        tracking_url="https://ups.example/1Z999",
        lines=tuple(ShipmentLine(line_id, None, qty) for line_id, qty in lines),
        idempotency_key="ship-1:1",
    )


def fulfillment_create(fo: int, fo_line: int, quantity: int) -> dict[str, Any]:
    """fulfillmentCreate's variables for one line of one fulfillment order, UPS 1Z999."""
    return {"fulfillment": {
        "lineItemsByFulfillmentOrder": [{
            "fulfillmentOrderId": f"gid://shopify/FulfillmentOrder/{fo}",
            "fulfillmentOrderLineItems": [
                {"id": f"gid://shopify/FulfillmentOrderLineItem/{fo_line}", "quantity": quantity}
            ],
        }],
        "notifyCustomer": False,
        "trackingInfo": {"company": "UPS", "number": "1Z999", "url": "https://ups.example/1Z999"},
    }}


async def test_a_shipment_reads_fulfillment_orders_then_creates_one_fulfillment(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        FULFILLMENT_ORDERS_DOC,
        {"id": "gid://shopify/Order/1001", "after": None},
        fulfillment_orders_answer(fulfillment_order(71)),
    )
    script.expect(
        FULFILLMENT_CREATE_DOC,
        fulfillment_create(71, 501, 1),
        answer({"fulfillmentCreate": {
            "fulfillment": {"id": "gid://shopify/Fulfillment/9", "status": "SUCCESS"},
            "userErrors": [],
        }}),
    )
    result = await connector.push_shipment(shipment(("10010", 1)))
    assert result.outcome is PushOutcome.DONE
    assert "gid://shopify/Fulfillment/9" in result.message


async def test_an_on_hold_fulfillment_order_is_permanent_with_a_clear_message(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        FULFILLMENT_ORDERS_DOC,
        {"id": "gid://shopify/Order/1001", "after": None},
        fulfillment_orders_answer(fulfillment_order(71, "ON_HOLD")),
    )
    result = await connector.push_shipment(shipment(("10010", 1)))
    assert result.outcome is PushOutcome.PERMANENT
    assert result.message == "fulfillment order 71 is ON_HOLD: release it in Shopify admin"


async def test_a_third_party_fulfillment_order_is_permanent(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        FULFILLMENT_ORDERS_DOC,
        {"id": "gid://shopify/Order/1001", "after": None},
        fulfillment_orders_answer(fulfillment_order(71, service="THIRD_PARTY")),
    )
    result = await connector.push_shipment(shipment())
    assert result.outcome is PushOutcome.PERMANENT
    assert "fulfillment service" in result.message


async def test_fulfillment_orders_of_two_locations_make_two_fulfillments(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        FULFILLMENT_ORDERS_DOC,
        {"id": "gid://shopify/Order/1001", "after": None},
        fulfillment_orders_answer(
            fulfillment_order(71, lines=[(501, 10010, 1)]),
            fulfillment_order(72, location="gid://shopify/Location/12", lines=[(502, 10020, 1)]),
        ),
    )
    created = answer({"fulfillmentCreate": {
        "fulfillment": {"id": "gid://shopify/Fulfillment/9", "status": "SUCCESS"},
        "userErrors": [],
    }})
    for fo, fo_line in ((71, 501), (72, 502)):
        script.expect(
            FULFILLMENT_CREATE_DOC,
            fulfillment_create(fo, fo_line, 1),
            created,
        )
    result = await connector.push_shipment(shipment())  # no lines: everything still due
    assert result.outcome is PushOutcome.DONE


async def test_a_shipment_already_on_the_order_is_done(
    script: Script, connector: ShopifyConnector
) -> None:
    # The first push landed and its answer was lost: the units are gone, the number is there.
    script.expect(
        FULFILLMENT_ORDERS_DOC,
        {"id": "gid://shopify/Order/1001", "after": None},
        fulfillment_orders_answer(
            fulfillment_order(71, "CLOSED", lines=[(501, 10010, 0)]), tracking=["1Z999"]
        ),
    )
    result = await connector.push_shipment(shipment(("10010", 2)))
    assert result.outcome is PushOutcome.DONE
    assert "already reported" in result.message


async def test_a_fulfillment_whose_answer_is_lost_is_not_sent_again_but_found_next_push(
    script: Script,
) -> None:
    # The connection breaks after Shopify created the fulfillment. Sending the mutation again
    # would fail ("unfulfillable status closed") and set the shipment aside; the push is
    # tried again instead, reads the order, and finds its tracking number there.
    connector = make(policy=RetryPolicy(attempts=4, base_s=0.0, cap_s=0.0))
    try:
        script.expect(
            FULFILLMENT_ORDERS_DOC,
            {"id": "gid://shopify/Order/1001", "after": None},
            fulfillment_orders_answer(fulfillment_order(71)),
        )
        script.expect(
            FULFILLMENT_CREATE_DOC,
            fulfillment_create(71, 501, 2),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
        )
        with pytest.raises(RetryableError, match="broke mid-response"):
            await connector.push_shipment(shipment(("10010", 2)))
        script.done()  # the mutation went out once

        script.expect(
            FULFILLMENT_ORDERS_DOC,
            {"id": "gid://shopify/Order/1001", "after": None},
            fulfillment_orders_answer(
                fulfillment_order(71, "CLOSED", lines=[(501, 10010, 0)]), tracking=["1Z999"]
            ),
        )
        result = await connector.push_shipment(shipment(("10010", 2)))
        assert result.outcome is PushOutcome.DONE, result.message
    finally:
        await connector.aclose()


async def test_fulfillment_user_errors_are_permanent(
    script: Script, connector: ShopifyConnector
) -> None:
    script.expect(
        FULFILLMENT_ORDERS_DOC,
        {"id": "gid://shopify/Order/1001", "after": None},
        fulfillment_orders_answer(fulfillment_order(71)),
    )
    script.expect(
        FULFILLMENT_CREATE_DOC,
        fulfillment_create(71, 501, 2),
        answer({"fulfillmentCreate": {"fulfillment": None, "userErrors": [
            {"field": ["fulfillment"], "message": "Invalid fulfillment order line item quantity"}
        ]}}),
    )
    result = await connector.push_shipment(shipment(("10010", 2)))
    assert result.outcome is PushOutcome.PERMANENT
    assert "Invalid fulfillment order line item quantity" in result.message


# -- tokens --------------------------------------------------------------------------------------


def minted(token: str, expires_in: int = 86_399) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": token, "scope": "read_orders,write_inventory",
                   "expires_in": expires_in},
    )


def minting(**options: Any) -> ShopifyConnector:
    return make(access_token=None, client_id="app-id", client_secret="app-secret", **options)


async def test_client_credentials_mint_a_token_and_refresh_it_before_it_expires(
    api: respx.MockRouter, script: Script
) -> None:
    clock = Clock()
    forms: list[dict[str, list[str]]] = []
    tokens = iter(["shpat_first", "shpat_second"])

    def mint(request: httpx.Request) -> httpx.Response:
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        forms.append(parse_qs(request.content.decode()))
        return minted(next(tokens))

    route = api.post(TOKEN_URL).mock(side_effect=mint)
    connector = minting(clock=clock)
    ok = answer({"order": None})
    try:
        script.expect(ORDER_DOC, {"id": "gid://shopify/Order/1"}, ok)
        await connector.fetch_order("1")
        # 5 min + 1 s before expiry the token is still used as is.
        clock.now = NOW + timedelta(seconds=86_399) - timedelta(minutes=5, seconds=1)
        script.expect(ORDER_DOC, {"id": "gid://shopify/Order/1"}, ok)
        await connector.fetch_order("1")
        # Inside the last five minutes: a new token before the call.
        clock.now += timedelta(seconds=2)
        script.expect(ORDER_DOC, {"id": "gid://shopify/Order/1"}, ok)
        await connector.fetch_order("1")
    finally:
        await connector.aclose()
    assert route.call_count == 2
    assert forms[0] == {
        "grant_type": ["client_credentials"],
        "client_id": ["app-id"],
        "client_secret": ["app-secret"],
    }
    assert script.tokens_seen == ["shpat_first", "shpat_first", "shpat_second"]


async def test_a_401_mints_once_more_then_gives_up(api: respx.MockRouter) -> None:
    tokens = iter(["shpat_a", "shpat_b", "shpat_c"])
    api.post(TOKEN_URL).mock(side_effect=lambda request: minted(next(tokens)))
    seen: list[str] = []

    def graphql(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["X-Shopify-Access-Token"])
        if len(seen) == 1:
            return httpx.Response(401, json={"errors": "[API] Invalid API key or access token"})
        return answer({"order": None})

    api.post(GRAPHQL).mock(side_effect=graphql)
    connector = minting()
    try:
        assert await connector.fetch_order("1") is None
        assert seen == ["shpat_a", "shpat_b"]  # revoked early: one fresh token, then success
    finally:
        await connector.aclose()


async def test_a_401_after_a_fresh_token_is_an_auth_error(api: respx.MockRouter) -> None:
    api.post(TOKEN_URL).mock(side_effect=[minted("shpat_a"), minted("shpat_b")])
    api.post(GRAPHQL).mock(return_value=httpx.Response(401, json={"errors": "[API] Invalid"}))
    connector = minting()
    try:
        with pytest.raises(AuthError):
            await connector.fetch_order("1")
    finally:
        await connector.aclose()


async def test_refused_client_credentials_are_an_auth_error(api: respx.MockRouter) -> None:
    api.post(TOKEN_URL).mock(return_value=httpx.Response(400, json={"error": "invalid_client"}))
    connector = minting()
    try:
        with pytest.raises(AuthError, match="client credentials"):
            await connector.fetch_order("1")
    finally:
        await connector.aclose()


async def test_the_token_url_follows_api_url_unless_given(api: respx.MockRouter) -> None:
    local = "http://127.0.0.1:9/admin/api/2026-07"
    api.post("http://127.0.0.1:9/admin/oauth/access_token").mock(return_value=minted("t1"))
    api.post("http://tokens.test/mint").mock(return_value=minted("t2"))
    api.post(f"{local}/graphql.json").mock(return_value=answer({"order": None}))
    first = minting(api_url=local)
    second = minting(api_url=local, token_url="http://tokens.test/mint")
    try:
        await first.fetch_order("1")
        await second.fetch_order("1")
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_bare_api_url_gets_the_admin_api_path(api: respx.MockRouter) -> None:
    route = api.post("http://127.0.0.1:9/admin/api/2026-07/graphql.json").mock(
        return_value=answer({"order": None})
    )
    connector = make(api_url="http://127.0.0.1:9/")
    try:
        assert await connector.fetch_order("1") is None
    finally:
        await connector.aclose()
    assert route.call_count == 1


async def test_an_answer_does_not_forget_calls_still_in_flight(api: respx.MockRouter) -> None:
    b_sent = asyncio.Event()
    a_answered = asyncio.Event()

    async def graphql(request: httpx.Request) -> httpx.Response:
        query = json.loads(request.content)["query"]
        if "StoresyncLocations" in query:  # A: answers while B is on its way
            await b_sent.wait()
            a_answered.set()
            return answer({"locations": {"nodes": [{"id": LOCATION, "name": "W",
                                                    "isActive": True}]}}, available=900)
        b_sent.set()  # B: the server has not charged it when A's answer is computed
        await a_answered.wait()
        return answer({"order": None}, available=866)

    api.post(GRAPHQL).mock(side_effect=graphql)
    connector = make()
    levels: list[float] = []
    observe = connector.limiter.observe_cost

    def spy(**kwargs: Any) -> None:
        levels.append(kwargs["currently_available"])
        observe(**kwargs)

    connector.limiter.observe_cost = spy  # type: ignore[method-assign]
    try:
        await asyncio.gather(connector.location_gid(), connector.fetch_order("1"))
    finally:
        await connector.aclose()
    # A's 900 predates B's 34 points, which our bucket had taken already: 866, not 900.
    assert levels == [866.0, 866.0]

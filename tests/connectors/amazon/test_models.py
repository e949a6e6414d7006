"""A full cycle against the sandbox, every recorded exchange checked against Amazon's models.

The connector reads listings and levels, polls orders (with items), pushes stock as patches and
as a JSON_LISTINGS_FEED, and confirms shipments; the sandbox records every exchange. Each one
must fit the official model of its API (ordersV0, listingsItems 2021-08-01, feeds 2021-06-30),
in strict mode for the sandbox's answers (no property the model does not list); each uploaded
feed must fit listings-feed-schema-v2.json and each processing report its schema.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from typing import Any

from connectors.amazon.connector import DEFAULT_SETTLE
from connectors.base import (
    ListingRef,
    OrderStatus,
    PushOutcome,
    ShipmentLine,
    ShipmentPush,
    StockPush,
)
from tests.connectors.amazon.conftest import Amazon
from tests.specs import feed_schema
from tests.specs.channels import check_amazon_exchanges


def push(ref: ListingRef, quantity: int) -> StockPush:
    return StockPush(ref, quantity, None, f"models:{ref.sku}:{quantity}")


async def run_cycle(amazon: Amazon) -> None:
    """Everything storesync does with an Amazon account, once."""
    skus = {f"MODEL-{n:02d}": 10 + n for n in range(25)}  # more than one search page
    await amazon.call(
        "POST", "/listings", {"listings": [{"sku": s, "quantity": q} for s, q in skus.items()]}
    )
    await amazon.call("POST", "/listings", {"listings": [{"sku": "FBA-ONLY", "fba_quantity": 4}]})
    placed = [
        await amazon.call(
            "POST",
            "/orders",
            {"lines": [{"sku": "MODEL-00", "quantity": 2}, {"sku": "MODEL-01", "quantity": 1}]},
        ),
        await amazon.call(
            "POST", "/orders", {"lines": [{"sku": "MODEL-02", "quantity": 1}], "status": "pending"}
        ),
        await amazon.call(
            "POST", "/orders", {"lines": [{"sku": "FBA-ONLY", "quantity": 1}], "fba": True}
        ),
    ]
    amazon.clock.advance(DEFAULT_SETTLE.total_seconds() + 1)
    connector = amazon.connector(page_size=2, feed_threshold=3)

    listings = await connector.fetch_listings()
    by_sku = {ref.sku: ref for ref in listings}
    assert set(skus) | {"FBA-ONLY"} == set(by_sku)
    assert by_sku["FBA-ONLY"].status == "untracked"
    levels = await connector.fetch_levels([by_sku[s] for s in skus])
    assert levels["MODEL-00"] == skus["MODEL-00"] - 2

    pages = [page async for page in connector.fetch_orders(None)]
    orders = {order.external_id: order for page in pages for order in page.orders}
    assert set(orders) == {order["id"] for order in placed}
    first = orders[placed[0]["id"]]
    assert first.status is OrderStatus.OPEN and len(first.lines) == 2
    assert orders[placed[1]["id"]].status is OrderStatus.PENDING
    assert orders[placed[2]["id"]].fulfilled_by_channel
    assert await connector.fetch_order(placed[0]["id"]) == first

    patched = await connector.push_stock([push(by_sku["MODEL-03"], 40)])
    assert [r.outcome for r in patched] == [PushOutcome.DONE]
    missing = ListingRef("NO-SUCH-SKU", {"product_type": "PRODUCT"})
    fed = await connector.push_stock(
        [push(by_sku[s], 50 + n) for n, s in enumerate(["MODEL-04", "MODEL-05", "MODEL-06"])]
        + [push(missing, 1)]
    )
    assert Counter(r.outcome for r in fed) == {PushOutcome.DONE: 3, PushOutcome.PERMANENT: 1}

    lines = {line.sku: line for line in first.lines}
    partial = ShipmentPush(
        order_id=first.external_id,
        shipment_id="7",
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="",
        lines=(ShipmentLine(lines["MODEL-00"].line_id, "MODEL-00", 2),),
        idempotency_key="models:ship:7",
    )
    rest = ShipmentPush(
        order_id=first.external_id,
        shipment_id="ship-8",
        carrier="Parcel Partner",
        tracking_number="PP-42",
        tracking_url="",
        lines=(ShipmentLine(lines["MODEL-01"].line_id, "MODEL-01", 1),),
        idempotency_key="models:ship:8",
    )
    for shipment in (partial, partial, rest):  # the second is a replay
        result = await connector.push_shipment(shipment)
        assert result.outcome is PushOutcome.DONE, result


async def test_every_exchange_of_a_full_cycle_fits_the_official_models(amazon: Amazon) -> None:
    await run_cycle(amazon)
    recorded = (await amazon.call("GET", "/exchanges"))["exchanges"]
    operations = check_amazon_exchanges(recorded)
    assert set(operations) >= {
        "getOrders",
        "getOrder",
        "getOrderItems",
        "confirmShipment",
        "searchListingsItems",
        "patchListingsItem",
        "createFeedDocument",
        "createFeed",
        "getFeed",
        "getFeedDocument",
    }
    assert (await amazon.state())["over_limit"] == 0


async def test_every_feed_and_report_fits_its_schema(amazon: Amazon) -> None:
    await run_cycle(amazon)
    recorded = (await amazon.call("GET", "/exchanges"))["exchanges"]
    uploads = [e for e in recorded if e["method"] == "PUT" and e["path"].startswith("/_documents/")]
    assert uploads, "no feed was uploaded"
    for upload in uploads:
        feed_schema("listings-feed-schema-v2.json").validate(upload["request_json"])
    reports = [feed.report for feed in amazon.sandbox.records.feeds.values()]
    assert reports and all(report is not None for report in reports)
    for report in reports:
        feed_schema("listings-feed-processing-report-schema-v2.json").validate(report)
    # What the connector downloaded is what Amazon serves: gzip, as getFeedDocument says.
    (document,) = [d for d in amazon.sandbox.records.documents.values() if d.compression == "GZIP"]
    assert document.content is not None
    report: Any = json.loads(gzip.decompress(document.content))
    assert report["summary"]["messagesInvalid"] == 1

"""Every recorded exchange of a channel checked against its official models, by API path.

Used by each channel's model test and by the end-to-end run: whatever storesync sent to a
sandbox, and whatever the sandbox answered, must fit what the vendor publishes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from tests.specs import amazon_model, ebay_model, feed_schema

AMAZON_MODELS = {
    "/orders/": "ordersV0.json",
    "/listings/": "listingsItems_2021-08-01.json",
    "/feeds/": "feeds_2021-06-30.json",
}
AMAZON_NOT_SP_API = ("/auth/o2/token", "/_documents/")
EBAY_MODELS = {
    "/sell/fulfillment/": "sell_fulfillment_v1_oas3.json",
    "/sell/inventory/": "sell_inventory_v1_oas3.json",
}
EBAY_NOT_SELL_API = ("/identity/v1/oauth2/token",)


def amazon_model_for(path: str) -> str | None:
    """The model file of an SP-API path, None for LWA and the document store."""
    return next((name for prefix, name in AMAZON_MODELS.items() if path.startswith(prefix)), None)


def check_amazon_exchanges(exchanges: Iterable[dict[str, Any]]) -> Counter[str]:
    """Check each exchange (strict) and each uploaded feed; the operations seen, counted."""
    operations: Counter[str] = Counter()
    for exchange in exchanges:
        path = exchange["path"]
        name = amazon_model_for(path)
        if name is None:
            assert path.startswith(AMAZON_NOT_SP_API), exchange
            if exchange["method"] == "PUT" and path.startswith("/_documents/"):
                feed_schema("listings-feed-schema-v2.json").validate(exchange["request_json"])
                operations["upload feed document"] += 1
            continue
        amazon_model(name, strict=True).check_exchange(exchange)
        operation = amazon_model(name).operation_id(exchange["method"], exchange["raw_path"])
        operations[str(operation)] += 1
    return operations


def check_ebay_exchanges(exchanges: Iterable[dict[str, Any]]) -> Counter[str]:
    """Check each exchange (strict); the routes seen, counted. Skips without eBay's specs."""
    routes: Counter[str] = Counter()
    for exchange in exchanges:
        path = exchange["path"]
        name = next((n for prefix, n in EBAY_MODELS.items() if path.startswith(prefix)), None)
        if name is None:
            assert path.startswith(EBAY_NOT_SELL_API), path
            continue
        ebay_model(name, strict=True).check_exchange(exchange)
        routes[exchange["route"]] += 1
    return routes

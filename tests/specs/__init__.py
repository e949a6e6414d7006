"""Official API models as test oracles: does what a connector sends, and a sandbox answers, match
what the vendor publishes?

    from tests.specs import amazon_model, ebay_model, feed_schema, SpecViolation, OpenApiModel

    model = amazon_model("ordersV0.json")                 # Swagger 2.0, cached per file
    model = ebay_model("sell_fulfillment_v1_oas3.json")   # OpenAPI 3.0; skips the test if absent
    model = ebay_model("sell_inventory_v1_oas3.json", strict=True)  # unlisted properties fail too
    model.check_request(method, path, query, body)        # path as sent, base path or not
    model.check_response(method, path, status, body)
    model.check_exchange(exchange, ignore_paths=["/auth/o2/token"])   # GET /_control/exchanges
    model.check_schema("Order", instance)                 # definitions / components/schemas
    model.operation_id(method, path)                      # "getOrders" or None
    feed_schema("listings-feed-schema-v2.json").validate(feed)

Every check raises `SpecViolation` (an AssertionError) listing every error with its JSON path.
Where the files come from: see `locate.py`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from tests.specs.feeds import FeedSchema
from tests.specs.locate import amazon_spec_path, ebay_spec_path
from tests.specs.openapi import OpenApiModel
from tests.specs.violation import SpecViolation


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


@cache
def _model(path: Path, strict: bool) -> OpenApiModel:
    return OpenApiModel(_load(path), name=path.name, strict=strict)


@cache
def _feed(path: Path) -> FeedSchema:
    return FeedSchema(_load(path), name=path.name)


def amazon_model(name: str, *, strict: bool = False) -> OpenApiModel:
    """An Amazon SP-API Swagger 2.0 model, e.g. "ordersV0.json" (loaded and compiled once).

    `strict=True` also refuses object properties the model does not list (see openapi.py).
    """
    return _model(amazon_spec_path(name), strict)


def ebay_model(name: str, *, strict: bool = False) -> OpenApiModel:
    """An eBay OpenAPI 3.0 spec, e.g. "sell_inventory_v1_oas3.json"; skips the test if absent.

    `strict=True` also refuses object properties the spec does not list (see openapi.py).
    """
    return _model(ebay_spec_path(name), strict)


def feed_schema(name: str) -> FeedSchema:
    """An Amazon JSON Schema, e.g. "listings-feed-schema-v2.json" (loaded and compiled once)."""
    return _feed(amazon_spec_path(name))


def amazon_example(name: str) -> Any:
    """An Amazon example document, e.g. "listings-feed-schema-v2.example.json"."""
    return _load(amazon_spec_path(name))


__all__ = [
    "FeedSchema",
    "OpenApiModel",
    "SpecViolation",
    "amazon_example",
    "amazon_model",
    "ebay_model",
    "feed_schema",
]

"""Hostile inputs, signed the way each channel signs, and the tools the hostile-input, webhook-fault
and atheris tests share: payload templates taken from the sandboxes, mutations of them, junk bodies
and headers, and a process's resident memory.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from connectors.sandbox.clock import format_timestamp
from connectors.signatures import sign_hmac_sha256

# The kinds that take webhooks, and the two that refuse every delivery (they are polled).
WEBHOOK_KINDS = ("reference", "shopify", "woocommerce")
POLLED_KINDS = ("amazon", "ebay")

TOPICS: dict[str, tuple[str, ...]] = {
    "reference": ("order.created", "order.updated", "order.deleted"),
    "shopify": (
        "orders/create", "orders/updated", "orders/cancelled", "refunds/create",
        "inventory_levels/update", "products/update",
    ),
    "woocommerce": ("order.created", "order.updated", "order.deleted", "product.updated"),
    "amazon": ("ORDER_CHANGE",),
    "ebay": ("ITEM_SOLD",),
}

# Field names the parsers look for, so random objects often hit a parser's real paths.
FIELD_NAMES = (
    "id", "name", "status", "created_at", "updated_at", "currency", "total", "total_price",
    "customer", "email", "lines", "line_items", "sku", "quantity", "shipped", "cancelled",
    "returned", "title", "date_modified_gmt", "date_created_gmt", "date_completed_gmt", "number",
    "billing", "order_id", "inventory_item_id", "location_id", "available", "stock_quantity",
    "manage_stock", "refunds", "refund_line_items", "line_item_id", "fulfillments",
    "financial_status", "cancelled_at", "code", "data", "message", "order", "refund",
)

# A JSON number far past every integer column and the 4300-digit int() limit.
HUGE_DIGITS = 5000
# Deep enough to exhaust Python's recursion limit in any recursive parser.
DEEP = 100_000


# -- payload templates ---------------------------------------------------------------------------


def reference_order(order_id: str = "R-1", sku: str = "SKU-1", qty: int = 2) -> dict[str, Any]:
    """A reference-channel order as its webhooks carry it."""
    return {
        "id": order_id, "name": f"#{order_id}", "status": "open",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "currency": "USD", "total": "10.00", "customer": "buyer@example.com",
        "lines": [{"id": "1", "sku": sku, "title": sku, "quantity": qty, "shipped": 0,
                   "cancelled": 0, "returned": 0}],
    }


def templates() -> dict[str, list[dict[str, Any]]]:
    """Valid payloads per webhook kind, made by the sandboxes themselves (so they stay true to
    what the channel sends as the sandboxes evolve)."""
    from connectors.shopify.sandbox import ShopifySandbox
    from connectors.woocommerce.sandbox import WooCommerceSandbox

    shop = ShopifySandbox()
    shop.seed_catalog({"SKU-1": 10, "SKU-2": 10})
    placed = shop.place_order([("SKU-1", 2), ("SKU-2", 1)])
    cancelled = shop.cancel_order(shop.place_order([("SKU-1", 1)]).id)
    woo = WooCommerceSandbox()
    woo.seed_catalog({"SKU-1": 10, "SKU-2": 10})
    w_order = woo.place_order([("SKU-1", 2), ("SKU-2", 1)])
    product = next(iter(woo.records.products.values()))
    return {
        "reference": [reference_order()],
        "shopify": [
            shop.order_rest(placed),
            shop.order_rest(cancelled),
            {"id": 1, "order_id": placed.id, "refund_line_items": []},
            {"inventory_item_id": 1, "location_id": 1, "available": 3,
             "updated_at": "2026-01-01T00:00:00Z"},
        ],
        "woocommerce": [w_order.to_api(), product.to_api(), {"id": w_order.id}],
    }


# -- strategies ----------------------------------------------------------------------------------

_DELETE = object()


def json_scalars() -> st.SearchStrategy[Any]:
    """Any JSON scalar, huge and odd ones included."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        st.sampled_from(["", "0", "-1", "1e999", "2026-13-45T99:99:99Z", "\u202e\u0000", "NaN",
                         "99999999999999999999d", "1h1h", "0.0000001ms", "127.0.0.1:99999"]),
        st.sampled_from([1e300, -1e300, 2**63, 2**64 + 1, 10**30, -(2**63) - 1]),
    )


def json_values(max_leaves: int = 25) -> st.SearchStrategy[Any]:
    """Nested JSON of any shape, keys often named like the parsers' fields."""
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12))
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=6)
        ),
        max_leaves=max_leaves,
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """`value` with the node at `path` replaced by `new` (or removed, for _DELETE)."""
    if not path:
        return None if new is _DELETE else new
    parent = value
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return value  # an earlier mutation removed this path
    last = path[-1]
    try:
        if new is _DELETE:
            del parent[last]
        else:
            parent[last] = new
    except (KeyError, IndexError, TypeError):
        pass
    return value


def mutations(template: Any, values: st.SearchStrategy[Any] | None = None,
              ) -> st.SearchStrategy[Any]:
    """`template` with one to four nodes replaced by `values` (default: random JSON) or deleted."""
    paths = list(_paths(template))
    new = values if values is not None else st.one_of(json_values(8), st.just(_DELETE))
    change = st.tuples(st.sampled_from(paths), new)

    def apply(changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
        value = copy.deepcopy(template)
        for path, new in changes:
            value = _replace(value, path, new)
        return value

    return st.lists(change, min_size=1, max_size=4).map(apply)


def deep_nesting(depth: int = DEEP) -> bytes:
    """A syntactically valid JSON body nested `depth` levels deep."""
    return b'{"id":' * depth + b"1" + b"}" * depth


def raw_junk() -> st.SearchStrategy[bytes]:
    """Bodies that are not the JSON a parser expects: binary, invalid UTF-8, huge, nested."""
    return st.one_of(
        st.binary(max_size=512),
        st.just(b""),
        st.just(b"\xff\xfe\x00{"),
        st.just(b"9" * HUGE_DIGITS),
        st.just(b'{"id": ' + b"9" * HUGE_DIGITS + b"}"),
        st.just(b'{"id": 1e999999, "total": NaN, "quantity": -Infinity}'),
        st.just(b'"\\ud800"'),
        st.just(b'{"id": "\\udfff", "sku": "\\ud800"}'),
        st.integers(min_value=10, max_value=DEEP).map(deep_nesting),
        st.integers(min_value=10, max_value=DEEP).map(lambda d: b"[" * d + b"]" * d),
        st.integers(min_value=10, max_value=DEEP).map(lambda d: b"[" * d),
    )


def dumps(value: Any) -> bytes:
    """JSON bytes the way the channels send them (non-ASCII as UTF-8)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def bodies(kind: str, samples: Mapping[str, list[dict[str, Any]]]) -> st.SearchStrategy[bytes]:
    """Hostile bodies for a kind: mutated and truncated real payloads, random JSON, junk."""
    own = samples.get(kind) or [reference_order()]
    mutated = st.one_of(*(mutations(t) for t in own)).map(dumps)
    truncated = st.tuples(st.sampled_from(own), st.floats(0, 1)).map(
        lambda pair: (b := dumps(pair[0]))[: int(len(b) * pair[1])]
    )
    return st.one_of(mutated, mutated, truncated, json_values().map(dumps), raw_junk())


# Header values h11 lets through: visible ASCII, space, tab and obs-text (0x80-0xff).
_HEADER_BYTES = st.binary(max_size=60).map(
    lambda raw: bytes(b for b in raw if b == 9 or 0x20 <= b <= 0x7E or b >= 0x80).strip()
)


def header_values() -> st.SearchStrategy[bytes]:
    """Header values: ordinary, empty, huge, non-UTF-8."""
    return st.one_of(
        _HEADER_BYTES,
        st.just(b""),
        st.just(b"\xff\xfe"),
        st.just(b"\xc3\x28"),
        st.just(b"x" * 6000),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
        .map(str.encode),
    )


# -- signing like each channel -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signer:
    """Which headers a kind's delivery needs, and how it is signed."""

    signature: str
    topic: str
    key: str | None  # the header a delivery is deduplicated on (None: derived from the body)
    triggered_at: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


SIGNERS: dict[str, Signer] = {
    "reference": Signer("X-Reference-Signature", "X-Reference-Topic", "X-Reference-Delivery",
                        "X-Reference-Triggered-At"),
    "shopify": Signer("X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Event-Id",
                      "X-Shopify-Triggered-At",
                      {"X-Shopify-Shop-Domain": "storesync-sandbox.myshopify.com"}),
    "woocommerce": Signer("X-WC-Webhook-Signature", "X-WC-Webhook-Topic",
                          "X-WC-Webhook-Delivery-ID", None,
                          {"X-WC-Webhook-Source": "http://sandbox.test/"}),
    # Polled kinds refuse every delivery; these headers only give the fuzzer something to send.
    "amazon": Signer("X-Amz-Signature", "X-Amz-Topic", None),
    "ebay": Signer("X-Ebay-Signature", "X-Ebay-Topic", None),
}


def signed_headers(
    kind: str,
    secret: str,
    body: bytes,
    topic: str,
    *,
    key: str | None = None,
    triggered_at: datetime | None = None,
) -> dict[str, str]:
    """Headers that make `body` a correctly signed `kind` delivery of `topic`."""
    signer = SIGNERS[kind]
    headers = {
        "Content-Type": "application/json",
        signer.signature: sign_hmac_sha256(secret, body),
        signer.topic: topic,
        **signer.extra,
    }
    if signer.key is not None:
        headers[signer.key] = key or str(uuid.uuid4())
    if signer.triggered_at is not None:
        headers[signer.triggered_at] = format_timestamp(triggered_at or datetime.now(UTC))
    if kind == "woocommerce":
        headers["X-WC-Webhook-Resource"] = topic.split(".", 1)[0]
        headers["X-WC-Webhook-Event"] = topic.split(".", 1)[-1]
        headers["X-WC-Webhook-ID"] = "1"
    return headers


# -- memory --------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """A process's resident set size, in KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")

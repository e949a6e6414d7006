"""WooCommerce REST API calls: one method per endpoint, nothing else.

Every call goes through `connectors.http.send`, so the status table, the limiter and bounded
retries apply; this module knows paths, parameters and auth. The client's base URL is the site's
`/wp-json`, so the core API (`/wc/v3/...`) and the Shipment Tracking extension
(`/wc-shipment-tracking/v3/...`) share one client and one limiter.

Auth (docs `_authentication.md`): HTTP Basic with the consumer key and secret, or, for servers
that strip the Authorization header ("Consumer key is missing"), the same two values as the
`consumer_key` / `consumer_secret` query parameters. connectors.http never logs a query string
and masks its values inside error messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from connectors.base import PermanentError, RetryableError
from connectors.http import (
    ONCE,
    Limiter,
    RetryPolicy,
    Timeouts,
    json_body,
    make_client,
    send,
)

CORE = "/wc/v3"
TRACKING = "/wc-shipment-tracking/v3"
MAX_PER_PAGE = 100  # WP REST refuses per_page above 100
TOTAL_HEADER = "X-WP-Total"
TOTAL_PAGES_HEADER = "X-WP-TotalPages"

AuthMode = Literal["basic", "query"]
Params = Mapping[str, str | int]

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a WP REST list: the items and the totals from the X-WP-* headers."""

    items: list[Any]
    total: int | None
    total_pages: int | None


class WooCommerceClient:
    """The WooCommerce REST API over one httpx client, paced by one limiter."""

    def __init__(
        self,
        api_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        auth: AuthMode = "basic",
        limiter: Limiter,
        policy: RetryPolicy = _DEFAULT_POLICY,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if auth not in ("basic", "query"):
            raise ValueError(f"auth must be 'basic' or 'query', not {auth!r}")
        self._query_auth: dict[str, str] = {}
        basic: httpx.Auth | None = None
        if auth == "basic":
            basic = httpx.BasicAuth(consumer_key, consumer_secret)
        else:
            self._query_auth = {"consumer_key": consumer_key, "consumer_secret": consumer_secret}
        self._http = make_client(
            f"{api_url.rstrip('/')}/wp-json",
            headers={"Accept": "application/json"},
            auth=basic,
            timeouts=timeouts,
            transport=transport,
        )
        self._limiter = limiter
        self._policy = policy

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Params | None = None,
        once: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        merged: dict[str, str | int] = {**(params or {}), **self._query_auth}
        return await send(
            self._http,
            method,
            path,
            # A POST that creates something is tried once: a reset after the store handled it
            # would otherwise add it twice. The outbox's retry re-reads before it adds again.
            policy=ONCE if once else self._policy,
            limiter=self._limiter,
            what=what,
            params=merged or None,
            **kwargs,
        )

    async def _get_json(
        self, path: str, what: str, params: Params | None = None
    ) -> Any:
        return json_body(await self._call("GET", path, what, params=params), what=what)

    async def _get_optional(self, path: str, what: str) -> Any | None:
        try:
            response = await self._call("GET", path, what)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return json_body(response, what=what)

    async def _page(self, path: str, what: str, params: Params) -> Page:
        response = await self._call("GET", path, what, params=params)
        items = json_body(response, what=what)
        if not isinstance(items, list):
            raise RetryableError(f"{what}: expected a JSON list")
        return Page(
            items,
            _header_int(response, TOTAL_HEADER),
            _header_int(response, TOTAL_PAGES_HEADER),
        )

    # -- orders ------------------------------------------------------------------------------------

    async def list_orders(self, *, modified_after: str, page: int, per_page: int) -> Page:
        """`GET /orders`: one page of orders modified after `modified_after` (GMT), oldest first."""
        # orderby cannot be date_modified (docs list date, id, include, title, slug): pages are
        # by creation date, so the set under the pages can change while we read it.
        params: dict[str, str | int] = {
            "modified_after": modified_after,
            "dates_are_gmt": "true",
            "per_page": per_page,
            "page": page,
            "orderby": "date",
            "order": "asc",
            "status": "any",
        }
        return await self._page(f"{CORE}/orders", "GET /orders", params)

    async def get_order(self, order_id: str) -> Any | None:
        """`GET /orders/{id}`, or None when WooCommerce answers 404."""
        return await self._get_optional(f"{CORE}/orders/{_id(order_id)}", "GET /orders/{id}")

    async def update_order(self, order_id: str, body: Mapping[str, Any]) -> Any:
        """`PUT /orders/{id}`: change status or meta_data."""
        what = "PUT /orders/{id}"
        response = await self._call("PUT", f"{CORE}/orders/{_id(order_id)}", what, json=body)
        return json_body(response, what=what)

    async def list_notes(self, order_id: str) -> list[Any]:
        """`GET /orders/{id}/notes`: every note of the order (the endpoint does not page)."""
        what = "GET /orders/{id}/notes"
        data = await self._get_json(f"{CORE}/orders/{_id(order_id)}/notes", what)
        if not isinstance(data, list):
            raise RetryableError(f"{what}: expected a JSON list")
        return data

    async def add_note(self, order_id: str, body: Mapping[str, Any]) -> Any:
        """`POST /orders/{id}/notes` (201)."""
        what = "POST /orders/{id}/notes"
        response = await self._call(
            "POST", f"{CORE}/orders/{_id(order_id)}/notes", what, json=body, once=True
        )
        return json_body(response, what=what)

    # -- Shipment Tracking extension ---------------------------------------------------------------

    async def list_trackings(self, order_id: str) -> list[Any]:
        """`GET /wc-shipment-tracking/v3/orders/{id}/shipment-trackings`."""
        what = "GET shipment-trackings"
        path = f"{TRACKING}/orders/{_id(order_id)}/shipment-trackings"
        data = await self._get_json(path, what)
        if not isinstance(data, list):
            raise RetryableError(f"{what}: expected a JSON list")
        return data

    async def add_tracking(self, order_id: str, body: Mapping[str, Any]) -> Any:
        """`POST /wc-shipment-tracking/v3/orders/{id}/shipment-trackings` (201)."""
        what = "POST shipment-trackings"
        path = f"{TRACKING}/orders/{_id(order_id)}/shipment-trackings"
        response = await self._call("POST", path, what, json=body, once=True)
        return json_body(response, what=what)

    # -- products and variations -------------------------------------------------------------------

    async def list_products(
        self, *, page: int, per_page: int = MAX_PER_PAGE, include: Sequence[str] = ()
    ) -> Page:
        """`GET /products`: one page of products of every type, by id (stable while paging)."""
        params: dict[str, str | int] = {"per_page": per_page, "page": page}
        if include:
            params["include"] = ",".join(include)
        params.update(orderby="id", order="asc")
        return await self._page(f"{CORE}/products", "GET /products", params)

    async def products_by_sku(self, sku: str) -> list[Any]:
        """`GET /products?sku=`: the product or variation with exactly this SKU (or none)."""
        page = await self._page(f"{CORE}/products", "GET /products", {"sku": sku})
        return page.items

    async def list_variations(
        self,
        product_id: str,
        *,
        page: int,
        per_page: int = MAX_PER_PAGE,
        include: Sequence[str] = (),
    ) -> Page:
        """`GET /products/{id}/variations`: one page of a variable product's variations."""
        params: dict[str, str | int] = {"per_page": per_page, "page": page}
        if include:
            params["include"] = ",".join(include)
        params.update(orderby="id", order="asc")
        path = f"{CORE}/products/{_id(product_id)}/variations"
        return await self._page(path, "GET /products/{id}/variations", params)

    async def set_product_stock(self, product_id: str, quantity: int) -> Any:
        """`PUT /products/{id} {"stock_quantity": N}`: absolute, no compare-and-set."""
        what = "PUT /products/{id}"
        path = f"{CORE}/products/{_id(product_id)}"
        response = await self._call("PUT", path, what, json={"stock_quantity": quantity})
        return json_body(response, what=what)

    async def set_variation_stock(
        self, product_id: str, variation_id: str, quantity: int
    ) -> Any:
        """`PUT /products/{id}/variations/{vid} {"stock_quantity": N}`."""
        what = "PUT /products/{id}/variations/{vid}"
        path = f"{CORE}/products/{_id(product_id)}/variations/{_id(variation_id)}"
        response = await self._call("PUT", path, what, json={"stock_quantity": quantity})
        return json_body(response, what=what)

    async def batch_products(self, updates: Sequence[Mapping[str, Any]]) -> Any:
        """`POST /products/batch {"update": [...]}` (at most 100 objects, else 413)."""
        what = "POST /products/batch"
        response = await self._call(
            "POST", f"{CORE}/products/batch", what, json={"update": list(updates)}
        )
        return json_body(response, what=what)

    async def batch_variations(
        self, product_id: str, updates: Sequence[Mapping[str, Any]]
    ) -> Any:
        """`POST /products/{id}/variations/batch {"update": [...]}` (at most 100 objects)."""
        what = "POST /products/{id}/variations/batch"
        path = f"{CORE}/products/{_id(product_id)}/variations/batch"
        response = await self._call("POST", path, what, json={"update": list(updates)})
        return json_body(response, what=what)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def is_id(value: str) -> bool:
    """Whether `value` can be a WordPress post id (ASCII digits only)."""
    return value.isascii() and value.isdigit()


def _id(value: str) -> str:
    """A WordPress post id for a path; anything else would address another route."""
    if not is_id(value):
        raise PermanentError(f"not a WooCommerce id: {value!r}")
    return value


def _header_int(response: httpx.Response, name: str) -> int | None:
    raw = response.headers.get(name)
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None

"""The reference channel's API calls: one method per endpoint, nothing else.

Every call goes through `connectors.http.send`, so the status table, the limiter and bounded
retries apply; this module only knows paths, parameters and headers. Shapes are checked by the
connector, which knows what it needs from each answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from connectors.base import PermanentError
from connectors.http import Limiter, RetryPolicy, Timeouts, json_body, make_client, send

_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_TIMEOUTS = Timeouts()


def format_time(moment: datetime) -> str:
    """A timestamp as the reference API writes them: UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReferenceClient:
    """The reference API over one httpx client, paced by one limiter."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        limiter: Limiter,
        policy: RetryPolicy = _DEFAULT_POLICY,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = make_client(
            api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeouts=timeouts,
            transport=transport,
        )
        self._limiter = limiter
        self._policy = policy

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        return await send(
            self._http,
            method,
            path,
            policy=self._policy,
            limiter=self._limiter,
            what=what,
            **kwargs,
        )

    async def list_orders(
        self, *, updated_since: datetime | None, cursor: str | None, limit: int
    ) -> Any:
        """`GET /orders`: one page, from `updated_since` (inclusive) or after `cursor`."""
        params: dict[str, str | int] = {"limit": limit}
        if updated_since is not None:
            params["updated_since"] = format_time(updated_since)
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._call("GET", "/orders", "GET /orders", params=params)
        return json_body(response, what="GET /orders")

    async def get_order(self, order_id: str) -> Any | None:
        """`GET /orders/{id}`, or None when the channel answers 404."""
        what = "GET /orders/{id}"
        try:
            response = await self._call("GET", f"/orders/{quote(order_id, safe='')}", what)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return json_body(response, what=what)

    async def list_listings(self, *, page: int, per_page: int) -> Any:
        """`GET /listings`: one page of listings."""
        response = await self._call(
            "GET", "/listings", "GET /listings", params={"page": page, "per_page": per_page}
        )
        return json_body(response, what="GET /listings")

    async def set_stock(self, items: Sequence[dict[str, Any]], idempotency_key: str) -> Any:
        """`POST /stock/batch`: absolute quantities, compare-and-set where `expected` is given."""
        response = await self._call(
            "POST",
            "/stock/batch",
            "POST /stock/batch",
            json={"items": list(items)},
            headers={"Idempotency-Key": idempotency_key},
        )
        return json_body(response, what="POST /stock/batch")

    async def create_shipment(
        self, order_id: str, body: dict[str, Any], idempotency_key: str
    ) -> Any:
        """`POST /orders/{id}/shipments`: report a shipment (201)."""
        what = "POST /orders/{id}/shipments"
        response = await self._call(
            "POST",
            f"/orders/{quote(order_id, safe='')}/shipments",
            what,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return json_body(response, what=what)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

"""The connector contract against the WooCommerce sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do. A checkout emits `order.created` and `order.updated` (and `product.updated` for the
stock it took); the suite's "one order event" is the `order.created` delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.http import RetryPolicy
from connectors.sandbox import serve
from connectors.woocommerce.client import AuthMode
from connectors.woocommerce.connector import WooCommerceConnector
from connectors.woocommerce.sandbox import WooCommerceSandbox
from connectors.woocommerce.webhooks import SIGNATURE_HEADER, TOPIC_HEADER
from tests.connectors.contract import ConnectorContract, Delivery, WebhookReceiver

KEY = "ck_contract"
SECRET = "cs_contract"
HOOK_SECRET = "contract-webhook-secret"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class WooCommerceAdapter:
    """The WooCommerce sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = SIGNATURE_HEADER
    missing_order_id = "999999"

    def __init__(self, api_url: str, receiver: WebhookReceiver, auth: AuthMode) -> None:
        self.api_url = api_url
        self.receiver = receiver
        self.auth = auth
        self.control = httpx.AsyncClient(base_url=f"{api_url}/_control", timeout=10)
        self._stocked = False

    def connector(
        self, *, bad_credentials: bool = False, policy: RetryPolicy | None = None
    ) -> WooCommerceConnector:
        return WooCommerceConnector(
            "woo",
            api_url=self.api_url,
            consumer_key=KEY,
            consumer_secret="cs_wrong" if bad_credentials else SECRET,
            webhook_secret=HOOK_SECRET,
            auth=self.auth,
            first_poll_window=timedelta(days=1),
            order_lookback=timedelta(minutes=5),
            policy=policy or FAST,
            page_size=self.page_size,
        )

    async def _call(self, method: str, path: str, body: object = None) -> Any:
        response = await self.control.request(method, path, json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def seed_listings(self, levels: Mapping[str, int]) -> None:
        listings = [{"sku": sku, "quantity": qty} for sku, qty in levels.items()]
        await self._call("POST", "/listings", {"listings": listings})

    async def seed_orders(self, count: int) -> list[str]:
        if not self._stocked:
            await self.seed_listings({"CONTRACT-MUG": 10_000})
            self._stocked = True
        ids = []
        for _ in range(count):
            order = await self._call(
                "POST", "/orders", {"lines": [{"sku": "CONTRACT-MUG", "quantity": 1}]}
            )
            ids.append(str(order["id"]))
        await self._call("POST", "/webhooks/flush")
        self.receiver.take()  # order webhooks are not what these tests look at
        return ids

    async def effective_changes(self) -> int:
        return int((await self._call("GET", "/state"))["effective_changes"])

    async def start_rate_limit_storm(self, retry_after_s: int) -> None:
        await self._call("PUT", "/faults", {"storm_s": 60, "storm_retry_after_s": retry_after_s})

    async def capture_deliveries(self, copies: int) -> list[Delivery]:
        await self._call("PUT", "/faults", {"duplicate_rate": 1.0 if copies > 1 else 0.0,
                                            "duplicate_max": max(copies - 1, 0)})
        await self.seed_orders(0)
        self.receiver.take()
        await self._call("POST", "/orders", {"lines": [{"sku": "CONTRACT-MUG", "quantity": 1}]})
        flushed = await self._call("POST", "/webhooks/flush", {"timeout_s": 10})
        assert flushed["idle"], flushed
        await self._call("PUT", "/faults", {"duplicate_rate": 0.0})
        return [
            d for d in self.receiver.take()
            if _header(d.headers, TOPIC_HEADER) == "order.created"
        ]

    async def aclose(self) -> None:
        await self.control.aclose()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


class TestWooCommerceContract(ConnectorContract):
    """The WooCommerce connector meets the contract, with Basic and with query-string auth."""

    @pytest.fixture(params=["basic", "query"])
    async def contract(self, request: pytest.FixtureRequest) -> AsyncIterator[WooCommerceAdapter]:
        sandbox = WooCommerceSandbox(consumer_key=KEY, consumer_secret=SECRET, seed=7)
        served = await serve(sandbox.build_app())
        receiver = await WebhookReceiver().start()
        auth: AuthMode = "query" if request.param == "query" else "basic"
        adapter = WooCommerceAdapter(served.url, receiver, auth)
        try:
            await adapter._call(
                "PUT", "/webhooks", {"url": receiver.url, "secret": HOOK_SECRET, "speed": 1000}
            )
            yield adapter
        finally:
            await adapter.aclose()
            await receiver.close()
            await served.close()

"""The connector contract against the Shopify sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do. The contract runs twice: with a static access token (an admin-created app) and with
client credentials, where the connector mints its own tokens at the sandbox's token endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.http import RetryPolicy
from connectors.sandbox import serve
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.sandbox import ShopifySandbox
from connectors.shopify.webhooks import HMAC_HEADER
from tests.connectors.contract import ConnectorContract, Delivery, WebhookReceiver

TOKEN = "shpat_contract"
CLIENT_ID = "contract-client"
CLIENT_SECRET = "contract-client-secret"
SECRET = "contract-webhook-secret"
VERSION = "2026-07"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class ShopifyAdapter:
    """The Shopify sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = HMAC_HEADER
    missing_order_id = "999999999999"

    def __init__(self, url: str, receiver: WebhookReceiver, *, mint: bool) -> None:
        self.url = url
        self.receiver = receiver
        self.mint = mint
        self.control = httpx.AsyncClient(base_url=f"{url}/_control", timeout=10)
        self._stocked = False

    def connector(
        self, *, bad_credentials: bool = False, policy: RetryPolicy | None = None
    ) -> ShopifyConnector:
        credentials: dict[str, Any]
        if self.mint:
            secret = "not-the-secret" if bad_credentials else CLIENT_SECRET
            credentials = {"access_token": None, "client_id": CLIENT_ID, "client_secret": secret}
        else:
            token = "shpat_not-the-token" if bad_credentials else TOKEN
            credentials = {"access_token": token, "client_id": None, "client_secret": None}
        return ShopifyConnector(
            "shop",
            shop="contract.myshopify.com",
            api_url=f"{self.url}/admin/api/{VERSION}",
            api_version=VERSION,
            webhook_secret=SECRET,
            location=None,
            first_poll_window=timedelta(days=1),
            order_lookback=timedelta(minutes=5),
            policy=policy or FAST,
            page_size=self.page_size,
            **credentials,
        )

    async def call(self, method: str, path: str, body: object = None) -> Any:
        response = await self.control.request(method, path, json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def seed_listings(self, levels: Mapping[str, int]) -> None:
        listings = [{"sku": sku, "quantity": qty} for sku, qty in levels.items()]
        await self.call("POST", "/listings", {"listings": listings})

    async def seed_orders(self, count: int) -> list[str]:
        if not self._stocked:
            await self.seed_listings({"CONTRACT-MUG": 10_000})
            self._stocked = True
        ids = []
        for _ in range(count):
            order = await self.call(
                "POST", "/orders", {"lines": [{"sku": "CONTRACT-MUG", "quantity": 1}]}
            )
            ids.append(order["id"])
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
        await self.call("POST", "/orders", {"lines": [{"sku": "CONTRACT-MUG", "quantity": 1}]})
        flushed = await self.call("POST", "/webhooks/flush", {"timeout_s": 10})
        assert flushed["idle"], flushed
        await self.call("PUT", "/faults", {"duplicate_rate": 0.0})
        return self.receiver.take()

    async def aclose(self) -> None:
        await self.control.aclose()


@pytest.fixture(params=["access_token", "client_credentials"])
async def contract(request: pytest.FixtureRequest) -> AsyncIterator[ShopifyAdapter]:
    sandbox = ShopifySandbox(
        api_key=TOKEN, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, seed=7
    )
    served = await serve(sandbox.build_app())
    receiver = await WebhookReceiver().start()
    adapter = ShopifyAdapter(served.url, receiver, mint=request.param == "client_credentials")
    try:
        await adapter.call(
            "PUT", "/webhooks", {"url": receiver.url, "secret": SECRET, "speed": 1000}
        )
        yield adapter
    finally:
        await adapter.aclose()
        await receiver.close()
        await served.close()


class TestShopifyContract(ConnectorContract):
    """The Shopify connector meets the contract, with either kind of credentials."""

"""The connector contract against the Shopify sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do. The contract runs twice: with a static access token (an admin-created app) and with
client credentials, where the connector mints its own tokens at the sandbox's token endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from connectors.http import RetryPolicy
from connectors.sandbox import serve
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.sandbox import ShopifySandbox
from connectors.shopify.webhooks import HMAC_HEADER
from tests.connectors.contract import (
    ConnectorContract,
    SandboxControlAdapter,
    WebhookReceiver,
)

TOKEN = "shpat_contract"
CLIENT_ID = "contract-client"
CLIENT_SECRET = "contract-client-secret"
SECRET = "contract-webhook-secret"
VERSION = "2026-07"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class ShopifyAdapter(SandboxControlAdapter):
    """The Shopify sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = HMAC_HEADER
    missing_order_id = "999999999999"

    def __init__(self, url: str, receiver: WebhookReceiver, *, mint: bool) -> None:
        super().__init__(url, receiver)
        self.url = url
        self.mint = mint

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

"""The connector contract against the WooCommerce sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do. A checkout emits `order.created` and `order.updated` (and `product.updated` for the
stock it took); the suite's "one order event" is the `order.created` delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from connectors.http import RetryPolicy
from connectors.sandbox import serve
from connectors.signatures import header
from connectors.woocommerce.client import AuthMode
from connectors.woocommerce.connector import WooCommerceConnector
from connectors.woocommerce.sandbox import WooCommerceSandbox
from connectors.woocommerce.webhooks import SIGNATURE_HEADER, TOPIC_HEADER
from tests.connectors.contract import (
    ConnectorContract,
    Delivery,
    SandboxControlAdapter,
    WebhookReceiver,
)

KEY = "ck_contract"
SECRET = "cs_contract"
HOOK_SECRET = "contract-webhook-secret"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class WooCommerceAdapter(SandboxControlAdapter):
    """The WooCommerce sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = SIGNATURE_HEADER
    missing_order_id = "999999"

    def __init__(self, api_url: str, receiver: WebhookReceiver, auth: AuthMode) -> None:
        super().__init__(api_url, receiver)
        self.api_url = api_url
        self.auth = auth

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

    def keeps(self, delivery: Delivery) -> bool:
        """Only order creations: the sandbox also delivers product updates for stock moves."""
        return header(delivery.headers, TOPIC_HEADER) == "order.created"


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
            await adapter.call(
                "PUT", "/webhooks", {"url": receiver.url, "secret": HOOK_SECRET, "speed": 1000}
            )
            yield adapter
        finally:
            await adapter.aclose()
            await receiver.close()
            await served.close()

"""The connector contract against the eBay sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do. eBay is polled (no webhooks in this version), so the webhook cases skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from connectors.ebay.connector import EbayConnector
from connectors.ebay.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EbaySandbox
from connectors.http import RetryPolicy
from connectors.sandbox import serve
from tests.connectors.contract import (
    ConnectorContract,
    SandboxControlAdapter,
    WebhookReceiver,
)

REFRESH_TOKEN = "v^1.1#contract-refresh-token"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class EbayAdapter(SandboxControlAdapter):
    """The eBay sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = "X-EBAY-SIGNATURE"
    missing_order_id = "99-99999-99999"

    def __init__(self, api_url: str, receiver: WebhookReceiver) -> None:
        super().__init__(api_url, receiver)
        self.api_url = api_url

    def connector(
        self, *, bad_credentials: bool = False, policy: RetryPolicy | None = None
    ) -> EbayConnector:
        return EbayConnector(
            "ebay",
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            refresh_token="v^1.1#revoked" if bad_credentials else REFRESH_TOKEN,
            api_url=self.api_url,
            first_poll_window=timedelta(days=1),
            order_lookback=timedelta(minutes=5),
            policy=policy or FAST,
            page_size=self.page_size,
        )


class TestEbayContract(ConnectorContract):
    """The eBay connector meets the contract."""

    @pytest.fixture
    async def contract(self) -> AsyncIterator[EbayAdapter]:
        sandbox = EbaySandbox(api_key=REFRESH_TOKEN, seed=7)
        served = await serve(sandbox.build_app())
        receiver = await WebhookReceiver().start()
        adapter = EbayAdapter(served.url, receiver)
        try:
            yield adapter
        finally:
            await adapter.aclose()
            await receiver.close()
            await served.close()

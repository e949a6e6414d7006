"""The connector contract against the reference sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do, so the control API is exercised along the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from connectors.http import RetryPolicy
from connectors.reference.connector import ReferenceConnector
from connectors.reference.sandbox import ReferenceSandbox
from connectors.reference.webhooks import SIGNATURE_HEADER
from connectors.sandbox import serve
from tests.connectors.contract import (
    ConnectorContract,
    SandboxControlAdapter,
    WebhookReceiver,
)

API_KEY = "contract-key"
SECRET = "contract-secret"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class ReferenceAdapter(SandboxControlAdapter):
    """The reference sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = SIGNATURE_HEADER
    missing_order_id = "999999"

    def __init__(self, api_url: str, receiver: WebhookReceiver) -> None:
        super().__init__(api_url, receiver)
        self.api_url = api_url

    def connector(
        self, *, bad_credentials: bool = False, policy: RetryPolicy | None = None
    ) -> ReferenceConnector:
        return ReferenceConnector(
            "ref",
            api_url=self.api_url,
            api_key="not-the-key" if bad_credentials else API_KEY,
            webhook_secret=SECRET,
            first_poll_window=timedelta(days=1),
            order_lookback=timedelta(minutes=5),
            policy=policy or FAST,
            page_size=self.page_size,
        )


class TestReferenceContract(ConnectorContract):
    """The reference connector meets the contract."""

    @pytest.fixture
    async def contract(self) -> AsyncIterator[ReferenceAdapter]:
        sandbox = ReferenceSandbox(api_key=API_KEY, seed=7)
        served = await serve(sandbox.build_app())
        receiver = await WebhookReceiver().start()
        adapter = ReferenceAdapter(served.url, receiver)
        try:
            await adapter.call(
                "PUT", "/webhooks", {"url": receiver.url, "secret": SECRET, "speed": 1000}
            )
            yield adapter
        finally:
            await adapter.aclose()
            await receiver.close()
            await served.close()

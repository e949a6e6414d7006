"""The connector contract against the Amazon sandbox, served on a real loopback port.

Time is the sandbox's ManualClock, shared with the connector (its clock, its buckets' clock and
its sleeps): Amazon's two-minute rule and its usage plans hold at their real values, and a
test that waits two minutes or for a token to refill finishes at once. After placing orders the
adapter lets two minutes pass, as the real channel needs before getOrders may show them.
Amazon has no HTTP webhooks, so the suite's webhook tests skip themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from connectors.amazon.connector import DEFAULT_SETTLE, AmazonConnector
from connectors.amazon.sandbox import (
    CLIENT_ID,
    CLIENT_SECRET,
    MARKETPLACE_ID,
    SELLER_ID,
    TOKEN_PATH,
    AmazonSandbox,
)
from connectors.http import RetryPolicy
from connectors.sandbox import ManualClock, serve
from tests.connectors.contract import ConnectorContract, SandboxControlAdapter, WebhookReceiver

REFRESH_TOKEN = "Atzr|contract-refresh-token"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class AmazonAdapter(SandboxControlAdapter):
    """The Amazon sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = "x-amz-sns-signature"  # never used: Amazon has no HTTP webhooks
    missing_order_id = "999-0000000-0000000"

    def __init__(self, api_url: str, clock: ManualClock) -> None:
        super().__init__(api_url, WebhookReceiver())
        self.api_url = api_url
        self.clock = clock

    def connector(
        self, *, bad_credentials: bool = False, policy: RetryPolicy | None = None
    ) -> AmazonConnector:
        return AmazonConnector(
            "amazon",
            seller_id=SELLER_ID,
            marketplace_ids=[MARKETPLACE_ID],
            api_url=self.api_url,
            lwa_url=f"{self.api_url}{TOKEN_PATH}",
            lwa_client_id=CLIENT_ID,
            lwa_client_secret=CLIENT_SECRET,
            refresh_token="Atzr|revoked" if bad_credentials else REFRESH_TOKEN,
            first_poll_window=timedelta(days=1),
            order_lookback=timedelta(minutes=5),
            policy=policy or FAST,
            page_size=self.page_size,
            clock=self.clock.now,
            monotonic=self.clock.monotonic,
            sleep=self.clock.sleep,
        )

    async def seed_orders(self, count: int) -> list[str]:
        ids = await super().seed_orders(count)
        # getOrders shows an order once its LastUpdateDate is two minutes old.
        self.clock.advance(DEFAULT_SETTLE.total_seconds() + 1)
        return ids


class TestAmazonContract(ConnectorContract):
    """The Amazon connector meets the contract with Amazon's real two-minute rule and rates."""

    @pytest.fixture
    async def contract(self) -> AsyncIterator[AmazonAdapter]:
        clock = ManualClock()
        sandbox = AmazonSandbox(api_key=REFRESH_TOKEN, clock=clock, seed=7)
        served = await serve(sandbox.build_app())
        adapter = AmazonAdapter(served.url, clock)
        try:
            yield adapter
        finally:
            await adapter.aclose()
            await served.close()

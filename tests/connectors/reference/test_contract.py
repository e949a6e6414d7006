"""The connector contract against the reference sandbox, served on a real loopback port.

The adapter drives the sandbox only through its HTTP control API, as the daemon tests and the
demo do, so the control API is exercised along the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

import httpx
import pytest

from connectors.http import RetryPolicy
from connectors.reference.connector import ReferenceConnector
from connectors.reference.sandbox import ReferenceSandbox
from connectors.reference.webhooks import SIGNATURE_HEADER
from connectors.sandbox import serve
from tests.connectors.contract import ConnectorContract, Delivery, WebhookReceiver

API_KEY = "contract-key"
SECRET = "contract-secret"
# Fast retries: the suite never waits on the real schedule.
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


class ReferenceAdapter:
    """The reference sandbox behind the contract suite's adapter protocol."""

    page_size = 5
    signature_header = SIGNATURE_HEADER
    missing_order_id = "999999"

    def __init__(self, api_url: str, receiver: WebhookReceiver) -> None:
        self.api_url = api_url
        self.receiver = receiver
        self.control = httpx.AsyncClient(base_url=f"{api_url}/_control", timeout=10)
        self._stocked = False

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

    async def _call(self, method: str, path: str, body: object = None) -> dict:
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
            ids.append(order["id"])
        await self._call("POST", "/webhooks/flush")
        self.receiver.take()  # order webhooks are not what these tests look at
        return ids

    async def effective_changes(self) -> int:
        return (await self._call("GET", "/state"))["effective_changes"]

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
        return self.receiver.take()

    async def aclose(self) -> None:
        await self.control.aclose()


class TestReferenceContract(ConnectorContract):
    """The reference connector meets the contract."""

    @pytest.fixture
    async def contract(self) -> AsyncIterator[ReferenceAdapter]:
        sandbox = ReferenceSandbox(api_key=API_KEY, seed=7)
        served = await serve(sandbox.build_app())
        receiver = await WebhookReceiver().start()
        adapter = ReferenceAdapter(served.url, receiver)
        try:
            await adapter._call(
                "PUT", "/webhooks", {"url": receiver.url, "secret": SECRET, "speed": 1000}
            )
            yield adapter
        finally:
            await adapter.aclose()
            await receiver.close()
            await served.close()

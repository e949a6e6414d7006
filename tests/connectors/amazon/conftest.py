"""An Amazon sandbox on a loopback port, on a ManualClock shared with the connectors it builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.amazon.connector import AmazonConnector
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

REFRESH_TOKEN = "Atzr|test-refresh-token"
FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.05, max_delay_s=1.0)


@dataclass
class Amazon:
    """A served sandbox, its clock, its control API, and connectors pointed at it."""

    sandbox: AmazonSandbox
    url: str
    clock: ManualClock
    control: httpx.AsyncClient
    api: httpx.AsyncClient
    opened: list[AmazonConnector] = field(default_factory=list)

    def connector(self, **options: Any) -> AmazonConnector:
        """A connector on the shared clock (closed by the fixture)."""
        settings: dict[str, Any] = {
            "seller_id": SELLER_ID,
            "marketplace_ids": [MARKETPLACE_ID],
            "api_url": self.url,
            "lwa_url": f"{self.url}{TOKEN_PATH}",
            "lwa_client_id": CLIENT_ID,
            "lwa_client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "first_poll_window": timedelta(days=1),
            "order_lookback": timedelta(minutes=5),
            "policy": FAST,
            "clock": self.clock.now,
            "monotonic": self.clock.monotonic,
            "sleep": self.clock.sleep,
        }
        settings.update(options)
        connector = AmazonConnector("amazon", **settings)
        self.opened.append(connector)
        return connector

    async def call(self, method: str, path: str, body: object = None) -> Any:
        """One control-API call, which must succeed."""
        response = await self.control.request(method, path, json=body)
        assert response.status_code < 400, response.text
        return response.json()

    async def state(self) -> dict[str, Any]:
        """GET /_control/state."""
        return dict(await self.call("GET", "/state"))

    async def token(self) -> str:
        """A fresh LWA access token, as a client would get it."""
        response = await self.api.post(
            TOKEN_PATH,
            data={
                "grant_type": "refresh_token",
                "refresh_token": REFRESH_TOKEN,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
async def amazon() -> AsyncIterator[Amazon]:
    clock = ManualClock()
    sandbox = AmazonSandbox(api_key=REFRESH_TOKEN, clock=clock, seed=11, record_exchanges=True)
    served = await serve(sandbox.build_app())
    control = httpx.AsyncClient(base_url=f"{served.url}/_control", timeout=10)
    api = httpx.AsyncClient(base_url=served.url, timeout=10)
    world = Amazon(sandbox, served.url, clock, control, api)
    try:
        yield world
    finally:
        for connector in world.opened:
            await connector.aclose()
        await control.aclose()
        await api.aclose()
        await served.close()

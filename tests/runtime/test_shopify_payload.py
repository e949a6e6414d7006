"""A real Shopify order payload through the daemon's webhook path, signed as Shopify signs it.

The payload is Shopify's own order fixture (tests/connectors/shopify/fixtures/order.json, MIT,
from Shopify/shopify_python_api). Webhook bodies are the bare REST order, not wrapped in "order".
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.runtime.harness import Daemon, Sandbox, sign, wait_until

FIXTURE = Path(__file__).resolve().parents[1] / "connectors" / "shopify" / "fixtures" / "order.json"
SKUS = {"IPOD2008GREEN": 5, "IPOD2008RED": 5, "IPOD2008BLACK": 5}


@pytest.fixture
def shopify(tmp_path):
    sandbox = Sandbox(tmp_path, "shop", kind="shopify")
    daemon = Daemon(tmp_path, [sandbox], skus=SKUS)
    try:
        daemon.start()
        for sku, qty in SKUS.items():
            daemon.set_stock(sku, qty)
        yield daemon, sandbox
    finally:
        daemon.stop()
        sandbox.stop()


def deliver(daemon: Daemon, secret: str, body: bytes, *, signed_body: bytes | None = None):
    return httpx.post(
        f"{daemon.webhooks}/webhooks/shop",
        content=body,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
            "X-Shopify-API-Version": "2026-07",
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "X-Shopify-Triggered-At": "2008-01-10T16:00:00.000000Z",
            "X-Shopify-Hmac-Sha256": sign(secret, signed_body or body),
        },
    )


def test_the_real_order_payload_is_stored_and_commits_stock(shopify):
    daemon, sandbox = shopify
    order = json.loads(FIXTURE.read_text())["order"]
    body = json.dumps(order).encode()
    tampered = body.replace(b'"quantity": 1', b'"quantity": 9', 1)
    assert tampered != body
    assert deliver(daemon, sandbox.webhook_secret, tampered, signed_body=body).status_code == 401
    assert deliver(daemon, sandbox.webhook_secret, body).status_code == 200
    stored = wait_until(
        lambda: (
            (r := httpx.get(f"{daemon.ops}/orders/shop/450789469")).status_code == 200 and r.json()
        ),
        what="the order to be stored",
    )
    assert sorted((ln["sku"], ln["qty"]) for ln in stored["lines"]) == [
        ("IPOD2008BLACK", 1),
        ("IPOD2008GREEN", 1),
        ("IPOD2008RED", 1),
    ]
    assert stored["reserves_stock"] is True
    for sku in SKUS:
        report = httpx.get(f"{daemon.ops}/skus/{sku}").json()
        assert (report["on_hand"], report["committed"], report["available"]) == (5, 1, 4)
    assert daemon.query("SELECT count(*) FROM inbox") == [(1,)]  # the tampered copy: nothing

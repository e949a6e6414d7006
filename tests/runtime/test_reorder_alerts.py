"""Low-stock alerts as a merchant sees them: a real daemon, a reference sandbox, a real receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from agent.processes import free_port
from tests.runtime.harness import Daemon, Sandbox, wait_until

SECRET = "alert-webhook-secret-1"


class Receiver:
    """An aiohttp webhook receiver on loopback, in its own thread; it answers 503 while down."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.up = False
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._started.wait(10)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.up:
            self.refused += 1
            return web.Response(status=503, text="down for maintenance")
        self.accepted.append((dict(request.headers), body))
        return web.json_response({"ok": True})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """The README's receiver check: HMAC of "<timestamp>.<body>", compared in constant time."""
    stamp = headers["X-Storesync-Timestamp"]
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Storesync-Signature"], f"sha256={mac}") and (
        abs(time.time() - int(stamp)) <= tolerance_s
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.stop()


@pytest.fixture
def shop(tmp_path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path, "shop")
    sandbox.seed({"MUG": 10})  # as counted below: the shop can sell at once
    yield sandbox
    sandbox.stop()


def alerts(daemon: Daemon) -> list[dict[str, Any]]:
    return daemon.status()["alerts"]


def test_selling_past_the_reorder_point_alerts_and_posts_one_signed_webhook(
    tmp_path, shop, receiver
):
    daemon = Daemon(tmp_path, [shop], extra_toml=f"""
[skus.MUG]
title = "Black mug"
reorder_point = 7

[alerts]
check_interval = "300ms"
webhook_url = "{receiver.url}"
webhook_secret = {{ env = "ALERT_SECRET" }}
webhook_retry_base = "100ms"
webhook_retry_max = "400ms"
webhook_max_attempts = 100
""")
    daemon.env["ALERT_SECRET"] = SECRET
    # The merchant counts stock before the first start (at 0 a mug would be in alert at once).
    daemon.cli("stock", "set", "MUG", "10")
    daemon.start()
    try:
        assert alerts(daemon) == []
        shop.buy({"MUG": 3})  # polled within a second: 3 committed, 7 available
        [alert] = wait_until(lambda: alerts(daemon), what="the reorder alert in /status")
        assert {k: alert[k] for k in ("sku", "title", "available", "reorder_point", "source")} == {
            "sku": "MUG", "title": "Black mug", "available": 7, "reorder_point": 7,
            "source": "config"}
        assert alert["lead_time_days"] == 7 and alert["daily_velocity"] == round(3 / 14, 3)
        assert alert["since"]

        # The receiver is down: attempts fail and are written down; then the agent restarts.
        wait_until(lambda: receiver.refused >= 2, what="failed deliveries")
        assert daemon.query("SELECT notify_state FROM alerts") == [("pending",)]
        assert daemon.stop() == 0
        receiver.up = True
        daemon.start()
        wait_until(lambda: receiver.accepted, what="the webhook once the receiver is back")
        wait_until(lambda: daemon.query("SELECT notify_state FROM alerts") == [("sent",)],
                   what="the alert marked sent")

        # Still in alert after another sale: /status follows the stock, no second webhook.
        shop.buy({"MUG": 1})
        wait_until(lambda: [a["available"] for a in alerts(daemon)] == [6],
                   what="/status to show 6 available")
        [(headers, body)] = receiver.accepted
        assert verify(SECRET, headers, body)
        payload = json.loads(body)
        assert {k: payload[k] for k in ("event", "sku", "available", "reorder_point", "source",
                                        "daily_velocity", "at")} == {
            "event": "reorder_alert", "sku": "MUG", "available": 7, "reorder_point": 7,
            "source": "config", "daily_velocity": round(3 / 14, 3), "at": alert["since"]}

        # `storesync status` prints it too.
        printed = daemon.cli("status")
        assert "low stock: 1 SKU(s) at or below their reorder point" in printed.stdout
        assert "MUG" in printed.stdout and "Black mug" in printed.stdout

        # Restocked above the point: the alert clears and is recorded as cleared.
        daemon.set_stock("MUG", 30)
        wait_until(lambda: alerts(daemon) == [], what="the alert to clear")
        assert daemon.query("SELECT count(*) FROM alerts WHERE cleared_at IS NOT NULL") == [(1,)]
        assert len(receiver.accepted) == 1
    finally:
        daemon.stop()

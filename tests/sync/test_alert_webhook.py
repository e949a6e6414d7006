"""The reorder-alert notifier against a real receiver on loopback and a real store file."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from agent.config import Config
from agent.engine import Engine, QtyRule, Rules
from agent.store import Store
from agent.store.queries import recent_events
from agent.sync.alerts import AlertWatcher

SECRET = "alert-secret-for-tests"


class Receiver:
    """A webhook receiver that answers what the test says and keeps every request."""

    def __init__(self) -> None:
        self.status = 503
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rx.url = f"http://127.0.0.1:{port}/hook"
    yield rx
    await runner.cleanup()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """What a receiver does (the README's snippet): recompute the HMAC, compare, check age."""
    stamp = headers["X-Storesync-Timestamp"]
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Storesync-Signature"], f"sha256={expected}") and (
        abs(time.time() - int(stamp)) <= tolerance_s
    )


async def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return result


def alert_config(url: str, **alerts: Any) -> Config:
    return Config.model_validate({
        "skus": {"MUG": {"reorder_point": 5}},
        "alerts": {"webhook_url": url, "webhook_secret": SECRET, "webhook_retry_base": "10ms",
                   "webhook_retry_max": "50ms", **alerts},
    })


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "store.db")
    engine = Engine(Rules(locations=("main",), channels={}, sku_rules={"MUG": QtyRule()}))
    s.run(engine.sync_catalog)
    s.run(lambda tx: engine.set_count(tx, "MUG", 2))
    yield s
    s.close()


def alert_state(store: Store) -> tuple[str, int, str | None]:
    return store.reader().execute(
        "SELECT notify_state, notify_attempts, notify_error FROM alerts").fetchone()


async def test_delivery_is_signed_retried_and_given_up_after_bounded_attempts(store, receiver):
    watcher = AlertWatcher(store=store, config=lambda: alert_config(receiver.url,
                                                                     webhook_max_attempts=3))
    await watcher.check_once()
    task = asyncio.create_task(watcher.run_notifier())
    try:
        await wait_for(lambda: alert_state(store)[0] == "failed")
    finally:
        task.cancel()
    state, attempts, error = alert_state(store)
    assert (attempts, error) == (3, "the receiver answered HTTP 503")
    assert len(receiver.requests) == 3
    assert all(verify(SECRET, headers, body) for headers, body in receiver.requests)
    body = json.loads(receiver.requests[0][1])
    assert {k: body[k] for k in ("event", "sku", "available", "reorder_point", "source")} == {
        "event": "reorder_alert", "sku": "MUG", "available": 2, "reorder_point": 5,
        "source": "config"}
    # Operators see why in /status's recent events.
    [event] = recent_events(store.reader())
    assert event["level"] == "error" and event["sku"] == "MUG"
    assert "not delivered after 3 attempts: the receiver answered HTTP 503" in event["message"]


async def test_a_receiver_that_comes_back_gets_the_alert_once(store, receiver):
    watcher = AlertWatcher(store=store, config=lambda: alert_config(receiver.url))
    await watcher.check_once()
    task = asyncio.create_task(watcher.run_notifier())
    try:
        await wait_for(lambda: len(receiver.requests) >= 2)
        receiver.status = 204
        await wait_for(lambda: alert_state(store)[0] == "sent")
        await watcher.check_once()  # still in alert: no new alert, nothing more to send
        async with httpx.AsyncClient() as client:
            assert await watcher.notify_once(client) == 0
    finally:
        task.cancel()
    # Every attempt reached the receiver; only the last was accepted.
    attempts = alert_state(store)[1]
    assert len(receiver.requests) == attempts >= 3
    headers, body = receiver.requests[-1]
    assert verify(SECRET, headers, body)
    # A tampered body or another secret does not verify.
    assert not verify(SECRET, headers, body.replace(b'"available":2', b'"available":9'))
    assert not verify("another-secret", headers, body)

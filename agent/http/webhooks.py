"""The webhook listener: `POST /webhooks/{channel}`, and nothing else.

The signature is verified on the raw bytes; the delivery is committed to the inbox before the
answer, so a 200 means it is on disk. Answers: 200 stored (or already stored), 400 id or topic
headers that are not UTF-8, 401 bad signature (nothing stored), 404 unknown channel, 413 too
large, 503 cannot store now or stopping (the channel retries later).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from connectors.base import WebhookRejected

if TYPE_CHECKING:
    from agent.runtime import Runtime

log = structlog.get_logger("storesync.webhooks")

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
BODY_LIMIT: web.AppKey[int] = web.AppKey("body_limit")


def create_webhook_app(runtime: Runtime, body_limit: int) -> web.Application:
    """The public listener's app."""
    app = web.Application(client_max_size=body_limit)
    app[RUNTIME] = runtime
    app[BODY_LIMIT] = body_limit
    app.router.add_post("/webhooks/{channel}", receive)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def receive(request: web.Request) -> web.Response:
    """Verify, store, acknowledge."""
    runtime = request.app[RUNTIME]
    name = request.match_info["channel"]
    if runtime.stopping:
        return _error(503, "storesync is stopping; retry later")
    coordinator = runtime.coordinators.get(name)
    if coordinator is None:
        runtime.metrics.webhooks_rejected.labels("-", "unknown_channel").inc()
        return _error(404, "unknown channel")
    if coordinator.connector is None:
        return _error(503, f"channel {name} is not running; retry later")
    if (request.content_length or 0) > request.app[BODY_LIMIT]:
        # Refused before reading a byte: a declared 3 MB body costs nothing (aiohttp would
        # read up to the limit first, growing the heap for nothing).
        runtime.metrics.webhooks_rejected.labels(name, "too_large").inc()
        return _error(413, "the body is larger than [sync] webhook_body_limit")
    raw = await request.read()  # aiohttp answers 413 itself past client_max_size
    headers = {k: v for k, v in request.headers.items()}
    try:
        delivery = coordinator.connector.verify_webhook(headers, raw)
    except WebhookRejected as exc:
        runtime.metrics.webhooks_rejected.labels(name, "signature").inc()
        log.warning("webhook rejected", channel=name, reason=str(exc),
                    remote=request.remote)
        return _error(401, "signature verification failed")
    if delivery.ping:
        return web.json_response({"ok": True})
    if not (_is_text(delivery.delivery_key) and _is_text(delivery.topic)):
        # aiohttp hands non-UTF-8 header bytes over as surrogates, which SQLite cannot store;
        # trying would count as a store failure and mark the whole agent not ready.
        runtime.metrics.webhooks_rejected.labels(name, "malformed").inc()
        return _error(400, "the delivery's id and topic headers must be UTF-8 text")
    try:
        new = await runtime.store.submit(
            lambda tx: tx.insert_delivery(name, delivery.delivery_key, delivery.topic, headers, raw)
        )
    except Exception as exc:  # noqa: BLE001 - disk full, read-only, locked: the sender retries
        runtime.store_failed("storing a webhook", exc)
        return _error(503, "cannot store the delivery right now; retry later")
    runtime.store_ok()
    runtime.metrics.webhooks_received.labels(name, "new" if new else "duplicate").inc()
    runtime.inbox.wake.set()
    return web.json_response({"stored": True, "duplicate": not new})


def _is_text(value: str) -> bool:
    """Whether `value` is storable text (no surrogates from undecodable header bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

"""The ops listener (loopback by default): health, status, metrics, reads, guarded actions.

GET  /healthz /readyz /status /metrics /  /dashboard.json  /skus/{sku}
     /orders/{channel}/{id}  /outbox
POST /shipments  /stock/{sku}  /channels/{name}/sync|pause|resume  /outbox/retry-dead
     /outbox/{id}/retry
Every POST needs `Authorization: Bearer <ops_token>`. Errors are JSON: {"error": "..."}.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.engine import EngineError, InvalidShipment, UnknownLocation, UnknownOrder
from agent.http.dashboard import PAGE, dashboard_data
from agent.shipments import AmbiguousOrder, parse_shipment_json, record_shipment
from agent.status import current_status
from agent.store.queries import order_report, outbox_rows, sku_report

if TYPE_CHECKING:
    from agent.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_ops_app(runtime: Runtime) -> web.Application:
    """The ops listener's app."""
    app = web.Application(middlewares=[_json_errors, _require_token])
    app[RUNTIME] = runtime
    app.router.add_get("/", page)
    app.router.add_get("/dashboard.json", dashboard)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/skus/{sku}", sku)
    app.router.add_get("/orders/{channel}/{order_id}", order)
    app.router.add_get("/outbox", outbox)
    app.router.add_post("/shipments", ship)
    app.router.add_post("/stock/{sku}", stock)
    app.router.add_post("/channels/{name}/{action:sync|pause|resume}", channel_action)
    app.router.add_post("/outbox/retry-dead", retry_dead)
    app.router.add_post(r"/outbox/{id:\d+}/retry", retry_one)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


@web.middleware
async def _require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "POST":
        return await handler(request)
    token = request.app[RUNTIME].config.agent.ops_token
    if token is None:
        return _error(401, "ops actions are disabled: set [agent] ops_token in the config")
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.reveal()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _error(401, "missing or wrong bearer token")
    return await handler(request)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(reason=f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return body


# -- reads ----------------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """Alive: the event loop answers."""
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Ready: started, not stopping, and the store takes writes."""
    runtime = request.app[RUNTIME]
    ready = runtime.ready and not runtime.stopping and runtime.store_error is None
    return web.json_response({"ready": ready, "store_error": runtime.store_error},
                             status=200 if ready else 503)


async def status(request: web.Request) -> web.Response:
    """The status document."""
    return web.json_response(await current_status(request.app[RUNTIME]))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    runtime = request.app[RUNTIME]
    # Scraping counts the outbox and inbox in SQLite: on a reader thread, like every read here.
    body = await runtime.store.read(lambda _conn: runtime.metrics.render())
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def sku(request: web.Request) -> web.Response:
    """One SKU's stock, commitments and published numbers."""
    name = request.match_info["sku"]
    report = await request.app[RUNTIME].store.read(lambda conn: sku_report(conn, name))
    if report is None:
        return _error(404, "unknown SKU")
    return web.json_response(report)


async def order(request: web.Request) -> web.Response:
    """One order as stored."""
    channel, order_id = request.match_info["channel"], request.match_info["order_id"]
    report = await request.app[RUNTIME].store.read(
        lambda conn: order_report(conn, channel, order_id)
    )
    if report is None:
        return _error(404, "unknown order")
    return web.json_response(report)


async def outbox(request: web.Request) -> web.Response:
    """Outbox rows: ?state=pending|inflight|done|dead|superseded|skipped&channel=&limit="""
    try:
        limit = min(int(request.query.get("limit", "100")), 1000)
    except ValueError:
        return _error(400, "limit must be a whole number")
    state, channel = request.query.get("state"), request.query.get("channel")
    rows = await request.app[RUNTIME].store.read(
        lambda conn: outbox_rows(conn, state=state, channel=channel, limit=limit)
    )
    return web.json_response({"rows": rows})


async def page(request: web.Request) -> web.Response:
    """The dashboard: a static page that reads /status and /dashboard.json."""
    return web.Response(text=PAGE, content_type="text/html")


async def dashboard(request: web.Request) -> web.Response:
    """Activity, SKUs at risk, recent orders and shipments, for the dashboard."""
    return web.json_response(await dashboard_data(request.app[RUNTIME]))


# -- actions --------------------------------------------------------------------------------------


async def ship(request: web.Request) -> web.Response:
    """Record a shipment: {order_id, channel?, carrier, tracking_number, tracking_url, lines?}."""
    runtime = request.app[RUNTIME]
    body = await _json_body(request)
    try:
        item = parse_shipment_json(body)
    except ValueError as exc:
        return _error(400, f"bad shipment: {exc}")
    engine = runtime.engine
    try:
        result = await runtime.store.submit(lambda tx: record_shipment(engine, tx, item))
    except AmbiguousOrder as exc:
        return web.json_response({"error": str(exc), "candidates": exc.candidates}, status=409)
    except UnknownOrder as exc:
        return _error(404, str(exc))
    except (InvalidShipment, UnknownLocation) as exc:
        return _error(422, str(exc))
    runtime.wake_pusher(result.channel)
    return web.json_response(result.as_json(), status=201 if result.created else 200)


async def stock(request: web.Request) -> web.Response:
    """Set or adjust a SKU: {"set": qty} or {"adjust": delta, "reason": ...}, optional location."""
    runtime = request.app[RUNTIME]
    body = await _json_body(request)
    name = request.match_info["sku"]
    engine = runtime.engine
    location = body.get("location")
    try:
        if "set" in body:
            qty = int(body["set"])
            await runtime.store.submit(
                lambda tx: engine.set_count(tx, name, qty, location=location)
            )
        elif "adjust" in body:
            delta = int(body["adjust"])
            reason = str(body.get("reason", "adjustment"))
            await runtime.store.submit(
                lambda tx: engine.apply_movement(tx, name, delta, location=location, reason=reason,
                                                 ref="ops")
            )
        else:
            return _error(400, 'give {"set": qty} or {"adjust": delta}')
    except (TypeError, ValueError) as exc:
        if isinstance(exc, EngineError):
            return _error(422, str(exc))
        return _error(400, f"bad quantity: {exc}")
    runtime.wake_pushers()
    return web.json_response(await runtime.store.read(lambda conn: sku_report(conn, name)))


async def channel_action(request: web.Request) -> web.Response:
    """Sync now, pause or resume one channel."""
    runtime = request.app[RUNTIME]
    name, action = request.match_info["name"], request.match_info["action"]
    coordinator = runtime.coordinators.get(name)
    if coordinator is None:
        return _error(404, "unknown channel")
    if action == "pause":
        coordinator.health.pause("paused by an operator")
    elif action == "resume":
        if coordinator.connector is None:
            return _error(409, f"channel {name} has no connector; it cannot resume")
        coordinator.health.resume()
        coordinator.wake_pusher()
    else:
        runtime.spawn(coordinator.sync_now(), name=f"{name}:sync-now")
    return web.json_response({"channel": name, "action": action,
                              "state": str(coordinator.health.state)})


async def retry_dead(request: web.Request) -> web.Response:
    """Give dead letters fresh attempts: optional {"channel": name} or {"id": outbox id}."""
    runtime = request.app[RUNTIME]
    body = await _json_body(request) if request.can_read_body else {}
    channel = body.get("channel")
    outbox_id = body.get("id")
    count = await runtime.store.submit(
        lambda tx: tx.retry_dead(channel, int(outbox_id) if outbox_id is not None else None)
    )
    runtime.wake_pushers()
    return web.json_response({"retried": count})


_NOT_RETRIED = {
    "newer_pending": "a newer value for the same item is already queued; it replaces this one",
    "replaced": "a newer value for the same item was queued after it, so it is now marked "
    "superseded instead (no longer a dead letter)",
    "inflight": "it is being pushed right now",
    "done": "it was already accepted by the channel",
    "superseded": "a newer value replaced it",
    "skipped": "it was skipped (the listing is gone or not managed)",
}


async def retry_one(request: web.Request) -> web.Response:
    """Retry one outbox row now: a dead letter gets fresh attempts, a pending row is due now."""
    runtime = request.app[RUNTIME]
    outbox_id = int(request.match_info["id"])
    outcome = await runtime.store.submit(lambda tx: tx.retry_one(outbox_id))
    if outcome == "missing":
        return _error(404, f"no outbox row {outbox_id}")
    if outcome not in ("retried", "due_now"):
        reason = _NOT_RETRIED.get(outcome, outcome)
        return web.json_response(
            {"error": f"outbox row {outbox_id} was not retried: {reason}", "outcome": outcome},
            status=409,
        )
    runtime.wake_pushers()
    return web.json_response({"id": outbox_id, "outcome": outcome})

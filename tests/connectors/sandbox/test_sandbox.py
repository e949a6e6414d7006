"""The shared sandbox machinery over real loopback sockets: faults, rate limits, webhooks, control.

Time is a ManualClock wherever the behaviour depends on it (storms, latency, retry schedules),
and tests wait on the sender's idle() or the control API's flush, never on a sleep.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from connectors.base import RateLimited, RetryableError
from connectors.http import RetryPolicy, json_body, make_client, send
from connectors.reference.sandbox import ReferenceSandbox
from connectors.sandbox import (
    SANDBOX_KEY,
    SANDBOXES,
    CostBucketRule,
    Faults,
    ManualClock,
    SandboxBase,
    Served,
    TokenBucketRule,
    WebhookSender,
    json_response,
    serve,
)

ONCE = RetryPolicy(attempts=1)


class ToySandbox(SandboxBase):
    """The smallest channel: GET /things returns a list and counts how often it ran."""

    kind = "toy"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.handled = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/things", self._things)

    async def _things(self, request: web.Request) -> web.Response:
        self.handled += 1
        return json_response({"things": [{"id": n, "name": f"thing-{n}"} for n in range(20)]})

    def truth(self) -> dict[str, Any]:
        return {"handled": self.handled}

    def reset_truth(self) -> None:
        self.handled = 0


@dataclass
class Toy:
    sandbox: ToySandbox
    clock: ManualClock
    served: Served
    http: httpx.AsyncClient

    async def things(self) -> httpx.Response:
        return await self.http.get("/things")

    async def faults(self, **faults: Any) -> httpx.Response:
        response = await self.http.put("/_control/faults", json=faults)
        assert response.status_code == 200, response.text
        return response

    async def state(self) -> dict[str, Any]:
        return (await self.http.get("/_control/state")).json()


@pytest.fixture
async def toy() -> AsyncIterator[Toy]:
    clock = ManualClock()
    sandbox = ToySandbox(clock=clock, seed=1234)
    served = await serve(sandbox.build_app())
    async with httpx.AsyncClient(base_url=served.url, timeout=5) as http:
        yield Toy(sandbox, clock, served, http)
    await served.close()


# -- serving and the control API -------------------------------------------------------------------


async def test_serve_binds_a_free_port_and_cleans_up() -> None:
    sandbox = ToySandbox()
    app = sandbox.build_app()
    served = await serve(app, "127.0.0.1", 0)
    assert served.port > 0 and served.url == f"http://127.0.0.1:{served.port}"
    assert app[SANDBOX_KEY] is sandbox
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{served.url}/things")).status_code == 200
    await served.close()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"{served.url}/things")


async def test_the_request_log_and_counters(toy: Toy) -> None:
    await toy.things()
    await toy.http.get("/nowhere")
    log = (await toy.http.get("/_control/requests")).json()
    assert [(r["method"], r["path"], r["route"], r["status"]) for r in log["requests"]] == [
        ("GET", "/things", "GET /things", 200),
        ("GET", "/nowhere", "GET (unmatched)", 404),
    ]
    assert log["requests"][0]["at"] == toy.clock.now().timestamp()
    state = await toy.state()
    assert state["handled"] == 1
    assert state["requests"]["by_route"] == {"GET /things": 1, "GET (unmatched)": 1}
    assert state["requests"]["by_status"] == {"200": 1, "404": 1}


async def test_reset_forgets_truth_logs_and_faults(toy: Toy) -> None:
    await toy.things()
    await toy.faults(outage=True)
    assert (await toy.http.post("/_control/reset")).status_code == 200
    state = await toy.state()
    assert state["handled"] == 0 and state["requests"]["total"] == 0
    assert (await toy.things()).status_code == 200


@pytest.mark.parametrize(
    "faults",
    [{"error_rate": 2}, {"nonsense": 1}, {"outage": "yes"}, {"statuses": [42]},
     {"error_status": 200.5}, {"seed": "x"}, {"latency_s": -1}, [1, 2]],
)
async def test_bad_faults_are_refused_and_change_nothing(toy: Toy, faults: Any) -> None:
    response = await toy.http.put("/_control/faults", json=faults)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_faults"
    assert (await toy.things()).status_code == 200


# -- API faults ------------------------------------------------------------------------------------


async def test_error_rate_fails_a_seeded_share_of_requests(toy: Toy) -> None:
    await toy.faults(error_rate=0.3)
    statuses = [(await toy.things()).status_code for _ in range(200)]
    failed = statuses.count(500)
    assert set(statuses) == {200, 500}
    assert 30 <= failed <= 90  # 0.3 of 200, with room for chance
    faults = (await toy.http.get("/_control/faults")).json()
    assert faults["injected"] == {"error": failed}
    assert toy.sandbox.handled == 200 - failed  # failed requests never reached the handler


async def test_the_same_seed_replays_the_same_failures() -> None:
    def run() -> list[bool]:
        faults = Faults(seed=99, error_rate=0.5)
        return [faults.chance(faults.error_rate) for _ in range(50)]

    assert run() == run()


async def test_error_status_is_configurable(toy: Toy) -> None:
    await toy.faults(error_rate=1.0, error_status=502)
    assert (await toy.things()).status_code == 502


async def test_a_storm_answers_429_with_retry_after_until_it_ends(toy: Toy) -> None:
    await toy.faults(storm_s=10, storm_retry_after_s=7)
    response = await toy.things()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert (await toy.state())["requests"]["by_status"] == {"429": 1}  # control is never faulted
    async with make_client(toy.served.url) as client:
        with pytest.raises(RateLimited) as caught:
            await send(client, "GET", "/things", policy=ONCE)
    assert caught.value.retry_after == 7
    toy.clock.advance(10)
    assert (await toy.things()).status_code == 200


async def test_an_outage_answers_503_everywhere_but_control(toy: Toy) -> None:
    await toy.faults(outage=True)
    assert (await toy.things()).status_code == 503
    assert (await toy.http.get("/nowhere")).status_code == 503
    assert (await toy.http.get("/_control/state")).status_code == 200
    await toy.faults(outage=False)
    assert (await toy.things()).status_code == 200


async def test_scripted_statuses_play_in_order(toy: Toy) -> None:
    await toy.faults(statuses=[500, 429, 0, 503], storm_retry_after_s=2)
    got = [(await toy.things()) for _ in range(5)]
    assert [r.status_code for r in got] == [500, 429, 200, 503, 200]
    assert got[1].headers["Retry-After"] == "2"


async def test_a_reset_breaks_the_connection_before_the_handler(toy: Toy) -> None:
    await toy.faults(reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await toy.things()
    async with make_client(toy.served.url) as client:
        with pytest.raises(RetryableError):
            await send(client, "GET", "/things", policy=ONCE)
    assert toy.sandbox.handled == 0
    log = (await toy.http.get("/_control/requests")).json()["requests"]
    assert {(r["status"], r["fault"]) for r in log} == {(None, "reset")}


async def test_a_reset_after_the_handler_loses_only_the_answer(toy: Toy) -> None:
    await toy.faults(reset_after_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await toy.things()
    assert toy.sandbox.handled == 1  # the effect landed; the client cannot know


async def test_a_truncated_body_is_cut_in_half_with_a_matching_length(toy: Toy) -> None:
    full = (await toy.things()).content
    await toy.faults(truncate_rate=1.0)
    response = await toy.things()
    assert response.status_code == 200
    assert response.content == full[: len(full) // 2]
    assert int(response.headers["Content-Length"]) == len(full) // 2
    with pytest.raises(RetryableError):
        json_body(response)


async def test_latency_is_spent_on_the_sandbox_clock(toy: Toy) -> None:
    await toy.faults(latency_s=2.5)
    before = toy.clock.monotonic()
    assert (await toy.things()).status_code == 200
    assert toy.clock.monotonic() - before == pytest.approx(2.5)


# -- rate-limit models -----------------------------------------------------------------------------


class Tick:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_allows_its_burst_then_counts_over_limit_arrivals() -> None:
    tick = Tick()
    rule = TokenBucketRule(2, 3, clock=tick)
    assert [rule.check().allowed for _ in range(3)] == [True, True, True]
    refused = rule.check()
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert rule.over_limit == 1
    tick.now = 0.5
    assert rule.check().allowed
    rule.reconfigure(rate_per_s=10)
    assert rule.over_limit == 1 and rule.snapshot()["rate_per_s"] == 10


def test_a_cost_bucket_charges_points_restores_them_and_refunds() -> None:
    tick = Tick()
    rule = CostBucketRule(10, 2, clock=tick)
    assert rule.check(6) == (True, 0.0, 4.0)
    refused = rule.check(6)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(1.0)
    rule.refund(2)
    assert rule.check(6).allowed
    too_big = rule.check(11)
    assert not too_big.allowed and math.isinf(too_big.retry_after_s)
    assert rule.over_limit == 1  # a query that can never fit is not an over-limit arrival
    assert rule.snapshot()["maximumAvailable"] == 10


async def test_a_sandbox_enforces_its_limit_and_counts_over_limit() -> None:
    clock = ManualClock()
    sandbox = ReferenceSandbox(clock=clock, api_key="k")
    served = await serve(sandbox.build_app())
    try:
        async with httpx.AsyncClient(base_url=served.url) as http:
            configured = await http.put("/_control/config", json={"rate_per_s": 1, "burst": 2})
            assert configured.status_code == 200
            refused = await http.get("/listings")
            assert refused.status_code == 401  # and it took no token
            auth = {"Authorization": "Bearer k"}
            got = [await http.get("/listings", headers=auth) for _ in range(5)]
            assert [r.status_code for r in got] == [200, 200, 429, 429, 429]
            assert got[2].headers["Retry-After"] == "1"
            assert got[2].json() == {"error": "rate_limited"}
            for response in [refused, *got]:
                assert response.headers["X-RateLimit-Limit"] == "1"
                assert "X-RateLimit-Remaining" in response.headers
            assert (await http.get("/_control/state")).json()["over_limit"] == 3
            clock.advance(1)
            assert (await http.get("/listings", headers=auth)).status_code == 200
    finally:
        await served.close()


# -- the webhook sender ----------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint answering scripted statuses (200 once the script runs out)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.hold: asyncio.Event | None = None  # set: the first request waits for it
        self.served: Served | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.served = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        assert self.served is not None
        await self.served.close()

    @property
    def url(self) -> str:
        assert self.served is not None
        return f"{self.served.url}/hook"

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, body in self.got]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((dict(request.headers), body))
        if self.hold is not None and len(self.got) == 1:
            await self.hold.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)


class RecordingClock(ManualClock):
    """A manual clock that remembers every sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(clock=RecordingClock(), faults=Faults(seed=5))
    await sender.start()
    yield sender
    await sender.close()


def send_one(sender: WebhookSender, n: int = 1, topic: str = "order.updated") -> None:
    body = json.dumps({"n": n}).encode()
    sender.enqueue(topic, body, {"X-Delivery": f"d-{n}", "Content-Type": "application/json"},
                   f"d-{n}")


async def test_failed_deliveries_are_retried_on_schedule_with_the_original_payload(
    sender: WebhookSender,
) -> None:
    async with Receiver([500, 503, 200]) as receiver:
        sender.configure(url=receiver.url)
        send_one(sender)
        await sender.idle()
    assert len(receiver.got) == 3
    assert len({body for body in receiver.bodies}) == 1
    assert len({h["X-Delivery"] for h, _ in receiver.got}) == 1
    assert [(a.attempt, a.status) for a in sender.attempts] == [(1, 500), (2, 503), (3, 200)]
    assert isinstance(sender.clock, RecordingClock)
    assert sender.clock.sleeps == [1.0, 2.0]  # the first two steps of [1, 2, 4, 8, 16]
    assert sender.snapshot()["delivered"] == 1 and sender.pending == 0


async def test_speed_shrinks_the_schedule_and_retries_give_up(sender: WebhookSender) -> None:
    async with Receiver([500] * 10) as receiver:
        sender.configure(url=receiver.url, retry_delays=[10, 20], speed=100)
        send_one(sender)
        await sender.idle()
    assert len(receiver.got) == 3  # the first try and one per delay
    assert isinstance(sender.clock, RecordingClock)
    assert sender.clock.sleeps == [0.1, 0.2]
    assert sender.snapshot()["gave_up"] == 1


async def test_dropped_deliveries_are_never_sent(sender: WebhookSender) -> None:
    sender.faults.update({"drop_rate": 1.0})
    async with Receiver() as receiver:
        sender.configure(url=receiver.url)
        send_one(sender)
        await sender.idle()
    assert receiver.got == []
    assert [(a.attempt, a.error) for a in sender.attempts] == [(0, "dropped by fault")]


async def test_duplicated_deliveries_are_identical_copies(sender: WebhookSender) -> None:
    sender.faults.update({"duplicate_rate": 1.0, "duplicate_max": 3})
    async with Receiver() as receiver:
        sender.configure(url=receiver.url)
        send_one(sender)
        await sender.idle()
    assert 2 <= len(receiver.got) <= 4
    assert len(set(receiver.bodies)) == 1
    assert sorted(a.copy for a in sender.attempts) == list(range(len(receiver.got)))


async def test_reorder_sends_a_delivery_after_the_next_one(sender: WebhookSender) -> None:
    sender.faults.update({"reorder": True})
    async with Receiver() as receiver:
        sender.configure(url=receiver.url)
        send_one(sender, 1)
        await sender.idle()  # the held delivery does not keep the sender busy
        assert receiver.got == [] and sender.pending == 1
        send_one(sender, 2)
        await sender.idle()
    assert [json.loads(b)["n"] for b in receiver.bodies] == [2, 1]


async def test_flush_releases_a_held_delivery(sender: WebhookSender) -> None:
    sender.faults.update({"reorder": True})
    async with Receiver() as receiver:
        sender.configure(url=receiver.url)
        send_one(sender, 1)
        assert await sender.flush(timeout_s=5)
    assert len(receiver.got) == 1 and sender.pending == 0


async def test_delay_holds_a_delivery_on_the_sandbox_clock(sender: WebhookSender) -> None:
    sender.faults.update({"delay_s": 30})
    async with Receiver() as receiver:
        sender.configure(url=receiver.url)
        send_one(sender)
        await sender.idle()
    assert len(receiver.got) == 1
    assert isinstance(sender.clock, RecordingClock) and sender.clock.sleeps == [30]


async def test_a_slow_receiver_times_out_and_is_retried(sender: WebhookSender) -> None:
    async with Receiver() as receiver:
        receiver.hold = asyncio.Event()
        sender.configure(url=receiver.url, timeout_s=0.05, retry_delays=[0])
        send_one(sender)
        await sender.idle()
        receiver.hold.set()
    first, second = sender.attempts
    assert first.status is None and first.error is not None and "timed out" in first.error
    assert second.status == 200


async def test_an_unreachable_receiver_is_retried_then_given_up(sender: WebhookSender) -> None:
    async with Receiver() as receiver:
        url = receiver.url
    sender.configure(url=url, retry_delays=[1])
    send_one(sender)
    await sender.idle()
    assert [a.status for a in sender.attempts] == [None, None]
    assert all(a.error for a in sender.attempts)
    assert sender.snapshot()["gave_up"] == 1


async def test_without_a_url_nothing_is_queued(sender: WebhookSender) -> None:
    send_one(sender)
    await sender.idle()
    assert sender.attempts[0].error == "no webhook url configured"


async def test_close_cancels_pending_retries() -> None:
    sender = WebhookSender()  # the real clock: the 1 s retry would really wait
    await sender.start()
    async with Receiver([500]) as receiver:
        sender.configure(url=receiver.url)
        send_one(sender)
        await asyncio.wait_for(_first_attempt(sender), 5)
        assert sender.pending == 1
        await sender.close()
    await asyncio.wait_for(sender.idle(), 1)
    assert sender.pending == 0


async def test_the_webhook_control_routes(toy: Toy) -> None:
    async with Receiver([500]) as receiver:
        configured = await toy.http.put(
            "/_control/webhooks", json={"url": receiver.url, "secret": "s", "speed": 1000}
        )
        assert configured.status_code == 200
        assert configured.json()["url"] == receiver.url and toy.sandbox.webhook_secret == "s"
        toy.sandbox.emit_webhook("thing.created", b"{}", {}, toy.sandbox.new_delivery_id())
        flushed = await toy.http.post("/_control/webhooks/flush", json={"timeout_s": 5})
        assert flushed.json() == {"idle": True, "pending": 0}
        log = (await toy.http.get("/_control/webhooks")).json()
        assert [a["status"] for a in log["attempts"]] == [500, 200]
        assert (await toy.state())["webhooks"]["delivered"] == 1
    bad = await toy.http.put("/_control/webhooks", json={"speed": "fast"})
    assert bad.status_code == 400
    off = await toy.http.put("/_control/webhooks", json={"url": None})
    assert off.json()["url"] is None


async def _first_attempt(sender: WebhookSender) -> None:
    while not sender.attempts:
        await asyncio.sleep(0.005)


def test_the_registry_builds_sandboxes_by_kind() -> None:
    sandbox = SANDBOXES["reference"](api_key="k", webhook_secret="s")
    assert isinstance(sandbox, SandboxBase) and sandbox.kind == "reference"

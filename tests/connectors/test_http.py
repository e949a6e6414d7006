"""connectors/http.py: the status table, Retry-After, bounded retries, limiters, the client.

Every HTTP call goes through respx with assert_all_called; time is a fake clock that the fake
sleep advances, so nothing here waits for real (the one total-timeout test waits 10 ms).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from connectors.base import (
    AuthError,
    ConflictError,
    ConnectorError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from connectors.http import (
    STATUS_ERRORS,
    USER_AGENT,
    CostBucket,
    DailyQuota,
    Limiter,
    NoLimit,
    RetryPolicy,
    Timeouts,
    TokenBucket,
    error_from_exception,
    json_body,
    make_client,
    parse_retry_after,
    raise_for_status,
    send,
)

BASE = "https://shop.test"
LA = ZoneInfo("America/Los_Angeles")


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(BASE) as c:
        yield c


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        yield router


def response(status: int, body: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, text=body, headers=headers, request=httpx.Request("POST", f"{BASE}/api/x?a=1")
    )


# -- the status table ---------------------------------------------------------------------------

EXPECTED: dict[int, type[ConnectorError]] = {
    400: PermanentError,
    401: AuthError,
    403: AuthError,
    404: PermanentError,
    405: PermanentError,
    408: RetryableError,
    409: ConflictError,
    410: PermanentError,
    413: PermanentError,
    422: PermanentError,
    425: RetryableError,
    429: RateLimited,
    500: RetryableError,
    502: RetryableError,
    503: RetryableError,
    504: RetryableError,
    418: PermanentError,  # unknown 4xx
    451: PermanentError,
    501: RetryableError,  # unknown 5xx
    599: RetryableError,
}


def test_table_lists_exactly_the_documented_statuses() -> None:
    unlisted = (418, 451, 501, 599)
    assert dict(STATUS_ERRORS) == {s: e for s, e in EXPECTED.items() if s not in unlisted}


@pytest.mark.parametrize(("status", "error"), sorted(EXPECTED.items()))
def test_status_raises_its_mapped_error(status: int, error: type[ConnectorError]) -> None:
    with pytest.raises(ConnectorError) as caught:
        raise_for_status(response(status, "nope"))
    assert type(caught.value) is error
    assert str(caught.value) == f"POST /api/x: HTTP {status}: nope"


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_success_and_redirect_statuses_pass(status: int) -> None:
    raise_for_status(response(status))


def test_message_is_short_whitespace_collapsed_and_named() -> None:
    body = "  first\n\n line\t" + "x" * 500
    with pytest.raises(PermanentError) as caught:
        raise_for_status(response(400, body), what="push stock SKU-1")
    message = str(caught.value)
    assert message.startswith("push stock SKU-1: HTTP 400: first line xxx")
    assert len(message) == len("push stock SKU-1: HTTP 400: ") + 200


def test_empty_body_message_has_no_trailing_colon() -> None:
    with pytest.raises(RetryableError, match=r"^POST /api/x: HTTP 503$"):
        raise_for_status(response(503))


# -- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("2.5", 2.5),
        (" 0 ", 0.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("7s", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=now) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0  # already past
    assert parse_retry_after("Wed, 99 Foo 2015 07:28:10 GMT", now=now) is None


def test_429_uses_an_http_date_retry_after() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with pytest.raises(RateLimited) as caught:
        raise_for_status(response(429, headers={"Retry-After": when}))
    assert 25 < caught.value.retry_after <= 30


@pytest.mark.parametrize("header", [{"Retry-After": "whenever"}, {}])
def test_429_without_usable_retry_after_waits_one_second(header: dict[str, str]) -> None:
    with pytest.raises(RateLimited) as caught:
        raise_for_status(response(429, headers=header))
    assert caught.value.retry_after == 1.0


# -- send(): retries ----------------------------------------------------------------------------


async def test_429_waits_retry_after_pauses_the_channel_then_succeeds(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock.get("/orders").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
    )
    bucket = TokenBucket(10, 10, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    with capture_logs() as logs:
        result = await send(client, "GET", "/orders", limiter=bucket, sleep=fake.sleep)
    assert result.status_code == 200
    assert route.call_count == 2
    assert len(fake.sleeps) == 1 and fake.sleeps[0] >= 7.0
    assert fake.now - start >= 7.0
    assert logs == [
        {
            "event": "backing off",
            "log_level": "warning",
            "delay_s": round(fake.sleeps[0], 3),
            "tries": 1,
            "status": 429,
            "what": "GET /orders",
            "error": "GET /orders: HTTP 429",
        }
    ]


async def test_429_pauses_other_requests_to_the_same_channel(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    mock.get("/orders").mock(return_value=httpx.Response(429, headers={"Retry-After": "7"}))
    bucket = TokenBucket(10, 10, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    with pytest.raises(RateLimited):
        await send(
            client,
            "GET",
            "/orders",
            limiter=bucket,
            sleep=fake.sleep,
            policy=RetryPolicy(attempts=1),
        )
    assert bucket.snapshot()["paused_for_s"] == 7.0
    # Another request for the same channel, with tokens to spare, still holds off until +7 s.
    await bucket.acquire()
    assert fake.sleeps == [7.0]
    assert fake.now - start == 7.0


async def test_a_gate_held_by_the_caller_still_pauses_and_holds_back_retries(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    # Shopify takes its cost bucket itself and hands it to send() as a gate. A 429 must pause
    # the bucket for everyone, and a retry inside send() must wait out a longer pause another
    # caller's 429 set meanwhile (before, the retry went out on its own 2 s timer).
    bucket = CostBucket(1000, 100, clock=fake.clock, sleep=fake.sleep)
    arrivals: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        arrivals.append(fake.now)
        if len(arrivals) == 1:
            bucket.pause(5)  # another caller's 429, with Retry-After 5, lands meanwhile
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(200)

    mock.post("/graphql.json").mock(side_effect=answer)
    response = await send(client, "POST", "/graphql.json", gate=bucket, sleep=fake.sleep,
                          policy=RetryPolicy(attempts=2, base_s=0.01, cap_s=0.01))
    assert response.status_code == 200
    assert arrivals[1] - arrivals[0] >= 5.0, arrivals

    # A 429 through the gate pauses it for the next caller too.
    mock.post("/graphql.json").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited):
        await send(client, "POST", "/graphql.json", gate=bucket, sleep=fake.sleep,
                   policy=RetryPolicy(attempts=1))
    assert bucket.snapshot()["paused_for_s"] == 7.0


async def test_after_a_pause_one_request_probes_and_the_rest_wait_for_its_answer(
    fake: FakeTime,
) -> None:
    # A storm outlasting Retry-After: without a probe, every waiting caller went at once when
    # the pause ended, and each met another 429.
    bucket = TokenBucket(100, 100, clock=fake.clock, sleep=fake.sleep)
    bucket.pause(2)
    answers = iter([429, 200, 200, 200])
    went: list[tuple[float, int]] = []

    async def call() -> None:
        await bucket.acquire()
        went_at = fake.now
        await asyncio.sleep(0)  # the request is on the wire: other callers get to run
        status = next(answers)
        went.append((went_at, status))
        bucket.settle(status)
        if status == 429:
            bucket.pause(2)  # what send() does with the 429's Retry-After

    await asyncio.gather(*(call() for _ in range(4)))
    assert went == [(1002.0, 429), (1004.0, 200), (1004.0, 200), (1004.0, 200)]


async def test_concurrent_acquires_all_wait_out_the_pause(fake: FakeTime) -> None:
    bucket = TokenBucket(100, 100, clock=fake.clock, sleep=fake.sleep)
    bucket.pause(7)
    bucket.pause(2)  # a shorter pause never shortens a longer one
    granted: list[float] = []

    async def call() -> None:
        await bucket.acquire()
        granted.append(fake.now)

    await asyncio.gather(*(call() for _ in range(5)))
    assert granted == [1007.0] * 5


async def test_retry_after_beyond_the_wait_budget_is_raised_at_once(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock.post("/stock").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "120"})
    )
    bucket = NoLimit(clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(RateLimited) as caught:
        await send(client, "POST", "/stock", limiter=bucket, sleep=fake.sleep)
    assert caught.value.retry_after == 120.0
    assert route.call_count == 1 and fake.sleeps == []
    assert bucket.snapshot() == {"model": "none", "paused_for_s": 120.0}


async def test_500_forever_tries_exactly_attempts_with_jittered_capped_waits(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    random.seed(20240301)
    route = mock.put("/items/1").mock(return_value=httpx.Response(500, text="oops"))
    policy = RetryPolicy(attempts=6, max_delay_s=100.0, base_s=0.5, cap_s=3.0)
    with pytest.raises(RetryableError, match=r"^PUT /items/1: HTTP 500: oops$"):
        await send(client, "PUT", "/items/1", policy=policy, sleep=fake.sleep)
    assert route.call_count == 6
    assert len(fake.sleeps) == 5
    for tries, delay in enumerate(fake.sleeps, start=1):
        assert 0 <= delay <= min(3.0, 0.5 * 2 ** (tries - 1))
    assert len(set(fake.sleeps)) == 5  # jittered, not a fixed ladder


async def test_default_policy_gives_four_tries(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock.get("/x").mock(return_value=httpx.Response(503))
    with pytest.raises(RetryableError):
        await send(client, "GET", "/x", sleep=fake.sleep)
    assert route.call_count == RetryPolicy().attempts == 4
    assert sum(fake.sleeps) <= RetryPolicy().max_delay_s


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (422, PermanentError),
        (404, PermanentError),
        (409, ConflictError),
    ],
)
async def test_non_retryable_status_raises_after_one_try(
    client: httpx.AsyncClient,
    mock: respx.MockRouter,
    fake: FakeTime,
    status: int,
    error: type[ConnectorError],
) -> None:
    route = mock.post("/x").mock(return_value=httpx.Response(status))
    with pytest.raises(error):
        await send(client, "POST", "/x", json={"q": 1}, sleep=fake.sleep)
    assert route.call_count == 1
    assert fake.sleeps == []


async def test_transport_faults_are_retried_then_succeed(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock.get("/orders").mock(
        side_effect=[
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("read timed out"),
            httpx.RemoteProtocolError("peer closed connection without sending complete message"),
            httpx.Response(200, json={"orders": []}),
        ]
    )
    result = await send(client, "GET", "/orders", sleep=fake.sleep)
    assert json_body(result) == {"orders": []}
    assert route.call_count == 4 and len(fake.sleeps) == 3


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadError("reset"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("truncated"),
        httpx.PoolTimeout("busy"),
    ],
)
async def test_each_transport_fault_is_retryable(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime, fault: Exception
) -> None:
    route = mock.get("/x").mock(side_effect=[fault, httpx.Response(204)])
    assert (await send(client, "GET", "/x", sleep=fake.sleep)).status_code == 204
    assert route.call_count == 2


async def test_total_timeout_bounds_one_attempt(client: httpx.AsyncClient, fake: FakeTime) -> None:
    started: list[httpx.Request] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        started.append(request)
        await asyncio.Event().wait()  # a server that never finishes answering
        raise AssertionError("unreachable")

    # respx records a call only once its side effect returns, and this one never does.
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/slow").mock(side_effect=hang)
        with pytest.raises(RetryableError, match="^fetch orders: no complete response within"):
            await send(
                client,
                "GET",
                "/slow",
                what="fetch orders",
                timeouts=Timeouts(total_s=0.01),
                policy=RetryPolicy(attempts=1),
                sleep=fake.sleep,
            )
    assert len(started) == 1


async def test_redirects_are_returned_not_followed(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    mock.get("/old").mock(return_value=httpx.Response(301, headers={"Location": "/new"}))
    assert (await send(client, "GET", "/old", sleep=fake.sleep)).status_code == 301


# -- secrets stay out of messages -------------------------------------------------------------


async def test_query_string_secrets_never_reach_errors_or_logs(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    url = "/wp-json/wc/v3/orders?consumer_key=ck_abc&consumer_secret=cs_123"
    mock.get("/wp-json/wc/v3/orders").mock(
        return_value=httpx.Response(500, text=f"error at {BASE}{url}")
    )
    with capture_logs() as logs, pytest.raises(RetryableError) as caught:
        await send(client, "GET", url, sleep=fake.sleep)
    assert "cs_123" not in str(caught.value) and "ck_abc" not in str(caught.value)
    assert str(caught.value).startswith("GET /wp-json/wc/v3/orders: HTTP 500")
    assert len(logs) == 3
    assert "cs_123" not in repr(logs)


def test_exception_messages_carry_no_query_string() -> None:
    request = httpx.Request("GET", f"{BASE}/x?consumer_secret=cs_123")
    faults: list[BaseException] = [
        httpx.ConnectError(f"cannot reach {request.url}", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.HTTPStatusError(
            f"Server error for url '{request.url}'",
            request=request,
            response=httpx.Response(502, request=request),
        ),
    ]
    for fault in faults:
        error = error_from_exception(fault)
        assert isinstance(error, RetryableError)
        assert "cs_123" not in str(error)
        assert str(error).startswith("GET /x: ")


def test_error_from_exception_kinds() -> None:
    request = httpx.Request("GET", f"{BASE}/x")
    assert "total timeout" in str(error_from_exception(TimeoutError(), what="poll"))
    assert isinstance(
        error_from_exception(httpx.RemoteProtocolError("eof", request=request)), RetryableError
    )
    assert isinstance(
        error_from_exception(httpx.DecodingError("bad gzip", request=request)), RetryableError
    )
    assert isinstance(
        error_from_exception(httpx.UnsupportedProtocol("ftp", request=request)), PermanentError
    )
    moved = httpx.Response(302, request=request)
    redirect = httpx.HTTPStatusError("302 for url", request=request, response=moved)
    assert str(error_from_exception(redirect)) == "GET /x: HTTPStatusError"
    with pytest.raises(TypeError):
        error_from_exception(KeyError("a bug, not a network fault"))
    assert str(error_from_exception(httpx.ConnectError("refused"), what="poll")) == (
        "poll: network error (ConnectError) refused"
    )


# -- json_body ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"orders": [{"id": 1', b"<html>502</html>", b"\xff\xfe{", b""])
def test_body_that_is_not_json_is_retryable(body: bytes) -> None:
    bad = httpx.Response(200, content=body, request=httpx.Request("GET", f"{BASE}/orders"))
    with pytest.raises(RetryableError) as caught:
        json_body(bad, what="fetch orders")
    assert str(caught.value) == (
        f"fetch orders: the channel returned a body that is not JSON ({len(body)} bytes)"
    )


def test_json_body_parses_json() -> None:
    good = httpx.Response(200, json={"a": [1, 2]}, request=httpx.Request("GET", f"{BASE}/x"))
    assert json_body(good) == {"a": [1, 2]}


# -- limiters -----------------------------------------------------------------------------------


async def test_token_bucket_bursts_then_paces(fake: FakeTime) -> None:
    bucket: Limiter = TokenBucket(2.0, 3, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        await bucket.acquire()
    assert fake.sleeps == []
    await bucket.acquire()
    assert fake.sleeps == [0.5]
    snap = bucket.snapshot()
    assert snap["model"] == "token_bucket" and snap["capacity"] == 3.0
    assert snap["available"] == 0.0


async def test_token_bucket_serves_concurrent_callers_one_token_each(fake: FakeTime) -> None:
    bucket = TokenBucket(1.0, 1, clock=fake.clock, sleep=fake.sleep)
    granted: list[float] = []

    async def call() -> None:
        await bucket.acquire()
        granted.append(fake.now)

    await asyncio.gather(*(call() for _ in range(5)))
    assert granted == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]


async def test_token_bucket_learns_rate_and_remaining_from_headers(fake: FakeTime) -> None:
    bucket = TokenBucket(
        1.0,
        5,
        clock=fake.clock,
        sleep=fake.sleep,
        header_rate="x-amzn-RateLimit-Limit",
        header_remaining="x-ratelimit-remaining",
    )
    bucket.observe(httpx.Response(200, headers={"x-amzn-RateLimit-Limit": "10.0"}))
    assert bucket.snapshot()["rate_per_s"] == 10.0
    bucket.observe(httpx.Response(200, headers={"x-ratelimit-remaining": "0"}))
    await bucket.acquire()
    assert fake.sleeps == [pytest.approx(0.1)]
    bucket.observe(httpx.Response(200, headers={"x-amzn-RateLimit-Limit": "garbage"}))
    bucket.observe(httpx.Response(200, headers={"x-amzn-RateLimit-Limit": "-3"}))
    assert bucket.snapshot()["rate_per_s"] == 10.0


async def test_send_feeds_the_limiter_the_response_headers(
    client: httpx.AsyncClient, mock: respx.MockRouter, fake: FakeTime
) -> None:
    mock.get("/orders").mock(
        return_value=httpx.Response(200, headers={"x-amzn-RateLimit-Limit": "0.5"})
    )
    bucket = TokenBucket(
        20, 1, clock=fake.clock, sleep=fake.sleep, header_rate="x-amzn-RateLimit-Limit"
    )
    await send(client, "GET", "/orders", limiter=bucket, sleep=fake.sleep)
    await bucket.acquire()
    assert fake.sleeps == [2.0]  # the second call paced at the rate the server reported


async def test_cost_bucket_waits_for_restore_and_resyncs(fake: FakeTime) -> None:
    bucket = CostBucket(100, 50, clock=fake.clock, sleep=fake.sleep)
    await bucket.acquire(80)
    assert fake.sleeps == []
    await bucket.acquire(60)  # 20 left, 40 more at 50/s
    assert fake.sleeps == [pytest.approx(0.8)]
    bucket.observe_cost(
        maximum_available=2000,
        currently_available=10,
        restore_rate=100,
        requested=120,
        actual=42,
    )
    snap = bucket.snapshot()
    assert snap["capacity"] == 2000.0 and snap["available"] == 10.0
    assert snap["rate_per_s"] == 100.0 and snap["last_actual"] == 42
    await bucket.acquire(110)
    assert fake.sleeps[-1] == pytest.approx(1.0)
    await bucket.acquire(5000)  # dearer than the whole bucket: waits for a full one
    assert fake.sleeps[-1] == pytest.approx(20.0)


def quota_at(when: datetime, limit: int = 10) -> tuple[DailyQuota, list[datetime]]:
    clock = [when]
    return DailyQuota(limit, now=lambda: clock[0]), clock


async def test_daily_quota_runs_out_until_pacific_midnight() -> None:
    quota, clock = quota_at(datetime(2024, 3, 1, 23, 0, tzinfo=LA))
    for _ in range(10):
        await quota.acquire()
    with pytest.raises(RateLimited) as caught:
        await quota.acquire()
    assert caught.value.retry_after == 3600.0
    assert "resets at 2024-03-02T00:00:00-08:00" in str(caught.value)
    clock[0] = datetime(2024, 3, 2, 8, 0, 1, tzinfo=UTC)  # 00:00:01 in Los Angeles
    await quota.acquire()
    assert quota.snapshot()["used"] == 1


async def test_daily_quota_counts_real_seconds_across_dst() -> None:
    # 01:00 PST on the spring-forward day: local midnight is 22 real hours away, not 23.
    quota, _ = quota_at(datetime(2024, 3, 10, 9, 0, tzinfo=UTC), limit=0)
    with pytest.raises(RateLimited) as caught:
        await quota.acquire()
    assert caught.value.retry_after == 22 * 3600


async def test_daily_quota_snapshot_warns_at_ninety_percent() -> None:
    quota, _ = quota_at(datetime(2024, 3, 1, 12, 0, tzinfo=LA))
    for _ in range(8):
        await quota.acquire()
    assert quota.snapshot()["warning"] is False
    await quota.acquire()
    assert quota.snapshot() == {
        "model": "daily_quota",
        "used": 9,
        "limit": 10,
        "resets_at": "2024-03-02T00:00:00-08:00",
        "warning": True,
        "paused_for_s": 0.0,
    }


async def test_exhausted_quota_stops_send_before_any_request(
    client: httpx.AsyncClient, fake: FakeTime
) -> None:
    quota, _ = quota_at(datetime(2024, 3, 1, 12, 0, tzinfo=LA), limit=0)
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        route = router.get("/items")
        with pytest.raises(RateLimited):
            await send(client, "GET", "/items", limiter=quota, sleep=fake.sleep)
    assert route.call_count == 0 and fake.sleeps == []


# -- the client ---------------------------------------------------------------------------------


async def test_make_client_sets_user_agent_and_explicit_timeouts(mock: respx.MockRouter) -> None:
    route = mock.get("/ping").mock(return_value=httpx.Response(200))
    timeouts = Timeouts(connect_s=3.0, read_s=20.0, total_s=40.0)
    async with make_client(BASE, timeouts=timeouts, headers={"X-Shop": "a"}) as c:
        assert c.timeout == httpx.Timeout(connect=3.0, read=20.0, write=20.0, pool=3.0)
        assert c.follow_redirects is False
        assert c.base_url == httpx.URL(BASE)
        await c.get("/ping")
    sent = route.calls.last.request
    assert sent.headers["User-Agent"] == USER_AGENT
    assert sent.headers["X-Shop"] == "a"
    assert USER_AGENT.startswith("storesync/")
    assert USER_AGENT.endswith(" (+https://github.com/storesync/storesync)")


async def test_make_client_defaults_and_user_agent_override() -> None:
    async with make_client(BASE, headers={"user-agent": "MyApp/1.0"}) as c:
        assert c.timeout == httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
        assert c.headers.get_list("User-Agent") == ["MyApp/1.0"]

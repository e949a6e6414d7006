"""How an Amazon order poll spends getOrders: the look-back is read again in slices, not on every
poll, so a busy seller's orders are heard as soon as Amazon's settle allows, and an order Amazon
shows late is still read.

Against the sandbox on a ManualClock: the connector's rate limiter sleeps on that clock, so a
poll that spends more calls than the usage plan refills visibly takes longer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.amazon.poll_window import Marks, Window
from tests.connectors.amazon.conftest import Amazon

LOOKBACK = timedelta(minutes=5)
SETTLE = timedelta(seconds=2)
POLL_S = 2


async def getorders_calls(amazon: Amazon) -> int:
    routes = (await amazon.state())["requests"]["by_route"]
    return sum(n for route, n in routes.items() if route.endswith("/orders/v0/orders"))


async def place(amazon: Amazon) -> str:
    order = await amazon.call("POST", "/orders", {"lines": [{"sku": "MUG", "quantity": 1}]})
    return str(order["id"])


async def test_a_busy_sellers_orders_are_heard_within_the_settle_and_a_poll(
    amazon: Amazon,
) -> None:
    # A seller on a raised plan (getOrders 0.5/s, as the reliability suite plays one), selling
    # an order a second, polled every 2 s with Amazon's settle at 2 s: ten minutes of it.
    amazon.sandbox.configure(
        min_age_s=SETTLE.total_seconds(),
        rates={"getOrders": {"rate_per_s": 0.5, "burst": 20},
               "getOrderItems": {"rate_per_s": 5.0, "burst": 30}},
    )
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 100_000}]})
    connector = amazon.connector(settle=SETTLE, order_lookback=LOOKBACK)
    cursor = [page async for page in connector.fetch_orders(None)][-1].cursor
    placed: dict[str, datetime] = {}
    heard: dict[str, datetime] = {}
    polls = 0
    end = amazon.clock.now() + timedelta(minutes=10)
    while amazon.clock.now() < end:
        for _ in range(POLL_S):
            placed[await place(amazon)] = amazon.clock.now()
            amazon.clock.advance(1)
        async for page in connector.fetch_orders(cursor):
            for order in page.orders:
                heard.setdefault(order.external_id, amazon.clock.now())
            cursor = page.cursor
        polls += 1
    calls = await getorders_calls(amazon) - 1  # the first poll's call
    recent = {o for o, at in placed.items() if amazon.clock.now() - at <= SETTLE + timedelta(
        seconds=2 * POLL_S)}
    assert set(placed) - set(heard) <= recent, "orders older than a settle and a poll unread"
    lags = sorted((heard[o] - placed[o]).total_seconds() for o in heard if o in placed)
    # A fresh window each poll, and a slice of the look-back now and then. Re-reading the whole
    # look-back on every poll (storesync before 2026-12-07) spent 1.8 calls a poll here, which
    # the plan paced, and orders waited up to 11.4 s; this way 1.02 calls and 3 s.
    assert calls <= 1.1 * polls, (calls, polls)
    assert lags[-1] <= 5, lags[-10:]
    assert (await amazon.state())["over_limit"] == 0


async def test_a_quiet_sellers_poll_reads_the_look_back_in_the_same_call(amazon: Amazon) -> None:
    # An order a poll, polled every 15 s on the default plan (getOrders: a burst of 20, then
    # one a minute): the look-back's slices ride in the fresh window's call, so every poll
    # costs exactly one getOrders call and a long day stays within the plan's refill.
    amazon.sandbox.configure(min_age_s=SETTLE.total_seconds())
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 1_000}]})
    connector = amazon.connector(settle=SETTLE, order_lookback=LOOKBACK)
    cursor = [page async for page in connector.fetch_orders(None)][-1].cursor
    first = await getorders_calls(amazon)
    placed: set[str] = set()
    heard: set[str] = set()
    for _ in range(40):  # ten minutes
        placed.add(await place(amazon))
        amazon.clock.advance(15)
        async for page in connector.fetch_orders(cursor):
            heard.update(order.external_id for order in page.orders)
            cursor = page.cursor
    assert await getorders_calls(amazon) - first == 40
    assert placed == heard


async def test_an_order_amazon_shows_late_is_read_by_the_look_back(amazon: Amazon) -> None:
    # Default settle (2 minutes), polled every 2 minutes; one order appears with a
    # LastUpdateDate three minutes old, inside a window the poll has already read fresh.
    await amazon.call("POST", "/listings", {"listings": [{"sku": "MUG", "quantity": 1_000}]})
    connector = amazon.connector(order_lookback=LOOKBACK)
    cursor = [page async for page in connector.fetch_orders(None)][-1].cursor
    heard: set[str] = set()
    late: str | None = None
    for poll in range(12):
        await place(amazon)
        if poll == 4:
            late = await place(amazon)
            amazon.sandbox.records.orders[late].updated -= timedelta(minutes=3)
            amazon.sandbox.records.orders[late].purchased -= timedelta(minutes=3)
        amazon.clock.advance(120)
        async for page in connector.fetch_orders(cursor):
            heard.update(order.external_id for order in page.orders)
            cursor = page.cursor
    assert late in heard
    assert set(amazon.sandbox.records.orders) - heard <= {
        o.order_id for o in amazon.sandbox.records.orders.values()
        if amazon.clock.now() - o.updated < timedelta(minutes=2)
    }


def at(minute: float) -> datetime:
    return datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minute)


def test_a_poll_reads_fresh_then_the_aged_slice_of_the_look_back() -> None:
    marks = Marks(since=at(10), checked=at(3))
    fresh, late = marks.plan(at(12), LOOKBACK)
    assert (fresh.after, fresh.before, fresh.late) == (at(10), at(12), False)
    assert (late.after, late.before, late.late) == (at(3), at(7), True)
    after = marks.finished(fresh, LOOKBACK).finished(late, LOOKBACK)
    assert (after.since, after.checked) == (at(12), at(7))
    # The next poll: the aged part since (2 minutes) is under a quarter look-back and two polls.
    assert after.plan(at(14), LOOKBACK) == [Window(at(12), at(14))]


def test_a_quiet_sellers_aged_slice_is_read_with_the_fresh_window() -> None:
    marks = Marks(since=at(10), checked=at(3))
    # 7 orders a minute: the 9 minutes from `checked` hold about 63, past half a page of 100.
    assert len(marks.plan(at(12), LOOKBACK, orders_per_s=7 / 60, page_size=100)) == 2
    # One a minute: about 9 in one call.
    (window,) = marks.plan(at(12), LOOKBACK, orders_per_s=1 / 60, page_size=100)
    assert (window.after, window.before, window.late) == (at(3), at(12), False)
    after = marks.finished(window, LOOKBACK)
    assert (after.since, after.checked) == (at(12), at(7))


def test_a_look_back_shorter_than_the_poll_is_read_with_it() -> None:
    marks = Marks(since=at(10), checked=at(9))
    (window,) = marks.plan(at(12), timedelta(minutes=1))
    assert (window.after, window.before) == (at(9), at(12))
    after = marks.finished(window, timedelta(minutes=1))
    assert (after.since, after.checked) == (at(12), at(11))


def test_a_poll_cut_short_in_the_look_back_resumes_there() -> None:
    marks = Marks(since=at(12), checked=at(3))
    cursor = marks.reading(Window(at(3), at(7), late=True, next_token="token+1")).cursor()
    resumed = Marks.parse(cursor, LOOKBACK)
    assert resumed.window == Window(at(3), at(7), late=True, next_token="token+1")
    assert (resumed.since, resumed.checked) == (at(12), at(3))


def test_a_poll_cut_short_inside_a_first_page_resumes_there_past_what_it_committed() -> None:
    marks = Marks(since=at(12), checked=at(3))
    cursor = marks.reading(Window(at(12), at(14), seen=("A-1", "A-2"))).cursor()
    resumed = Marks.parse(cursor, LOOKBACK)
    assert resumed.window == Window(at(12), at(14), next_token=None, seen=("A-1", "A-2"))


@pytest.mark.parametrize("cursor", ["", "[]", '{"checked": null}', '{"since": "yesterday"}',
                                    '{"since": "2026-03-01T09:00:00Z", "next": 5}'])
def test_a_cursor_that_is_not_one_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError):
        Marks.parse(cursor, LOOKBACK)

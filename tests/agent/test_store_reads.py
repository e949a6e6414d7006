"""`Store.read`: the ops API's and the alert checks' reads run on a reader thread, so a long
one (the dashboard's catalog scan) never holds the event loop that answers webhooks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agent.store import Store, StoreClosed

DEADLINE_S = 10


async def test_the_event_loop_keeps_running_while_a_read_is_in_progress(tmp_path):
    store = Store(tmp_path / "s.db")
    started, release = threading.Event(), threading.Event()

    def slow(conn):
        started.set()
        # Only the event loop sets `release`: a read that held the loop would wait out the
        # deadline here and fail.
        assert release.wait(DEADLINE_S), "the event loop did not run during the read"
        return conn.execute("SELECT count(*) FROM skus").fetchone()[0]

    try:
        reading = asyncio.create_task(store.read(slow))
        assert await asyncio.to_thread(started.wait, DEADLINE_S)
        release.set()
        assert await reading == 0
    finally:
        store.close()


async def test_a_cancelled_reader_waits_for_its_query_so_closing_never_cuts_one_off(tmp_path):
    store = Store(tmp_path / "s.db")
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(conn):
        started.set()
        release.wait(DEADLINE_S)
        conn.execute("SELECT count(*) FROM orders").fetchone()
        finished.set()

    reading = asyncio.create_task(store.read(slow))
    assert await asyncio.to_thread(started.wait, DEADLINE_S)
    reading.cancel()
    await asyncio.sleep(0)  # let the cancellation reach the read, which must still wait
    assert not reading.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert finished.is_set()
    store.close()
    with pytest.raises(StoreClosed):
        await store.read(lambda conn: 1)
    # Nor does a thread that never read before get a connection close() will not close.
    with pytest.raises(StoreClosed):
        await asyncio.to_thread(store.reader)


async def test_a_read_sees_one_moment_while_the_writer_commits(tmp_path):
    # /status counts outbox rows, then reads the oldest of each group: a commit in between
    # once left a group with no oldest row and /status answered 500.
    store = Store(tmp_path / "s.db")
    between, committed = threading.Event(), threading.Event()

    def twice(conn):
        first = conn.execute("SELECT count(*) FROM cursors").fetchone()[0]
        between.set()
        assert committed.wait(DEADLINE_S), "the writer never committed"
        return first, conn.execute("SELECT count(*) FROM cursors").fetchone()[0]

    try:
        reading = asyncio.create_task(store.read(twice))
        assert await asyncio.to_thread(between.wait, DEADLINE_S)
        await store.submit(lambda tx: tx.set_cursor("shop", "orders", "page-2"))
        committed.set()
        assert await reading == (0, 0)
        assert await store.read(lambda conn: conn.execute(
            "SELECT count(*) FROM cursors").fetchone()[0]) == 1
    finally:
        store.close()

"""Opening the SQLite file: one writer thread owns the write connection; readers get their own.

Every write is a function run on the writer thread inside `BEGIN IMMEDIATE ... COMMIT`, so a unit
of work (an order, its ledger rows, its outbox rows) commits whole or not at all, and writers never
meet SQLITE_BUSY on a read-to-write upgrade (https://sqlite.org/lang_transaction.html).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar, cast

from sqlite_utils import Database

from agent.store.schema import migrations
from agent.store.timestamps import Clock, utc_now
from agent.store.transaction import Tx

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


class StoreError(Exception):
    """The store cannot do what was asked (closed, unwritable, corrupt)."""


class StoreClosed(StoreError):
    """A write was submitted after the store was closed."""


_STOP = object()

# A unit of work and how to hand back its result or its exception.
_Deliver = Callable[[object, BaseException | None], None]
_WriteTask = tuple[Callable[[Tx], object], _Deliver]


class Store:
    """The SQLite store: a writer thread for units of work, read connections for queries."""

    def __init__(self, path: str | Path, *, clock: Clock = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock
        self._queue: queue.Queue[object] = queue.Queue()
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._closed = False
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="storesync-writer", daemon=True
        )
        self._thread.start()
        ready.result()  # re-raises a failure to open or migrate

    # -- the writer thread -------------------------------------------------------------------

    def _open_writer(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"database folder {self.path.parent} does not exist")
        conn = sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        db = Database(conn)
        db.enable_wal()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Take the write lock before looking at the schema, so two processes opening the same new
        # file cannot both create it; each migration then runs in a savepoint inside this lock.
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations.apply(db)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return conn

    def _writer_main(self, ready: Future[None]) -> None:
        try:
            conn = self._open_writer()
        except BaseException as exc:  # noqa: BLE001 - handed to the opener
            ready.set_exception(exc if isinstance(exc, Exception) else StoreError(str(exc)))
            return
        ready.set_result(None)
        db = Database(conn)
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            fn, deliver = cast(_WriteTask, item)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(Tx(db, self.clock))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                deliver(None, exc)
            else:
                deliver(result, None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a checkpoint is an optimisation; the WAL is replayed at next open
        conn.close()

    # -- submitting work ---------------------------------------------------------------------

    def run(self, fn: Callable[[Tx], T]) -> T:
        """Run one unit of work in a write transaction and wait (from threads, not the loop)."""
        fut: Future[T] = Future()

        def deliver(result: object, exc: BaseException | None) -> None:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)  # type: ignore[arg-type]

        self._put((fn, deliver))
        return fut.result()

    async def submit(self, fn: Callable[[Tx], T]) -> T:
        """Run one unit of work in a write transaction without blocking the event loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def settle(result: object, exc: BaseException | None) -> None:
            if fut.done():
                return  # the awaiting task was cancelled; the unit of work still committed
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)  # type: ignore[arg-type]

        def deliver(result: object, exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle, result, exc)

        self._put((fn, deliver))
        return await fut

    def _put(self, item: object) -> None:
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._queue.put(item)

    # -- reading -----------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """A read-only connection for the calling thread (reads never block the writer)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self._closed:  # its connection, if it had one, is closed
            raise StoreClosed("the store is closed")
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only=1")
            with self._lock:
                if self._closed:  # closed meanwhile: close() would never see this one
                    conn.close()
                    raise StoreClosed("the store is closed")
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on a read-only connection in a worker thread, so a long read (a catalog
        scan for the dashboard) never holds the event loop and the webhooks it serves. `fn`
        sees one snapshot: its queries agree with each other while the writer commits. A
        cancelled caller still waits for the read to end: stopping never closes a connection
        under a query. A closed store raises StoreClosed (from reader())."""

        def snapshot() -> T:
            conn = self.reader()
            conn.execute("BEGIN")  # WAL: a read transaction sees one moment throughout
            try:
                return fn(conn)
            finally:
                conn.rollback()

        reading = asyncio.ensure_future(asyncio.to_thread(snapshot))
        try:
            return await asyncio.shield(reading)
        except asyncio.CancelledError:
            await asyncio.wait([reading])
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued work, checkpoint the WAL and close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()
        with self._lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

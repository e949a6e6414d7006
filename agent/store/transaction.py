"""The repository the engine works through: every method runs inside the writer's transaction.

The engine decides what should happen; this module knows how it is written down. `stock.on_hand`
and `skus.committed` are kept equal to their sources (movements, open order lines) here, in the
same transaction as the change that moves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from agent.store.records import InboxRow, Listing, OutboxRow, StoredLine, StoredOrder
from agent.store.timestamps import Clock, iso, parse_iso


def _opt_time(text: str | None) -> datetime | None:
    return parse_iso(text) if text else None


# A pending row for the same (channel, kind, key) takes the newer value. A row waiting with no
# failed attempt of its own (an eBay listing paced, or a channel in an outage) is due again at
# once for a new value, so the connector decides afresh: a sale must not inherit a restock's
# wait. A row backing off after failures of its own keeps its backoff.
_ENQUEUE = (
    "INSERT INTO outbox (channel, kind, key, value, expected, state, next_attempt_at, "
    "created_at, updated_at, queued_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?) "
    "ON CONFLICT(channel, kind, key) WHERE state = 'pending' DO UPDATE SET "
    "value = excluded.value, expected = excluded.expected, revision = revision + 1, "
    "updated_at = excluded.updated_at, queued_at = excluded.queued_at, "
    "next_attempt_at = CASE WHEN attempts = 0 AND value != excluded.value "
    "THEN min(next_attempt_at, excluded.next_attempt_at) ELSE next_attempt_at END"
)


class Tx:
    """One write transaction on the store."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.conn = db.conn
        self._clock = clock

    def now(self) -> datetime:
        """The store's clock (injectable in tests)."""
        return self._clock()

    # -- catalog -----------------------------------------------------------------------------

    def sku_kind(self, sku: str) -> str | None:
        """'simple', 'bundle', or None when the SKU is unknown."""
        row = self.conn.execute("SELECT kind FROM skus WHERE sku = ?", (sku,)).fetchone()
        return row[0] if row else None

    def ensure_sku(self, sku: str, *, kind: str = "simple", title: str | None = None) -> bool:
        """Create the SKU if it is new; set its kind and title. True when it was created."""
        cur = self.conn.execute(
            "INSERT INTO skus (sku, title, kind, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sku) DO NOTHING",
            (sku, title, kind, iso(self.now())),
        )
        created = cur.rowcount == 1
        if not created:
            self.conn.execute(
                "UPDATE skus SET kind = ?, title = coalesce(?, title) WHERE sku = ?",
                (kind, title, sku),
            )
        return created

    def set_bundle_components(self, bundle: str, components: Mapping[str, int]) -> None:
        """Replace a bundle's component list."""
        self.conn.execute("DELETE FROM bundle_components WHERE bundle = ?", (bundle,))
        self.conn.executemany(
            "INSERT INTO bundle_components (bundle, component, qty) VALUES (?, ?, ?)",
            [(bundle, comp, qty) for comp, qty in components.items()],
        )

    def ensure_location(self, name: str, title: str | None) -> None:
        """Record a location named in the config."""
        self.conn.execute(
            "INSERT INTO locations (name, title) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET title = excluded.title",
            (name, title),
        )

    def ensure_channel(self, name: str, kind: str) -> None:
        """Record a channel named in the config."""
        self.conn.execute(
            "INSERT INTO channels (name, kind, state_changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET kind = excluded.kind",
            (name, kind, iso(self.now())),
        )

    def skus(self) -> list[str]:
        """Every SKU in the catalog."""
        return [r[0] for r in self.conn.execute("SELECT sku FROM skus ORDER BY sku")]

    # -- stock -------------------------------------------------------------------------------

    def add_movement(
        self, sku: str, location: str, delta: int, reason: str, ref: str | None
    ) -> int:
        """Append to the ledger and move `stock.on_hand` with it."""
        at = iso(self.now())
        cur = self.conn.execute(
            "INSERT INTO movements (sku, location, delta, reason, ref, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (sku, location, delta, reason, ref, at),
        )
        self.conn.execute(
            "INSERT INTO stock (sku, location, on_hand, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sku, location) DO UPDATE SET on_hand = on_hand + excluded.on_hand, "
            "updated_at = excluded.updated_at",
            (sku, location, delta, at),
        )
        return int(cur.lastrowid or 0)

    def on_hand(self, sku: str, location: str) -> int:
        """Units of a SKU at one location."""
        row = self.conn.execute(
            "SELECT on_hand FROM stock WHERE sku = ? AND location = ?", (sku, location)
        ).fetchone()
        return int(row[0]) if row else 0

    def on_hand_by_location(self, skus: Iterable[str]) -> dict[str, dict[str, int]]:
        """On-hand units per location for each SKU asked for."""
        wanted = list(skus)
        result: dict[str, dict[str, int]] = {s: {} for s in wanted}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for sku, loc, qty in self.conn.execute(
                f"SELECT sku, location, on_hand FROM stock WHERE sku IN ({marks})", chunk
            ):
                result[sku][loc] = qty
        return result

    def all_on_hand(self) -> dict[str, dict[str, int]]:
        """On-hand units per location for every SKU."""
        result: dict[str, dict[str, int]] = {}
        for sku, loc, qty in self.conn.execute("SELECT sku, location, on_hand FROM stock"):
            result.setdefault(sku, {})[loc] = qty
        return result

    def add_committed(self, sku: str, delta: int) -> None:
        """Move a SKU's committed units (the sum of open line remainders)."""
        self.conn.execute("UPDATE skus SET committed = committed + ? WHERE sku = ?", (delta, sku))

    def committed(self, skus: Iterable[str]) -> dict[str, int]:
        """Committed units for each SKU asked for."""
        wanted = list(skus)
        result = dict.fromkeys(wanted, 0)
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for sku, qty in self.conn.execute(
                f"SELECT sku, committed FROM skus WHERE sku IN ({marks})", chunk
            ):
                result[sku] = qty
        return result

    def all_committed(self) -> dict[str, int]:
        """Committed units for every SKU."""
        return dict(self.conn.execute("SELECT sku, committed FROM skus").fetchall())

    def bundles_containing(self, components: Iterable[str]) -> dict[str, dict[str, int]]:
        """The bundles that use any of these components, each with its full component list."""
        wanted = list(components)
        names: set[str] = set()
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            names.update(
                r[0]
                for r in self.conn.execute(
                    f"SELECT bundle FROM bundle_components WHERE component IN ({marks})", chunk
                )
            )
        return self.bundle_components(names)

    def bundle_components(self, bundles: Iterable[str]) -> dict[str, dict[str, int]]:
        """Component quantities for each bundle asked for."""
        wanted = list(bundles)
        result: dict[str, dict[str, int]] = {}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for bundle, comp, qty in self.conn.execute(
                f"SELECT bundle, component, qty FROM bundle_components WHERE bundle IN ({marks})",
                chunk,
            ):
                result.setdefault(bundle, {})[comp] = qty
        return result

    def all_bundles(self) -> dict[str, dict[str, int]]:
        """Every bundle with its components."""
        result: dict[str, dict[str, int]] = {}
        for bundle, comp, qty in self.conn.execute(
            "SELECT bundle, component, qty FROM bundle_components"
        ):
            result.setdefault(bundle, {})[comp] = qty
        return result

    # -- orders ------------------------------------------------------------------------------

    def get_order(self, channel: str, external_id: str) -> StoredOrder | None:
        """An order with its lines and their components, or None."""
        row = self.conn.execute(
            "SELECT name, status, reserves, fulfilled_by_channel, updated_at, content_hash, "
            "created_at, customer, currency, total, raw, first_seen_at "
            "FROM orders WHERE channel = ? AND external_id = ?",
            (channel, external_id),
        ).fetchone()
        if row is None:
            return None
        order = StoredOrder(
            channel=channel,
            external_id=external_id,
            name=row[0],
            status=row[1],
            reserves=bool(row[2]),
            fulfilled_by_channel=bool(row[3]),
            updated_at=parse_iso(row[4]),
            content_hash=row[5],
            created_at=_opt_time(row[6]),
            customer=row[7],
            currency=row[8],
            total=row[9],
            raw=row[10],
            first_seen_at=parse_iso(row[11]),
        )
        for (
            line_id,
            channel_sku,
            sku,
            title,
            qty,
            shipped,
            cancelled,
            returned,
        ) in self.conn.execute(
            "SELECT line_id, channel_sku, sku, title, qty, qty_shipped, qty_cancelled, "
            "qty_returned FROM order_lines WHERE channel = ? AND external_id = ?",
            (channel, external_id),
        ):
            order.lines[line_id] = StoredLine(
                line_id, channel_sku, sku, title, qty, shipped, cancelled, returned
            )
        for line_id, comp, per_unit in self.conn.execute(
            "SELECT line_id, component, per_unit FROM line_components "
            "WHERE channel = ? AND external_id = ?",
            (channel, external_id),
        ):
            order.lines[line_id].components[comp] = per_unit
        return order

    def save_order(self, order: StoredOrder, *, new_lines: Iterable[str]) -> None:
        """Write an order and its lines; components are written once, for `new_lines`."""
        now = iso(self.now())
        self.conn.execute(
            "INSERT INTO orders (channel, external_id, name, status, reserves, "
            "fulfilled_by_channel, updated_at, content_hash, created_at, customer, currency, "
            "total, raw, first_seen_at, applied_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(channel, external_id) DO UPDATE SET name = excluded.name, "
            "status = excluded.status, reserves = excluded.reserves, "
            "fulfilled_by_channel = excluded.fulfilled_by_channel, "
            "updated_at = excluded.updated_at, content_hash = excluded.content_hash, "
            "created_at = excluded.created_at, customer = excluded.customer, "
            "currency = excluded.currency, total = excluded.total, raw = excluded.raw, "
            "applied_at = excluded.applied_at",
            (
                order.channel,
                order.external_id,
                order.name,
                order.status,
                int(order.reserves),
                int(order.fulfilled_by_channel),
                iso(order.updated_at),
                order.content_hash,
                iso(order.created_at) if order.created_at else None,
                order.customer,
                order.currency,
                order.total,
                order.raw,
                iso(order.first_seen_at),
                now,
            ),
        )
        self.conn.executemany(
            "INSERT INTO order_lines (channel, external_id, line_id, channel_sku, sku, title, qty, "
            "qty_shipped, qty_cancelled, qty_returned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(channel, external_id, line_id) DO UPDATE SET "
            "channel_sku = excluded.channel_sku, sku = excluded.sku, title = excluded.title, "
            "qty = excluded.qty, qty_shipped = excluded.qty_shipped, "
            "qty_cancelled = excluded.qty_cancelled, qty_returned = excluded.qty_returned",
            [
                (
                    order.channel,
                    order.external_id,
                    line.line_id,
                    line.channel_sku,
                    line.sku,
                    line.title,
                    line.qty,
                    line.shipped,
                    line.cancelled,
                    line.returned,
                )
                for line in order.lines.values()
            ],
        )
        self.conn.executemany(
            "INSERT INTO line_components (channel, external_id, line_id, component, per_unit) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (order.channel, order.external_id, line_id, comp, per_unit)
                for line_id in new_lines
                for comp, per_unit in order.lines[line_id].components.items()
            ],
        )

    def find_orders(self, reference: str, channel: str | None = None) -> list[tuple[str, str, str]]:
        """(channel, id, name) of the orders whose channel id or name is `reference`."""
        names = {reference, reference.lstrip("#"), "#" + reference.lstrip("#")}
        marks = ",".join("?" * len(names))
        sql = (
            "SELECT channel, external_id, name FROM orders "
            f"WHERE (external_id = ? OR name IN ({marks}))"
        )
        params: list[str] = [reference, *sorted(names)]
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        return [(c, i, n) for c, i, n in self.conn.execute(sql + " ORDER BY channel", params)]

    # -- shipments ---------------------------------------------------------------------------

    def find_shipment(self, channel: str, external_id: str, tracking_number: str) -> int | None:
        """A shipment already recorded for this order under this tracking number."""
        row = self.conn.execute(
            "SELECT id FROM shipments WHERE channel = ? AND external_id = ? "
            "AND tracking_number = ? AND tracking_number != ''",
            (channel, external_id, tracking_number),
        ).fetchone()
        return int(row[0]) if row else None

    def add_shipment(
        self,
        *,
        channel: str,
        external_id: str,
        carrier: str,
        tracking_number: str,
        tracking_url: str,
        location: str,
        source: str,
        shipped_at: datetime,
        lines: Mapping[str, int],
    ) -> int:
        """Record a shipment and the quantity it took from each line."""
        cur = self.conn.execute(
            "INSERT INTO shipments (channel, external_id, carrier, tracking_number, tracking_url, "
            "location, source, shipped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                channel,
                external_id,
                carrier,
                tracking_number,
                tracking_url,
                location,
                source,
                iso(shipped_at),
            ),
        )
        shipment_id = int(cur.lastrowid or 0)
        self.conn.executemany(
            "INSERT INTO shipment_lines (shipment_id, line_id, qty) VALUES (?, ?, ?)",
            [(shipment_id, line_id, qty) for line_id, qty in lines.items() if qty > 0],
        )
        return shipment_id

    # -- listings ----------------------------------------------------------------------------

    def get_listing(self, channel: str, sku: str) -> Listing | None:
        """What is known of a SKU on a channel, or None."""
        row = self.conn.execute(
            "SELECT status, target_qty, published_qty, published_at, channel_qty, seen_at "
            "FROM listings WHERE channel = ? AND sku = ?",
            (channel, sku),
        ).fetchone()
        if row is None:
            return None
        return Listing(
            channel, sku, row[0], row[1], row[2], _opt_time(row[3]), row[4], _opt_time(row[5])
        )

    def targets(self, skus: Iterable[str]) -> dict[tuple[str, str], int | None]:
        """The newest computed published number of every channel, for the SKUs asked for."""
        wanted = list(skus)
        result: dict[tuple[str, str], int | None] = {}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for channel, sku, target in self.conn.execute(
                f"SELECT channel, sku, target_qty FROM listings WHERE sku IN ({marks})", chunk
            ):
                result[(channel, sku)] = target
        return result

    def expected_levels(self, skus: Iterable[str]) -> dict[tuple[str, str], int]:
        """What each channel should show now for these SKUs: its newest known number (accepted
        push or observed level), less the channel's own sales of the SKU since then."""
        wanted = list(skus)
        result: dict[tuple[str, str], int] = {}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            result.update(
                ((channel, sku), level)
                for channel, sku, level in self.conn.execute(
                    _EXPECTED_LEVELS.format(marks=marks), chunk
                )
            )
        return result

    def expected_level(self, channel: str, sku: str) -> int | None:
        """`expected_levels` for one (channel, SKU); None when the channel's number is unknown."""
        return self.expected_levels([sku]).get((channel, sku))

    def all_targets(self) -> dict[tuple[str, str], int | None]:
        """The newest computed published number of every (channel, sku)."""
        return {
            (c, s): t
            for c, s, t in self.conn.execute("SELECT channel, sku, target_qty FROM listings")
        }

    def set_targets(self, targets: Iterable[tuple[str, str, int]]) -> None:
        """Record newly computed published numbers."""
        self.conn.executemany(
            "INSERT INTO listings (channel, sku, target_qty) VALUES (?, ?, ?) "
            "ON CONFLICT(channel, sku) DO UPDATE SET target_qty = excluded.target_qty",
            list(targets),
        )

    def set_published(self, channel: str, sku: str, qty: int, at: datetime) -> None:
        """The channel accepted `qty`: it is now both the published and the seen value."""
        self.conn.execute(
            "INSERT INTO listings "
            "(channel, sku, published_qty, published_at, channel_qty, seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(channel, sku) DO UPDATE SET "
            "published_qty = excluded.published_qty, published_at = excluded.published_at, "
            "channel_qty = excluded.channel_qty, seen_at = excluded.seen_at",
            (channel, sku, qty, iso(at), qty, iso(at)),
        )

    def set_seen(self, channel: str, sku: str, qty: int, at: datetime) -> None:
        """Record the level last seen on the channel."""
        self.conn.execute(
            "INSERT INTO listings (channel, sku, channel_qty, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(channel, sku) DO UPDATE SET channel_qty = excluded.channel_qty, "
            "seen_at = excluded.seen_at",
            (channel, sku, qty, iso(at)),
        )

    # -- outbox ------------------------------------------------------------------------------

    def enqueue(self, channel: str, kind: str, key: str, value: Any, expected: int | None) -> int:
        """Queue a push; a pending row for the same (channel, kind, key) takes the newer value."""
        now = iso(self.now())
        row = self.conn.execute(
            _ENQUEUE + " RETURNING id",
            (channel, kind, key, json.dumps(value), expected, now, now, now, now),
        ).fetchone()
        return int(row[0])

    def enqueue_many(self, rows: Iterable[tuple[str, str, str, Any, int | None]]) -> None:
        """`enqueue` for many (channel, kind, key, value, expected) rows at once."""
        now = iso(self.now())
        self.conn.executemany(
            _ENQUEUE,
            [
                (channel, kind, key, json.dumps(value), expected, now, now, now, now)
                for channel, kind, key, value, expected in rows
            ],
        )

    def rebase_pending(self, channel: str, key: str, expected: int) -> None:
        """Point a pending compare-and-set stock push at the value the channel shows now."""
        self.conn.execute(
            "UPDATE outbox SET expected = ? WHERE channel = ? AND kind = 'stock' AND key = ? "
            "AND state = 'pending' AND expected IS NOT NULL",
            (expected, channel, key),
        )

    def has_queued(self, channel: str, kind: str, key: str) -> bool:
        """Whether a push for (channel, kind, key) is pending or in flight."""
        row = self.conn.execute(
            "SELECT 1 FROM outbox WHERE channel = ? AND kind = ? AND key = ? "
            "AND state IN ('pending', 'inflight') LIMIT 1",
            (channel, kind, key),
        ).fetchone()
        return row is not None

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        """One outbox row, or None."""
        rows = self._outbox_rows("WHERE id = ?", (outbox_id,))
        return rows[0] if rows else None

    def outbox_rows(
        self, *, state: str | None = None, channel: str | None = None
    ) -> list[OutboxRow]:
        """Outbox rows, optionally by state and channel, oldest first."""
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if channel is not None:
            clauses.append("channel = ?")
            params.append(channel)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._outbox_rows(where + " ORDER BY id", params)

    def _outbox_rows(self, tail: str, params: Sequence[Any]) -> list[OutboxRow]:
        return [
            OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], parse_iso(r[9]),
                      r[10], parse_iso(r[11]))
            for r in self.conn.execute(
                "SELECT id, channel, kind, key, value, expected, revision, state, attempts, "
                f"next_attempt_at, last_error, queued_at FROM outbox {tail}",
                params,
            )
        ]

    def set_outbox_state(self, outbox_id: int, state: str, *, error: str | None = None) -> None:
        """Move an outbox row to a new state."""
        self.conn.execute(
            "UPDATE outbox SET state = ?, last_error = coalesce(?, last_error), updated_at = ? "
            "WHERE id = ?",
            (state, error, iso(self.now()), outbox_id),
        )

    def claim_due(self, channel: str, kind: str, limit: int) -> list[OutboxRow]:
        """Take up to `limit` due pending rows of a channel's `kind` ('stock' or 'shipment'),
        longest due first, marking them inflight."""
        now = iso(self.now())
        # Ordered as the outbox_due_kind index is (its entries end with the rowid), so SQLite
        # reads `limit` entries and stops. ORDER BY id alone sorted every due row on each claim:
        # quadratic over a 100k-SKU reconcile. Per-key order is safe either way: a key has at
        # most one pending row (coalescing).
        rows = self._outbox_rows(
            "WHERE channel = ? AND kind = ? AND state = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (channel, kind, now, limit),
        )
        self.conn.executemany(
            "UPDATE outbox SET state = 'inflight', attempts = attempts + 1, updated_at = ? "
            "WHERE id = ?",
            [(now, row.id) for row in rows],
        )
        return [replace(row, state="inflight", attempts=row.attempts + 1) for row in rows]

    def expedite_outbox(self, channel: str) -> int:
        """Make every pending row of `channel` due now (the channel recovered); returns how many
        were waiting."""
        now = iso(self.now())
        return self.conn.execute(
            "UPDATE outbox SET next_attempt_at = ? "
            "WHERE channel = ? AND state = 'pending' AND next_attempt_at > ?",
            (now, channel, now),
        ).rowcount

    def retry_outbox(
        self, row: OutboxRow, error: str, next_attempt_at: datetime, *, count: bool = True
    ) -> str:
        """Put an in-flight row back for a later attempt; 'superseded' if a newer value waits.

        With `count=False` the attempt is given back: the failure was not the row's (a rate
        limit, refused credentials, a listing not discovered yet).
        """
        newer = self.conn.execute(
            "SELECT 1 FROM outbox WHERE channel = ? AND kind = ? AND key = ? AND state = 'pending'",
            (row.channel, row.kind, row.key),
        ).fetchone()
        state = "superseded" if newer else "pending"
        self.conn.execute(
            "UPDATE outbox SET state = ?, last_error = ?, next_attempt_at = ?, updated_at = ?, "
            "attempts = max(attempts - ?, 0) WHERE id = ?",
            (state, error, iso(next_attempt_at), iso(self.now()), 0 if count else 1, row.id),
        )
        return state

    def prune_history(self, *, settled_before: datetime, events_before: datetime) -> dict[str, int]:
        """Forget finished work: pushes done, superseded or skipped and webhooks processed
        before `settled_before`, and events before `events_before`. Dead letters, pending work
        and parked webhooks are kept whatever their age: they still need someone."""
        settled, events = iso(settled_before), iso(events_before)
        pruned = {
            "outbox": self.conn.execute(
                "DELETE FROM outbox WHERE state IN ('done', 'superseded', 'skipped') "
                "AND updated_at < ?", (settled,)).rowcount,
            "inbox": self.conn.execute(
                "DELETE FROM inbox WHERE processed_at IS NOT NULL AND parked = 0 "
                "AND processed_at < ?", (settled,)).rowcount,
            "events": self.conn.execute("DELETE FROM events WHERE at < ?", (events,)).rowcount,
        }
        return pruned

    def release_inflight(
        self, channel: str | None = None, why: str = "interrupted by a restart"
    ) -> int:
        """Rows left in flight go back to pending (or are superseded): at start-up every
        channel's (a crash), or one channel's after its pusher could not record an outcome."""
        if channel is None:
            rows = self._outbox_rows("WHERE state = 'inflight' ORDER BY id", ())
        else:
            rows = self._outbox_rows("WHERE state = 'inflight' AND channel = ? ORDER BY id",
                                     (channel,))
        for row in rows:
            self.retry_outbox(row, row.last_error or why, self.now())
        return len(rows)

    def retry_dead(self, channel: str | None = None, outbox_id: int | None = None) -> int:
        """Give dead letters a fresh set of attempts; returns how many. A dead letter with a newer
        value for its key (pending, in flight or already accepted) is set superseded instead:
        pushing it would put an older number back on the channel."""
        clauses: list[str] = ["o.state = 'dead'"]
        params: list[str | int] = []
        if channel is not None:
            clauses.append("o.channel = ?")
            params.append(channel)
        if outbox_id is not None:
            clauses.append("o.id = ?")
            params.append(outbox_id)
        now = iso(self.now())
        self.conn.execute(
            "UPDATE outbox AS o SET state = 'superseded', updated_at = ? WHERE "
            + " AND ".join(clauses) + " AND EXISTS (SELECT 1 FROM outbox n WHERE "
            "n.channel = o.channel AND n.kind = o.kind AND n.key = o.key AND n.id > o.id)",
            (now, *params),
        )
        cur = self.conn.execute(
            "UPDATE outbox AS o SET state = 'pending', attempts = 0, next_attempt_at = ?, "
            "updated_at = ? WHERE " + " AND ".join(clauses) + " AND NOT EXISTS (SELECT 1 FROM "
            "outbox p WHERE p.channel = o.channel AND p.kind = o.kind AND p.key = o.key "
            "AND p.state = 'pending')",
            (now, now, *params),
        )
        return cur.rowcount

    def retry_one(self, outbox_id: int) -> str:
        """Retry one row now: 'retried' (a dead letter), 'due_now' (pending), or why not."""
        row = self.get_outbox(outbox_id)
        if row is None:
            return "missing"
        if row.state == "dead":
            newer = self.conn.execute(
                "SELECT 1 FROM outbox WHERE channel = ? AND kind = ? AND key = ? AND id > ? "
                "LIMIT 1",
                (row.channel, row.kind, row.key, row.id),
            ).fetchone()
            if newer:
                # Pushing it would put an older value back; it stops counting as a dead letter.
                self.set_outbox_state(outbox_id, "superseded")
                return "replaced"
            return "retried" if self.retry_dead(outbox_id=outbox_id) else "newer_pending"
        if row.state == "pending":
            self.conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (iso(self.now()), iso(self.now()), outbox_id),
            )
            return "due_now"
        return row.state

    # -- drop-folder files -------------------------------------------------------------------

    def shipment_file(self, sha256: str) -> tuple[str, str] | None:
        """(name, applied_at) of the file with this content, if one was applied."""
        row = self.conn.execute(
            "SELECT name, applied_at FROM shipment_files WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def add_shipment_file(self, sha256: str, name: str, shipments: int) -> None:
        """Record a file as applied, in the transaction that applies its shipments."""
        self.conn.execute(
            "INSERT INTO shipment_files (sha256, name, shipments, applied_at) VALUES (?, ?, ?, ?)",
            (sha256, name, shipments, iso(self.now())),
        )

    # -- inbox -------------------------------------------------------------------------------

    def insert_delivery(
        self, channel: str, delivery_key: str, topic: str, headers: Mapping[str, str], body: bytes
    ) -> bool:
        """Store a verified webhook once; False when this delivery key was already stored."""
        now = iso(self.now())
        cur = self.conn.execute(
            "INSERT INTO inbox (channel, delivery_key, topic, headers, body, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(channel, delivery_key) DO NOTHING",
            (channel, delivery_key, topic, json.dumps(dict(headers)), body, now),
        )
        self.conn.execute("UPDATE channels SET last_webhook_at = ? WHERE name = ?", (now, channel))
        return cur.rowcount == 1

    def pending_deliveries(self, limit: int) -> list[InboxRow]:
        """Stored webhooks not yet processed nor parked, oldest first."""
        return [
            InboxRow(r[0], r[1], r[2], json.loads(r[3]), bytes(r[4]), r[5])
            for r in self.conn.execute(
                "SELECT channel, delivery_key, topic, headers, body, attempts FROM inbox "
                "WHERE processed_at IS NULL AND parked = 0 ORDER BY received_at LIMIT ?",
                (limit,),
            )
        ]

    def finish_delivery(self, channel: str, delivery_key: str) -> None:
        """A stored webhook's effects committed: never process it again."""
        self.conn.execute(
            "UPDATE inbox SET processed_at = ?, error = NULL WHERE channel = ? "
            "AND delivery_key = ?",
            (iso(self.now()), channel, delivery_key),
        )

    def fail_delivery(self, channel: str, delivery_key: str, error: str, *, park: bool) -> None:
        """Count a failed attempt at a stored webhook; `park` sets it aside for a person."""
        self.conn.execute(
            "UPDATE inbox SET attempts = attempts + 1, error = ?, parked = ? "
            "WHERE channel = ? AND delivery_key = ?",
            (error, int(park), channel, delivery_key),
        )

    # -- cursors and channel health ------------------------------------------------------------

    def get_cursor(self, channel: str, stream: str) -> str | None:
        """The resume point of a channel's stream (e.g. its order poll)."""
        row = self.conn.execute(
            "SELECT value FROM cursors WHERE channel = ? AND stream = ?", (channel, stream)
        ).fetchone()
        return row[0] if row else None

    def set_cursor(self, channel: str, stream: str, value: str) -> None:
        """Move a stream's resume point, in the transaction of the data it covers."""
        self.conn.execute(
            "INSERT INTO cursors (channel, stream, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(channel, stream) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (channel, stream, value, iso(self.now())),
        )

    def set_channel_state(self, name: str, state: str, reason: str | None) -> None:
        """Record a channel's health state and why."""
        self.conn.execute(
            "UPDATE channels SET state = ?, state_reason = ?, state_changed_at = ? WHERE name = ?",
            (state, reason, iso(self.now()), name),
        )

    def touch_channel(self, name: str, *, polled: bool = False, error: str | None = None) -> None:
        """Note a finished poll, or the newest error, for status pages."""
        if polled:
            self.conn.execute(
                "UPDATE channels SET last_poll_at = ? WHERE name = ?", (iso(self.now()), name)
            )
        if error is not None:
            self.conn.execute("UPDATE channels SET last_error = ? WHERE name = ?", (error, name))

    # -- listings from discovery ---------------------------------------------------------------

    def upsert_listing(self, channel: str, sku: str, ids: Mapping[str, str], status: str) -> None:
        """Record how a channel lists a SKU (its ids) and whether it can take pushes."""
        self.conn.execute(
            "INSERT INTO listings (channel, sku, channel_ids, status) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(channel, sku) DO UPDATE SET channel_ids = excluded.channel_ids, "
            "status = excluded.status",
            (channel, sku, json.dumps(dict(ids)), status),
        )

    def listing_ids(
        self, channel: str, skus: Iterable[str]
    ) -> dict[str, tuple[dict[str, str], str]]:
        """The channel's ids and listing status for each SKU that has been discovered."""
        wanted = list(skus)
        result: dict[str, tuple[dict[str, str], str]] = {}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for sku, ids, status in self.conn.execute(
                f"SELECT sku, channel_ids, status FROM listings WHERE channel = ? "
                f"AND sku IN ({marks}) AND channel_ids IS NOT NULL",
                (channel, *chunk),
            ):
                result[sku] = (json.loads(ids), status)
        return result

    # -- events ------------------------------------------------------------------------------

    def add_event(
        self,
        kind: str,
        message: str,
        *,
        level: str = "info",
        channel: str | None = None,
        sku: str | None = None,
        ref: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Record something notable for status pages and operators."""
        self.conn.execute(
            "INSERT INTO events (at, kind, level, channel, sku, ref, message, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (iso(self.now()), kind, level, channel, sku, ref, message, json.dumps(data or {})),
        )


# The newest baseline of each listing (an accepted push or an observed level, whichever is later),
# less the channel's own sales of that SKU in orders created after it.
_EXPECTED_LEVELS = """
WITH base AS (
    SELECT channel, sku,
           CASE WHEN seen_at IS NOT NULL AND (published_at IS NULL OR seen_at > published_at)
                THEN seen_at ELSE published_at END AS at,
           CASE WHEN seen_at IS NOT NULL AND (published_at IS NULL OR seen_at > published_at)
                THEN channel_qty ELSE published_qty END AS qty
    FROM listings WHERE sku IN ({marks})
)
SELECT b.channel, b.sku, b.qty - coalesce((
    SELECT sum(l.qty - l.qty_cancelled) FROM order_lines l
    JOIN orders o ON o.channel = l.channel AND o.external_id = l.external_id
    WHERE l.channel = b.channel AND l.sku = b.sku AND o.fulfilled_by_channel = 0
      AND coalesce(o.created_at, o.first_seen_at) > b.at), 0)
FROM base b WHERE b.at IS NOT NULL AND b.qty IS NOT NULL
"""


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

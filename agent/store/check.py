"""`storesync db check`: SQLite's own integrity check, then storesync's invariants."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Breach:
    """One failed check, with enough detail to find the rows."""

    check: str
    detail: str


_STOCK_VS_LEDGER = """
SELECT sku, location, on_hand, ledger FROM (
    SELECT s.sku, s.location, s.on_hand,
           coalesce((SELECT sum(delta) FROM movements m
                     WHERE m.sku = s.sku AND m.location = s.location), 0) AS ledger
    FROM stock s
    UNION ALL
    SELECT m.sku, m.location, 0, sum(m.delta) FROM movements m
    WHERE NOT EXISTS (SELECT 1 FROM stock s WHERE s.sku = m.sku AND s.location = m.location)
    GROUP BY m.sku, m.location
) WHERE on_hand != ledger
"""

# committed(s) = sum over lines of reserving orders of (qty - shipped - cancelled) x units of s.
_COMMITTED_VS_LINES = """
SELECT s.sku, s.committed, coalesce(h.held, 0) FROM skus s
LEFT JOIN (
    SELECT c.component AS sku,
           sum((l.qty - l.qty_shipped - l.qty_cancelled) * c.per_unit) AS held
    FROM line_components c
    JOIN order_lines l USING (channel, external_id, line_id)
    JOIN orders o USING (channel, external_id)
    WHERE o.reserves = 1
    GROUP BY c.component
) h ON h.sku = s.sku
WHERE s.committed != coalesce(h.held, 0)
"""


def check_database(conn: sqlite3.Connection, *, limit: int = 20) -> list[Breach]:
    """Every problem found: integrity, foreign keys, stock vs ledger, committed vs open lines."""
    breaches: list[Breach] = []
    for (message,) in conn.execute("PRAGMA integrity_check"):
        if message != "ok":
            breaches.append(Breach("integrity_check", message))
    for table, rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check").fetchmany(limit):
        breaches.append(Breach("foreign_keys", f"{table} row {rowid} points at a missing {parent}"))
    for sku, location, on_hand, ledger in conn.execute(_STOCK_VS_LEDGER).fetchmany(limit):
        breaches.append(
            Breach(
                "stock_equals_ledger",
                f"{sku} at {location}: stock says {on_hand}, movements sum to {ledger}",
            )
        )
    for sku, committed, held in conn.execute(_COMMITTED_VS_LINES).fetchmany(limit):
        breaches.append(
            Breach(
                "committed_equals_open_lines",
                f"{sku}: committed is {committed}, open order lines hold {held}",
            )
        )
    for channel, kind, key, count in conn.execute(
        "SELECT channel, kind, key, count(*) FROM outbox WHERE state = 'pending' "
        "GROUP BY channel, kind, key HAVING count(*) > 1"
    ).fetchmany(limit):
        breaches.append(Breach("one_pending_push", f"{channel} {kind} {key}: {count} pending rows"))
    return breaches

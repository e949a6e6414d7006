"""How low-stock alerts are read and written: sales in a window, availability, alert rows.

Functions take a connection, so the evaluation (inside the writer's transaction) and /status
(on a read connection) share them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.store.timestamps import iso

if TYPE_CHECKING:
    from agent.engine.reorder import LowStock

# Units of each stock SKU taken by orders created since a moment: through line_components, so a
# bundle's sale counts for its components. Orders the channel fulfils (FBA) take none of ours.
_UNITS_SOLD = """
SELECT c.component, sum((l.qty - l.qty_cancelled) * c.per_unit)
FROM orders o
JOIN order_lines l ON l.channel = o.channel AND l.external_id = o.external_id
JOIN line_components c
  ON c.channel = l.channel AND c.external_id = l.external_id AND c.line_id = l.line_id
WHERE o.fulfilled_by_channel = 0
  AND (o.created_at >= :since OR (o.created_at IS NULL AND o.first_seen_at >= :since))
GROUP BY c.component
"""

# Available = on hand over every location, less committed; bundles hold no stock of their own.
_STOCK_LEVELS = """
SELECT s.sku, s.title, coalesce(sum(t.on_hand), 0) - s.committed
FROM skus s LEFT JOIN stock t ON t.sku = s.sku
WHERE s.kind = 'simple' {only}
GROUP BY s.sku
ORDER BY s.sku
"""
_IN_CHUNK = 500  # SKUs per IN (...) list, well under SQLite's variable limit

_ALERT_COLUMNS = (
    "id, sku, available, reorder_point, source, daily_velocity, lead_time_days, raised_at, "
    "cleared_at, notify_state, notify_attempts, next_notify_at, notified_at, notify_error"
)


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One stored alert."""

    id: int
    sku: str
    available: int
    reorder_point: int
    source: str
    daily_velocity: float
    lead_time_days: float
    raised_at: str
    cleared_at: str | None
    notify_state: str
    notify_attempts: int
    next_notify_at: str | None
    notified_at: str | None
    notify_error: str | None

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body for this alert."""
        return {
            "event": "reorder_alert",
            "id": self.id,
            "sku": self.sku,
            "available": self.available,
            "reorder_point": self.reorder_point,
            "source": self.source,
            "daily_velocity": self.daily_velocity,
            "at": self.raised_at,
        }


def _rows(conn: sqlite3.Connection, tail: str, params: Any = ()) -> list[AlertRow]:
    return [
        AlertRow(*tuple(row))
        for row in conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts {tail}", params)
    ]


def units_sold_since(conn: sqlite3.Connection, since: str) -> dict[str, int]:
    """Units of each stock SKU sold in orders created at or after `since` (an iso timestamp)."""
    return {
        sku: int(units)
        for sku, units in conn.execute(_UNITS_SOLD, {"since": since})
        if units
    }


def stock_levels(
    conn: sqlite3.Connection, skus: Collection[str] | None = None
) -> list[tuple[str, str | None, int]]:
    """(sku, title, available) of every stock SKU, or of those in `skus`."""
    if skus is None:
        rows = list(conn.execute(_STOCK_LEVELS.format(only="")))
    else:
        names, rows = sorted(skus), []
        for start in range(0, len(names), _IN_CHUNK):
            part = names[start : start + _IN_CHUNK]
            only = f"AND s.sku IN ({','.join('?' * len(part))})"
            rows.extend(conn.execute(_STOCK_LEVELS.format(only=only), part))
    return [(sku, title, int(available)) for sku, title, available in rows]


def open_alerts(conn: sqlite3.Connection) -> dict[str, AlertRow]:
    """Alerts not cleared yet, by SKU."""
    return {row.sku: row for row in _rows(conn, "WHERE cleared_at IS NULL")}


def get_alert(conn: sqlite3.Connection, alert_id: int) -> AlertRow | None:
    """One alert by id."""
    rows = _rows(conn, "WHERE id = ?", (alert_id,))
    return rows[0] if rows else None


def insert_alert(
    conn: sqlite3.Connection, item: LowStock, *, at: datetime, notify: bool
) -> AlertRow:
    """Record a SKU entering alert; with `notify`, its webhook is due now."""
    stamp = iso(at)
    cur = conn.execute(
        "INSERT INTO alerts (sku, available, reorder_point, source, daily_velocity, "
        "lead_time_days, raised_at, updated_at, notify_state, next_notify_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (item.sku, item.available, item.point.value, item.point.source,
         item.point.daily_velocity, item.point.lead_time_days, stamp, stamp,
         "pending" if notify else "off", stamp if notify else None),
    )
    row = get_alert(conn, int(cur.lastrowid or 0))
    assert row is not None
    return row


def refresh_alert(conn: sqlite3.Connection, alert_id: int, item: LowStock, *, at: datetime) -> None:
    """Keep an open alert's numbers current (the webhook announced the ones it was raised with)."""
    conn.execute(
        "UPDATE alerts SET available = ?, reorder_point = ?, source = ?, daily_velocity = ?, "
        "lead_time_days = ?, updated_at = ? WHERE id = ?",
        (item.available, item.point.value, item.point.source, item.point.daily_velocity,
         item.point.lead_time_days, iso(at), alert_id),
    )


def clear_alert(conn: sqlite3.Connection, alert_id: int, *, at: datetime) -> None:
    """Close an alert; a webhook not delivered yet is dropped."""
    stamp = iso(at)
    conn.execute(
        "UPDATE alerts SET cleared_at = ?, updated_at = ?, next_notify_at = NULL, "
        "notify_state = CASE notify_state WHEN 'pending' THEN 'dropped' ELSE notify_state END "
        "WHERE id = ?",
        (stamp, stamp, alert_id),
    )


def due_notifications(conn: sqlite3.Connection, now: datetime, limit: int = 20) -> list[AlertRow]:
    """Alerts whose webhook is due, oldest first."""
    return _rows(
        conn,
        "WHERE notify_state = 'pending' AND next_notify_at <= ? ORDER BY next_notify_at, id "
        "LIMIT ?",
        (iso(now), limit),
    )


def next_notification_at(conn: sqlite3.Connection) -> str | None:
    """When the next pending webhook is due, if any is."""
    row = conn.execute(
        "SELECT min(next_notify_at) FROM alerts WHERE notify_state = 'pending'"
    ).fetchone()
    return row[0] if row else None


def mark_notified(conn: sqlite3.Connection, alert_id: int, *, at: datetime) -> None:
    """The receiver took the webhook."""
    conn.execute(
        "UPDATE alerts SET notify_state = 'sent', notified_at = ?, next_notify_at = NULL, "
        "notify_attempts = notify_attempts + 1, notify_error = NULL "
        "WHERE id = ? AND notify_state IN ('pending', 'dropped')",  # cleared mid-delivery
        (iso(at), alert_id),
    )


def retry_notification(
    conn: sqlite3.Connection, alert_id: int, *, error: str, next_at: datetime | None
) -> None:
    """An attempt failed: try again at `next_at`, or give up (failed) when it is None."""
    conn.execute(
        "UPDATE alerts SET notify_attempts = notify_attempts + 1, notify_error = ?, "
        "next_notify_at = ?, notify_state = ? WHERE id = ? AND notify_state = 'pending'",
        (error, iso(next_at) if next_at else None, "pending" if next_at else "failed", alert_id),
    )


def alerts_report(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Open alerts for /status, lowest availability first."""
    return [
        {
            "sku": sku,
            "title": title,
            "available": available,
            "reorder_point": point,
            "source": source,
            "daily_velocity": velocity,
            "lead_time_days": lead,
            "since": since,
        }
        for sku, title, available, point, source, velocity, lead, since in conn.execute(
            "SELECT a.sku, s.title, a.available, a.reorder_point, a.source, a.daily_velocity, "
            "a.lead_time_days, a.raised_at FROM alerts a LEFT JOIN skus s ON s.sku = a.sku "
            "WHERE a.cleared_at IS NULL ORDER BY a.available - a.reorder_point, a.sku"
        )
    ]

"""Read-only questions the CLI and the ops endpoints ask of the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from agent.engine.stock_math import available_quantity, bundle_available


def sku_report(conn: sqlite3.Connection, sku: str, *, pushes: int = 10) -> dict[str, Any] | None:
    """On hand, committed, available, published per channel and the last pushes of one SKU."""
    row = conn.execute("SELECT kind, title, committed FROM skus WHERE sku = ?", (sku,)).fetchone()
    if row is None:
        return None
    kind, title, committed = row[0], row[1], int(row[2])
    by_location = {
        loc: qty
        for loc, qty in conn.execute(
            "SELECT location, on_hand FROM stock WHERE sku = ? ORDER BY location", (sku,)
        )
    }
    if kind == "bundle":
        components = dict(
            conn.execute(
                "SELECT component, qty FROM bundle_components WHERE bundle = ?", (sku,)
            ).fetchall()
        )
        comp_rows = {
            comp: (int(on_hand or 0), int(held))
            for comp, on_hand, held in conn.execute(
                "SELECT s.sku, (SELECT sum(on_hand) FROM stock WHERE sku = s.sku), s.committed "
                f"FROM skus s WHERE s.sku IN ({','.join('?' * len(components))})",
                list(components),
            )
        }
        on_hand = bundle_available(components, {c: v[0] for c, v in comp_rows.items()})
        available = bundle_available(
            components, {c: available_quantity(*v) for c, v in comp_rows.items()}
        )
        committed = on_hand - available
    else:
        on_hand = sum(by_location.values())
        available = available_quantity(on_hand, committed)
    published = {
        channel: target
        for channel, target in conn.execute(
            "SELECT channel, target_qty FROM listings WHERE sku = ? ORDER BY channel", (sku,)
        )
    }
    last_pushes = [
        {
            "channel": channel,
            "value": int(value),
            "state": state,
            "attempts": attempts,
            "at": updated_at,
            "error": error,
        }
        for channel, value, state, attempts, updated_at, error in conn.execute(
            "SELECT channel, value, state, attempts, updated_at, last_error FROM outbox "
            "WHERE kind = 'stock' AND key = ? ORDER BY id DESC LIMIT ?",
            (sku, pushes),
        )
    ]
    return {
        "sku": sku,
        "kind": kind,
        "title": title,
        "on_hand": on_hand,
        "committed": committed,
        "available": available,
        "locations": by_location,
        "published": published,
        "last_pushes": last_pushes,
    }


def channel_rows(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Each channel's stored health, last poll, last webhook and last error."""
    return {
        name: {
            "kind": kind,
            "state": state,
            "state_reason": reason,
            "state_changed_at": changed,
            "last_poll_at": polled,
            "last_webhook_at": webhook,
            "last_error": error,
        }
        for name, kind, state, reason, changed, polled, webhook, error in conn.execute(
            "SELECT name, kind, state, state_reason, state_changed_at, last_poll_at, "
            "last_webhook_at, last_error FROM channels ORDER BY name"
        )
    }


def newest_orders(conn: sqlite3.Connection) -> dict[str, str]:
    """When each channel's newest order was first seen (by webhook or by poll)."""
    return dict(
        conn.execute("SELECT channel, max(first_seen_at) FROM orders GROUP BY channel").fetchall()
    )


def outbox_summary(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Per channel: rows pending, in flight and dead, and when the oldest waiting row was queued."""
    summary: dict[str, dict[str, Any]] = {}
    # count(*) reads the outbox_due index alone, and each group's oldest queued_at is one seek
    # in outbox_queued: min(queued_at) in the same query read every row of the table.
    for channel, state, count in conn.execute(
        "SELECT channel, state, count(*) FROM outbox "
        "WHERE state IN ('pending', 'inflight', 'dead') GROUP BY channel, state"
    ).fetchall():
        entry = summary.setdefault(
            channel, {"pending": 0, "inflight": 0, "dead": 0, "oldest_queued_at": None}
        )
        entry[state] = count
        if state == "dead":
            continue
        (oldest,) = conn.execute(
            "SELECT min(queued_at) FROM outbox WHERE channel = ? AND state = ?", (channel, state)
        ).fetchone()
        # None when the group's rows moved on between the two queries (read outside one
        # snapshot, as `storesync` commands do).
        if oldest is not None and (entry["oldest_queued_at"] is None
                                   or oldest < entry["oldest_queued_at"]):
            entry["oldest_queued_at"] = oldest
    return summary


def inbox_summary(conn: sqlite3.Connection) -> dict[str, int]:
    """Stored webhooks waiting to be processed, and those parked with an error."""
    pending = parked = 0
    for is_parked, count in conn.execute(
        "SELECT parked, count(*) FROM inbox WHERE processed_at IS NULL GROUP BY parked"
    ):
        if is_parked:
            parked = count
        else:
            pending = count
    return {"pending": pending, "parked": parked}


def recent_events(
    conn: sqlite3.Connection, *, levels: tuple[str, ...] = ("warning", "error"), limit: int = 20
) -> list[dict[str, Any]]:
    """The newest notable events (errors, dead letters, drift, unknown SKUs)."""
    marks = ",".join("?" * len(levels))
    return [
        {"at": at, "kind": kind, "level": level, "channel": channel, "sku": sku,
         "message": message}
        for at, kind, level, channel, sku, message in conn.execute(
            f"SELECT at, kind, level, channel, sku, message FROM events WHERE level IN ({marks}) "
            "ORDER BY id DESC LIMIT ?",
            (*levels, limit),
        )
    ]


def outbox_rows(
    conn: sqlite3.Connection,
    *,
    state: str | tuple[str, ...] | None = None,
    channel: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Outbox rows, newest first, for people to look at; `state` may name several."""
    clauses: list[str] = []
    params: list[str] = []
    if state:
        states = (state,) if isinstance(state, str) else state
        clauses.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(states)
    if channel:
        clauses.append("channel = ?")
        params.append(channel)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return [
        {"id": i, "channel": c, "kind": k, "key": key, "value": json.loads(v), "expected": e,
         "state": s, "attempts": a, "next_attempt_at": n, "last_error": err, "queued_at": q}
        for i, c, k, key, v, e, s, a, n, err, q in conn.execute(
            "SELECT id, channel, kind, key, value, expected, state, attempts, next_attempt_at, "
            f"last_error, queued_at FROM outbox {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
    ]


def order_report(conn: sqlite3.Connection, channel: str, external_id: str) -> dict[str, Any] | None:
    """One order as stored: status, version, lines and shipments."""
    row = conn.execute(
        "SELECT name, status, reserves, updated_at, created_at, first_seen_at, "
        "fulfilled_by_channel FROM orders WHERE channel = ? AND external_id = ?",
        (channel, external_id),
    ).fetchone()
    if row is None:
        return None
    lines = [
        {"line_id": lid, "channel_sku": csku, "sku": sku, "qty": qty, "shipped": sh,
         "cancelled": ca, "returned": re}
        for lid, csku, sku, qty, sh, ca, re in conn.execute(
            "SELECT line_id, channel_sku, sku, qty, qty_shipped, qty_cancelled, qty_returned "
            "FROM order_lines WHERE channel = ? AND external_id = ? ORDER BY line_id",
            (channel, external_id),
        )
    ]
    shipments = [
        {"id": sid, "carrier": carrier, "tracking_number": number, "tracking_url": url,
         "source": source, "shipped_at": at}
        for sid, carrier, number, url, source, at in conn.execute(
            "SELECT id, carrier, tracking_number, tracking_url, source, shipped_at "
            "FROM shipments WHERE channel = ? AND external_id = ? ORDER BY id",
            (channel, external_id),
        )
    ]
    return {
        "channel": channel,
        "id": external_id,
        "name": row[0],
        "status": row[1],
        "reserves_stock": bool(row[2]),
        "updated_at": row[3],
        "created_at": row[4],
        "first_seen_at": row[5],
        "fulfilled_by_channel": bool(row[6]),
        "lines": lines,
        "shipments": shipments,
    }


def published_numbers(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """The number the engine wants each channel to show, by channel and SKU."""
    numbers: dict[str, dict[str, int]] = {}
    for channel, sku, qty in conn.execute(
        "SELECT channel, sku, target_qty FROM listings WHERE target_qty IS NOT NULL"
    ):
        numbers.setdefault(channel, {})[sku] = int(qty)
    return numbers


def stored_order_ids(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """Every stored order's channel id, by channel."""
    ids: dict[str, set[str]] = {}
    for channel, external_id in conn.execute("SELECT channel, external_id FROM orders"):
        ids.setdefault(channel, set()).add(external_id)
    return ids


def master_skus(conn: sqlite3.Connection) -> set[str]:
    """Every SKU the store knows, plain and bundle."""
    return {row[0] for row in conn.execute("SELECT sku FROM skus")}


def order_rows(
    conn: sqlite3.Connection,
    *,
    channel: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest orders (by creation), with their units and shipments, for people to look at."""
    clauses, params = [], []
    if channel:
        clauses.append("o.channel = ?")
        params.append(channel)
    if status:
        clauses.append("o.status = ?")
        params.append(status)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(
        "SELECT o.channel, o.external_id, o.name, o.status, o.created_at, o.first_seen_at, "
        "o.updated_at, o.fulfilled_by_channel, "
        "coalesce(sum(l.qty), 0), coalesce(sum(l.qty_shipped), 0), "
        "coalesce(sum(l.qty_cancelled), 0) "
        "FROM orders o LEFT JOIN order_lines l "
        "ON l.channel = o.channel AND l.external_id = o.external_id "
        f"{where} GROUP BY o.channel, o.external_id "
        "ORDER BY coalesce(o.created_at, o.first_seen_at) DESC, o.channel, o.external_id "
        "LIMIT ?",
        (*params, limit),
    ).fetchall()
    shipments: dict[tuple[str, str], list[dict[str, Any]]] = {}
    keys = [(r[0], r[1]) for r in rows]
    for start in range(0, len(keys), 400):
        part = keys[start : start + 400]
        marks = ",".join("(?, ?)" for _ in part)
        for ch, oid, carrier, number, source, at in conn.execute(
            "SELECT channel, external_id, carrier, tracking_number, source, shipped_at "
            f"FROM shipments WHERE (channel, external_id) IN (VALUES {marks}) ORDER BY id",
            [v for key in part for v in key],
        ):
            shipments.setdefault((ch, oid), []).append(
                {"carrier": carrier, "tracking_number": number, "source": source,
                 "shipped_at": at}
            )
    return [
        {
            "channel": ch, "id": oid, "name": name, "status": st, "created_at": created,
            "first_seen_at": seen, "updated_at": updated, "fulfilled_by_channel": bool(fba),
            "units": int(units), "shipped": int(shipped), "cancelled": int(cancelled),
            "shipments": shipments.get((ch, oid), []),
        }
        for ch, oid, name, st, created, seen, updated, fba, units, shipped, cancelled in rows
    ]


def skus_at_risk(
    conn: sqlite3.Connection, buffers: Mapping[str, int], default_buffer: int, *, limit: int = 50
) -> list[dict[str, Any]]:
    """Stock SKUs whose available units are at or below their buffer (or below zero:
    oversold), lowest first. `buffers` holds the per-SKU buffers that differ from the default."""
    ceiling = max([default_buffer, *buffers.values()])
    rows = conn.execute(
        "SELECT s.sku, coalesce(s.title, ''), coalesce(sum(st.on_hand), 0) - s.committed AS a "
        "FROM skus s LEFT JOIN stock st ON st.sku = s.sku WHERE s.kind = 'simple' "
        "GROUP BY s.sku HAVING a <= ? ORDER BY a, s.sku",
        (ceiling,),
    ).fetchall()
    found = []
    for sku, title, available in rows:
        buffer = buffers.get(sku, default_buffer)
        if available <= buffer:
            found.append({"sku": sku, "title": title, "available": int(available),
                          "buffer": buffer, "oversold": available < 0})
        if len(found) >= limit:
            break
    return found


def recent_shipments(conn: sqlite3.Connection, *, limit: int = 10) -> list[dict[str, Any]]:
    """The newest shipments, merchant's and channel's."""
    return [
        {"channel": ch, "order_id": oid, "carrier": carrier, "tracking_number": number,
         "source": source, "shipped_at": at}
        for ch, oid, carrier, number, source, at in conn.execute(
            "SELECT channel, external_id, carrier, tracking_number, source, shipped_at "
            "FROM shipments ORDER BY id DESC LIMIT ?", (limit,))
    ]

"""Read-only questions the CLI and the ops endpoints ask of the store."""

from __future__ import annotations

import sqlite3
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

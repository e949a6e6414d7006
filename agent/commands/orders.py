"""`storesync orders`: the newest stored orders, read from the database (the agent may be down).

Exit 0 (also when none match), 2 for an unknown --channel, 3 when there is no database yet.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from agent.commands.context import (
    EXIT_OK,
    add_json_flag,
    check_filters,
    emit,
    load,
    open_reader,
    stdout,
)
from agent.store.queries import order_rows
from connectors.base import OrderStatus

STATUS_STYLE = {"open": "yellow", "pending": "yellow", "partially_shipped": "yellow",
                "shipped": "green", "cancelled": "dim", "refunded": "dim"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the orders command."""
    parser = sub.add_parser(
        "orders", parents=[common], help="list the newest orders and their shipments",
        description="List the newest orders the agent stored, newest first, with units "
        "shipped and tracking numbers. Reads the database directly, so it works while the "
        "agent is stopped. Exit codes: 0 listed (also when none match), 2 unknown --channel, "
        "3 no database yet.",
    )
    parser.add_argument("--channel", help="only this channel's orders")
    parser.add_argument("--status", choices=[str(s) for s in OrderStatus],
                        help="only orders in this state")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Query and print."""
    config = load(args)
    check_filters(config, args.channel, args.limit)
    with open_reader(config) as conn:
        rows = order_rows(conn, channel=args.channel, status=args.status, limit=args.limit)
    emit(args, {"orders": rows}, lambda: render(rows))
    return EXIT_OK


def render(rows: list[dict[str, Any]]) -> None:
    """A table of orders."""
    if not rows:
        stdout.print("no orders match", markup=False)
        return
    table = Table("channel", "order", "name", "status", "created", "units", "shipped",
                  "tracking")
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "")
        tracking = ", ".join(
            f"{s['carrier']} {s['tracking_number']}".strip() for s in row["shipments"]
            if s["tracking_number"] or s["carrier"]
        )
        table.add_row(
            escape(row["channel"]), escape(row["id"]), escape(row["name"]),
            f"[{style}]{row['status']}[/]" if style else row["status"],
            (row["created_at"] or row["first_seen_at"] or "")[:19].replace("T", " "),
            str(row["units"] - row["cancelled"]), str(row["shipped"]), escape(tracking) or "-",
        )
    stdout.print(table)

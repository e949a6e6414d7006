"""`storesync outbox`: pushes waiting for the channels, and retrying a dead letter.

Listing reads the database directly (it works while the agent is stopped); `--retry ID` goes
through the running agent, so its pusher picks the row up at once.
Exit 0 when no dead letters are listed, 1 when some are (or a retry was refused), 2 for a wrong
command line or an unknown row, 3 when --retry cannot reach the agent or there is no database.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from agent.commands.context import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    CommandFailed,
    add_json_flag,
    check_filters,
    emit,
    load,
    open_reader,
    stdout,
)
from agent.commands.ops_client import OpsClient, error_text
from agent.store.queries import outbox_rows

WAITING = ("pending", "inflight", "dead")
STATE_STYLE = {"dead": "red", "inflight": "cyan", "pending": "yellow"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the outbox command."""
    parser = sub.add_parser(
        "outbox", parents=[common], help="list waiting pushes and dead letters; retry one",
        description="List the stock and shipment pushes not yet accepted by their channel "
        "(pending, in flight, dead), newest first, from the database; or retry one row through "
        "the running agent. Exit codes: 0 no dead letters listed (or the retry was taken), "
        "1 dead letters listed (or the retry was refused), 2 wrong command line or unknown row, "
        "3 the agent cannot be reached (--retry) or no database yet.",
    )
    parser.add_argument("--dead", action="store_true", help="only dead letters")
    parser.add_argument("--channel", help="only this channel's rows")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    parser.add_argument("--retry", type=int, metavar="ID",
                        help="retry this row now (a dead letter gets fresh attempts)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List, or retry one row."""
    config = load(args)
    if args.retry is not None:
        return retry(args, OpsClient(config))
    check_filters(config, args.channel, args.limit)
    with open_reader(config) as conn:
        rows = outbox_rows(conn, state="dead" if args.dead else WAITING, channel=args.channel,
                           limit=args.limit)
        counts = dict.fromkeys(WAITING, 0)
        sql = "SELECT state, count(*) FROM outbox WHERE state IN ('pending', 'inflight', 'dead')"
        params: tuple[str, ...] = ()
        if args.channel:
            sql, params = sql + " AND channel = ?", (args.channel,)
        for state, count in conn.execute(sql + " GROUP BY state", params):
            counts[state] = count
    emit(args, {"counts": counts, "rows": rows}, lambda: render(rows, counts))
    return EXIT_FAILED if counts["dead"] else EXIT_OK


def retry(args: argparse.Namespace, client: OpsClient) -> int:
    """POST /outbox/{id}/retry."""
    response = client.post(f"/outbox/{args.retry}/retry")
    answer: dict[str, Any] = response.json()
    if response.status_code == 404:
        raise CommandFailed(error_text(response), EXIT_CONFIG)
    if response.status_code >= 400:
        emit(args, answer, lambda: None)
        raise CommandFailed(error_text(response), EXIT_FAILED)
    what = {"retried": "dead letter queued again with fresh attempts",
            "due_now": "pending row due now"}[answer["outcome"]]
    emit(args, answer, lambda: stdout.print(f"outbox row {args.retry}: {what}", markup=False))
    return EXIT_OK


def describe(row: dict[str, Any]) -> str:
    """What a row pushes, in a few words."""
    value = row["value"]
    if row["kind"] == "shipment" and isinstance(value, dict):
        return f"order {value.get('order_id')} {value.get('carrier', '')} " \
               f"{value.get('tracking_number', '')}".rstrip()
    return f"{row['key']} = {value}"


def render(rows: list[dict[str, Any]], counts: dict[str, int]) -> None:
    """A table of outbox rows, with the totals."""
    stdout.print(
        f"{counts['pending']} pending, {counts['inflight']} in flight, {counts['dead']} dead",
        markup=False,
    )
    if not rows:
        return
    table = Table("id", "channel", "kind", "what", "state", "tries", "queued", "last error")
    for row in rows:
        style = STATE_STYLE.get(row["state"])
        table.add_row(
            str(row["id"]), escape(row["channel"]), row["kind"], escape(describe(row)),
            f"[{style}]{row['state']}[/]" if style else row["state"], str(row["attempts"]),
            (row["queued_at"] or "")[:19].replace("T", " "), escape((row["last_error"] or "")[:80]),
        )
    stdout.print(table)
    if counts["dead"]:
        stdout.print("retry a dead letter with: storesync outbox --retry ID", markup=False)

"""`storesync ship ORDER`: record a shipment through the running agent, which tells the channel.

Exit 0 when recorded (or already recorded under that tracking number), 1 when the agent refuses
it (unknown order, more units than remain, a cancelled order), 2 for a wrong command line (a bad
--line, an order on several channels without --channel, no ops token), 3 when the agent cannot
be reached.
"""

from __future__ import annotations

import argparse
from typing import Any

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
    stderr,
    stdout,
)
from agent.commands.ops_client import OpsClient, error_text


def parse_line(text: str) -> tuple[str, int]:
    """SKU:QTY (the SKU may itself hold colons; the last one separates the quantity)."""
    sku, sep, qty = text.rpartition(":")
    if not sep or not sku.strip():
        raise argparse.ArgumentTypeError(f"expected SKU:QTY, got {text!r}")
    try:
        units = int(qty)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the quantity after ':' must be a whole number"
        ) from None
    if units <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the quantity must be at least 1")
    return sku.strip(), units


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ship command."""
    parser = sub.add_parser(
        "ship", parents=[common], help="record a shipment (through the running agent)",
        description="Record that an order (or some of its units) shipped; the agent tells the "
        "order's channel, with the tracking number, through its outbox. ORDER is the channel's "
        "order id or the order's name (1001 or #1001). Without --line, everything the order "
        "still holds ships. Exit codes: 0 recorded (or already recorded under this tracking "
        "number), 1 refused by the agent (unknown order, too many units, cancelled order), "
        "2 wrong command line (bad --line, ORDER on several channels without --channel, no "
        "ops token), 3 the agent cannot be reached.",
    )
    parser.add_argument("order", metavar="ORDER", help="order id or name")
    parser.add_argument("--carrier", required=True, help="carrier name, e.g. UPS")
    parser.add_argument("--tracking", required=True, help="tracking number")
    parser.add_argument("--channel", help="the order's channel (needed when ORDER is on several)")
    parser.add_argument("--url", default="", help="tracking URL")
    parser.add_argument("--line", action="append", type=parse_line, metavar="SKU:QTY",
                        help="units of one SKU in this package (repeat for more SKUs)")
    parser.add_argument("--location", help="location shipped from (default: the channel's first)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """POST /shipments and report what the agent did."""
    config = load(args)
    check_filters(config, args.channel)
    lines: dict[str, int] = {}
    for sku, units in args.line or []:
        lines[sku] = lines.get(sku, 0) + units
    body: dict[str, Any] = {
        "order_id": args.order,
        "channel": args.channel,
        "carrier": args.carrier,
        "tracking_number": args.tracking,
        "tracking_url": args.url,
        "location": args.location,
    }
    if lines:
        body["lines"] = lines
    response = OpsClient(config).post("/shipments", body)
    answer: dict[str, Any] = response.json() if response.content else {}
    if response.status_code == 409 and "candidates" in answer:
        stderr.print(f"error: {answer['error']}", markup=False)
        table = Table("channel", "order id", "name", title="the order is on several channels")
        for c in answer["candidates"]:
            table.add_row(c["channel"], c["order_id"], c["name"])
        stderr.print(table)
        first = answer["candidates"][0]["channel"]
        stderr.print(f"say which with --channel, e.g. --channel {first}", markup=False)
        emit(args, answer, lambda: None)
        return EXIT_CONFIG
    if response.status_code >= 400:
        message = error_text(response)
        if response.status_code == 404:
            message += " (orders arrive by webhook or poll; `storesync orders` lists them)"
        raise CommandFailed(message, EXIT_CONFIG if response.status_code == 400 else EXIT_FAILED)

    def render() -> None:
        what = ", ".join(f"line {k} x {v}" for k, v in answer["lines"].items()) or "as before"
        verb = "recorded" if answer["created"] else "already recorded"
        stdout.print(
            f"shipment {answer['shipment_id']} {verb}: order {answer['order_id']} on "
            f"{answer['channel']}, {args.carrier} {args.tracking} ({what}); "
            + ("queued for the channel" if answer["created"] else "nothing new to send"),
            markup=False,
        )

    emit(args, answer, render)
    return EXIT_OK

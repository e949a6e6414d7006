"""`storesync sku show`: one SKU's stock, commitments and what each channel is told."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from agent.commands.context import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    add_json_flag,
    emit,
    load,
    open_store,
    stderr,
    stdout,
)
from agent.store.queries import sku_report


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the sku commands."""
    sku = sub.add_parser("sku", parents=[common], help="look at one SKU")
    actions = sku.add_subparsers(dest="sku_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="stock, committed, published")
    show.add_argument("sku")
    add_json_flag(show)
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    """Print one SKU's report."""
    config = load(args)
    with open_store(config) as store:
        report = sku_report(store.reader(), args.sku)
    if report is None:
        stderr.print(f"unknown SKU {args.sku!r}", markup=False)
        return EXIT_NOT_FOUND
    emit(args, report, lambda: render_sku(report))
    return EXIT_OK


def render_sku(report: dict[str, Any] | None) -> None:
    """Print a SKU report as tables."""
    if report is None:
        return
    title = f"{report['sku']}" + (f" - {report['title']}" if report.get("title") else "")
    if report["kind"] == "bundle":
        title += " (bundle)"
    stock = Table("on hand", "committed", "available", *report["locations"], title=title)
    stock.add_row(
        str(report["on_hand"]),
        str(report["committed"]),
        str(report["available"]),
        *(str(q) for q in report["locations"].values()),
    )
    stdout.print(stock)
    published = Table("channel", "published", title="published")
    for channel, qty in report["published"].items():
        published.add_row(channel, "-" if qty is None else str(qty))
    stdout.print(published)
    if report["last_pushes"]:
        pushes = Table("channel", "value", "state", "attempts", "at", "error", title="last pushes")
        for p in report["last_pushes"]:
            pushes.add_row(
                p["channel"],
                str(p["value"]),
                p["state"],
                str(p["attempts"]),
                p["at"],
                p["error"] or "",
            )
        stdout.print(pushes)

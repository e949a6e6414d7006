"""`storesync channels`: every configured channel, its state and its backlog.

The state is the running agent's (from /status); the counts come from the database, so the
table still prints, with each channel's last recorded state, while the agent is stopped.
Exit 0 when every enabled channel is ok, 1 when one is not (degraded, needs_reauth, paused) or
has dead letters, 3 when the agent cannot be reached (the stored view is printed anyway).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from agent.commands.context import (
    EXIT_AGENT_DOWN,
    EXIT_FAILED,
    EXIT_OK,
    CommandFailed,
    add_json_flag,
    emit,
    load,
    open_reader,
    stderr,
    stdout,
)
from agent.commands.ops_client import OpsClient
from agent.config import Config
from agent.store.queries import channel_rows, outbox_summary

STATE_STYLE = {"ok": "green", "degraded": "yellow", "paused": "yellow"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the channels command."""
    parser = sub.add_parser(
        "channels", parents=[common], help="list channels: state, last poll, backlog",
        description="List every configured channel: its state (live from the running agent), "
        "last poll and webhook, outbox depth and dead letters, listings and orders stored. "
        "Exit codes: 0 every enabled channel ok, 1 one is not ok or has dead letters, "
        "3 the agent cannot be reached (the last recorded states are shown).",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Gather config, database and live state, then print."""
    config = load(args)
    live: dict[str, Any] | None
    try:
        live = OpsClient(config).get("/status")["channels"]
    except CommandFailed as exc:
        if exc.exit_code != EXIT_AGENT_DOWN:
            raise
        stderr.print(f"warning: {exc}; showing the last recorded states", markup=False)
        live = None
    channels = gather(config, live)
    document = {"agent_running": live is not None, "channels": channels}
    emit(args, document, lambda: render(document))
    if live is None:
        return EXIT_AGENT_DOWN
    healthy = all(
        (ch["state"] == "ok" or not ch["enabled"]) and ch["outbox"]["dead"] == 0
        for ch in channels.values()
    )
    return EXIT_OK if healthy else EXIT_FAILED


def gather(config: Config, live: dict[str, Any] | None) -> dict[str, Any]:
    """One entry per configured channel, with stable keys."""
    stored: dict[str, dict[str, Any]] = {}
    outbox: dict[str, dict[str, Any]] = {}
    listings: dict[str, int] = {}
    orders: dict[str, int] = {}
    if config.agent.database.exists():
        with open_reader(config) as conn:
            stored = channel_rows(conn)
            outbox = outbox_summary(conn)
            listings = dict(conn.execute(
                "SELECT channel, count(*) FROM listings GROUP BY channel").fetchall())
            orders = dict(conn.execute(
                "SELECT channel, count(*) FROM orders GROUP BY channel").fetchall())
    channels: dict[str, Any] = {}
    for name, channel in config.channels.items():
        row = stored.get(name, {})
        now = (live or {}).get(name)
        box = outbox.get(name, {})
        channels[name] = {
            "kind": channel.kind,
            "enabled": channel.enabled,
            "state": now["state"] if now else row.get("state", "unknown"),
            "state_reason": now["state_reason"] if now else row.get("state_reason"),
            "live": now is not None,
            "last_poll_at": row.get("last_poll_at"),
            "last_webhook_at": row.get("last_webhook_at"),
            "outbox": {
                "pending": box.get("pending", 0),
                "inflight": box.get("inflight", 0),
                "dead": box.get("dead", 0),
            },
            "listings": listings.get(name, 0),
            "orders": orders.get(name, 0),
            "warnings": now.get("warnings", []) if now else [],
        }
    return channels


def render(document: dict[str, Any]) -> None:
    """A table of channels."""
    table = Table("channel", "kind", "state", "last poll", "last webhook", "outbox", "dead",
                  "listings", "orders", "why")
    for name, ch in document["channels"].items():
        state = ch["state"] if ch["enabled"] else "disabled"
        style = STATE_STYLE.get(state, "red" if ch["enabled"] else "dim")
        shown = escape(state) + ("" if ch["live"] else " (recorded)")
        table.add_row(
            escape(name), ch["kind"], f"[{style}]{shown}[/]",
            (ch["last_poll_at"] or "never")[:19].replace("T", " "),
            (ch["last_webhook_at"] or "never")[:19].replace("T", " "),
            str(ch["outbox"]["pending"] + ch["outbox"]["inflight"]),
            f"[red]{ch['outbox']['dead']}[/]" if ch["outbox"]["dead"] else "0",
            str(ch["listings"]), str(ch["orders"]), escape((ch["state_reason"] or "")[:80]),
        )
    stdout.print(table)
    for name, ch in document["channels"].items():
        for warning in ch["warnings"]:
            stdout.print(f"warning: {name}: {warning}", markup=False)

"""`storesync status`: the running agent's health, from its ops endpoint, as a table.

Exit 0 when every channel is ok, 1 when any is not (or the store takes no writes), 3 when the
agent cannot be reached.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
from rich.table import Table
from rich.text import Text

from agent.commands.context import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    add_json_flag,
    emit,
    load,
    stderr,
    stdout,
)
from agent.commands.ops_client import ops_url

TIMEOUT_S = 5.0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the status command."""
    parser = sub.add_parser(
        "status", parents=[common], help="show the running agent's health",
        description="Ask the running agent (its ops listener) how every channel is doing. "
        "Exit 0 if all channels are ok, 1 if not, 3 if the agent cannot be reached.",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fetch /status and print it."""
    config = load(args)
    url = f"{ops_url(config)}/status"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        stderr.print(f"cannot reach the agent at {url}: {exc}", markup=False)
        return EXIT_NOT_FOUND
    emit(args, document, lambda: render(document))
    healthy = document["store"]["writable"] and all(
        ch["state"] == "ok" for ch in document["channels"].values()
    )
    return EXIT_OK if healthy else EXIT_FAILED


def render(document: dict[str, Any]) -> None:
    """Print the status document for people."""
    store = "ok" if document["store"]["writable"] else f"NOT WRITABLE: {document['store']['error']}"
    reload = document["config"]["last_reload"]
    stdout.print(
        f"storesync {document['version']}, up {document['uptime_s']:.0f} s; store {store}; "
        f"inbox {document['inbox']['pending']} pending, {document['inbox']['parked']} parked",
        markup=False,
    )
    if not reload["ok"]:
        stdout.print(f"last config reload FAILED at {reload['at']}:", markup=False)
        for error in reload["errors"]:
            stdout.print(f"  {error}", markup=False)
    table = Table("channel", "state", "last poll", "outbox", "dead", "why")
    for name, ch in document["channels"].items():
        style = {"ok": "green", "degraded": "yellow", "paused": "yellow"}.get(ch["state"], "red")
        errors = ch["recent_errors"]
        note = ch["state_reason"] or (errors[0]["message"] if errors else "")
        oldest = ch["outbox"]["oldest_age_s"]
        table.add_row(
            f"{name} ({ch['kind']})",
            f"[{style}]{ch['state']}[/]",
            (ch["last_poll_at"] or "never")[:19].replace("T", " "),
            f"{ch['outbox']['depth']}" + (f", oldest {oldest:.0f}s" if oldest else ""),
            str(ch["outbox"]["dead"]),
            note,
        )
    stdout.print(table)
    for name, ch in document["channels"].items():
        for warning in ch.get("warnings", []):
            stdout.print(f"warning: {name}: {warning}", markup=False)
    render_alerts(document.get("alerts") or [])
    render_folder(document.get("shipments_folder"))


def render_folder(folder: dict[str, Any] | None) -> None:
    """One line on the shipments drop folder, and a line per file a store error holds."""
    if folder is None:
        return
    line = (f"shipments folder {folder['path']}: {folder['waiting']} waiting, "
            f"{folder['processing']} processing, {folder['failed']} in failed/")
    last = folder.get("last_file")
    if last:
        line += f"; last file {last['name']} {last['result']} at {last['at'][:19]}"
    stdout.print(line, markup=False)
    for stuck in folder["stuck"]:
        stdout.print(f"warning: shipments file {stuck['file']} is held in processing/: "
                     f"{stuck['error']}", markup=False)


def render_alerts(alerts: list[dict[str, Any]]) -> None:
    """Print the SKUs at or below their reorder point, if any."""
    if not alerts:
        return
    table = Table("sku", "title", "available", "reorder point", "from", "per day", "since",
                  title=f"low stock: {len(alerts)} SKU(s) at or below their reorder point")
    for alert in alerts:
        table.add_row(
            Text(alert["sku"]),
            Text(alert["title"] or ""),
            f"[red]{alert['available']}[/]",
            str(alert["reorder_point"]),
            alert["source"] if alert["source"] == "config"
            else f"velocity x {alert['lead_time_days']:g} d",
            f"{alert['daily_velocity']:g}",
            (alert["since"] or "")[:19].replace("T", " "),
        )
    stdout.print(table)

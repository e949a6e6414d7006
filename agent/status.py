"""The /status document: what ops need to know, assembled from the store and the workers.

Its shape is documented in the README ("Ops API") and pinned by a test.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.store.alerts import alerts_report
from agent.store.queries import (
    channel_rows,
    inbox_summary,
    newest_orders,
    outbox_summary,
    recent_events,
)
from agent.store.timestamps import iso, parse_iso

if TYPE_CHECKING:
    from agent.runtime import Runtime


def _age_s(now: datetime, stamp: str | None) -> float | None:
    return None if stamp is None else round((now - parse_iso(stamp)).total_seconds(), 3)


def stored_status(conn: sqlite3.Connection) -> dict[str, Any]:
    """The part of /status the store holds (read on a reader thread)."""
    return {
        "channels": channel_rows(conn),
        "outbox": outbox_summary(conn),
        "newest": newest_orders(conn),
        "inbox": inbox_summary(conn),
        "alerts": alerts_report(conn),
        "recent_events": recent_events(conn, limit=10),
    }


async def current_status(runtime: Runtime) -> dict[str, Any]:
    """The /status document as of now: the store read off the event loop, the rest on it."""
    return status_document(runtime, await runtime.store.read(stored_status))


def status_document(runtime: Runtime, read: dict[str, Any]) -> dict[str, Any]:
    """Build the whole /status document from the workers and what `stored_status` read."""
    now = runtime.clock()
    stored = read["channels"]
    outbox = read["outbox"]
    newest = read["newest"]
    silence = runtime.config.sync.webhook_silence
    channels: dict[str, Any] = {}
    for name, coordinator in sorted(runtime.coordinators.items()):
        health = coordinator.health
        row = stored.get(name, {})
        box = outbox.get(name, {"pending": 0, "inflight": 0, "dead": 0, "oldest_queued_at": None})
        limiter = getattr(coordinator.connector, "limiter", None)
        connector = coordinator.connector
        last_webhook = row.get("last_webhook_at")
        newest_order = newest.get(name)
        # Orders keep arriving (by poll) long after the last webhook: the channel stopped
        # sending them (WooCommerce disables a failing webhook without a word).
        webhook_silent = bool(
            connector is not None
            and connector.capabilities.webhooks
            and newest_order is not None
            and parse_iso(newest_order) - (
                parse_iso(last_webhook) if last_webhook else runtime.started_at
            ) > silence
        )
        quota = limiter.snapshot() if limiter is not None else None
        channels[name] = {
            "kind": coordinator.config.kind,
            "state": str(health.state),
            "state_reason": health.reason,
            "state_since": iso(health.since),
            "last_poll_at": row.get("last_poll_at"),
            "last_webhook_at": last_webhook,
            "webhook_silent": webhook_silent,
            # How stale this channel's orders may be: seconds since the last completed poll.
            "cursor_lag_s": _age_s(now, row.get("last_poll_at")),
            "outbox": {
                "depth": box["pending"] + box["inflight"],
                "pending": box["pending"],
                "inflight": box["inflight"],
                "dead": box["dead"],
                "oldest_age_s": _age_s(now, box["oldest_queued_at"]),
            },
            "quota": quota,
            "warnings": channel_warnings(quota, webhook_silent),
            "recent_errors": [
                {"at": iso(note.at), "where": note.where, "message": note.message}
                for note in reversed(health.recent_errors)
            ],
        }
    return {
        "version": runtime.version,
        "started_at": iso(runtime.started_at),
        "uptime_s": round((now - runtime.started_at).total_seconds(), 3),
        "ready": runtime.ready and not runtime.stopping,
        "stopping": runtime.stopping,
        "store": {
            "path": str(runtime.store.path),
            "writable": runtime.store_error is None,
            "error": runtime.store_error,
        },
        "config": {
            "path": str(runtime.config.path),
            "last_reload": runtime.last_reload,
        },
        "inbox": read["inbox"],
        "channels": channels,
        # SKUs at or below their reorder point, lowest first (see "Low-stock and reorder alerts").
        "alerts": read["alerts"],
        # The [shipments] drop folder as of its last scan; null when none is configured.
        "shipments_folder": runtime.drop_folder.status() if runtime.drop_folder else None,
        "recent_events": read["recent_events"],
    }


def quota_warnings(quota: Any, api: str = "") -> list[str]:
    """A line for each daily budget near its limit, found anywhere in a limiter snapshot."""
    if not isinstance(quota, dict):
        return []
    lines = []
    if quota.get("warning") and isinstance(quota.get("used"), int):
        lines.append(
            f"{api or 'daily'} quota nearly used: {quota['used']:,} of {quota['limit']:,} calls "
            f"today; it resets at {quota.get('resets_at')}"
        )
    for key in ("apis", "operations"):
        for name, inner in (quota.get(key) or {}).items():
            lines.extend(quota_warnings(inner, name))
    return lines


def channel_warnings(quota: Any, webhook_silent: bool) -> list[str]:
    """What an operator should look at on a channel that still works."""
    warnings = quota_warnings(quota)
    if webhook_silent:
        warnings.append("orders arrive by poll but no webhook came lately: check the webhooks")
    return warnings


def status_line(document: dict[str, Any]) -> str:
    """A one-line summary for systemd's STATUS= (shown by `systemctl status`)."""
    channels = document["channels"]
    ok = sum(1 for c in channels.values() if c["state"] == "ok")
    depth = sum(c["outbox"]["depth"] for c in channels.values())
    dead = sum(c["outbox"]["dead"] for c in channels.values())
    parts = [f"{ok}/{len(channels)} channels ok", f"outbox {depth}"]
    if dead:
        parts.append(f"{dead} dead letters")
    if not document["store"]["writable"]:
        parts.append("STORE NOT WRITABLE")
    return ", ".join(parts)

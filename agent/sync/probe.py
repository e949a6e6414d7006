"""Trying each configured channel before the first run: `storesync check-config --online`.

Per channel, three questions a merchant asks before starting storesync:
- Do the credentials work? The first authenticated call tells (AuthError: refused).
- May storesync read orders? One page of the last day's orders.
- What does the catalog hold? Every listing, each mapped to a master SKU or reported unmapped,
  and every master SKU the channel does not list.
Nothing is written to the channel or to the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import Config
from agent.engine.rules import Rules
from agent.sync.factory import NoConnector, build_connector
from connectors.base import AuthError, ConnectorError

ORDERS_WINDOW = timedelta(days=1)
SHOWN = 50  # unmapped SKUs listed per channel; the JSON output has them all


@dataclass(slots=True)
class Check:
    """One question about one channel and its answer."""

    name: str  # credentials, orders, catalog
    ok: bool
    detail: str


@dataclass(slots=True)
class ChannelProbe:
    """Everything learned about one channel."""

    channel: str
    kind: str
    checks: list[Check] = field(default_factory=list)
    listings: int = 0
    unmapped: list[str] = field(default_factory=list)  # channel SKUs matching no master SKU
    not_listed: list[str] = field(default_factory=list)  # master SKUs the channel lacks
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every check passed (unmapped SKUs are a finding, not a failure)."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The probe as JSON for `--json`."""
        return {
            "channel": self.channel,
            "kind": self.kind,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "listings": self.listings,
            "unmapped": self.unmapped,
            "not_listed": self.not_listed,
            "seconds": round(self.seconds, 2),
        }


async def probe_channel(
    name: str, config: Config, known_skus: Iterable[str], *,
    step: Callable[[str], None] = lambda _: None,
) -> ChannelProbe:
    """Ask one channel the three questions; never raises for what the channel answers."""
    channel = config.channels[name]
    probe = ChannelProbe(name, channel.kind)
    started = time.monotonic()
    try:
        connector = build_connector(name, channel, config.sync)
    except NoConnector as exc:
        probe.checks.append(Check("credentials", False, str(exc)))
        return probe
    try:
        step("reading orders")
        try:
            pages = connector.fetch_orders(None, since=datetime.now(UTC) - ORDERS_WINDOW)
            try:
                page = await anext(pages, None)  # one page is enough to prove the permission
            finally:
                if (close := getattr(pages, "aclose", None)) is not None:
                    await close()
        except AuthError as exc:
            probe.checks.append(Check("credentials", False, f"refused: {exc}"))
            return probe
        except ConnectorError as exc:
            probe.checks.append(Check("orders", False, f"cannot read orders: {exc}"))
        else:
            probe.checks.append(Check("credentials", True, "accepted"))
            seen = len(page.orders) if page else 0
            probe.checks.append(
                Check("orders", True, f"readable ({seen} updated in the last day, first page)")
            )
        step("walking the catalog")
        try:
            listings = await connector.fetch_listings()
        except AuthError as exc:
            probe.checks.append(Check("catalog", False, f"refused: {exc}"))
            return probe
        except ConnectorError as exc:
            probe.checks.append(Check("catalog", False, f"cannot read listings: {exc}"))
            return probe
        rules = Rules.from_config(config)
        known = set(known_skus)
        mapped: set[str] = set()
        for listing in listings:
            master = rules.map_sku(name, listing.sku)
            if master is None or master not in known:
                probe.unmapped.append(listing.sku or "(no SKU)")
            else:
                mapped.add(master)
        probe.listings = len(listings)
        probe.not_listed = sorted(known - mapped)
        untracked = sum(1 for listing in listings if not listing.pushable)
        probe.checks.append(Check(
            "catalog", True,
            f"{len(listings)} listing(s), {len(probe.unmapped)} unmapped"
            + (f", {untracked} not taking stock pushes" if untracked else ""),
        ))
        return probe
    finally:
        probe.seconds = time.monotonic() - started
        await connector.aclose()

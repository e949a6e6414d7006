"""Reorder points and low-stock alerts: pure math, and the evaluation as one unit of work.

reorder_point(s) = [skus.<s>].reorder_point, when set                       (source "config")
                 else ceil(units of s sold in the window / days in the window
                           x lead time in days), when s sold anything        (source "velocity")
                 else [alerts].reorder_point, when set                       (source "config")
                 else none: s never alerts.
s is in alert while available(s) = on_hand(s) - committed(s) <= reorder_point(s).

Units sold count each order line's units less its cancelled ones, through the stock SKUs it
takes (a bundle's sale counts for its components), in orders created within the window.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

from agent.store.alerts import (
    AlertRow,
    clear_alert,
    insert_alert,
    open_alerts,
    refresh_alert,
    stock_levels,
    units_sold_since,
)
from agent.store.timestamps import iso

if TYPE_CHECKING:
    from agent.config import Config
    from agent.store.transaction import Tx

DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ReorderPoint:
    """A SKU's reorder point, where it came from, and the numbers behind it."""

    value: int
    source: str  # 'config' or 'velocity'
    daily_velocity: float
    lead_time_days: float


@dataclass(frozen=True, slots=True)
class LowStock:
    """A SKU at or below its reorder point."""

    sku: str
    title: str | None
    available: int
    point: ReorderPoint


@dataclass(frozen=True, slots=True)
class ReorderRules:
    """The merchant's reorder settings, from [alerts] and [skus.<sku>]."""

    velocity_window: timedelta = timedelta(days=14)
    lead_time: timedelta = timedelta(days=7)
    default_point: int | None = None
    sku_points: Mapping[str, int] = field(default_factory=dict)
    sku_lead_times: Mapping[str, timedelta] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> ReorderRules:
        """Build the rules from a validated config."""
        alerts = config.alerts
        return cls(
            velocity_window=alerts.velocity_window,
            lead_time=alerts.lead_time,
            default_point=alerts.reorder_point,
            sku_points={
                sku: o.reorder_point for sku, o in config.skus.items()
                if o.reorder_point is not None
            },
            sku_lead_times={
                sku: o.lead_time for sku, o in config.skus.items() if o.lead_time is not None
            },
        )

    def lead_time_for(self, sku: str) -> timedelta:
        """The SKU's own lead time, else the global one."""
        return self.sku_lead_times.get(sku, self.lead_time)

    def point(self, sku: str, units_sold: int) -> ReorderPoint | None:
        """The SKU's reorder point by precedence: its own, from velocity, the global default."""
        own = self.sku_points.get(sku)
        if own is None and units_sold <= 0 and self.default_point is None:
            return None  # the common case in a large catalog: decided without arithmetic
        lead = self.lead_time_for(sku)
        velocity = float(daily_velocity(units_sold, self.velocity_window)) if units_sold else 0.0
        numbers = {"daily_velocity": round(velocity, 3), "lead_time_days": round(lead / DAY, 3)}
        if own is not None:
            return ReorderPoint(own, "config", **numbers)
        if units_sold > 0:
            value = velocity_reorder_point(units_sold, self.velocity_window, lead)
            return ReorderPoint(value, "velocity", **numbers)
        assert self.default_point is not None
        return ReorderPoint(self.default_point, "config", **numbers)

    def candidates(self, sold: Mapping[str, int]) -> set[str] | None:
        """The only SKUs that can have a point (None: every SKU can, through the default)."""
        return None if self.default_point is not None else set(self.sku_points) | set(sold)


def daily_velocity(units_sold: int, window: timedelta) -> Fraction:
    """Units sold per day over the window, exactly."""
    return Fraction(units_sold) * (DAY // _MICROSECOND) / (window // _MICROSECOND)


def velocity_reorder_point(units_sold: int, window: timedelta, lead_time: timedelta) -> int:
    """ceil(daily velocity x lead time in days): what sells while a reorder is on its way."""
    # Fractions, not floats: 3 units over 14 days for 7 days is exactly 1.5, so 2, never 1.
    return math.ceil(Fraction(units_sold) * (lead_time // _MICROSECOND) / (window // _MICROSECOND))


def in_alert(available: int, point: ReorderPoint | None) -> bool:
    """At or below the reorder point (a SKU without one never is)."""
    return point is not None and available <= point.value


def find_low_stock(
    levels: Iterable[tuple[str, str | None, int]], sold: Mapping[str, int], rules: ReorderRules
) -> list[LowStock]:
    """Every SKU, of (sku, title, available), at or below its reorder point."""
    low = []
    for sku, title, available in levels:
        point = rules.point(sku, sold.get(sku, 0))
        if point is not None and in_alert(available, point):
            low.append(LowStock(sku, title, available, point))
    return low


@dataclass(frozen=True, slots=True)
class AlertChanges:
    """What one evaluation did: alerts raised (new), and SKUs whose alert cleared."""

    raised: tuple[AlertRow, ...] = ()
    cleared: tuple[AlertRow, ...] = ()


def low_stock_now(conn: sqlite3.Connection, rules: ReorderRules, now: datetime) -> list[LowStock]:
    """Read sales and stock, and find every SKU at or below its reorder point."""
    sold = units_sold_since(conn, iso(now - rules.velocity_window))
    return find_low_stock(stock_levels(conn, rules.candidates(sold)), sold, rules)


def evaluate_alerts(tx: Tx, rules: ReorderRules, *, notify: bool) -> AlertChanges:
    """Find the SKUs in alert and record the changes, in one transaction."""
    return record_alerts(tx, low_stock_now(tx.conn, rules, tx.now()), notify=notify)


def record_alerts(tx: Tx, found: Iterable[LowStock], *, notify: bool) -> AlertChanges:
    """Raise an alert for each SKU found low and not in alert yet, clear those no longer low.

    With `notify`, a raised alert waits for the webhook; a cleared one not yet delivered is
    dropped, since the reorder it asked for is no longer needed.
    """
    now = tx.now()
    low = {item.sku: item for item in found}
    current = open_alerts(tx.conn)
    raised: list[AlertRow] = []
    cleared: list[AlertRow] = []
    for sku, item in low.items():
        row = current.get(sku)
        if row is None:
            alert = insert_alert(tx.conn, item, at=now, notify=notify)
            raised.append(alert)
            tx.add_event(
                "reorder_alert",
                f"{sku} is down to {item.available}, at or below its reorder point "
                f"{item.point.value} ({item.point.source})",
                sku=sku, ref=str(alert.id),
            )
        elif (row.available, row.reorder_point, row.source, row.daily_velocity) != (
            item.available, item.point.value, item.point.source, item.point.daily_velocity
        ):
            refresh_alert(tx.conn, row.id, item, at=now)
    for sku, row in current.items():
        if sku not in low:
            clear_alert(tx.conn, row.id, at=now)
            cleared.append(row)
            tx.add_event("reorder_alert_cleared", f"{sku} is above its reorder point again",
                         sku=sku, ref=str(row.id))
    return AlertChanges(tuple(raised), tuple(cleared))

"""Which getOrders windows an Amazon order poll reads, and the cursor that says where it stands.

Amazon answers `getOrders` for a closed window [LastUpdatedAfter, LastUpdatedBefore], and
LastUpdatedBefore must be at least two minutes before now (reference/channel-apis.md 3.2).
Every moment is read twice: once fresh, as soon as the settle lets it be read, and once more
a whole look-back after it (`order_lookback`), for an order Amazon shows late. The other
channels get the second read by starting every poll a look-back early; on Amazon that would
read the look-back again on every poll, and getOrders has the smallest budget of any call
storesync makes (one a minute on the default plan). A busy seller's poll would then spend
several pages on orders it already has, and fall behind. So an Amazon poll reads its fresh
window, and the look-back separately, in slices: the aged part not yet read again, once it
spans a quarter of the look-back (and at least two polls' worth). A quiet seller's slice is read
with the fresh window instead, in the same call: when the orders of the last poll say the two
together fit in half a page, a second call would buy nothing but a smaller budget.

When the look-back is no longer than the poll's own window (a short look-back, a long gap
after an outage, the first poll), one window covers both.

The cursor is JSON: `{"since", "checked", "after", "before", "late", "next", "seen"}`. `since`:
every order updated before it has been read once; `checked`: and read again a look-back later.
Mid-read it also holds the window, the token of the page being read (null: the window's first)
and the orders of that page already committed, so a resumed poll reads only what is not. A
cursor written before `checked` existed reads as `checked = since - look-back`, which is where
that version's next poll would have started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from connectors.amazon.client import format_time, parse_time

# The look-back is read again in slices of this fraction of it.
SLICES = 4


@dataclass(frozen=True, slots=True)
class Window:
    """One getOrders read: the filters every page resends, and the next page's token."""

    after: datetime
    before: datetime
    late: bool = False  # the look-back read again, not the fresh read
    next_token: str | None = None  # the page being read (None: the window's first)
    seen: tuple[str, ...] = ()  # orders of that page already committed

    @property
    def whole(self) -> bool:
        """Read from its start, not resumed part-way."""
        return self.next_token is None and not self.seen


@dataclass(frozen=True, slots=True)
class Marks:
    """Where an order poll stands: the committed cursor."""

    since: datetime  # everything updated before this was read once
    checked: datetime  # ... and before this, read again a whole look-back after it changed
    window: Window | None = None  # a read in progress

    @classmethod
    def start(cls, at: datetime) -> Marks:
        """A poll with nothing read yet: its first window starts at `at`."""
        moment = floor(at)
        return cls(moment, moment)

    @classmethod
    def parse(cls, cursor: str, lookback: timedelta) -> Marks:
        """A committed cursor; ValueError when it is not one."""
        try:
            data = json.loads(cursor)
            since = parse_time(data["since"])
            checked = data.get("checked")
            marks = cls(since, parse_time(checked) if checked is not None else since - lookback)
            token, seen = data.get("next"), data.get("seen", [])
            if not isinstance(token, str | None):
                raise ValueError("next is not a string")
            if token is None and data.get("after") is None:
                return marks  # between polls
            if not isinstance(seen, list) or not all(isinstance(i, str) for i in seen):
                raise ValueError("seen is not a list of order ids")
            window = Window(parse_time(data["after"]), parse_time(data["before"]),
                            bool(data.get("late", False)), token, tuple(seen))
            return replace(marks, window=window)
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an Amazon orders cursor: {exc}") from exc

    def plan(
        self, before: datetime, lookback: timedelta, *,
        orders_per_s: float | None = None, page_size: int = 100,
    ) -> list[Window]:
        """The windows a poll reads when Amazon lets it read up to `before`, fresh first.

        `orders_per_s`: how fast orders came in the last poll's window (None: not known).
        """
        before = floor(before)
        if before < self.since:  # polled again within the settle: nothing new to read
            return []
        span = before - self.since
        if lookback <= span:
            return [Window(min(self.checked, self.since), before)]
        fresh = Window(self.since, before)
        aged = floor(before - lookback)
        if aged - self.checked < max(lookback / SLICES, 2 * span):
            return [fresh]
        together = before - self.checked
        if orders_per_s is not None and orders_per_s * together.total_seconds() < page_size / 2:
            return [Window(self.checked, before)]
        return [fresh, Window(self.checked, aged, late=True)]

    def finished(self, window: Window, lookback: timedelta) -> Marks:
        """The marks once every page of `window` is read."""
        if window.late:
            return Marks(self.since, max(self.checked, window.before))
        checked = self.checked
        if window.after <= checked:
            # The read reached back to what was checked: what it read a look-back late is too.
            checked = max(checked, floor(window.before - lookback))
        return Marks(max(self.since, window.before), checked)

    def reading(self, window: Window) -> Marks:
        """The marks part-way through `window` (its token and `seen` say where)."""
        return replace(self, window=window)

    def cursor(self) -> str:
        """The JSON cursor committed with a page."""
        window = self.window
        return json.dumps(
            {
                "since": format_time(self.since),
                "checked": format_time(self.checked),
                "after": format_time(window.after) if window else None,
                "before": format_time(window.before) if window else None,
                "late": window.late if window else False,
                "next": window.next_token if window else None,
                "seen": list(window.seen) if window else [],
            }
        )


def floor(moment: datetime) -> datetime:
    """Whole seconds, as Amazon prints them: both window edges are inclusive, so rounding
    either edge down loses no order stamped within that second."""
    return moment.astimezone(UTC).replace(microsecond=0)

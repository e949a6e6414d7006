"""eBay's cap on listing revisions: each listing takes at most 250 a calendar day.

eBay blocks further revisions of a listing that reached the cap until the next day
(https://developer.ebay.com/DevZone/merchant-data/CallRef/ReviseInventoryStatus.html, "Daily
... call limit": 250 times in one calendar day; the Inventory API's bulkUpdatePriceQuantity
revises the same listing). A listing that sells all day on other channels would spend them by
noon and then show a stale, too-high quantity until midnight: the oversell storesync exists
to prevent.

So the connector spends them with care. While a listing has used less than half its day's
revisions, every change goes at once. From then on a fall in quantity (a sale elsewhere: the
number that stops an oversell) still goes at once, but a rise (a restock, a cancellation) is
spread over what is left of the day (Pacific time, eBay's day): it waits until `seconds left /
revisions left` after the last revision, and meanwhile the outbox keeps only the newest number,
so nothing is lost, only coalesced. The day's last revision is kept for a push to 0 (sold out),
which goes while any revision is left. When eBay refuses anyway (the agent restarted and forgot
its count), the listing waits for midnight.

Counts live in memory: eBay has no call that reports them, and after a restart the refusal
above is the backstop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

REVISIONS_PER_DAY = 250
PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(slots=True)
class _Day:
    day: date
    used: int = 0
    last_at: datetime | None = None
    last_qty: int | None = None


class RevisionBudget:
    """Revisions each SKU's listing has had today, and when the next one may go."""

    def __init__(self, per_day: int = REVISIONS_PER_DAY) -> None:
        if per_day < 2:
            raise ValueError("a listing needs at least 2 revisions a day to be paced")
        self.per_day = per_day
        self._days: dict[str, _Day] = {}

    def wait(self, sku: str, quantity: int, now: datetime) -> float:
        """Seconds before `sku` may be revised to `quantity` (0: at once)."""
        today = self._today(sku, now)
        left = self.per_day - today.used
        if left <= 0:
            return seconds_to_midnight(now)
        if quantity <= 0 or today.used < self.per_day // 2 or today.last_at is None:
            return 0.0
        falling = today.last_qty is not None and quantity < today.last_qty
        # The last revision is kept for a sell-out; a fall may use every other one.
        spare = left - 1
        if falling and spare > 0:
            return 0.0
        if spare <= 0:
            return seconds_to_midnight(now)
        gap = seconds_to_midnight(now) / spare
        return max(0.0, (today.last_at - now).total_seconds() + gap)

    def spent(self, sku: str, quantity: int, now: datetime) -> None:
        """`sku`'s listing took one revision, to `quantity`."""
        today = self._today(sku, now)
        today.used += 1
        today.last_at = now
        today.last_qty = quantity

    def exhausted(self, sku: str, now: datetime) -> float:
        """eBay refused `sku` for the cap: no more today. Returns seconds until midnight."""
        self._today(sku, now).used = self.per_day
        return seconds_to_midnight(now)

    def used(self, sku: str, now: datetime) -> int:
        """Revisions `sku`'s listing had today, as far as this process knows."""
        return self._today(sku, now).used

    def _today(self, sku: str, now: datetime) -> _Day:
        day = _pacific(now).date()
        entry = self._days.get(sku)
        if entry is None or entry.day != day:
            entry = self._days[sku] = _Day(day)
        return entry


def seconds_to_midnight(now: datetime) -> float:
    """Seconds until the next Pacific midnight, when eBay's day (and its counts) turn over."""
    local = _pacific(now)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=PACIFIC)
    # Through UTC: aware datetimes sharing a tzinfo subtract as naive ones, wrong across DST.
    return (midnight.astimezone(UTC) - local.astimezone(UTC)).total_seconds()


def _pacific(now: datetime) -> datetime:
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(PACIFIC)


def is_revision_cap(error_id: int | None, *texts: str) -> bool:
    """Whether an eBay error is the daily revision cap. Its errorId, 25002, is eBay's catch-all
    "a user error has occurred", so the text decides: the message or the long message."""
    return error_id == 25002 and any("revis" in text.lower() for text in texts)

"""Time for fake channels: the wall clock for timestamps, a monotonic clock for limits and storms.

Sandboxes read time only through a `SandboxClock`, so a test can swap in a `ManualClock` and move
time by hand: rate-limit buckets refill, storms end and webhook retries come due exactly when the
test says, never because a sleep happened to be long enough.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, the way the fakes print every timestamp."""
    # Always six fraction digits: isoformat() drops them at .000000, and clients that parse
    # timestamps as text (or sort them) must not see two shapes.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SandboxClock:
    """The real clocks: UTC wall time and `time.monotonic()`."""

    def now(self) -> datetime:
        """The current UTC time (timezone-aware)."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        await asyncio.sleep(max(seconds, 0.0))


class ManualClock(SandboxClock):
    """A clock that moves only when told to (`advance`), or when something sleeps on it."""

    def __init__(
        self,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        monotonic_start: float = 1_000.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._monotonic = monotonic_start

    def now(self) -> datetime:
        """The current manual UTC time."""
        return self._now

    def monotonic(self) -> float:
        """The current manual monotonic reading."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by `seconds`."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds

    async def sleep(self, seconds: float) -> None:
        """Jump forward instead of waiting, then let other tasks run once."""
        # Jumping keeps webhook retry schedules and storm windows consistent with `now()` while
        # making a test that exercises a 31 s retry ladder finish in milliseconds.
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)

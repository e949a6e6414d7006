"""Server-side rate limits that fake channels enforce, and count when clients exceed them.

Two models cover the channels storesync talks to (reference/channel-apis.md, section 6 of each):
a token bucket of requests (Amazon SP-API per operation, WooCommerce hosts, the reference channel)
and a leaky bucket of query-cost points (Shopify GraphQL). Both refill continuously from a
monotonic clock and answer `check(cost) -> Decision(allowed, retry_after_s, remaining)`; a
request refused is counted in `over_limit`, which is how tests prove a client's limiter keeps it
under the limit instead of discovering it by 429s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol


class Decision(NamedTuple):
    """A limit's answer: may the request run, how long to wait if not, what is left."""

    allowed: bool
    retry_after_s: float
    remaining: float


class RateRule(Protocol):
    """What a sandbox needs from a limit model."""

    over_limit: int

    def check(self, cost: float = 1.0) -> Decision:
        """Take `cost` if available; otherwise count an over-limit arrival."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The limit's state as JSON for the control API."""
        ...


class _Bucket:
    """A continuously refilled bucket: `capacity` units, `refill_per_s` units per second."""

    def __init__(
        self, capacity: float, refill_per_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.over_limit = 0
        self.allowed = 0
        self._configure(capacity, refill_per_s)
        self._level = self.capacity
        self._stamp = clock()

    def _configure(self, capacity: float, refill_per_s: float) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("a rate limit needs a positive capacity and refill rate")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)

    def _refill(self) -> float:
        now = self._clock()
        elapsed = max(now - self._stamp, 0.0)
        self._level = min(self.capacity, self._level + elapsed * self.refill_per_s)
        self._stamp = now
        return self._level

    def check(self, cost: float = 1.0) -> Decision:
        """Take `cost` units if the bucket holds them; otherwise count an over-limit arrival."""
        level = self._refill()
        if cost > self.capacity:
            # It can never fit: not an over-limit arrival but a request the caller must refuse
            # with its channel's own "too costly" error (Shopify's MAX_COST_EXCEEDED).
            return Decision(False, math.inf, level)
        if level >= cost:
            self._level = level - cost
            self.allowed += 1
            return Decision(True, 0.0, self._level)
        self.over_limit += 1
        return Decision(False, (cost - level) / self.refill_per_s, level)

    def refund(self, units: float) -> None:
        """Give back units charged but not used (Shopify refunds requested minus actual cost)."""
        self._level = min(self.capacity, self._refill() + max(units, 0.0))

    def remaining(self) -> float:
        """Units available now."""
        return self._refill()

    def reset(self) -> None:
        """Full bucket, counters at zero."""
        self._level = self.capacity
        self._stamp = self._clock()
        self.over_limit = 0
        self.allowed = 0


class TokenBucketRule(_Bucket):
    """Requests per second with a burst: each request takes `cost` tokens (usually 1)."""

    def __init__(
        self, rate_per_s: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(burst, rate_per_s, clock)

    @property
    def rate_per_s(self) -> float:
        """Tokens added per second."""
        return self.refill_per_s

    @property
    def burst(self) -> float:
        """The most tokens the bucket holds."""
        return self.capacity

    def reconfigure(self, *, rate_per_s: float | None = None, burst: float | None = None) -> None:
        """Change the limit in place, keeping the counters; the bucket never holds over `burst`."""
        self._refill()
        self._configure(
            burst if burst is not None else self.capacity,
            rate_per_s if rate_per_s is not None else self.refill_per_s,
        )
        self._level = min(self._level, self.capacity)

    def snapshot(self) -> dict[str, Any]:
        """Rate, burst, tokens left and counters."""
        return {
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "remaining": self.remaining(),
            "allowed": self.allowed,
            "over_limit": self.over_limit,
        }


class CostBucketRule(_Bucket):
    """A leaky bucket of cost points (Shopify GraphQL): `capacity` points, `restore_per_s` back."""

    def __init__(
        self, capacity: float, restore_per_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(capacity, restore_per_s, clock)

    @property
    def restore_per_s(self) -> float:
        """Points restored per second."""
        return self.refill_per_s

    def reconfigure(
        self, *, capacity: float | None = None, restore_per_s: float | None = None
    ) -> None:
        """Change the limit in place, keeping the counters."""
        self._refill()
        self._configure(
            capacity if capacity is not None else self.capacity,
            restore_per_s if restore_per_s is not None else self.refill_per_s,
        )
        self._level = min(self._level, self.capacity)

    def snapshot(self) -> dict[str, Any]:
        """Shopify's throttleStatus names, plus counters."""
        return {
            "maximumAvailable": self.capacity,
            "currentlyAvailable": self.remaining(),
            "restoreRate": self.restore_per_s,
            "allowed": self.allowed,
            "over_limit": self.over_limit,
        }

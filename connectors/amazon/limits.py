"""SP-API usage plans: one token bucket per operation, as Amazon meters them.

Amazon limits each operation separately, per selling partner and application, with a token
bucket of a rate (requests per second) and a burst; `x-amzn-RateLimit-Limit` on a response
carries the rate actually applied, when Amazon sends it, and a dynamic usage plan may raise it:
https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits

The defaults below are the "Usage Plan" tables of the official models (ordersV0.json,
listingsItems_2021-08-01.json, feeds_2021-06-30.json; reference/channel-apis.md table 3.6).
A 429 drains that operation's bucket, so the next call of the same operation waits one refill
instead of hammering a bucket the server says is empty; other operations are not held back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.http import TokenBucket

RATE_HEADER = "x-amzn-RateLimit-Limit"
# Pace at a little under the published rate: our clock and Amazon's never agree exactly, and a
# call that arrives a hair early is a 429 (and an over_limit in the sandbox).
HEADROOM = 0.97


@dataclass(frozen=True, slots=True)
class UsagePlan:
    """One operation's default rate (requests per second) and burst."""

    rate_per_s: float
    burst: int


USAGE_PLANS: Mapping[str, UsagePlan] = {
    # ordersV0.json
    "getOrders": UsagePlan(0.0167, 20),
    "getOrder": UsagePlan(0.5, 30),
    "getOrderItems": UsagePlan(0.5, 30),
    "confirmShipment": UsagePlan(2.0, 10),
    # listingsItems_2021-08-01.json
    "searchListingsItems": UsagePlan(5.0, 5),
    "getListingsItem": UsagePlan(5.0, 10),
    "patchListingsItem": UsagePlan(5.0, 5),
    # feeds_2021-06-30.json
    "createFeedDocument": UsagePlan(0.5, 15),
    "createFeed": UsagePlan(0.0083, 15),
    "getFeed": UsagePlan(2.0, 15),
    "getFeedDocument": UsagePlan(0.0222, 10),
}


class OperationBucket(TokenBucket):
    """One operation's bucket: paces a little under the rate, learns the header, drains on 429."""

    def __init__(
        self,
        plan: UsagePlan,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # One token below Amazon's burst: requests leave here paced, but arrive with jitter, and
        # the spare token absorbs two arriving closer together than they left.
        super().__init__(
            plan.rate_per_s * HEADROOM, max(plan.burst - 1, 1), clock=clock, sleep=sleep
        )
        self.throttled = 0  # 429s this operation met
        self.last_429_had_retry_after = False

    def observe(self, response: httpx.Response) -> None:
        """Adopt the rate Amazon reports (with headroom); an empty bucket after a 429."""
        raw = response.headers.get(RATE_HEADER)
        try:
            rate = float(raw) if raw is not None else None
        except ValueError:
            rate = None
        self._refill()
        if rate is not None and 0 < rate < float("inf"):
            self._rate = rate * HEADROOM
        if response.status_code == 429:
            self.throttled += 1
            self.last_429_had_retry_after = "Retry-After" in response.headers
            self._level = 0.0

    def refill_wait(self) -> float:
        """Seconds until this bucket holds one token again (the wait a 429 without
        Retry-After implies)."""
        self._refill()
        return max((1.0 - self._level) / self._rate, 0.0)

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Tokens available, burst, rate, pause, and 429s met."""
        state = super().snapshot()
        state["throttled"] = self.throttled
        return state


class UsagePlans:
    """Every operation's bucket for one seller account; `snapshot()` is what /status shows."""

    def __init__(
        self,
        plans: Mapping[str, UsagePlan] = USAGE_PLANS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._buckets = {
            operation: OperationBucket(plan, clock=clock, sleep=sleep)
            for operation, plan in plans.items()
        }

    def bucket(self, operation: str) -> OperationBucket:
        """The bucket of `operation` (KeyError for an operation without a plan)."""
        return self._buckets[operation]

    def snapshot(self) -> dict[str, Any]:
        """`{"model": "token_bucket", "operations": {operation: bucket snapshot}}`."""
        return {
            "model": "token_bucket",
            "operations": {name: bucket.snapshot() for name, bucket in self._buckets.items()},
        }

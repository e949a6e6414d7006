"""The agent's recent activity as a time series for the dashboard's sparklines.

Every SAMPLE_S the sampler reads its own Prometheus counters (orders created, pushes done, and
the push latency histogram's sum and count) and keeps the differences: orders and pushes per
minute and the mean push latency over each interval, for the last hour, in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.metrics import Metrics

SAMPLE_S = 10.0
KEPT = 360  # an hour of samples


@dataclass(frozen=True, slots=True)
class Totals:
    """Counter totals at one moment."""

    at: float
    orders: float
    pushes: float
    latency_sum: float
    latency_count: float


def read_totals(metrics: Metrics, clock: Callable[[], float] = time.time) -> Totals:
    """Orders created, pushes done and the push latency histogram's sum and count, now."""
    orders = pushes = latency_sum = latency_count = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if (sample.name == "storesync_orders_applied_total"
                    and sample.labels.get("result") == "created"):
                orders += sample.value
            elif (sample.name == "storesync_pushes_total"
                    and sample.labels.get("result") == "done"):
                pushes += sample.value
            elif sample.name == "storesync_push_latency_seconds_sum":
                latency_sum += sample.value
            elif sample.name == "storesync_push_latency_seconds_count":
                latency_count += sample.value
    return Totals(clock(), orders, pushes, latency_sum, latency_count)


class Activity:
    """A ring of per-interval rates, fed by `sample()` every SAMPLE_S."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self._metrics = metrics
        self._clock = clock
        self._last = read_totals(metrics, clock)
        self._points: deque[dict[str, float | None]] = deque(maxlen=KEPT)

    def sample(self) -> None:
        """Add one point: rates since the previous sample."""
        now = read_totals(self._metrics, self._clock)
        minutes = max(now.at - self._last.at, 1e-6) / 60
        done = now.latency_count - self._last.latency_count
        self._points.append({
            "at": round(now.at, 3),
            "orders_per_min": round((now.orders - self._last.orders) / minutes, 2),
            "pushes_per_min": round((now.pushes - self._last.pushes) / minutes, 2),
            "push_latency_ms": (round((now.latency_sum - self._last.latency_sum) / done * 1000, 1)
                                if done > 0 else None),
        })
        self._last = now

    def points(self) -> list[dict[str, float | None]]:
        """The samples, oldest first."""
        return list(self._points)

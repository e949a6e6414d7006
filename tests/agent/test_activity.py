"""The dashboard's sparklines: rates per interval from the agent's own counters."""

from __future__ import annotations

from agent.http.activity import Activity
from agent.metrics import Metrics


def test_each_sample_holds_the_rates_since_the_one_before() -> None:
    metrics = Metrics()
    now = [1000.0]
    activity = Activity(metrics, clock=lambda: now[0])
    metrics.orders_applied.labels("shop", "webhook", "created").inc(3)
    metrics.orders_applied.labels("shop", "webhook", "duplicate").inc(5)  # not a new order
    metrics.pushes.labels("woo", "stock", "done").inc(6)
    metrics.push_latency.labels("woo", "stock").observe(0.2)
    metrics.push_latency.labels("woo", "stock").observe(0.4)
    now[0] += 30
    activity.sample()
    now[0] += 30
    activity.sample()  # nothing happened
    first, second = activity.points()
    assert first == {"at": 1030.0, "orders_per_min": 6.0, "pushes_per_min": 12.0,
                     "push_latency_ms": 300.0}
    assert second == {"at": 1060.0, "orders_per_min": 0.0, "pushes_per_min": 0.0,
                      "push_latency_ms": None}

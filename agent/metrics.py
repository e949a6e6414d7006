"""Prometheus metrics for /metrics: counters bumped by the workers, gauges read at scrape time.

Each runtime has its own registry (not the process-global one), so tests can run several.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds from a value being queued to the channel accepting it; a second is the promise.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
CHANNEL_STATES = ("ok", "degraded", "needs_reauth", "paused")


class Metrics:
    """Every metric storesync exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks_received = Counter(
            "storesync_webhooks_received_total", "Webhook deliveries stored (new or duplicate).",
            ["channel", "result"], registry=self.registry,
        )
        self.webhooks_rejected = Counter(
            "storesync_webhooks_rejected_total", "Webhook deliveries refused, by reason.",
            ["channel", "reason"], registry=self.registry,
        )
        self.orders_applied = Counter(
            "storesync_orders_applied_total",
            "Order versions applied (created, updated), ignored (duplicate, stale) or refused "
            "(impossible numbers).",
            ["channel", "source", "result"], registry=self.registry,
        )
        self.pushes = Counter(
            "storesync_pushes_total", "Pushed outbox rows by result.",
            ["channel", "kind", "result"], registry=self.registry,
        )
        self.push_latency = Histogram(
            "storesync_push_latency_seconds",
            "From a value being queued to the channel accepting it.",
            ["channel", "kind"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.polls = Counter(
            "storesync_polls_total", "Order polls by result.", ["channel", "result"],
            registry=self.registry,
        )

    def watch_store(
        self,
        reader: Callable[[], sqlite3.Connection],
        states: Callable[[], dict[str, str]],
    ) -> None:
        """Export outbox depth, the inbox backlog and channel states, read when scraped."""
        self.registry.register(_StoreCollector(reader, states))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(
        self, reader: Callable[[], sqlite3.Connection], states: Callable[[], dict[str, str]]
    ) -> None:
        self._reader = reader
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "storesync_outbox_depth", "Outbox rows by state.", labels=["channel", "state"]
        )
        for channel, state, count in self._reader().execute(
            "SELECT channel, state, count(*) FROM outbox "
            "WHERE state IN ('pending', 'inflight', 'dead') GROUP BY channel, state"
        ):
            depth.add_metric([channel, state], count)
        yield depth
        inbox = GaugeMetricFamily(
            "storesync_inbox_backlog", "Stored webhooks not processed yet.", labels=["state"]
        )
        for parked, count in self._reader().execute(
            "SELECT parked, count(*) FROM inbox WHERE processed_at IS NULL GROUP BY parked"
        ):
            inbox.add_metric(["parked" if parked else "pending"], count)
        yield inbox
        state_family = GaugeMetricFamily(
            "storesync_channel_state", "1 for each channel's current state.",
            labels=["channel", "state"],
        )
        for channel, current in self._states().items():
            for state in CHANNEL_STATES:
                state_family.add_metric([channel, state], 1.0 if state == current else 0.0)
        yield state_family

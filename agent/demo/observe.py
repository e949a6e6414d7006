"""What the demo and the benchmarks measure from outside the agent: every sale and cancellation
(the ledger), every level change each channel shows (the watch), and from those the propagation
time of each sale and the units sold beyond stock.

Propagation of a sale is the time from the shopper's checkout on one channel until every other
channel listing the SKU shows a number that accounts for it: at most the stock left after that
sale. A sample is kept only when no other sale or cancellation of the same SKU happened before
it completed; with several events in flight the moment "this sale reached that channel" is not
defined, and guessing would flatter or punish the figure.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


def percentile(samples: Sequence[float], pct: float) -> float | None:
    """The `pct` percentile of `samples` (nearest rank), or None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def summary_ms(samples: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p95 and p99 of samples in seconds, as milliseconds, with the sample count."""
    def ms(pct: float) -> float | None:
        value = percentile(samples, pct)
        return None if value is None else round(value * 1000, 1)

    return {"p50": ms(50), "p95": ms(95), "p99": ms(99), "samples": len(samples)}


@dataclass(slots=True)
class Sale:
    """One order a shopper placed (and the channel accepted)."""

    channel: str
    order_id: str
    lines: dict[str, int]
    at: float  # monotonic, just before the checkout request went out
    cancelled: bool = False
    shipped: bool = False


@dataclass(slots=True)
class _Pending:
    """A sale line waiting for every other channel to show its effect."""

    sku: str
    origin: str
    at: float
    ceiling: int  # the other channels must show at most this
    waiting: set[str]
    polled_origin: bool  # the sale was on a channel storesync hears only by polling


@dataclass(slots=True)
class Ledger:
    """Sales, cancellations and the stock they leave, as the shoppers saw them."""

    stock: dict[str, int]  # starting units per SKU
    sales: list[Sale] = field(default_factory=list)
    net_sold: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused: int = 0  # checkouts a channel refused for lack of stock

    def record_sale(self, sale: Sale) -> None:
        self.sales.append(sale)
        for sku, qty in sale.lines.items():
            self.net_sold[sku] += qty

    def record_cancel(self, sale: Sale) -> None:
        sale.cancelled = True
        for sku, qty in sale.lines.items():
            self.net_sold[sku] -= qty

    def left(self, sku: str) -> int:
        """Units of `sku` not sold (negative when oversold)."""
        return self.stock[sku] - self.net_sold[sku]

    def oversold(self) -> int:
        """Units sold beyond stock, over every SKU."""
        return sum(max(0, -self.left(sku)) for sku in self.stock)

    def expected_published(self) -> dict[str, int]:
        """What every channel should show once the agent has caught up (no buffers)."""
        return {sku: max(0, self.left(sku)) for sku in self.stock}


class Watch:
    """Reads every channel's levels every `every_s` and times each sale's propagation."""

    def __init__(
        self,
        readers: Mapping[str, Callable[[], Mapping[str, int | None]]],
        ledger: Ledger,
        *,
        polled: frozenset[str] = frozenset(),
        every_s: float = 0.01,
    ) -> None:
        self.readers = dict(readers)
        self.ledger = ledger
        self.polled = polled
        self.every_s = every_s
        self.samples: list[float] = []  # seconds, sales on channels that send webhooks
        self.polled_samples: list[float] = []  # sales on channels storesync polls
        self.by_origin: dict[str, list[float]] = defaultdict(list)  # every sample, by channel
        # Per receiving channel: from a sale elsewhere until this channel showed it.
        self.by_target: dict[str, list[float]] = defaultdict(list)
        self.discarded = 0
        self.changes = 0  # level changes seen, on every channel
        self._pending: dict[str, list[_Pending]] = defaultdict(list)
        self._levels: dict[str, dict[str, int | None]] = {}
        self._stopped = asyncio.Event()

    def on_sale(self, sale: Sale) -> None:
        """Start timing a sale (call after `Ledger.record_sale`)."""
        for sku, _qty in sale.lines.items():
            self._contaminate(sku)
            others = {name for name in self.readers if name != sale.channel}
            if others:
                self._pending[sku].append(
                    _Pending(sku, sale.channel, sale.at, max(0, self.ledger.left(sku)), others,
                             sale.channel in self.polled)
                )

    def on_cancel(self, sale: Sale) -> None:
        """A cancellation changes the target: sales of its SKUs still in flight are discarded."""
        for sku in sale.lines:
            self._contaminate(sku)

    def _contaminate(self, sku: str) -> None:
        self.discarded += len(self._pending.pop(sku, []))

    def tick(self) -> None:
        """Read every channel once and complete the sales whose effect now shows."""
        now = time.monotonic()
        for name, read in self.readers.items():
            levels = dict(read())
            before = self._levels.get(name)
            if before is not None:
                self.changes += sum(1 for sku, qty in levels.items() if before.get(sku) != qty)
            self._levels[name] = levels
        for sku in list(self._pending):
            still = []
            for pending in self._pending[sku]:
                for name in list(pending.waiting):
                    shown = self._levels[name].get(sku)
                    if shown is None or shown <= pending.ceiling:
                        pending.waiting.discard(name)
                        self.by_target[name].append(now - pending.at)
                if pending.waiting:
                    still.append(pending)
                else:
                    target = self.polled_samples if pending.polled_origin else self.samples
                    target.append(now - pending.at)
                    self.by_origin[pending.origin].append(now - pending.at)
            if still:
                self._pending[sku] = still
            else:
                del self._pending[sku]

    @property
    def in_flight(self) -> int:
        """Sales whose effect some channel does not show yet."""
        return sum(len(p) for p in self._pending.values())

    async def run(self) -> None:
        """Tick until `stop()`."""
        while not self._stopped.is_set():
            self.tick()
            try:
                await asyncio.wait_for(self._stopped.wait(), self.every_s)
            except TimeoutError:
                pass

    def stop(self) -> None:
        """End `run()` after its current tick."""
        self._stopped.set()

"""Engine benchmark: durable orders per second and a full republish, each against a same-run floor.

Run as `python -m bench.engine [--quick]` from the repository root. The JSON document goes to
stdout, a table and progress lines to stderr. Every figure that depends on the machine is also
given as a ratio against a baseline measured in the same run, because these machines are noisy:
- orders: the engine's `apply_order` (3 lines, 10,000-SKU catalog, 4 channels, one durable
  transaction each) against raw inserts of an order row and 3 line rows, one transaction each, on
  a fresh file with the same pragmas (WAL, synchronous=FULL): the floor any durable order pays.
- recompute: `recompute_all` over 100,000 SKUs x 4 channels, once when every number changes and
  once when nothing does, against reading the `stock` and `skus` tables into Python.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from agent.engine import ChannelRules, Engine, QtyRule, Rules
from agent.store import Store
from agent.store.timestamps import iso
from agent.store.transaction import Tx
from bench.report import emit, machine, peak_rss_mib, percentile_ms, progress
from connectors.base import ChannelOrder, OrderLine, OrderStatus

CHANNELS = (("shop", "shopify"), ("woo", "woocommerce"), ("amz", "amazon"), ("ebay", "ebay"))
LOCATION = "main"
LINES_PER_ORDER = 3
STOCK_PER_SKU = 1_000
SEED_CHUNK = 10_000
# Engine and baseline alternate in blocks, so drift in the machine's speed hits both alike.
BLOCK = 100


@dataclass
class Sizes:
    """How big each phase is."""

    orders: int
    order_skus: int
    recompute_skus: int


FULL = Sizes(orders=2_000, order_skus=10_000, recompute_skus=100_000)
QUICK = Sizes(orders=300, order_skus=10_000, recompute_skus=10_000)


@dataclass
class Timings:
    """Per-operation wall times in seconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Sum of all samples."""
        return sum(self.samples)

    def per_s(self) -> float:
        """Operations per second."""
        return len(self.samples) / self.total

    def pct_ms(self, pct: float) -> float:
        """The `pct` percentile in milliseconds (nearest rank)."""
        return percentile_ms(self.samples, pct)


def rules(*, buffer: int = 0) -> Rules:
    """Four channels selling everything from one location, under one global buffer."""
    return Rules(
        locations=(LOCATION,),
        channels={name: ChannelRules(name, kind, (LOCATION,)) for name, kind in CHANNELS},
        defaults=QtyRule(buffer=buffer, allocation_pct=100),
    )


def sku_name(n: int) -> str:
    """The n-th benchmark SKU."""
    return f"SKU{n:06d}"


def seed(store: Store, engine: Engine, count: int) -> None:
    """Stock `count` SKUs through the engine in chunks, then mark every push as confirmed."""
    for start in range(0, count, SEED_CHUNK):
        chunk = [
            (sku_name(n), LOCATION, STOCK_PER_SKU)
            for n in range(start, min(start + SEED_CHUNK, count))
        ]
        store.run(lambda tx, chunk=chunk: engine.set_counts(tx, chunk))
        progress(f"  seeded {min(start + SEED_CHUNK, count):,} / {count:,} SKUs")
    store.run(confirm_all_pushes)


def confirm_all_pushes(tx: Tx) -> int:
    """Mark every pending push done and its value the channel's, as a drained outbox leaves it.

    In steady state the pusher has confirmed earlier pushes, so new pushes insert outbox rows and
    each carries a compare-and-set baseline; the bench measures that case, not a backlog. Done in
    bulk SQL because confirming 400,000 pushes one by one is not what is being measured.
    """
    now = iso(tx.now())
    tx.conn.execute(
        "UPDATE listings SET published_qty = target_qty, published_at = ?, "
        "channel_qty = target_qty, seen_at = ? WHERE target_qty IS NOT NULL",
        (now, now),
    )
    return tx.conn.execute(
        "UPDATE outbox SET state = 'done', updated_at = ? WHERE state = 'pending'", (now,)
    ).rowcount


def make_orders(count: int, skus: int) -> list[ChannelOrder]:
    """`count` open orders of 3 lines of distinct random SKUs, round-robin over the channels."""
    rng = random.Random(42)
    now = datetime.now(UTC)
    orders = []
    for i in range(count):
        picked = rng.sample(range(skus), LINES_PER_ORDER)
        orders.append(
            ChannelOrder(
                channel=CHANNELS[i % len(CHANNELS)][0],
                external_id=f"bench-{i}",
                updated_at=now,
                created_at=now,
                status=OrderStatus.OPEN,
                lines=tuple(
                    OrderLine(f"L{n}", sku_name(s), rng.randint(1, 2)) for n, s in enumerate(picked)
                ),
                name=f"#{i}",
            )
        )
    return orders


def durable_connection(path: Path) -> sqlite3.Connection:
    """A raw connection with the store's pragmas, transactions under our control."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def baseline_insert(conn: sqlite3.Connection, order: ChannelOrder) -> None:
    """The floor of a durable order: one order row and its line rows in one transaction."""
    now = iso(order.updated_at)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO orders (channel, external_id, status, reserves, updated_at, content_hash, "
        "created_at, first_seen_at, applied_at) VALUES (?, ?, 'open', 1, ?, '', ?, ?, ?)",
        (order.channel, order.external_id, now, now, now, now),
    )
    conn.executemany(
        "INSERT INTO order_lines (channel, external_id, line_id, channel_sku, sku, qty) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (order.channel, order.external_id, ln.line_id, ln.sku, ln.sku, ln.quantity)
            for ln in order.lines
        ],
    )
    conn.execute("COMMIT")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run `fn`; return its wall time and result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_orders(folder: Path, sizes: Sizes) -> dict[str, Any]:
    """Orders per second through the engine vs raw durable inserts, interleaved in blocks."""
    progress(f"orders: seeding a {sizes.order_skus:,}-SKU catalog")
    engine = Engine(rules())
    orders = make_orders(sizes.orders, sizes.order_skus)
    # The baseline writes the same tables (same indexes, STRICT, checks) to its own fresh file.
    base_path = folder / "baseline.db"
    Store(base_path).close()
    results: list[str] = []
    engine_t, base_t = Timings(), Timings()
    with Store(folder / "orders.db") as store:
        seed(store, engine, sizes.order_skus)
        base = durable_connection(base_path)
        try:
            progress(f"orders: applying {sizes.orders:,} orders, {LINES_PER_ORDER} lines each")
            for start in range(0, len(orders), BLOCK):
                block = orders[start : start + BLOCK]
                for order in block:
                    took, outcome = timed(
                        lambda order=order: store.run(lambda tx: engine.apply_order(tx, order))
                    )
                    engine_t.samples.append(took)
                    results.append(outcome.result)
                for order in block:
                    took, _ = timed(lambda order=order: baseline_insert(base, order))
                    base_t.samples.append(took)
                if (start // BLOCK) % 5 == 4:
                    progress(f"  {start + len(block):,} / {len(orders):,}")
        finally:
            base.close()
        outbox_rows = (
            store.reader()
            .execute("SELECT count(*) FROM outbox WHERE state = 'pending'")
            .fetchone()[0]
        )
    if results.count("created") != len(orders):
        raise SystemExit(f"expected every order created, got {sorted(set(results))}")
    return {
        "orders": len(orders),
        "catalog_skus": sizes.order_skus,
        "channels": len(CHANNELS),
        "lines_per_order": LINES_PER_ORDER,
        "pending_pushes_after": outbox_rows,
        "engine_s": round(engine_t.total, 4),
        "orders_per_s": round(engine_t.per_s(), 1),
        "p50_ms": round(engine_t.pct_ms(50), 3),
        "p99_ms": round(engine_t.pct_ms(99), 3),
        "baseline_s": round(base_t.total, 4),
        "baseline_per_s": round(base_t.per_s(), 1),
        "baseline_p50_ms": round(base_t.pct_ms(50), 3),
        "baseline_p99_ms": round(base_t.pct_ms(99), 3),
        "engine_vs_baseline": round(engine_t.total / base_t.total, 2),
        # Medians too: one slow fsync moves a total more than a typical order.
        "engine_vs_baseline_p50": round(engine_t.pct_ms(50) / base_t.pct_ms(50), 2),
    }


def read_floor(path: Path, repeats: int = 3) -> float:
    """The fastest of `repeats` full reads of `stock` and `skus` into Python."""
    best = float("inf")
    for _ in range(repeats):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            took, _rows = timed(
                lambda conn=conn: (
                    conn.execute("SELECT sku, location, on_hand FROM stock").fetchall(),
                    conn.execute("SELECT sku, kind, committed FROM skus").fetchall(),
                )
            )
        finally:
            conn.close()
        best = min(best, took)
    return best


def bench_recompute(folder: Path, sizes: Sizes) -> dict[str, Any]:
    """Time recompute_all over every (channel, SKU): all numbers changed, then none changed."""
    count = sizes.recompute_skus
    path = folder / "recompute.db"
    progress(f"recompute: seeding {count:,} SKUs in chunks of {SEED_CHUNK:,} (not timed)")
    with Store(path) as store:
        seed(store, Engine(rules(buffer=0)), count)
        # The merchant raises the global buffer: every published number on every channel moves.
        engine = Engine(rules(buffer=1))
        progress(f"recompute: every number changes ({count * len(CHANNELS):,} pushes)")
        changed_s, changed_rows = timed(lambda: store.run(engine.recompute_all))
        progress("recompute: nothing changes")
        unchanged_s, unchanged_rows = timed(lambda: store.run(engine.recompute_all))
    progress("recompute: baseline read of stock and skus")
    floor_s = read_floor(path)
    return {
        "skus": count,
        "channels": len(CHANNELS),
        "changed_s": round(changed_s, 4),
        "changed_rows": changed_rows,
        "unchanged_s": round(unchanged_s, 4),
        "unchanged_rows": unchanged_rows,
        "baseline_read_s": round(floor_s, 4),
        "changed_vs_baseline": round(changed_s / floor_s, 1),
        "unchanged_vs_baseline": round(unchanged_s / floor_s, 1),
    }


def render(report: dict[str, Any]) -> Table:
    """The report as a table on stderr, for people."""
    o, r, m = report["orders"], report["recompute"], report["machine"]
    table = Table(
        title="storesync engine benchmark" + (" (quick)" if report["quick"] else ""),
        caption=f"orders: {o['orders']:,} x {o['lines_per_order']} lines, "
        f"{o['catalog_skus']:,} SKUs, {o['channels']} channels; recompute: {r['skus']:,} SKUs x "
        f"{r['channels']} channels. {m['platform']}, Python {m['python']}, SQLite {m['sqlite']}, "
        f"{m['cpu_count']} CPUs, {m['date']}",
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        "orders/s",
        f"{o['orders_per_s']:,.0f}",
        f"{o['baseline_per_s']:,.0f}",
        f"{o['engine_vs_baseline']:.2f}x",
    )
    table.add_row(
        "order p50 ms",
        f"{o['p50_ms']:.2f}",
        f"{o['baseline_p50_ms']:.2f}",
        f"{o['engine_vs_baseline_p50']:.2f}x",
    )
    table.add_row("order p99 ms", f"{o['p99_ms']:.2f}", f"{o['baseline_p99_ms']:.2f}", "")
    table.add_row(
        f"recompute, {r['changed_rows']:,} rows",
        f"{r['changed_s']:.2f} s",
        f"{r['baseline_read_s']:.3f} s",
        f"{r['changed_vs_baseline']:.1f}x",
    )
    table.add_row(
        f"recompute, {r['unchanged_rows']:,} rows",
        f"{r['unchanged_s']:.2f} s",
        f"{r['baseline_read_s']:.3f} s",
        f"{r['unchanged_vs_baseline']:.1f}x",
    )
    table.add_row("peak RSS", f"{report['peak_rss_mib']:.0f} MiB", "", "")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run every phase and print the report."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder for the database files (default: the system temp folder)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="storesync-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        orders = bench_orders(folder, sizes)
        recompute = bench_recompute(folder, sizes)
        report = {
            "benchmark": "storesync.engine",
            "quick": args.quick,
            "machine": machine(),
            "folder_fs": str(folder.parent),
            "orders": orders,
            "recompute": recompute,
            "peak_rss_mib": peak_rss_mib(),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    emit(report, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

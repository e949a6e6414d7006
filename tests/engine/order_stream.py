"""An endless, deterministic stream of channel orders applied to a store: the crash test's victim.

Run as `python tests/engine/order_stream.py STORE.db START` with the repository root on
PYTHONPATH. It prints `ready` once the store is open, then `committed o{i}` after each new order's
transaction has returned, and runs until killed. Everything it sends is a pure function of the
order index, so the test can regenerate what any order should look like and a restarted stream
re-delivers exactly the versions an earlier run produced.

Besides the new order i, step i delivers:
- the second version of order i - 7 and the third of order i - 13 (a partial channel-side
  shipment, a cancellation, or a shipment followed by a cancellation of the rest);
- on some steps, a duplicate redelivery of one version of a recent earlier order.

Output lines other than `ready` and `committed` are diagnostics; `bad ...` means the engine
returned something impossible, and the stream exits with status 3.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta

from agent.engine import ChannelRules, Engine, QtyRule, Rules
from agent.store import Store
from agent.store.transaction import Tx
from connectors.base import ChannelOrder, OrderLine, OrderStatus

CHANNELS = ("shop", "woo", "amz", "ebay")
SKUS = tuple(f"S{n:03d}" for n in range(50))
BUNDLE = "B000"
BUNDLE_COMPONENTS = {"S000": 1, "S001": 2}
LOCATION = "main"
INITIAL_STOCK = 100_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Lags at which the later versions of an order arrive, counted in steps after its creation.
SECOND_VERSION_LAG = 7
THIRD_VERSION_LAG = 13
# How far back a duplicate redelivery may reach.
REDELIVERY_WINDOW = 50
# Orders before the start index whose versions are re-sent when a stream (re)starts.
REPLAY_ON_START = 5


def build_rules() -> Rules:
    """Four channels selling 50 SKUs and one bundle from one location."""
    kinds = {"shop": "shopify", "woo": "woocommerce", "amz": "amazon", "ebay": "ebay"}
    return Rules(
        locations=(LOCATION,),
        channels={name: ChannelRules(name, kinds[name], (LOCATION,)) for name in CHANNELS},
        bundles={BUNDLE: dict(BUNDLE_COMPONENTS)},
        sku_rules={sku: QtyRule() for sku in SKUS},
    )


def channel_of(index: int) -> str:
    """The channel order `index` is sold on."""
    return CHANNELS[index % len(CHANNELS)]


def order_id(index: int) -> str:
    """The channel's id for order `index`."""
    return f"o{index}"


def base_lines(index: int) -> tuple[OrderLine, ...]:
    """The lines order `index` is created with: 1-3 lines of random SKUs, seeded by the index."""
    rng = random.Random(index)
    lines = []
    for n in range(rng.randint(1, 3)):
        # One line in ten sells the bundle, so component lines go through crashes as well.
        sku = BUNDLE if rng.random() < 0.1 else rng.choice(SKUS)
        lines.append(OrderLine(f"L{n}", sku, rng.randint(1, 3)))
    return tuple(lines)


def later_kind(index: int) -> str:
    """What happens to order `index` after it is placed: keep, ship, cancel or ship_cancel."""
    # A separate seed from the lines', so changing one never reshuffles the other.
    rng = random.Random(f"later-{index}")
    return rng.choices(("keep", "ship", "cancel", "ship_cancel"), weights=(4, 3, 2, 1))[0]


def order_versions(index: int) -> list[ChannelOrder]:
    """Every version the channel ever reports for order `index`, oldest first."""
    created = T0 + timedelta(seconds=index)
    lines = base_lines(index)

    def version(n: int, status: OrderStatus, body: tuple[OrderLine, ...]) -> ChannelOrder:
        return ChannelOrder(
            channel=channel_of(index),
            external_id=order_id(index),
            updated_at=created + timedelta(minutes=n),
            status=status,
            lines=body,
            created_at=created,
            name=f"#{index}",
        )

    versions = [version(0, OrderStatus.OPEN, lines)]
    kind = later_kind(index)
    if kind in ("ship", "ship_cancel"):
        # The channel ships one unit of the first line itself.
        first = lines[0]
        shipped = (OrderLine(first.line_id, first.sku, first.quantity, shipped=1), *lines[1:])
        fully = all(ln.shipped == ln.quantity for ln in shipped)
        status = OrderStatus.SHIPPED if fully else OrderStatus.PARTIALLY_SHIPPED
        versions.append(version(1, status, shipped))
        if kind == "ship_cancel":
            rest = tuple(
                OrderLine(ln.line_id, ln.sku, ln.quantity, shipped=ln.shipped,
                          cancelled=ln.quantity - ln.shipped)
                for ln in shipped
            )
            versions.append(version(2, OrderStatus.CANCELLED, rest))
    elif kind == "cancel":
        cancelled = tuple(
            OrderLine(ln.line_id, ln.sku, ln.quantity, cancelled=ln.quantity) for ln in lines
        )
        versions.append(version(1, OrderStatus.CANCELLED, cancelled))
    return versions


def step_deliveries(index: int) -> list[ChannelOrder]:
    """The versions of earlier orders delivered at step `index`, after the new order."""
    out: list[ChannelOrder] = []
    for lag, n in ((SECOND_VERSION_LAG, 1), (THIRD_VERSION_LAG, 2)):
        earlier = index - lag
        if earlier >= 0:
            versions = order_versions(earlier)
            if len(versions) > n:
                out.append(versions[n])
    rng = random.Random(f"redeliver-{index}")
    if index > 0 and rng.random() < 0.4:
        earlier = rng.randint(max(0, index - REDELIVERY_WINDOW), index - 1)
        out.append(rng.choice(order_versions(earlier)))
    return out


def setup(tx: Tx, engine: Engine) -> None:
    """Bring the catalog in; give every SKU its initial count when the store is new."""
    engine.sync_catalog(tx)
    # Counting in the same transaction as the check keeps the first count from ever running twice.
    if tx.conn.execute("SELECT count(*) FROM movements").fetchone()[0] == 0:
        engine.set_counts(tx, [(sku, LOCATION, INITIAL_STOCK) for sku in SKUS])


def say(line: str) -> None:
    """Print one line for the parent and push it out now."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    """Open the store, set it up, then apply the stream from argv[2] until killed."""
    path, start = argv[1], int(argv[2])
    store = Store(path)
    say("ready")
    engine = Engine(build_rules())
    store.run(lambda tx: setup(tx, engine))

    def apply(order: ChannelOrder) -> str:
        return store.run(lambda tx: engine.apply_order(tx, order)).result

    # A restart re-delivers what came just before it, as a channel replaying webhooks would.
    for earlier in range(max(0, start - REPLAY_ON_START), start):
        for order in order_versions(earlier):
            result = apply(order)
            if result == "created":
                say(f"bad {order.external_id} re-delivered on start but was missing")
                return 3
    index = start
    while True:
        result = apply(order_versions(index)[0])
        if result == "created":
            say(f"committed {order_id(index)}")
        else:
            # Only the very first order after a restart can already be there: the run before
            # may have committed it and been killed before it could say so.
            say(f"present {order_id(index)} {result}")
            if index != start:
                say(f"bad {order_id(index)} was {result} before it was ever sent")
                return 3
        for order in step_deliveries(index):
            result = apply(order)
            if result == "created":
                say(f"bad {order.external_id} re-delivered at step {index} but was missing")
                return 3
        index += 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
